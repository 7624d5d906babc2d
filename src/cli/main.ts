#!/usr/bin/env node
/**
 * tasker — command line entry point.
 */
import { parseArgs } from 'node:util';
import { loadConfig, SETTING_FLAGS } from '../config';
import { coerceError } from '../domain';
import { VERSION } from '../package';
import { CLIENT_COMMAND_NAMES, COMMAND_OPTIONS, SETTING_OPTIONS, usage } from './usage';

/**
 * The flags `up` hands on to the agent processes it starts: the mode, the file and every
 * setting's flag but `--endpoint`, which `up` gives each agent from `--agents`. (A server-only
 * setting such as `--port` is harmless to an agent, which does not read it.)
 */
const PASSED_TO_AGENTS = [
  'mode',
  'config',
  ...SETTING_FLAGS.map(({ name }) => name).filter((name) => name !== 'endpoint'),
];

async function main(argv: string[]): Promise<void> {
  // A client command asks a server over HTTP: it reads no configuration, and its modules are
  // loaded for it alone (an agent never loads them).
  if (CLIENT_COMMAND_NAMES.includes(argv[0] ?? '')) {
    const { runClient } = await import('../client/index.js');
    process.exitCode = await runClient(argv, {
      out: process.stdout,
      err: process.stderr,
      env: process.env,
    });
    return;
  }
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...SETTING_OPTIONS, ...COMMAND_OPTIONS },
    allowPositionals: true,
  });
  if (values.version) {
    console.log(VERSION);
    return;
  }
  const command = positionals[0];
  if (values.help || command === undefined || command === 'help') {
    console.log(usage());
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
    warn: (message) => console.error(`tasker: config ${message}`),
  });

  switch (command) {
    // each command loads only its own modules: an agent never loads express, knex or mysql2
    case 'server':
      return (await import('./commands.js')).serverCommand(config, values.migrate === true);
    case 'agent':
      return (await import('./agent-command.js')).agentCommand(config, values.burst === true);
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
    case 'upgrade-queues':
      return (await import('./commands.js')).upgradeQueuesCommand(
        config,
        (values.endpoints ?? '').split(',').filter((name) => name !== ''),
        values.force === true,
      );
    case 'up': {
      if (flags.endpoint !== undefined) {
        throw new Error(
          'up runs an agent for each of --agents a,b; --endpoint is for `tasker agent`',
        );
      }
      const passthrough: string[] = [];
      for (const key of PASSED_TO_AGENTS) {
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
