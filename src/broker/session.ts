/**
 * One AMQP connection that comes back. Reconnects with capped exponential backoff and jitter,
 * treats refused credentials as fatal, and runs every registered setup (channels, topology,
 * consumers) again after each reconnect. amqplib does none of this by itself.
 */
import { EventEmitter } from 'node:events';
import * as amqp from 'amqplib';
import type { Logger } from '../log';

export interface SessionOptions {
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

  constructor(private readonly options: SessionOptions) {
    super();
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
    try {
      const url = new URL(this.options.url);
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
      log.info('broker connected', { generation });
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
