/**
 * The command-line client: `tasker send|get|watch|list|cancel|retry|endpoints|schedules`,
 * talking to a server over its HTTP API. It reads no configuration file and loads nothing of
 * the server's: only the domain's types.
 */
import { readFileSync } from 'node:fs';
import { parseClientArgs } from './args';
import { ClientError, EXIT } from './exit-codes';
import { connectApi } from './http';
import { runRequest } from './commands';
import { CLIENT_USAGE } from './usage';
import type { Output } from './watch-command';

export { CLIENT_COMMANDS, isClientCommand, parseClientArgs, type ClientInvocation } from './args';
export { EXIT, exitCodeOf } from './exit-codes';
export { CLIENT_USAGE } from './usage';

export interface ClientIo {
  out: Output & { isTTY?: boolean };
  err: { write(text: string): boolean };
  env: NodeJS.ProcessEnv;
}

/** Run one client command; resolves to the exit code. */
export async function runClient(argv: string[], io: ClientIo): Promise<number> {
  try {
    const invocation = parseClientArgs(argv, {
      env: io.env,
      readFile: (path) => readFileSync(path, 'utf8'),
    });
    if (invocation.request === null) {
      io.out.write(CLIENT_USAGE);
      return 0;
    }
    return await runRequest(invocation.request, {
      api: connectApi(invocation.connection),
      json: invocation.json,
      live: io.out.isTTY === true && io.env.TERM !== 'dumb',
      out: io.out,
    });
  } catch (thrown) {
    // whatever kept the question from being answered is 4: 1 to 3 are a task's outcomes
    const message = thrown instanceof Error ? thrown.message : String(thrown);
    io.err.write(`tasker: ${message}\n`);
    return thrown instanceof ClientError ? thrown.exitCode : EXIT.USAGE_OR_CONNECTION;
  }
}
