#!/usr/bin/env node
/**
 * tasker — command line entry point.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config';
import { coerceError } from '../domain';
import { VERSION } from '../version';

const USAGE = `usage: tasker <command> [options]

commands:
  server              run the API, relay, recorder and sweeper
  agent               run an endpoint agent (needs --endpoint)
  migrate             install or update the database schema
  migrate --rollback  undo the last migration batch (--all: every migration)
  migrate --status    list applied and pending migrations
  up                  development: migrate, run the server and agents for --agents
                      (default console1,console2); with broker memory: all in this process

options:
  -m, --mode MODE         config/<MODE>.yaml (default: $TASKER_MODE or development)
  -c, --config FILE       read this YAML file instead
      --port N            API port
      --host ADDR         API listen address
      --database-url URL  mysql://user:pass@host:3306/db, or sqlite:FILE
      --broker-url URL    amqp://user:pass@host:5672/vhost, or memory: (up only)
      --prefix NAME       exchange and queue name prefix
      --endpoint NAME     the agent's endpoint name
      --handlers DIRS     comma-separated handler directories (agent)
      --types LIST        comma-separated task types (replaces the configured set)
      --concurrency N     tasks an agent runs at once
      --prefetch N        deliveries an agent holds, running --concurrency of them
      --log-level LEVEL   debug, info, warn or error
      --set KEY=VALUE     any config key, e.g. --set server.relay=false (repeatable)
      --migrate           server: migrate the schema before starting
  -h, --help              this text
  -v, --version           print the version
`;

const OPTIONS = {
  mode: { type: 'string', short: 'm' },
  config: { type: 'string', short: 'c' },
  port: { type: 'string' },
  host: { type: 'string' },
  'database-url': { type: 'string' },
  'broker-url': { type: 'string' },
  prefix: { type: 'string' },
  endpoint: { type: 'string' },
  handlers: { type: 'string' },
  types: { type: 'string' },
  concurrency: { type: 'string' },
  prefetch: { type: 'string' },
  'log-level': { type: 'string' },
  set: { type: 'string', multiple: true },
  agents: { type: 'string' },
  migrate: { type: 'boolean' },
  rollback: { type: 'boolean' },
  all: { type: 'boolean' },
  status: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

/** Flags that configure every process; `up` hands them on to the agents it starts. */
const SHARED = ['mode', 'config', 'database-url', 'broker-url', 'prefix', 'types', 'log-level'];

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: OPTIONS,
    allowPositionals: true,
  });
  if (values.version) {
    console.log(VERSION);
    return;
  }
  const command = positionals[0];
  if (values.help || command === undefined || command === 'help') {
    console.log(USAGE);
    return;
  }
  const flags: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(values)) {
    if (typeof value === 'string') flags[key] = value;
  }
  if (values.set !== undefined) flags.set = values.set.join('\n');
  const config = loadConfig({
    ...(values.mode === undefined ? {} : { mode: values.mode }),
    ...(values.config === undefined ? {} : { configFile: values.config }),
    env: process.env,
    flags,
  });

  switch (command) {
    // each command loads only its own modules: an agent never loads express, knex or mysql2
    case 'server':
      return (await import('./commands.js')).serverCommand(config, values.migrate === true);
    case 'agent':
      return (await import('./agent-command.js')).agentCommand(config);
    case 'migrate':
      return (await import('./commands.js')).migrateCommand(
        config,
        values.status
          ? 'status'
          : values.rollback
            ? values.all
              ? 'rollback-all'
              : 'rollback'
            : 'latest',
      );
    case 'up': {
      const passthrough: string[] = [];
      for (const key of SHARED) {
        const value = flags[key];
        if (value !== undefined) passthrough.push(`--${key}`, value);
      }
      for (const entry of values.set ?? []) passthrough.push('--set', entry);
      const agents = (values.agents ?? 'console1,console2').split(',').filter((a) => a !== '');
      return (await import('./commands.js')).upCommand(config, agents, passthrough);
    }
    default:
      throw new Error(`unknown command "${command}"; see tasker --help`);
  }
}

main(process.argv.slice(2)).catch((thrown: unknown) => {
  const err = coerceError(thrown);
  console.error(`tasker: ${err.message}`);
  process.exit(1);
});
