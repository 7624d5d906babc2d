import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, parseBoolean, parseBytes, parseDuration } from '../../src/config';
import type { LoadConfigOptions, TaskerConfig } from '../../src/config';
import { ConfigError } from '../../src/domain/errors';

const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
const TOKEN = 'a-token-of-enough-length';

let cwd: string;

beforeEach(() => {
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'tasker-config-'));
});

afterEach(() => {
  fs.rmSync(cwd, { recursive: true, force: true });
});

/** Write `text` to `<cwd>/<name>` and return the absolute path. */
function writeFile(name: string, text: string): string {
  const file = path.join(cwd, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

/** Load with a clean environment (never process.env) and the tmp dir as cwd. */
function load(options: LoadConfigOptions = {}): TaskerConfig {
  return loadConfig({ mode: 'unit', env: {}, cwd, ...options });
}

/** Load `yaml` as config/unit.yaml. */
function loadYaml(yaml: string, options: LoadConfigOptions = {}): TaskerConfig {
  writeFile('config/unit.yaml', yaml);
  return load(options);
}

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('defaults', () => {
  it('fills every value when only task types are given', () => {
    const config = load({ env: { TASKER_TASK_TYPES: 'worker' } });
    expect(config).toEqual<TaskerConfig>({
      mode: 'unit',
      source: null,
      taskTypes: {
        worker: {
          name: 'worker',
          waitForEndpointsTimeoutMs: 60_000,
          executionTimeoutMs: 1_500_000,
          maxDeliveries: 5,
          rollout: null,
          successThreshold: null,
          retry: null,
          priority: 0,
        },
      },
      api: {
        host: '0.0.0.0',
        port: 8888,
        bodyLimitBytes: 1024 * 1024,
        maxPayloadBytes: 512 * 1024,
        maxEndpoints: 1000,
        maxIdentifierLength: 255,
        tokens: [],
        publishWaitMs: 2000,
        maxWaitMs: 300_000,
        maxList: 1000,
        maxDelayMs: 720 * 3_600_000,
      },
      database: {
        url: 'mysql://root@127.0.0.1:3306/tasker',
        poolMin: 0,
        poolMax: 10,
        acquireTimeoutMs: 2000,
        createDatabase: false,
      },
      broker: {
        url: 'amqp://guest:guest@127.0.0.1:5672',
        queueType: 'classic',
        prefix: 'tasker',
        heartbeatSeconds: 30,
        confirmTimeoutMs: 5000,
        reconnectInitialDelayMs: 500,
        reconnectMaxDelayMs: 30_000,
        queueExpiresMs: 3_600_000,
      },
      server: {
        api: true,
        relay: true,
        recorder: true,
        sweeper: true,
        scheduler: true,
        relayIntervalMs: 1000,
        sweepIntervalMs: 1000,
        scheduleIntervalMs: 1000,
        recorderBatchSize: 200,
        recorderPrefetch: 1000,
        timeoutGraceMs: 60_000,
        authenticateAgents: false,
        agentUserPrefix: 'tasker-agent-',
        metrics: true,
        metricsListen: null,
      },
      agent: {
        endpoint: null,
        handlersDirs: [
          path.join(PACKAGE_ROOT, 'dist', 'handlers'),
          path.join(PACKAGE_ROOT, 'handlers'),
        ],
        handlers: {},
        concurrency: 4,
        outputLimitBytes: 65536,
        prefetch: 32,
        stateDir: path.join(cwd, 'var', 'agent-state'),
        reportDelayMs: 200,
        isolation: 'process',
        labels: {},
        metricsListen: null,
        heartbeatMs: 15_000,
      },
      log: { level: 'info', format: 'auto' },
    });
  });

  it('requires at least one task type', () => {
    const error = configError(() => load());
    expect(error.key).toBe('task_types');
    expect(error.message).toBe('config task_types: at least one task type is required');
    expect(() => loadYaml('task_types: []\n')).toThrow('at least one task type is required');
    expect(() => loadYaml('task_types: {}\n')).toThrow('at least one task type is required');
  });
});

describe('finding the file', () => {
  it('reads config/<mode>.yaml under cwd and reports it as the source', () => {
    const file = writeFile('config/unit.yaml', 'task_types: [worker]\n');
    expect(load().source).toBe(file);
  });

  it('falls back to the package root, where the shipped files live', () => {
    const config = load({ mode: 'development' });
    expect(config.source).toBe(path.join(PACKAGE_ROOT, 'config', 'development.yaml'));
  });

  it('takes the mode from TASKER_MODE, then "development"', () => {
    writeFile('config/staging.yaml', 'task_types: [staged]\n');
    const config = loadConfig({ env: { TASKER_MODE: 'staging' }, cwd });
    expect(config.mode).toBe('staging');
    expect(Object.keys(config.taskTypes)).toEqual(['staged']);
    expect(loadConfig({ env: {}, cwd }).mode).toBe('development');
  });

  it('reads an explicit file relative to cwd, also from TASKER_CONFIG', () => {
    const file = writeFile('elsewhere/my.yaml', 'task_types: [mine]\n');
    expect(load({ configFile: 'elsewhere/my.yaml' }).source).toBe(file);
    expect(load({ env: { TASKER_CONFIG: file } }).source).toBe(file);
  });

  it('fails when the explicit file is missing', () => {
    const error = configError(() => load({ configFile: 'nope.yaml' }));
    expect(error.key).toBe('config');
    expect(error.message).toBe(`config config: file ${path.join(cwd, 'nope.yaml')} not found`);
  });

  it('rejects a mode that could escape the config directory', () => {
    expect(configError(() => load({ mode: '../etc' })).key).toBe('mode');
  });

  it('treats an empty file as an empty mapping', () => {
    writeFile('config/unit.yaml', '# nothing here\n');
    const config = load({ env: { TASKER_TASK_TYPES: 'worker' } });
    expect(config.source).toBe(path.join(cwd, 'config', 'unit.yaml'));
    expect(config.api.port).toBe(8888);
  });

  it('names the file and line of a YAML syntax error', () => {
    const file = path.join(cwd, 'config', 'unit.yaml');
    const error = configError(() =>
      loadYaml('task_types: [worker]\napi:\n  port: [1,\n  host: x\n'),
    );
    expect(error.key).toBe('config');
    expect(error.message).toContain(file);
    expect(error.message).toMatch(/at line \d+/);
    expect(configError(() => loadYaml('a: 1\na: 2\n')).message).toContain('at line 2');
  });

  it('rejects several documents and a top level that is not a mapping', () => {
    expect(() => loadYaml('task_types: [a]\n---\napi: {}\n')).toThrow('2 YAML documents');
    expect(() => loadYaml('- worker\n')).toThrow('must hold a mapping of sections, got an array');
  });
});

describe('task types', () => {
  it('accepts the original list form', () => {
    const config = loadYaml(
      'task_types: [worker, backup]\napi:\n  wait_for_endpoints_timeout: 20\n',
    );
    expect(Object.keys(config.taskTypes)).toEqual(['worker', 'backup']);
    expect(config.taskTypes.backup).toEqual({
      name: 'backup',
      waitForEndpointsTimeoutMs: 20_000,
      executionTimeoutMs: 1_500_000,
      maxDeliveries: 5,
      rollout: null,
      successThreshold: null,
      retry: null,
      priority: 0,
    });
  });

  it('accepts the map form with per-type settings and empty types', () => {
    const config = loadYaml(`
task_types:
  worker: { wait_for_endpoints_timeout: 60, execution_timeout: 600, max_deliveries: 7 }
  backup: {}
  report:
api:
  wait_for_endpoints_timeout: 15
  max_deliveries: 3
`);
    expect(config.taskTypes.worker).toEqual({
      name: 'worker',
      waitForEndpointsTimeoutMs: 60_000,
      executionTimeoutMs: 600_000,
      maxDeliveries: 7,
      rollout: null,
      successThreshold: null,
      retry: null,
      priority: 0,
    });
    expect(config.taskTypes.backup.waitForEndpointsTimeoutMs).toBe(15_000);
    expect(config.taskTypes.report.maxDeliveries).toBe(3);
  });

  it('takes the nodes of a cluster as broker.url, each URL checked, and a queue type', () => {
    const config = loadYaml(
      'task_types: [w]\nbroker:\n  url: amqp://a:5672, amqp://b:5673\n  queue_type: quorum\n',
    );
    expect(config.broker).toMatchObject({
      url: 'amqp://a:5672,amqp://b:5673',
      queueType: 'quorum',
    });
    expect(() => loadYaml('task_types: [w]\nbroker:\n  url: amqp://a,http://b\n')).toThrow(
      'must be a URL starting with amqp:// or amqps:// or memory:: URL 2 of 2 is not',
    );
    expect(() => loadYaml('task_types: [w]\nbroker:\n  url: "amqp://a,memory:"\n')).toThrow(
      'the in-process one (memory:) comes alone',
    );
    expect(() =>
      loadYaml('task_types: [w]\nbroker:\n  url: "memory:"\n  queue_type: quorum\n'),
    ).toThrow('quorum needs RabbitMQ');
  });

  it('reads a retry policy and a priority per type; max_attempts 0 names its key', () => {
    const config = loadYaml(`
task_types:
  deploy: { retry: { max_attempts: 3, delay: 5s, backoff: 3, max_delay: 1m }, priority: 7 }
  report:
`);
    expect(config.taskTypes.deploy).toMatchObject({
      retry: { maxAttempts: 3, delayMs: 5000, backoff: 3, maxDelayMs: 60_000 },
      priority: 7,
    });
    expect(config.taskTypes.report).toMatchObject({ retry: null, priority: 0 });
    expect(() => loadYaml('task_types:\n  deploy: { retry: { max_attempts: 0 } }\n')).toThrow(
      'task_types.deploy.retry.max_attempts: must be at least 1',
    );
    expect(() => loadYaml('task_types:\n  deploy: { priority: 10 }\n')).toThrow(
      'task_types.deploy.priority',
    );
  });

  it('reads a rollout and a success threshold per type, from YAML and from the environment', () => {
    const config = loadYaml(
      `
task_types:
  deploy: { rollout: { batch: 10, max_errors: "5%", pause: 30s }, success_threshold: 3 }
  report:
`,
      { env: { TASKER_API_SUCCESS_THRESHOLD: '90%' } },
    );
    expect(config.taskTypes.deploy).toMatchObject({
      rollout: { batch: { count: 10 }, maxErrors: { percent: 5 }, pauseMs: 30_000 },
      successThreshold: { count: 3 },
    });
    expect(config.taskTypes.report).toMatchObject({
      rollout: null,
      successThreshold: { percent: 90 },
    });
    const fromFlag = loadYaml('task_types: [worker]\n', {
      flags: { set: 'api.rollout=batch=25%,pause=1m' },
    });
    expect(fromFlag.taskTypes.worker?.rollout).toEqual({
      batch: { percent: 25 },
      maxErrors: { percent: 100 },
      pauseMs: 60_000,
    });
  });

  it.each([
    ['{ rollout: { batch: 0 } }', 'task_types.deploy.rollout.batch', 'at least 1'],
    ['{ rollout: { batch: "150%" } }', 'task_types.deploy.rollout.batch', 'got "150%"'],
    [
      '{ rollout: { batch: 5, max_errors: -1 } }',
      'task_types.deploy.rollout.max_errors',
      'at least 0',
    ],
    ['{ rollout: { size: 5 } }', 'task_types.deploy.rollout.size', 'is not a known field'],
    ['{ success_threshold: "0%" }', 'task_types.deploy.success_threshold', 'above 0'],
  ])('refuses task_types.deploy: %s, naming the key', (settings, key, problem) => {
    const error = configError(() => loadYaml(`task_types:\n  deploy: ${settings}\n`));
    expect(error.key).toBe(key);
    expect(error.message).toContain(problem);
  });

  it('lets TASKER_TASK_TYPES replace the set but keep per-type settings from the file', () => {
    writeFile('config/unit.yaml', 'task_types:\n  worker: { max_deliveries: 9 }\n  backup:\n');
    const config = load({ env: { TASKER_TASK_TYPES: 'worker, report' } });
    expect(Object.keys(config.taskTypes)).toEqual(['worker', 'report']);
    expect(config.taskTypes.worker.maxDeliveries).toBe(9);
    expect(config.taskTypes.report.maxDeliveries).toBe(5);
  });

  it('lets --types override TASKER_TASK_TYPES', () => {
    const config = load({ env: { TASKER_TASK_TYPES: 'a' }, flags: { types: 'b,c' } });
    expect(Object.keys(config.taskTypes)).toEqual(['b', 'c']);
  });

  it('rejects reserved, malformed and repeated names', () => {
    expect(configError(() => loadYaml('task_types: [worker, healthz]\n')).message).toBe(
      'config task_types.healthz: "healthz" is reserved by tasker [' +
        path.join(cwd, 'config', 'unit.yaml') +
        ']',
    );
    expect(configError(() => loadYaml('task_types: [Worker]\n')).key).toBe('task_types.Worker');
    expect(configError(() => loadYaml('task_types: [1]\n')).key).toBe('task_types[0]');
    expect(configError(() => loadYaml('task_types: [a, a]\n')).message).toContain(
      'listed more than once',
    );
    expect(configError(() => loadYaml('task_types: worker\n')).key).toBe('task_types');
  });

  it('rejects unknown and malformed per-type settings', () => {
    const error = configError(() => loadYaml('task_types:\n  worker: { max_delivery: 2 }\n'));
    expect(error.message).toContain(
      'config task_types.worker.max_delivery: unknown key (did you mean task_types.worker.max_deliveries?)',
    );
    expect(configError(() => loadYaml('task_types:\n  worker: 5\n')).key).toBe('task_types.worker');
    expect(
      configError(() => loadYaml('task_types:\n  worker: { max_deliveries: 101 }\n')).key,
    ).toBe('task_types.worker.max_deliveries');
  });
});

describe("the original tasker's keys", () => {
  it('maps manager.db.uri and ignores manager.db.verbose and rabbitmq.*', () => {
    const config = loadYaml(`
task_types: [worker]
api: { port: 9999, wait_for_endpoints_timeout: 30 }
manager:
  db: { uri: "mysql://tasker:secret@db:3306/tasker", verbose: true }
rabbitmq: { user: admin, password: "\${NOT_SET}", anything: [1, 2] }
`);
    expect(config.database.url).toBe('mysql://tasker:secret@db:3306/tasker');
    expect(config.api.port).toBe(9999);
    expect(config.taskTypes.worker.waitForEndpointsTimeoutMs).toBe(30_000);
  });

  it('builds the broker url from the original message_queue parts, exchange as prefix', () => {
    const config = loadYaml(`
task_types: [worker]
manager:
  message_queue:
    host: mq.local
    port: 5673
    username: tasker
    password: "p@ss:word"
    virtual_host: /tasker
    exchange: legacy
`);
    expect(config.broker.url).toBe('amqp://tasker:p%40ss%3Aword@mq.local:5673/%2Ftasker');
    expect(config.broker.prefix).toBe('legacy');
  });

  it('accepts user/vhost spellings and a url', () => {
    expect(
      loadYaml('task_types: [w]\nmanager: { message_queue: { host: h, user: u, vhost: / } }\n')
        .broker.url,
    ).toBe('amqp://u@h');
    expect(
      loadYaml('task_types: [w]\nmanager: { message_queue: { uri: "amqps://x@y/v" } }\n').broker
        .url,
    ).toBe('amqps://x@y/v');
  });

  it('rejects an original key and its native twin together, and unknown original keys', () => {
    const both =
      'task_types: [w]\ndatabase: { url: "mysql://a/b" }\nmanager: { db: { uri: "mysql://c/d" } }\n';
    expect(configError(() => loadYaml(both)).key).toBe('manager.db.uri');
    expect(configError(() => loadYaml('manager: { db: { urx: x } }\n')).key).toBe('manager.db.urx');
    expect(
      configError(() => loadYaml('manager: { message_queue: { hots: x } }\n')).message,
    ).toContain('did you mean manager.message_queue.host?');
    expect(configError(() => loadYaml('manager: { queue: {} }\n')).key).toBe('manager.queue');
    expect(
      configError(() => loadYaml('manager: { message_queue: { url: "amqp://a", host: b } }\n')).key,
    ).toBe('manager.message_queue');
  });
});

describe('unknown keys', () => {
  it('takes server.metrics_listen and agent.metrics_listen as HOST:PORT, and nothing else', () => {
    const env = { TASKER_SERVER_METRICS_LISTEN: '[::1]:9464' };
    expect(loadYaml('task_types: [w]\n', { env }).server.metricsListen).toBe('[::1]:9464');
    const agentEnv = { TASKER_AGENT_METRICS_LISTEN: '0.0.0.0:9465' };
    expect(loadYaml('task_types: [w]\n', { env: agentEnv }).agent.metricsListen).toBe(
      '0.0.0.0:9465',
    );
    expect(
      configError(() => loadYaml('task_types: [w]\nagent: { metrics_listen: "9465" }\n')).key,
    ).toBe('agent.metrics_listen');
    expect(
      loadYaml('task_types: [w]\nserver: { metrics_listen: "127.0.0.1:0" }\n').server,
    ).toMatchObject({ metrics: true, metricsListen: '127.0.0.1:0' });
    for (const bad of ['9464', 'host:', 'host:70000', 'a b:1']) {
      const error = configError(() =>
        loadYaml(`task_types: [w]\nserver: { metrics_listen: "${bad}" }\n`),
      );
      expect(error.key).toBe('server.metrics_listen');
      expect(error.message).toContain('must be HOST:PORT');
    }
  });

  it('names the full key path and suggests the closest known key', () => {
    const error = configError(() => loadYaml('task_types: [worker]\napi:\n  prot: 1\n'));
    expect(error.key).toBe('api.prot');
    expect(error.message).toMatch(/^config api\.prot: unknown key \(did you mean api\.port\?\)/);
  });

  it('rejects unknown sections and keys without a close match', () => {
    expect(configError(() => loadYaml('apis: {}\n')).message).toContain('did you mean api?');
    expect(configError(() => loadYaml('database: { zzzzzzzz: 1 }\n')).message).toMatch(
      /database\.zzzzzzzz: unknown key \[/,
    );
  });

  it('rejects a section that is not a mapping and a mapping where a value belongs', () => {
    expect(configError(() => loadYaml('api: 5\n')).key).toBe('api');
    expect(configError(() => loadYaml('api: { port: { a: 1 } }\n')).key).toBe('api.port');
    expect(configError(() => loadYaml('api: { port: [1] }\n')).message).toContain('not a list');
  });

  it('accepts api.max_payload as another name for api.max_payload_bytes', () => {
    expect(loadYaml('task_types: [w]\napi: { max_payload: 1000 }\n').api.maxPayloadBytes).toBe(
      1000,
    );
    expect(configError(() => loadYaml('api: { max_payload_bytes: 1, max_payload: 2 }\n')).key).toBe(
      'api.max_payload',
    );
  });

  it('refuses a key and its other name in either order, also among the original spellings', () => {
    expect(
      configError(() => loadYaml('api: { max_payload: 2, max_payload_bytes: 1 }\n')).message,
    ).toContain(
      'config api.max_payload_bytes: sets the same thing as api.max_payload; give only one',
    );
    const twins = 'manager: { message_queue: { user: a, username: b } }\n';
    expect(configError(() => loadYaml(twins)).key).toBe('manager.message_queue.username');
  });
});

describe('interpolation', () => {
  it('fills ${VAR} and ${VAR:-default} in any string value', () => {
    const config = loadYaml(
      `
task_types: ["\${TYPE}"]
api:
  port: \${PORT}
  tokens: ["\${T1}", "fixed-\${T2:-defaulted-token}"]
database: { url: "mysql://\${DB_USER:-root}@\${DB_HOST}/tasker" }
`,
      { env: { TYPE: 'worker', PORT: '9001', T1: TOKEN, DB_HOST: 'db.local', DB_USER: '' } },
    );
    expect(Object.keys(config.taskTypes)).toEqual(['worker']);
    expect(config.api.port).toBe(9001);
    expect(config.api.tokens).toEqual([TOKEN, 'fixed-defaulted-token']);
    expect(config.database.url).toBe('mysql://root@db.local/tasker');
  });

  it('fails on an unset variable, naming the key path and the variable', () => {
    const error = configError(() => loadYaml('api:\n  tokens: [a, "${MISSING}"]\n'));
    expect(error.key).toBe('api.tokens[1]');
    expect(error.message).toContain('environment variable MISSING is not set');
  });

  it('rejects malformed references', () => {
    expect(() => loadYaml('api: { host: "${OPEN" }\n')).toThrow('without a closing');
    expect(() => loadYaml('api: { host: "${1X}" }\n')).toThrow('bad reference');
  });

  it('does not report TASKER_* variables the file references as unknown', () => {
    const config = loadYaml('task_types: [w]\napi: { tokens: "${TASKER_API_TOKEN}" }\n', {
      env: { TASKER_API_TOKEN: TOKEN },
    });
    expect(config.api.tokens).toEqual([TOKEN]);
  });
});

describe('environment', () => {
  it('overrides the file with TASKER_<SECTION>_<KEY>, parsing per key type', () => {
    writeFile('config/unit.yaml', 'task_types: [w]\napi: { port: 1000 }\n');
    const config = load({
      env: {
        TASKER_API_PORT: '9000',
        TASKER_API_TOKENS: `${TOKEN}, ${TOKEN}-2`,
        TASKER_DATABASE_URL: 'mysql://u:p@h:3306/d',
        TASKER_DATABASE_CREATE_DATABASE: 'yes',
        TASKER_BROKER_URL: 'amqps://h',
        TASKER_BROKER_PREFIX: 't1',
        TASKER_BROKER_HEARTBEAT: '10',
        TASKER_SERVER_SWEEPER: '0',
        TASKER_SERVER_RELAY_INTERVAL: '250ms',
        TASKER_SERVER_TIMEOUT_GRACE: '5s',
        TASKER_AGENT_ENDPOINT: 'console1',
        TASKER_AGENT_HANDLERS_DIR: `a,b${path.delimiter}/abs/c`,
        TASKER_AGENT_STATE_DIR: 'state',
        TASKER_LOG_LEVEL: 'debug',
        TASKER_MODE: 'ignored-because-mode-is-given',
        OTHER: 'not ours',
      },
    });
    expect(config.api.port).toBe(9000);
    expect(config.api.tokens).toEqual([TOKEN, `${TOKEN}-2`]);
    expect(config.database.url).toBe('mysql://u:p@h:3306/d');
    expect(config.database.createDatabase).toBe(true);
    expect(config.broker).toMatchObject({ url: 'amqps://h', prefix: 't1', heartbeatSeconds: 10 });
    expect(config.server.sweeper).toBe(false);
    expect(config.server.relayIntervalMs).toBe(250);
    expect(config.server.timeoutGraceMs).toBe(5000);
    expect(config.agent.endpoint).toBe('console1');
    expect(config.agent.handlersDirs).toEqual([
      path.join(cwd, 'a'),
      path.join(cwd, 'b'),
      path.resolve('/abs/c'),
    ]);
    expect(config.agent.stateDir).toBe(path.join(cwd, 'state'));
    expect(config.log.level).toBe('debug');
  });

  it('warns of an unknown TASKER_* variable with a did-you-mean, and carries on', () => {
    const warnings: string[] = [];
    const config = load({
      env: {
        TASKER_TASK_TYPES: 'w',
        TASKER_API_PROT: '1',
        TASKER_EXTRA: 'x',
        TASKER_API_PORT: '9',
      },
      warn: (message) => warnings.push(message),
    });
    expect(config.api.port).toBe(9);
    expect(warnings).toEqual([
      'TASKER_API_PROT: unknown environment variable, ignored (did you mean TASKER_API_PORT?)',
      'TASKER_EXTRA: unknown environment variable, ignored',
    ]);
  });

  it("does not warn of the client commands' TASKER_URL and TASKER_TOKEN", () => {
    const warnings: string[] = [];
    load({
      env: {
        TASKER_TASK_TYPES: 'w',
        TASKER_URL: 'http://tasker.example:8888',
        TASKER_TOKEN: 'secret',
      },
      warn: (message) => warnings.push(message),
    });
    expect(warnings).toEqual([]);
  });

  it('still refuses an unknown key in the file and in --set', () => {
    expect(configError(() => loadYaml('api: {prot: 1}\n')).message).toMatch(
      /config api\.prot: unknown key \(did you mean api\.port\?\)/,
    );
    expect(
      configError(() => load({ env: { TASKER_TASK_TYPES: 'w' }, flags: { set: 'api.prot=1' } }))
        .message,
    ).toMatch(/config api\.prot: unknown key \(did you mean api\.port\?\)/);
  });

  it('names the variable when its value is bad', () => {
    const error = configError(() =>
      load({ env: { TASKER_TASK_TYPES: 'w', TASKER_API_PORT: 'x' } }),
    );
    expect(error.key).toBe('api.port');
    expect(error.message).toBe(
      'config api.port: must be an integer, got "x" [env TASKER_API_PORT]',
    );
  });
});

describe('flags', () => {
  const env = { TASKER_TASK_TYPES: 'w', TASKER_API_PORT: '9000', TASKER_LOG_LEVEL: 'warn' };

  it('override the environment', () => {
    const config = load({
      env,
      flags: {
        port: '9100',
        host: '127.0.0.1',
        'database-url': 'mysql://x/y',
        'broker-url': 'amqp://z',
        prefix: 'p2',
        endpoint: 'ep-1',
        handlers: 'h1,h2',
        concurrency: '8',
        'log-level': 'error',
        mode: 'not a setting: left to the CLI',
        help: undefined,
      },
    });
    expect(config.api).toMatchObject({ port: 9100, host: '127.0.0.1' });
    expect(config.database.url).toBe('mysql://x/y');
    expect(config.broker).toMatchObject({ url: 'amqp://z', prefix: 'p2' });
    expect(config.agent).toMatchObject({ endpoint: 'ep-1', concurrency: 8 });
    expect(config.agent.handlersDirs).toEqual([path.join(cwd, 'h1'), path.join(cwd, 'h2')]);
    expect(config.log.level).toBe('error');
  });

  it('apply --set lines of section.key=value, including per-type keys', () => {
    const config = load({
      env,
      flags: {
        set: 'server.recorder=false\n\napi.port = 9200\ntask_types=a,b\ntask_types.b.execution_timeout=5m\napi.max_payload=1kb',
      },
    });
    expect(config.server.recorder).toBe(false);
    expect(config.api.port).toBe(9200);
    expect(config.api.maxPayloadBytes).toBe(1024);
    expect(config.taskTypes.b.executionTimeoutMs).toBe(300_000);
    expect(load({ env, flags: { set: 'api.port=1', port: '2' } }).api.port).toBe(2);
  });

  it('reject malformed and unknown --set lines', () => {
    expect(configError(() => load({ env, flags: { set: 'api.port' } })).key).toBe('set');
    const error = configError(() => load({ env, flags: { set: 'broker.prefx=a' } }));
    expect(error.message).toBe(
      'config broker.prefx: unknown key (did you mean broker.prefix?) [flag --set]',
    );
  });

  it('name the flag when its value is bad', () => {
    expect(configError(() => load({ env, flags: { port: '-1' } })).message).toBe(
      'config api.port: must be at least 0 [flag --port]',
    );
  });
});

describe('values', () => {
  const typed = 'task_types: [w]\n';

  it('reads durations as seconds or with a unit', () => {
    const config = loadYaml(
      typed +
        'api: { publish_wait: 0.5, execution_timeout: 2h }\n' +
        'database: { acquire_timeout: 250ms }\nbroker: { heartbeat: 1m, confirm_timeout: "3s" }\n',
    );
    expect(config.api.publishWaitMs).toBe(500);
    expect(config.taskTypes.w.executionTimeoutMs).toBe(7_200_000);
    expect(config.database.acquireTimeoutMs).toBe(250);
    expect(config.broker.heartbeatSeconds).toBe(60);
    expect(config.broker.confirmTimeoutMs).toBe(3000);
  });

  it('rejects bad, zero and fractional-second durations', () => {
    expect(configError(() => loadYaml(typed + 'api: { publish_wait: soon }\n')).message).toContain(
      'config api.publish_wait: must be a duration',
    );
    expect(configError(() => loadYaml(typed + 'api: { publish_wait: 0 }\n')).message).toContain(
      'must be a positive duration',
    );
    expect(configError(() => loadYaml(typed + 'broker: { heartbeat: 500ms }\n')).message).toContain(
      'whole number of seconds',
    );
    const reconnect = typed + 'broker: { reconnect_initial_delay: 10s, reconnect_max_delay: 1s }\n';
    expect(configError(() => loadYaml(reconnect)).key).toBe('broker.reconnect_max_delay');
  });

  it('reads sizes as bytes or with a unit', () => {
    const config = loadYaml(typed + 'api: { body_limit: 2mb, max_payload_bytes: 1000 }\n');
    expect(config.api.bodyLimitBytes).toBe(2 * 1024 * 1024);
    expect(config.api.maxPayloadBytes).toBe(1000);
    expect(configError(() => loadYaml(typed + 'api: { body_limit: lots }\n')).key).toBe(
      'api.body_limit',
    );
    const tooBig = typed + 'api: { body_limit: 1kb, max_payload_bytes: 2kb }\n';
    expect(configError(() => loadYaml(tooBig)).key).toBe('api.max_payload_bytes');
  });

  it('reads booleans from YAML and from words', () => {
    const config = loadYaml(typed + 'server: { api: false, relay: "no", recorder: "1" }\n');
    expect(config.server).toMatchObject({
      api: false,
      relay: false,
      recorder: true,
      sweeper: true,
    });
    expect(configError(() => loadYaml(typed + 'server: { api: maybe }\n')).key).toBe('server.api');
  });

  it.each([
    ['api: { port: 70000 }', 'api.port', 'must be at most 65535'],
    ['api: { port: 65536 }', 'api.port', 'must be at most 65535'],
    ['api: { port: 80.5 }', 'api.port', 'must be an integer'],
    ['api: { host: "" }', 'api.host', 'must not be empty'],
    ['api: { max_deliveries: 0 }', 'api.max_deliveries', 'must be at least 1'],
    ['database: { pool_min: -1 }', 'database.pool_min', 'must be at least 0'],
    ['database: { pool_max: 0 }', 'database.pool_max', 'must be at least 1'],
    ['database: { pool_min: 5, pool_max: 2 }', 'database.pool_max', 'database.pool_min (5)'],
    [
      'database: { url: "postgres://x/y" }',
      'database.url',
      'must be a URL starting with mysql:// or sqlite:',
    ],
    ['database: { url: "sqlite:" }', 'database.url', 'the sqlite: url names no file'],
    ['database: { url: "sqlite:///a/%zz" }', 'database.url', 'malformed %-escape'],
    ['database: { url: "mysql://[bad" }', 'database.url', 'is not a valid URL'],
    [
      'broker: { url: "http://x" }',
      'broker.url',
      'must be a URL starting with amqp:// or amqps:// or memory:',
    ],
    ['broker: { prefix: "-x" }', 'broker.prefix', 'starting with a letter or digit'],
    ['broker: { prefix: "a.b" }', 'broker.prefix', 'letters, digits'],
    [
      'broker: { queue_expires: 30s }',
      'broker.queue_expires',
      'must be at least the longest wait_for_endpoints_timeout (60 s, task type w)',
    ],
    ['server: { recorder_prefetch: 70000 }', 'server.recorder_prefetch', 'at most 65535'],
    ['agent: { concurrency: 0 }', 'agent.concurrency', 'must be at least 1'],
    ['agent: { concurrency: 1001 }', 'agent.concurrency', 'must be at most 1000'],
    ['agent: { prefetch: 0 }', 'agent.prefetch', 'must be at least 1'],
    ['agent: { endpoint: "bad name" }', 'agent.endpoint', 'must be 1-64 letters'],
    ['agent: { handlers_dir: [] }', 'agent.handlers_dir', 'at least one directory'],
    ['agent: { isolation: thread }', 'agent.isolation', 'must be one of process, inline'],
    ['agent: { output_limit: 2mb }', 'agent.output_limit', 'must be at most 1mb'],
    ['agent: { handlers: [deploy] }', 'agent.handlers', 'must be a mapping, not a list'],
    [
      'agent: { handlers: { w: { command: "/bin/deploy --now" } } }',
      'agent.handlers.w.command',
      'must be a non-empty list',
    ],
    ['api: { tokens: [short] }', 'api.tokens[0]', 'at least 16 characters'],
    ['api: { tokens: [123] }', 'api.tokens[0]', 'must be a string'],
    ['log: { level: verbose }', 'log.level', 'must be one of debug, info, warn, error'],
  ])('rejects %s', (yaml, key, problem) => {
    const error = configError(() => loadYaml(`${typed}${yaml}\n`));
    expect(error.key).toBe(key);
    expect(error.message).toContain(problem);
    expect(error.message).toContain(`[${path.join(cwd, 'config', 'unit.yaml')}]`);
  });

  it('takes agent.handlers from the config file only', () => {
    const error = configError(() =>
      load({ env: { TASKER_TASK_TYPES: 'w', TASKER_AGENT_HANDLERS: 'w=/bin/true' } }),
    );
    expect(error.key).toBe('agent.handlers');
    expect(error.message).toContain('in the config file');
  });

  it('does not echo a url or a token in messages', () => {
    const url = configError(() => loadYaml(typed + 'database: { url: "pg://u:hunter2@h/d" }\n'));
    expect(url.message).not.toContain('hunter2');
    const token = configError(() => loadYaml(typed + 'api: { tokens: "hunter2" }\n'));
    expect(token.message).not.toContain('hunter2');
  });

  it('accepts handlers_dir as one string and resolves paths against cwd', () => {
    const config = loadYaml(typed + 'agent: { handlers_dir: handlers, state_dir: /var/x }\n');
    expect(config.agent.handlersDirs).toEqual([path.join(cwd, 'handlers')]);
    expect(config.agent.stateDir).toBe(path.resolve('/var/x'));
  });

  it('resolves a relative SQLite path against cwd', () => {
    const relative = loadYaml(typed + 'database: { url: "sqlite:data/t 1.sqlite3" }\n');
    expect(relative.database.url).toBe(`sqlite://${path.join(cwd, 'data', 't%201.sqlite3')}`);
    const absolute = loadYaml(typed + 'database: { url: "sqlite:///srv/t.sqlite3" }\n');
    expect(absolute.database.url).toBe('sqlite:///srv/t.sqlite3');
    const percent = loadYaml(typed + 'database: { url: "sqlite:50%.sqlite3" }\n');
    expect(percent.database.url).toBe(`sqlite://${path.join(cwd, '50%25.sqlite3')}`);
  });

  it('refuses the in-process broker in production mode', () => {
    writeFile('config/production.yaml', typed + `api: { tokens: [${TOKEN}] }\n`);
    const error = configError(() =>
      load({ mode: 'production', env: { TASKER_BROKER_URL: 'memory:' } }),
    );
    expect(error.key).toBe('broker.url');
    expect(error.message).toContain('production mode needs RabbitMQ');
  });

  it('refuses authenticate_agents with the in-process broker, which has no users', () => {
    const error = configError(() =>
      loadYaml(typed + 'broker: { url: "memory:" }\nserver: { authenticate_agents: true }\n'),
    );
    expect(error.key).toBe('server.authenticate_agents');
    expect(error.message).toContain('in-process broker (memory:) has none');
  });

  it('requires a token in production mode', () => {
    writeFile('config/production.yaml', typed);
    const error = configError(() => load({ mode: 'production' }));
    expect(error.key).toBe('api.tokens');
    expect(error.message).toBe('config api.tokens: production mode requires at least one token');
    const config = load({ mode: 'production', env: { TASKER_API_TOKENS: TOKEN } });
    expect(config.api.tokens).toEqual([TOKEN]);
  });
});

describe('shipped config files', () => {
  it('development: worker and backup, embedded SQLite file and in-process broker', () => {
    const config = load({ mode: 'development' });
    expect(Object.keys(config.taskTypes)).toEqual(['worker', 'backup']);
    expect(config.taskTypes.worker.waitForEndpointsTimeoutMs).toBe(60_000);
    expect(config.api.port).toBe(8888);
    expect(config.database).toMatchObject({
      url: `sqlite://${path.join(cwd, 'var', 'tasker.sqlite3')}`,
      createDatabase: true,
    });
    expect(config.broker.url).toBe('memory:');
    expect(config.log.level).toBe('info');
  });

  it('services: the same stack on the local MariaDB and RabbitMQ', () => {
    const config = load({ configFile: path.join(PACKAGE_ROOT, 'config', 'services.yaml') });
    expect(Object.keys(config.taskTypes)).toEqual(['worker', 'backup']);
    expect(config.database).toMatchObject({
      url: 'mysql://root@127.0.0.1:3306/tasker',
      createDatabase: true,
    });
    expect(config.broker.url).toBe('amqp://guest:guest@127.0.0.1:5672');
  });

  it('test: its own database and short timeouts', () => {
    const config = load({ mode: 'test' });
    expect(Object.keys(config.taskTypes)).toEqual(['worker', 'backup']);
    expect(config.database.url).toBe('mysql://root@127.0.0.1:3306/tasker_test');
    expect(config.database.createDatabase).toBe(true);
    expect(config.taskTypes.worker.waitForEndpointsTimeoutMs).toBe(10_000);
    expect(config.taskTypes.backup.waitForEndpointsTimeoutMs).toBe(10_000);
  });

  it('production: secrets from the environment', () => {
    expect(configError(() => load({ mode: 'production' })).message).toContain(
      'environment variable TASKER_API_TOKEN is not set',
    );
    const config = load({
      mode: 'production',
      env: {
        TASKER_API_TOKEN: TOKEN,
        TASKER_DATABASE_URL: 'mysql://tasker:pw@db:3306/tasker',
        TASKER_BROKER_URL: 'amqps://tasker:pw@mq:5671/tasker',
      },
    });
    expect(config.api.tokens).toEqual([TOKEN]);
    expect(config.database.url).toBe('mysql://tasker:pw@db:3306/tasker');
    expect(config.broker.url).toBe('amqps://tasker:pw@mq:5671/tasker');
    expect(config.database.createDatabase).toBe(false);
  });
});

describe('unit parsers', () => {
  it('parseDuration: numbers are seconds, strings may carry ms/s/m/h', () => {
    expect(parseDuration(60)).toBe(60_000);
    expect(parseDuration('60')).toBe(60_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(() => parseDuration('-1s')).toThrow('must be a duration');
    expect(() => parseDuration('5 days')).toThrow('must be a duration');
    expect(() => parseDuration(Number.NaN)).toThrow('must be a duration');
  });

  it('parseBytes: numbers are bytes, strings may carry kb/mb/gb', () => {
    expect(parseBytes(1000)).toBe(1000);
    expect(parseBytes('512kb')).toBe(512 * 1024);
    expect(parseBytes('1mb')).toBe(1024 * 1024);
    expect(parseBytes('1MiB')).toBe(1024 * 1024);
    expect(parseBytes('2g')).toBe(2 * 1024 ** 3);
    expect(() => parseBytes('1tb')).toThrow('must be a size');
  });

  it('parseBoolean: booleans and the usual words', () => {
    expect(['true', 'TRUE', '1', 'yes', true].map(parseBoolean)).toEqual([
      true,
      true,
      true,
      true,
      true,
    ]);
    expect(['false', '0', 'No', false].map(parseBoolean)).toEqual([false, false, false, false]);
    expect(() => parseBoolean('2')).toThrow('must be true or false');
  });
});
