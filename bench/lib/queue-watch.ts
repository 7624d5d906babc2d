/**
 * Looking at queues from the outside (passive declares on one connection of our own): whether
 * agents consume yet, and how many messages wait where.
 */
import * as amqp from 'amqplib';
import { AMQP_URL } from './run-resources';
import { sleep } from '../../test/support/waiting';

export interface QueueWatch {
  /** messages ready in each queue (0 for a queue that does not exist) */
  depths(queues: readonly string[]): Promise<number[]>;
  /** resolve once every queue exists and has at least one consumer */
  waitForConsumers(queues: readonly string[], timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export async function watchQueues(): Promise<QueueWatch> {
  const connection = await amqp.connect(AMQP_URL, {
    clientProperties: { connection_name: 'bench watch' },
  });
  let channel: amqp.Channel | null = null;
  const ch = async (): Promise<amqp.Channel> => {
    if (channel === null) {
      const opened = await connection.createChannel();
      opened.on('error', () => undefined);
      opened.on('close', () => {
        if (channel === opened) channel = null;
      });
      channel = opened;
    }
    return channel;
  };
  /** checkQueue, or null when the queue does not exist (that closes the channel) */
  const check = async (queue: string): Promise<amqp.Replies.AssertQueue | null> => {
    try {
      return await (await ch()).checkQueue(queue);
    } catch {
      channel = null;
      return null;
    }
  };
  return {
    depths: async (queues) => {
      const out: number[] = [];
      for (const queue of queues) out.push((await check(queue))?.messageCount ?? 0);
      return out;
    },
    waitForConsumers: async (queues, timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      let waiting = [...queues];
      while (waiting.length > 0) {
        const still: string[] = [];
        for (const queue of waiting) {
          const reply = await check(queue);
          if (reply === null || reply.consumerCount === 0) still.push(queue);
        }
        waiting = still;
        if (waiting.length === 0) return;
        if (Date.now() > deadline) {
          throw new Error(`${waiting.length} queues have no consumer yet, e.g. ${waiting[0]}`);
        }
        await sleep(200);
      }
    },
    close: async () => {
      await connection.close().catch(() => undefined);
    },
  };
}
