export { Agent, DRAIN_TIMEOUT_MS, type AgentOptions } from './agent';
export type {
  HandleTask,
  HandlerContext,
  HandlerResponse,
  HandlerTask,
  Handlers,
} from './contract';
export { commandHandlers, runCommand, withCommands } from './command';
export { fileVersion, findHandlers, handlerVersions, importHandler } from './loader';
export { inlineRunner, type HandlerRunner, type RunRequest } from './runner';
export { HandlerSandbox, type SandboxOptions } from './sandbox';
export { checkResponse, runHandler, TIMEOUT_ERRNR, type Outcome } from './run';
