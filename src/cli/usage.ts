/**
 * `tasker --help`: the commands, written here (a client command's options in
 * src/client/usage.ts, shown by `tasker send --help`), and the options, of which those that set a
 * setting come from its declaration (src/config/settings.ts), so a new flag is listed at once.
 */
import { SETTING_FLAGS } from '../config';

const COMMANDS = `usage: tasker <command> [options]

commands:
  server              run the API, relay, recorder and sweeper
  agent               run an endpoint agent (needs --endpoint); --burst: until its queues
                      are empty
  migrate             install or update the database schema
  migrate --rollback  undo the last migration batch (--all: every migration)
  migrate --status    list applied and pending migrations
  upgrade-queues      give endpoint queues made by an older tasker today's arguments
                      (priorities), keeping their messages: the registry's endpoints and
                      --endpoints a,b; a queue with a consumer only with --force
  up                  development: migrate, run the server and agents for --agents
                      (default console1,console2); with broker memory: all in this process

client commands (they talk to a server: --url or $TASKER_URL, default http://localhost:8888;
--token or $TASKER_TOKEN; --json; no configuration read; tasker <command> --help for more):
  send TYPE           post a task: --endpoints a,b | --select role=web | --select '*' |
                      --broadcast; --payload @file.json or key=value …; --wait: watch it
  get TYPE ID         the task and every endpoint's state
  watch TYPE ID       follow a task to its end: a live view on a terminal, else a line per
                      change; then a summary; exit 0 DONE, 1 FAILED, 2 INCOMPLETE, 3 CANCELLED,
                      4 usage or connection error
  list [TYPE]         tasks, newest first (--status, --endpoint, --since, --limit, …)
  cancel TYPE ID      cancel the task, or --endpoints a,b of it
  retry TYPE ID       run again the endpoints that did not succeed (--wait: watch it)
  endpoints [NAME]    the fleet (--type, --label k=v, --status), or one endpoint
  schedules           the server's schedules
`;

/** The client's commands, routed before any configuration is read (src/client). */
export const CLIENT_COMMAND_NAMES: readonly string[] = [
  'send',
  'get',
  'watch',
  'list',
  'cancel',
  'retry',
  'endpoints',
  'schedules',
];

/** Options that set no setting, for parseArgs; each setting's flag is added from its declaration. */
export const COMMAND_OPTIONS = {
  mode: { type: 'string', short: 'm' },
  config: { type: 'string', short: 'c' },
  set: { type: 'string', multiple: true },
  agents: { type: 'string' },
  burst: { type: 'boolean' },
  endpoints: { type: 'string' },
  force: { type: 'boolean' },
  migrate: { type: 'boolean' },
  rollback: { type: 'boolean' },
  all: { type: 'boolean' },
  status: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

export const SETTING_OPTIONS = Object.fromEntries(
  SETTING_FLAGS.map(({ name }) => [name, { type: 'string' as const }]),
);

export function usage(): string {
  const options = [
    ['-m, --mode MODE', 'config/<MODE>.yaml (default: $TASKER_MODE or development)'],
    ['-c, --config FILE', 'read this YAML file instead'],
    ...SETTING_FLAGS.map(({ name, arg, doc, path }) => [
      `    --${name} ${arg}`,
      `${doc} (${path})`,
    ]),
    ['    --set KEY=VALUE', 'any setting, e.g. --set server.relay=false (repeatable)'],
    ['    --agents LIST', 'up: the endpoints to run agents for'],
    ['    --migrate', 'server: migrate the schema before starting'],
    ['    --burst', 'agent: stop (exit 0) once its queues are empty and nothing runs'],
    ['    --endpoints LIST', 'upgrade-queues: these endpoints too, for every configured type'],
    ['    --force', 'upgrade-queues: rebuild a queue even while an agent consumes it'],
    ['-h, --help', 'this text'],
    ['-v, --version', 'print the version'],
  ];
  const width = Math.max(...options.map(([flag]) => flag.length));
  const lines = options.map(([flag, doc]) => `  ${flag.padEnd(width)}  ${doc}`);
  return `${COMMANDS}\noptions:\n${lines.join('\n')}\n\nEvery setting: docs/configuration.md\n`;
}
