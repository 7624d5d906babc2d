/**
 * One AMQP connection that comes back. Reconnects with capped exponential backoff and jitter,
 * treats refused credentials as fatal, and runs every registered setup (channels, topology,
 * consumers) again after each reconnect. amqplib does none of this by itself. Given the nodes
 * of a cluster (`url` "amqp://a,amqp://b,…"), it connects to one and, when that fails or goes
 * away, tries the next in turn.
 */
import { EventEmitter } from 'node:events';
import * as amqp from 'amqplib';
import type { Logger } from '../log';

export interface SessionOptions {
  /** one URL, or several separated by "," (the nodes of a cluster) */
  url: string;
  heartbeatSeconds: number;
  reconnectInitialDelayMs: number;
  reconnectMaxDelayMs: number;
  /** shown in the broker's connection list */
  connectionName: string;
  log: Logger;
}

const CONNECT_TIMEOUT_MS = 10_000;

function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

export type Setup = (connection: amqp.ChannelModel, generation: number) => Promise<void>;

export function backoffDelayMs(attempt: number, initialMs: number, maxMs: number): number {
  const exp = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 20));
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}

/** The URLs of `url`: one, or the nodes of a cluster separated by ",". */
export function splitBrokerUrls(url: string): string[] {
  return url
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** A URL's host and port, for logs: never its credentials. */
export function nodeOf(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port === '' ? '5672' : parsed.port}`;
}

function isAuthFailure(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return /ACCESS_REFUSED|403|authentication failure|PLAIN login refused/i.test(message);
}

/**
 * Events: 'connected' (generation), 'disconnected' (error), 'fatal' (error).
 */
export class AmqpSession extends EventEmitter {
  private connection: amqp.ChannelModel | null = null;
  private readonly setups: Setup[] = [];
  private generationCounter = 0;
  private closing = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private connecting: Promise<void> | null = null;
  private closed: Promise<void> | null = null;
  private readonly urls: string[];
  /** the node tried last: a failed or lost connection moves on to the next */
  private node = 0;

  constructor(private readonly options: SessionOptions) {
    super();
    this.urls = splitBrokerUrls(options.url);
  }

  /** The node connected to (host:port), or null. */
  get connectedNode(): string | null {
    return this.connection === null ? null : nodeOf(this.urls[this.node] ?? '');
  }

  /** Increments on every new connection; deliveries from an older one must not be acked. */
  get generation(): number {
    return this.generationCounter;
  }

  get isConnected(): boolean {
    return this.connection !== null;
  }

  get current(): amqp.ChannelModel | null {
    return this.connection;
  }

  /** Register work to run on every (re)connection, and run it now if already connected. */
  async addSetup(setup: Setup): Promise<void> {
    this.setups.push(setup);
    if (this.connection !== null) await setup(this.connection, this.generationCounter);
  }

  /** Start connecting in the background; resolves after the first attempt, connected or not. */
  start(): Promise<void> {
    this.connecting ??= this.connect();
    return this.connecting;
  }

  /** Resolve once connected, or reject after `timeoutMs`. */
  waitUntilConnected(timeoutMs: number): Promise<void> {
    if (this.connection !== null) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onConnected = (): void => {
        clearTimeout(timer);
        this.off('fatal', onFatal);
        resolve();
      };
      const onFatal = (err: Error): void => {
        clearTimeout(timer);
        this.off('connected', onConnected);
        reject(err);
      };
      const timer = setTimeout(() => {
        this.off('connected', onConnected);
        this.off('fatal', onFatal);
        reject(new Error(`broker not reachable within ${timeoutMs} ms`));
      }, timeoutMs);
      this.once('connected', onConnected);
      this.once('fatal', onFatal);
    });
  }

  private async connect(): Promise<void> {
    if (this.closing) return;
    const { log } = this.options;
    const given = this.urls[this.node % this.urls.length] ?? this.options.url;
    try {
      const url = new URL(given);
      if (!url.searchParams.has('heartbeat')) {
        url.searchParams.set('heartbeat', String(this.options.heartbeatSeconds));
      }
      // A broker at its connection limit accepts the socket but never finishes the handshake:
      // bound the whole connect so it fails into the normal backoff instead of hanging.
      const connecting = amqp.connect(url.toString(), {
        timeout: CONNECT_TIMEOUT_MS,
        clientProperties: { connection_name: this.options.connectionName },
      });
      const connection = await withTimeout(connecting, CONNECT_TIMEOUT_MS, () => {
        connecting.then((late) => late.close()).catch(() => undefined);
        return new Error(`no AMQP handshake within ${CONNECT_TIMEOUT_MS} ms`);
      });
      connection.on('error', (err: Error) => log.warn('broker connection error', { err }));
      connection.on('blocked', (reason: string) => log.warn('broker blocked us', { reason }));
      connection.on('unblocked', () => log.info('broker unblocked us'));
      connection.on('close', (err?: Error) => this.onClose(connection, err));
      this.connection = connection;
      this.generationCounter += 1;
      const generation = this.generationCounter;
      for (const setup of this.setups) await setup(connection, generation);
      this.attempt = 0;
      log.info('broker connected', { generation, node: nodeOf(given) });
      this.emit('connected', generation);
    } catch (err) {
      if (this.connection !== null) {
        // setup failed on a live connection: drop it and start over
        const stale = this.connection;
        this.connection = null;
        log.warn('broker setup failed, reconnecting', { err });
        await stale.close().catch(() => undefined);
        return;
      }
      if (isAuthFailure(err)) {
        log.error('broker refused our credentials', { err });
        this.emit('fatal', err instanceof Error ? err : new Error(String(err)));
        return;
      }
      this.scheduleReconnect(err);
    }
  }

  private onClose(connection: amqp.ChannelModel, err?: Error): void {
    if (this.connection !== connection && this.connection !== null) return;
    this.connection = null;
    if (this.closing) return;
    this.emit('disconnected', err ?? new Error('connection closed'));
    this.scheduleReconnect(err ?? new Error('connection closed'));
  }

  private scheduleReconnect(err: unknown): void {
    if (this.closing || this.timer !== null) return;
    // the next node of a cluster, if there are several
    this.node = (this.node + 1) % this.urls.length;
    const delay = backoffDelayMs(
      this.attempt,
      this.options.reconnectInitialDelayMs,
      this.options.reconnectMaxDelayMs,
    );
    this.attempt += 1;
    this.options.log.warn('broker unavailable, retrying', {
      err,
      attempt: this.attempt,
      delay_ms: delay,
      ...(this.urls.length > 1 ? { next_node: nodeOf(this.urls[this.node] ?? '') } : {}),
    });
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connecting = this.connect();
    }, delay);
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      const connection = this.connection;
      this.connection = null;
      if (connection !== null) await connection.close().catch(() => undefined);
    })();
    return this.closed;
  }
}
