/**
 * A channel that is opened again after it closes: on every reconnect of its session, and after a
 * channel-level error while the connection stays up (a failed operation closes the channel).
 * Deliveries remember the channel they came on; acking one from a replaced channel is a no-op,
 * since its delivery tag means nothing to the new one (the broker redelivers it anyway).
 */
import type * as amqp from 'amqplib';
import type { Logger } from '../log';
import type { Delivery } from './types';
import type { AmqpSession } from './session';

const REOPEN_DELAY_MS = 1000;

export class ManagedChannel<C extends amqp.Channel = amqp.Channel> {
  private channel: C | null = null;
  private closed = false;
  /** failed reopens since the last good setup: only the first is worth a warning */
  private failures = 0;
  private reopenTimer: NodeJS.Timeout | null = null;
  /** the connection the pending reopen is for */
  private reopenOn: amqp.ChannelModel | null = null;

  constructor(
    private readonly session: AmqpSession,
    private readonly log: Logger,
    private readonly open: (connection: amqp.ChannelModel) => Promise<C>,
    private readonly setup: (channel: C) => Promise<void>,
  ) {}

  get current(): C | null {
    return this.channel;
  }

  /** Opens now if the session is connected, and on every reconnect. */
  async start(): Promise<void> {
    await this.session.addSetup((connection) => this.openOn(connection));
  }

  private async openOn(connection: amqp.ChannelModel): Promise<void> {
    if (this.closed) return;
    const channel = await this.open(connection);
    channel.on('error', (err: Error) => {
      if (this.failures === 0) this.log.warn('broker channel error', { err });
      else this.log.debug('broker channel error', { err, failures: this.failures });
    });
    channel.on('close', () => this.onChannelClose(channel, connection));
    this.channel = channel;
    await this.setup(channel);
    if (this.failures > 0) this.log.info('broker channel set up again', { after: this.failures });
    this.failures = 0;
  }

  private onChannelClose(channel: C, connection: amqp.ChannelModel): void {
    if (this.channel === channel) this.channel = null;
    if (this.closed || this.session.current !== connection) return;
    // a reopen already due on this connection does; one left from a connection since replaced
    // (a channel error, then a reconnect within the delay) must not stand in for it
    if (this.reopenTimer !== null && this.reopenOn === connection) return;
    if (this.reopenTimer !== null) clearTimeout(this.reopenTimer);
    this.reopenOn = connection;
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = null;
      if (this.closed || this.session.current !== connection) return;
      this.openOn(connection).catch((err: unknown) => {
        this.failures += 1;
        if (this.failures === 1) {
          this.log.warn('could not reopen broker channel; retrying every second', { err });
        } else {
          this.log.debug('could not reopen broker channel', { err, failures: this.failures });
        }
        this.onChannelClose(channel, connection);
      });
    }, REOPEN_DELAY_MS);
  }

  /** Wrap a message so it can only be settled on the channel it came from, once. */
  delivery(channel: C, message: amqp.ConsumeMessage): Delivery {
    let settled = false;
    const settle = (action: (ch: C) => void): void => {
      if (settled) return;
      settled = true;
      if (this.channel !== channel) return;
      try {
        action(channel);
      } catch (err) {
        this.log.warn('could not settle a delivery; the broker will redeliver it', { err });
      }
    };
    const props = message.properties;
    return {
      content: message.content,
      redelivered: message.fields.redelivered,
      messageId: typeof props.messageId === 'string' ? props.messageId : null,
      userId: typeof props.userId === 'string' ? props.userId : null,
      ack: () => settle((ch) => ch.ack(message)),
      requeue: () => settle((ch) => ch.nack(message, false, true)),
      deadLetter: () => settle((ch) => ch.nack(message, false, false)),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reopenTimer !== null) clearTimeout(this.reopenTimer);
    const channel = this.channel;
    this.channel = null;
    if (channel !== null) await channel.close().catch(() => undefined);
  }
}
