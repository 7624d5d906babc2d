export { Agent, type AgentOptions } from './agent';
export type {
  HandleTask,
  HandlerContext,
  HandlerResponse,
  HandlerTask,
  Handlers,
} from './contract';
export { loadHandler, loadHandlers } from './loader';
export { checkResponse, runHandler, TIMEOUT_ERRNR, type Outcome } from './run';
