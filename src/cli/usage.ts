/**
 * `tasker --help`: the commands, written here, and the options, of which those that set a
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
  up                  development: migrate, run the server and agents for --agents
                      (default console1,console2); with broker memory: all in this process
`;

/** Options that set no setting, for parseArgs; each setting's flag is added from its declaration. */
export const COMMAND_OPTIONS = {
  mode: { type: 'string', short: 'm' },
  config: { type: 'string', short: 'c' },
  set: { type: 'string', multiple: true },
  agents: { type: 'string' },
  burst: { type: 'boolean' },
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
    ['-h, --help', 'this text'],
    ['-v, --version', 'print the version'],
  ];
  const width = Math.max(...options.map(([flag]) => flag.length));
  const lines = options.map(([flag, doc]) => `  ${flag.padEnd(width)}  ${doc}`);
  return `${COMMANDS}\noptions:\n${lines.join('\n')}\n\nEvery setting: docs/configuration.md\n`;
}
