/**
 * The layering of src/, checked by `npm run lint`: a module imports only from its own folder
 * and from the layers below it.
 *
 *   domain, batch,        pure types, state rules, the group-commit helper, the package's
 *   package.ts            own directory and version
 *   log | metrics         structured logging | Prometheus metrics
 *   config                settings, loaded once
 *   store | broker        MySQL/SQLite through knex | RabbitMQ or the in-process broker
 *   server | agent        intake, relay, recorder, sweeper | the endpoint agent
 *   api | client          the HTTP API | the command-line client, which talks to it over HTTP
 *   cli | index.ts        the processes and their commands | the package's entry point
 *
 * The client imports the domain's types and nothing else of src/: it is a program of its own
 * that needs no configuration, database or broker.
 * src/ui is the web dashboard's files, ES modules that run in a browser: they import one another
 * and ./states.js, which src/api/ui.ts makes from the domain's states, and nothing imports them
 * (src/api serves them as files).
 * Folders of one layer do not import each other (log and metrics, store and broker, server and
 * agent).
 * migrations/ is data for the store and imports nothing from src/.
 */
const LAYERS = [
  ['domain', 'batch', 'package\\.ts'],
  ['log', 'metrics'],
  ['config'],
  ['store', 'broker'],
  ['server', 'agent'],
  ['api', 'client'],
  ['cli', 'index\\.ts'],
];

const path = (name) => `^src/${name}(/|$)`;
const rules = [];
LAYERS.forEach((layer, level) => {
  const above = LAYERS.slice(level + 1).flat();
  for (const name of layer) {
    const siblings = layer.filter((other) => other !== name);
    rules.push({
      name: `${name}-imports-up`,
      comment: `src/${name} is below ${above.join(', ') || 'nothing'}: it must not import them`,
      severity: 'error',
      from: { path: path(name) },
      to: { path: [...above, ...siblings].map(path) },
    });
  }
});

module.exports = {
  forbidden: [
    ...rules.filter((rule) => rule.to.path.length > 0),
    {
      name: 'no-circular',
      comment: 'modules that import each other, however indirectly',
      severity: 'error',
      from: { path: '^(src|migrations)/' },
      to: { circular: true },
    },
    {
      name: 'client-talks-http-only',
      comment: 'src/client asks a server over HTTP: of src/ it imports the domain alone',
      severity: 'error',
      from: { path: '^src/client/' },
      to: { path: '^src/', pathNot: '^src/(client|domain)/' },
    },
    {
      name: 'client-loaded-on-demand',
      comment:
        'src/cli loads src/client with a dynamic import for the client commands alone, so that ' +
        'an agent or a server never loads it',
      severity: 'error',
      from: { path: '^src/cli/' },
      to: { path: '^src/client/', dynamic: false },
    },
    {
      name: 'ui-runs-in-the-browser',
      comment:
        'src/ui runs in a browser: it imports its own modules and ./states.js (served by ' +
        'src/api/ui.ts), nothing else',
      severity: 'error',
      from: { path: '^src/ui/' },
      to: { pathNot: '^(src/ui/|\\./states\\.js$)' },
    },
    {
      name: 'ui-is-served-not-imported',
      comment: 'src/ui is served as files by src/api/ui.ts: no module of the server imports it',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/ui/' },
      to: { path: '^src/ui/' },
    },
    {
      name: 'migrations-stand-apart',
      comment: 'migrations/ is data for the store: it imports nothing from src/',
      severity: 'error',
      from: { path: '^migrations/' },
      to: { path: '^src/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    exclude: { path: '^(dist|node_modules)/' },
  },
};
