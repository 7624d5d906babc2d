/**
 * `tasker server` as a process: the API and the server's background parts (relay, recorder,
 * sweeper, scheduler) in one process, each switchable, so several servers can share one
 * database and broker, and its Prometheus metrics (on the API, or on a listener of their own).
 * Starts even while the broker is down (tasks are accepted as CREATED and relayed later).
 * close() drains in reverse order of start and is safe to call twice.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from '../api';
import { createBroker, type TaskBroker } from '../broker';
import type { TaskerConfig } from '../config';
import type { Logger } from '../log';
import { ServerMetrics, type AcceptStep } from '../metrics';
import {
  ChangeFeed,
  Intake,
  countChanges,
  metricsScraper,
  outboxPublishers,
  startRecorder,
  startRelay,
  startScheduler,
  startSweeper,
  timedPublishers,
} from '../server';
import { createDb, type Db, type TaskChange } from '../store';
import { closeListener, listen, startMetricsListener } from './metrics-listener';

export interface ServerHandle {
  /** the port the API listens on (0 when the API is off) */
  readonly port: number;
  /** the port of the metrics listener (0 when there is none: `server.metrics_listen` unset) */
  readonly metricsPort: number;
  readonly db: Db;
  readonly broker: TaskBroker;
  close(): Promise<void>;
}

export interface ServerOptions {
  /** a fatal broker error (refused credentials); the CLI exits on it */
  onFatal?: (err: Error) => void;
  /**
   * A broker the caller started and will close (the in-process one `tasker up` shares with its
   * agents). Without it the server connects to `config.broker.url` itself.
   */
  broker?: TaskBroker;
}

export async function startServer(
  config: TaskerConfig,
  log: Logger,
  options: ServerOptions = {},
): Promise<ServerHandle> {
  const cleanups: Array<() => Promise<void>> = [];
  const db = createDb(config.database, { log: log.child({ part: 'database' }) });
  cleanups.push(() => db.destroy());
  let broker: TaskBroker;
  let startBroker = (): Promise<void> => Promise.resolve();
  if (options.broker === undefined) {
    const amqp = createBroker(config.broker, {
      connectionName: 'tasker-server',
      declareTaskTypes: Object.keys(config.taskTypes),
      log: log.child({ part: 'broker' }),
    });
    amqp.session.on('fatal', (err: Error) => options.onFatal?.(err));
    cleanups.push(() => amqp.close());
    startBroker = () => amqp.start();
    broker = amqp;
  } else {
    broker = options.broker;
  }

  let port = 0;
  let metricsPort = 0;
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      for (const cleanup of cleanups.reverse()) {
        try {
          await cleanup();
        } catch (err) {
          log.warn('error while shutting down', { err });
        }
      }
    })();
    return closing;
  };

  try {
    await startBroker();
    const { server: parts } = config;
    // read at scrape time, once the feed below exists
    const metrics = parts.metrics
      ? new ServerMetrics({ watchers: (): number => feed.watchers })
      : undefined;
    const publish =
      metrics === undefined
        ? outboxPublishers(broker, config.taskTypes)
        : timedPublishers(outboxPublishers(broker, config.taskTypes), metrics);
    const feed = new ChangeFeed(
      broker,
      log.child({ part: 'changes' }),
      metrics === undefined ? undefined : (changed) => countChanges(metrics, changed),
    );
    const onChanged = (changed: TaskChange[]): void => feed.publish(changed);
    const relay = parts.relay
      ? startRelay(
          db,
          broker,
          publish,
          parts.relayIntervalMs,
          log.child({ part: 'relay' }),
          onChanged,
        )
      : null;
    if (relay) cleanups.push(() => relay.stop());
    if (parts.recorder) {
      const recorder = await startRecorder(
        db,
        broker,
        {
          batchSize: parts.recorderBatchSize,
          prefetch: parts.recorderPrefetch,
          agentUserPrefix: parts.authenticateAgents ? parts.agentUserPrefix : null,
          onChanged,
          ...(metrics === undefined ? {} : { metrics }),
        },
        log.child({ part: 'recorder' }),
      );
      cleanups.push(() => recorder.close());
    }
    if (parts.sweeper) {
      const sweeper = startSweeper(
        db,
        parts.sweepIntervalMs,
        parts.timeoutGraceMs,
        log.child({ part: 'sweeper' }),
        onChanged,
      );
      cleanups.push(() => sweeper.stop());
    }
    if (parts.scheduler) {
      const scheduler = startScheduler(
        db,
        {
          intervalMs: parts.scheduleIntervalMs,
          types: config.taskTypes,
          onReleased: () => relay?.kick(),
          onChanged,
        },
        log.child({ part: 'scheduler' }),
      );
      cleanups.push(() => scheduler.stop());
    }
    if (parts.api) {
      const intake = new Intake({
        db,
        broker,
        config,
        publish,
        log: log.child({ part: 'api' }),
        onPublishDeferred: () => relay?.kick(),
        onAccepted: (task) => {
          metrics?.taskCreated(task.type);
          onChanged([{ task, rows: [] }]);
        },
        ...(metrics === undefined
          ? {}
          : { onStep: (step: AcceptStep, seconds: number) => metrics.acceptStep(step, seconds) }),
      });
      // the API's watchers hear of every server's changes
      await feed.start();
      cleanups.push(() => feed.close());
      const app = createApp({
        db,
        broker,
        config,
        intake,
        changes: feed,
        log: log.child({ part: 'api' }),
        onOutbox: () => relay?.kick(),
        ...(metrics === undefined ? {} : { metrics }),
        // on the API behind its tokens, unless the metrics have a listener of their own
        ...(metrics !== undefined && parts.metricsListen === null
          ? { scrapeMetrics: metricsScraper(metrics, db) }
          : {}),
      });
      const server = createServer(app);
      server.keepAliveTimeout = 5000;
      await listen(server, config.api.port, config.api.host);
      port = (server.address() as AddressInfo).port;
      cleanups.push(() => closeListener(server));
      log.info('api listening', { host: config.api.host, port });
    }
    if (metrics !== undefined && parts.metricsListen !== null) {
      const listener = await startMetricsListener(
        parts.metricsListen,
        metrics,
        metricsScraper(metrics, db),
        log.child({ part: 'metrics' }),
      );
      metricsPort = listener.port;
      cleanups.push(() => listener.close());
    }
  } catch (err) {
    await close();
    throw err;
  }

  return {
    get port() {
      return port;
    },
    get metricsPort() {
      return metricsPort;
    },
    db,
    broker,
    close,
  };
}
