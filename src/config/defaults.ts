/**
 * Every built-in default, in one place and in the same shape and units as a YAML file. The
 * loader treats this as the lowest layer and validates it like any other source.
 */
import path from 'node:path';

export interface DefaultPaths {
  /** directory relative paths are resolved against */
  cwd: string;
  /** the tasker package's own directory (holds package.json) */
  packageRoot: string;
}

export function builtInDefaults(paths: DefaultPaths): Record<string, Record<string, unknown>> {
  return {
    // task_types: none; a config file (or TASKER_TASK_TYPES / --types) must declare them.
    api: {
      host: '0.0.0.0',
      port: 8888,
      // defaults for every task type without its own setting
      wait_for_endpoints_timeout: '60s',
      execution_timeout: '25m', // below RabbitMQ's default consumer_timeout of 30 min
      max_deliveries: 5,
      body_limit: '1mb',
      max_payload_bytes: '512kb',
      max_endpoints: 1000,
      max_identifier_length: 255,
      tokens: [],
      publish_wait: '2s',
    },
    database: {
      url: 'mysql://root@127.0.0.1:3306/tasker',
      pool_min: 0,
      pool_max: 10,
      acquire_timeout: '2s',
      create_database: false,
    },
    broker: {
      url: 'amqp://guest:guest@127.0.0.1:5672',
      prefix: 'tasker',
      heartbeat: '30s',
      confirm_timeout: '5s',
      reconnect_initial_delay: '500ms',
      reconnect_max_delay: '30s',
      // an endpoint queue unused this long (no agent, no task naming it) is deleted
      queue_expires: '1h',
    },
    server: {
      api: true,
      relay: true,
      recorder: true,
      sweeper: true,
      relay_interval: '1s',
      sweep_interval: '1s',
      recorder_batch_size: 200,
      recorder_prefetch: 1000,
      // time past a handler's execution timeout before the sweeper marks it TIMED_OUT
      timeout_grace: '1m',
      // trust a result event's endpoint only if the broker user that published it is
      // <agent_user_prefix><endpoint> (RabbitMQ validates the user_id property)
      authenticate_agents: false,
      agent_user_prefix: 'tasker-agent-',
    },
    agent: {
      endpoint: null,
      // the compiled built-in handlers (handlers/*.ts → dist/handlers/*.js)
      handlers_dir: [path.join(paths.packageRoot, 'dist', 'handlers')],
      concurrency: 4,
      prefetch: 32,
      state_dir: path.join(paths.cwd, 'var', 'agent-state'),
      report_delay: '200ms',
      // process: each handler call in a child process; inline: in the agent's own
      isolation: 'process',
    },
    log: {
      level: 'info',
    },
  };
}
