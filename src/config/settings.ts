/**
 * Every setting, declared once: YAML key, kind (type, unit, bounds), default, one line of doc and
 * its CLI flag if it has one. The rest derives from this file: validation, the TaskerConfig type
 * (src/config/types.ts), TASKER_* names, the flags and `tasker --help`, docs/configuration.md.
 *
 * To add a setting, add a line to its section, e.g. in `agent`:
 *     heartbeat: duration('10s', 'how often the agent tells the server it is alive'),
 * YAML `agent.heartbeat`, env TASKER_AGENT_HEARTBEAT and `--set agent.heartbeat=…` then set it,
 * and the code reads `config.agent.heartbeatMs`: the key in camelCase plus its kind's unit (Ms,
 * Bytes, Seconds) unless the key ends with it. `flag: '--name ARG'` gives it a flag of its own.
 * A setting each task type may override goes in TYPE_SETTINGS; a rule between settings goes in
 * checkRules (src/config/resolve.ts). Then run `npm run docs:config`.
 */
import path from 'node:path';
import { MAX_HEARTBEAT_MS, MIN_HEARTBEAT_MS } from '../domain/fleet';
import { MAX_PRIORITY, RESULT_LIMITS } from '../domain/messages';
import { checkEndpoint, checkTaskType } from '../domain/names';
import { LOG_FORMATS, LOG_LEVELS } from '../log';
import { bool, bytes, dir, dirs, duration, int, list, oneOf } from './kinds';
import { commands, labels, retry, rollout, seconds, share, string, url } from './kinds';
import type { At, Setting } from './kinds';
import { absoluteDatabaseUrl, listenAddress } from './urls';

const MIN_TOKEN_LENGTH = 16;
/** AMQP's prefetch count is a 16-bit field */
const PREFETCH = { min: 1, max: 65535 };

/** Messages name a token by its position: they never echo one. */
function checkTokens(tokens: string[], at: At): string[] {
  for (const [index, token] of tokens.entries()) {
    const fail = (problem: string) => at.fail(`${at.path}[${index}]`, problem);
    if (token.length < MIN_TOKEN_LENGTH) {
      throw fail(`must be at least ${MIN_TOKEN_LENGTH} characters`);
    }
    if (/\s/.test(token)) throw fail('must not contain whitespace');
  }
  return tokens;
}

function checkListenAddress(address: string, at: At): string {
  if (listenAddress(address) === null) {
    throw at.fail(at.path, 'must be HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464');
  }
  return address;
}

function checkTaskTypes(names: string[], at: At): string[] {
  for (const [index, name] of names.entries()) {
    checkTaskType(name, `${at.path}.${name}`, at.fail);
    if (names.indexOf(name) < index) {
      throw at.fail(`${at.path}.${name}`, 'is listed more than once');
    }
  }
  return names;
}

/** The task types: a YAML list, or a mapping from each name to its TYPE_SETTINGS. */
export const TASK_TYPES = 'task_types';
export const TASK_TYPE_NAMES = list(null, 'the task types, one exchange and API route each', {
  flag: '--types LIST',
  check: checkTaskTypes,
});

/** What each task type may set under `task_types.<name>.`; `api.<key>` is the default for all. */
export const TYPE_SETTINGS = {
  wait_for_endpoints_timeout: duration('60s', 'delivery deadline, then UNDELIVERED'),
  // below RabbitMQ's default consumer_timeout of 30 min
  execution_timeout: duration('25m', 'a handler running longer is aborted: TIMED_OUT'),
  max_deliveries: int(5, 'deliveries to an endpoint before FAILED', { min: 1, max: 100 }),
  rollout: rollout(null, 'send in waves {batch, max_errors, pause}; none: all at once'),
  success_threshold: share(null, 'DONE endpoints that make the task DONE; none: all'),
  retry: retry(null, 'run again on errnr 75/76: {max_attempts, delay, backoff, max_delay}'),
  priority: int(0, "a task's priority when its POST gives none: 0 to 9 (urgent)", {
    min: 0,
    max: MAX_PRIORITY,
  }),
};

