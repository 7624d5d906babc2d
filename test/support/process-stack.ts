/**
 * A built `tasker server` and `tasker agent` processes on a test stack (MariaDB and RabbitMQ),
 * as an operator runs them: for the dashboard's tests and its screenshots.
 */
import { assertBuilt, childEnv, startCli, waitForHttp, type Child } from './child-processes';
import { freePort } from './ports';
import { createTestStack, type TestStack } from './stack';

export interface ProcessStack {
  stack: TestStack;
  url: string;
  server: Child;
  agents: Map<string, Child>;
  /** an agent for `endpoint`, once it consumes; `extra` flags, `env` variables of its own */
  startAgent(endpoint: string, extra?: string[], env?: Record<string, string>): Promise<Child>;
  /** every agent, then the server, then the stack */
  stop(): Promise<void>;
}

/**
 * The server with `set` settings, listening on a free port, once it is ready. `flags` go to the
 * server and to every agent: by default the task types worker and backup (the built-in
 * handlers); `--config FILE` for more.
 */
export async function startProcessStack(
  set: string[],
  flags = ['--types', 'worker,backup'],
): Promise<ProcessStack> {
  assertBuilt();
  const stack = await createTestStack({ set });
  const port = await freePort();
  const server = startCli(['server', ...stack.cliFlags, ...flags, '--port', String(port)]);
  const url = `http://127.0.0.1:${port}`;
  const agents = new Map<string, Child>();
  const stop = async (): Promise<void> => {
    for (const agent of agents.values()) await agent.stop();
    await server.stop();
    await stack.cleanup();
  };
  try {
    await waitForHttp(`${url}/readyz`, server);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    stack,
    url,
    server,
    agents,
    startAgent: async (endpoint, extra = [], env = {}) => {
      const args = ['agent', ...stack.cliFlags, ...flags, '--endpoint', endpoint];
      const agent = startCli([...args, ...extra, '--log-level', 'info'], childEnv(env));
      agents.set(endpoint, agent);
      await agent.waitForOutput('agent consuming', 30_000);
      return agent;
    },
    stop,
  };
}
