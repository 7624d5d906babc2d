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
 *   api                   the HTTP API
 *   cli | index.ts        the processes and their commands | the package's entry point
 *
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
  ['api'],
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
