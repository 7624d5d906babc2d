/**
 * The resolved configuration every part of tasker reads. Built once at start by `loadConfig`
 * (src/config/load.ts) from defaults < YAML file < TASKER_* environment < CLI flags; every value
 * here is validated and has its unit in its name.
 */
import type { LogLevel } from '../log';

export interface TaskTypeConfig {
  name: string;
  /** delivery deadline: an endpoint that has not got the task by then is UNDELIVERED */
  waitForEndpointsTimeoutMs: number;
  /** how long a handler may run before the agent aborts it (TIMED_OUT) */
  executionTimeoutMs: number;
  /** deliveries of one task to one endpoint before the agent gives up on it (FAILED) */
  maxDeliveries: number;
}

export interface ApiConfig {
  host: string;
  port: number;
  bodyLimitBytes: number;
  maxPayloadBytes: number;
  maxEndpoints: number;
  maxIdentifierLength: number;
  /** bearer tokens accepted by the API; empty means no authentication */
  tokens: string[];
  /** how long a POST waits for the broker's confirm before answering CREATED */
  publishWaitMs: number;
}

export interface DatabaseConfig {
  url: string;
  poolMin: number;
  poolMax: number;
  /** how long a query waits for a pool connection before the API answers 503 */
  acquireTimeoutMs: number;
  /** create the database named in the url if it does not exist (development convenience) */
  createDatabase: boolean;
}

export interface BrokerConfig {
  url: string;
  /** exchange and queue name prefix, e.g. "tasker" gives exchange "tasker.worker" */
  prefix: string;
  heartbeatSeconds: number;
  confirmTimeoutMs: number;
  reconnectInitialDelayMs: number;
  reconnectMaxDelayMs: number;
  /**
   * An endpoint's queue unused this long (no consumer, no task naming it) is deleted by the
   * broker, with what it holds; at least every task type's wait_for_endpoints_timeout.
   */
  queueExpiresMs: number;
}

export interface ServerConfig {
  api: boolean;
  relay: boolean;
  recorder: boolean;
  sweeper: boolean;
  relayIntervalMs: number;
  sweepIntervalMs: number;
  recorderBatchSize: number;
  recorderPrefetch: number;
  /** how long past a handler's execution timeout the server waits for word before TIMED_OUT */
  timeoutGraceMs: number;
  /** accept a result event only from the broker user `<agentUserPrefix><endpoint>` */
  authenticateAgents: boolean;
  agentUserPrefix: string;
}

export interface AgentConfig {
  /** this endpoint's name; required to run an agent */
  endpoint: string | null;
  /** directories searched for handler modules, first match wins */
  handlersDirs: string[];
  /** tasks run at once by this agent */
  concurrency: number;
  /** deliveries the agent holds at once (at least `concurrency`); the rest wait for a slot */
  prefetch: number;
  /** directory for the agent's attempt journal (survives restarts) */
  stateDir: string;
  /** if a handler is still running after this long, report RUNNING to the server */
  reportDelayMs: number;
  /**
   * process: every handler call runs in a child process, so a handler that crashes or hangs
   * ends only its own run; inline: in the agent's process, cheaper per task, but such a
   * handler takes down the agent and every task running beside it
   */
  isolation: 'process' | 'inline';
}

export interface TaskerConfig {
  mode: string;
  /** file the values came from, if any (for messages) */
  source: string | null;
  taskTypes: Record<string, TaskTypeConfig>;
  api: ApiConfig;
  database: DatabaseConfig;
  broker: BrokerConfig;
  server: ServerConfig;
  agent: AgentConfig;
  log: { level: LogLevel };
}