export const SECTIONS = {
  api: {
    host: string('0.0.0.0', 'API listen address', { flag: '--host ADDR' }),
    port: int(8888, 'API port; 0: any free port', { min: 0, max: 65535, flag: '--port N' }),
    body_limit: bytes('1mb', 'largest request body'),
    max_payload_bytes: bytes('512kb', 'largest task payload'),
    max_endpoints: int(1000, 'most endpoints one task may name', { min: 1 }),
    max_identifier_length: int(255, 'longest task identifier', { min: 1 }),
    tokens: list([], 'bearer tokens; none: no authentication', { check: checkTokens }),
    publish_wait: duration('2s', "how long a POST waits for the broker's confirm (else CREATED)"),
    max_wait: duration('5m', 'the longest a GET may wait for a change (?wait=)'),
    max_list: int(1000, 'most tasks one page of a task list holds', { min: 1, max: 10_000 }),
    max_delay: duration('720h', "the furthest ahead a task's not_before may be (30 days)"),
  },
  database: {
    url: url('mysql://root@127.0.0.1:3306/tasker', 'mysql://…, or sqlite:FILE', {
      schemes: ['mysql://', 'sqlite:'],
      flag: '--database-url URL',
      check: (url, at) => absoluteDatabaseUrl(url, at.cwd),
    }),
    pool_min: int(0, 'connections kept open', { min: 0 }),
    pool_max: int(10, 'connections per process', { min: 1 }),
    acquire_timeout: duration('2s', 'a request waiting longer for a connection: 503'),
    create_database: bool(false, 'create the database if missing (development)'),
  },
  broker: {
    url: url(
      'amqp://guest:guest@127.0.0.1:5672',
      'amqp://…, several a,b,c (a cluster), or memory:',
      {
        schemes: ['amqp://', 'amqps://', 'memory:'],
        several: true,
        flag: '--broker-url URL',
      },
    ),
    queue_type: oneOf(
      ['classic', 'quorum'],
      'classic',
      'endpoint and results queues: quorum on a cluster',
    ),
    prefix: string('tasker', 'exchange and queue name prefix', {
      flag: '--prefix NAME',
      pattern: /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$/,
      patternHint: 'must be 1-64 letters, digits, "_" or "-", starting with a letter or digit',
    }),
    heartbeat: seconds('30s', 'AMQP heartbeat, whole seconds'),
    confirm_timeout: duration('5s', 'unconfirmed by then: the outbox keeps the task'),
    reconnect_initial_delay: duration('500ms', 'first wait before reconnecting'),
    reconnect_max_delay: duration('30s', 'longest wait between reconnections'),
    queue_expires: duration('1h', 'an endpoint queue unused this long is deleted'),
  },
  server: {
    api: bool(true, 'serve the HTTP API'),
    relay: bool(true, 'publish the tasks of the outbox'),
    recorder: bool(true, 'record the results agents send'),
    sweeper: bool(true, 'mark missed deadlines UNDELIVERED or TIMED_OUT'),
    scheduler: bool(true, 'fire schedules; release delayed and waiting tasks when due'),
    relay_interval: duration('1s', 'how often the relay looks for tasks'),
    sweep_interval: duration('1s', 'how often the sweeper looks for missed deadlines'),
    schedule_interval: duration('1s', 'how often the scheduler looks for due work'),
    recorder_batch_size: int(200, 'result events written in one transaction', { min: 1 }),
    recorder_prefetch: int(1000, 'result messages the recorder holds', PREFETCH),
    timeout_grace: duration('1m', 'silence past execution_timeout before TIMED_OUT'),
    authenticate_agents: bool(false, "accept results only from the endpoint's broker user"),
    agent_user_prefix: string('tasker-agent-', 'broker user of an endpoint: <prefix><endpoint>'),
    metrics: bool(true, 'serve Prometheus metrics at GET /metrics'),
    metrics_listen: string(null, 'HOST:PORT: /metrics there, without tokens; none: on the API', {
      check: checkListenAddress,
    }),
  },
  agent: {
    endpoint: string(null, "this agent's endpoint name; tasker agent needs one", {
      flag: '--endpoint NAME',
      check: (endpoint, at) => checkEndpoint(endpoint, at.path, at.fail),
    }),
    handlers_dir: dirs(
      (packageRoot: string) => [
        path.join(packageRoot, 'dist', 'handlers'),
        path.join(packageRoot, 'handlers'),
      ],
      'directories of <type>.js and executable <type> handlers, first match wins',
      { flag: '--handlers DIRS' },
    ),
    handlers: commands({}, 'task types whose handler is a command: {deploy: {command: [...]}}'),
    concurrency: int(4, 'tasks run at once', { min: 1, max: 1000, flag: '--concurrency N' }),
    prefetch: int(32, 'deliveries held, at least concurrency', {
      ...PREFETCH,
      flag: '--prefetch N',
    }),
    output_limit: bytes('64kb', 'output kept of a run (head and tail), sent with its result', {
      check: (limit, at) => {
        if (limit > RESULT_LIMITS.outputChars) throw at.fail(at.path, 'must be at most 1mb');
        return limit;
      },
    }),
    state_dir: dir('var/agent-state', 'where the attempt journal survives restarts'),
    report_delay: duration('200ms', 'a handler still running then is reported RUNNING'),
    isolation: oneOf(['process', 'inline'], 'process', 'run handlers in a child process or inline'),
    labels: labels({}, 'labels of this endpoint, e.g. {role: web, dc: fra1}, for selectors'),
    metrics_listen: string(null, "HOST:PORT: the agent's own /metrics there; none: no metrics", {
      check: checkListenAddress,
    }),
    heartbeat: duration('15s', 'how often the agent tells the server it is alive', {
      check: (ms, at) => {
        if (ms < MIN_HEARTBEAT_MS || ms > MAX_HEARTBEAT_MS) {
          throw at.fail(at.path, `must be from ${MIN_HEARTBEAT_MS}ms to 24h`);
        }
        return ms;
      },
    }),
  },
  log: {
    level: oneOf(LOG_LEVELS, 'info', 'least severe level logged', { flag: '--log-level LEVEL' }),
    format: oneOf(
      LOG_FORMATS,
      'auto',
      'records on stderr as JSON lines, or readable lines (auto: readable on a terminal)',
      { flag: '--log-format FORMAT' },
    ),
  },
};

/** Every setting by its dotted path; TYPE_SETTINGS appear under `api.`. */
const GROUPS: Record<string, Record<string, Setting>> = {
  ...SECTIONS,
  api: { ...TYPE_SETTINGS, ...SECTIONS.api },
};
export const DECLARED: ReadonlyMap<string, Setting> = new Map([
  [TASK_TYPES, TASK_TYPE_NAMES],
  ...Object.entries(GROUPS).flatMap(([section, settings]) =>
    Object.entries(settings).map(([key, setting]) => [`${section}.${key}`, setting] as const),
  ),
]);

/** "api.port" → "TASKER_API_PORT" */
export const envName = (path: string) => `TASKER_${path.replace(/\./g, '_').toUpperCase()}`;

/** The settings with a flag of their own: `--<name> <arg>` sets `path`. */
export const SETTING_FLAGS = [...DECLARED].flatMap(([path, { flag, doc }]) => {
  const [name, arg] = flag?.split(' ') ?? [];
  return name === undefined ? [] : [{ name: name.slice(2), arg, path, doc }];
});
