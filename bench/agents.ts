#!/usr/bin/env node
/**
 * Many endpoint agents in one process, for the width benchmark: `node dist/bench/agents.js
 * <tasker flags> --endpoints e1,e2,… [--agents-per-connection N]`. Each endpoint gets a real
 * Agent from src/agent. With N = 1 (the default) each also has its own AmqpBroker, so its own
 * AMQP connection, like a real fleet; with N > 1, N consecutive Agents share one AmqpBroker (one
 * connection, one consuming channel per Agent, one publisher channel for their results).
 * Prints "agents ready N" on stdout once every agent consumes; SIGTERM/SIGINT closes them all.
 */
import { parseArgs } from 'node:util';
import type { Agent } from '../src/agent';
import { createBroker, type AmqpBroker } from '../src/broker';
import { loadConfig, type TaskerConfig } from '../src/config';
import { createLogger, stderrSink, type Logger } from '../src/log';
import { createAgent, startHandlerRunner } from '../src/cli/agent-command';

const OPTIONS = {
  mode: { type: 'string' },
  'database-url': { type: 'string' },
  'broker-url': { type: 'string' },
  prefix: { type: 'string' },
  types: { type: 'string' },
  handlers: { type: 'string' },
  concurrency: { type: 'string' },
  prefetch: { type: 'string' },
  'log-level': { type: 'string' },
  set: { type: 'string', multiple: true },
  endpoints: { type: 'string' },
  'agents-per-connection': { type: 'string' },
} as const;

/** How many agents connect at once while starting. */
const START_BATCH = 25;

function newBroker(config: TaskerConfig, name: string, log: Logger): AmqpBroker {
  const broker = createBroker(config.broker, {
    connectionName: name,
    log: log.child({ part: 'broker' }),
  });
  broker.session.on('fatal', (err: Error) => {
    log.error('fatal broker error', { err });
    process.exit(1);
  });
  return broker;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ args: process.argv.slice(2), options: OPTIONS });
  const flags: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(values)) {
    if (typeof value === 'string' && key !== 'endpoints' && key !== 'agents-per-connection') {
      flags[key] = value;
    }
  }
  if (values.set !== undefined) flags.set = values.set.join('\n');
  const config = loadConfig({ mode: values.mode ?? 'test', env: process.env, flags });
  const endpoints = (values.endpoints ?? '').split(',').filter((e) => e !== '');
  if (endpoints.length === 0) throw new Error('--endpoints e1,e2,… is required');
  const log = createLogger(
    config.log.level,
    { process: 'agent-host' },
    stderrSink(config.log.format),
  );
  // one sandbox for the host: as many handler processes as one agent would have, since the
  // agents here stand in for a fleet and their handlers share this machine's cores anyway
  const runner = await startHandlerRunner(config, log);

  const perConnection = Math.max(1, Number.parseInt(values['agents-per-connection'] ?? '1', 10));
  const brokers: AmqpBroker[] = [];
  const agents: Agent[] = [];
  const startOne = async (endpoint: string, index: number): Promise<void> => {
    const slot = Math.floor(index / perConnection);
    let broker = brokers[slot];
    if (broker === undefined) {
      const name = perConnection === 1 ? `tasker-agent ${endpoint}` : `bench agents ${slot + 1}`;
      broker = newBroker(config, name, log.child({ endpoint }));
      brokers[slot] = broker;
      await broker.start();
      await broker.session.waitUntilConnected(30_000);
    }
    const agent = createAgent(config, endpoint, runner, broker, log.child({ endpoint }));
    await agent.start();
    agents.push(agent);
  };
  // the first Agent of each connection opens it, the others wait for it: start by connection
  const indexes = endpoints.map((_, i) => i);
  const firsts = indexes.filter((i) => i % perConnection === 0);
  const rest = indexes.filter((i) => i % perConnection !== 0);
  for (const list of [firsts, rest]) {
    for (let i = 0; i < list.length; i += START_BATCH) {
      await Promise.all(
        list.slice(i, i + START_BATCH).map((j) => startOne(endpoints[j] as string, j)),
      );
    }
  }
  process.stdout.write(`agents ready ${agents.length}\n`);

  let stopping = false;
  const stop = (): void => {
    if (stopping) process.exit(130);
    stopping = true;
    void (async () => {
      await Promise.all(agents.map((agent) => agent.close()));
      await runner.close();
      await Promise.all(brokers.map((broker) => broker.close()));
      process.exit(0);
    })();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error(`agents: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
