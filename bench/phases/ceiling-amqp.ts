/**
 * Ceiling (a): what this RabbitMQ does with no tasker in the way. A durable fanout exchange bound
 * to 10 durable queues; small persistent JSON messages published on a confirm channel. Run two
 * ways:
 * - deliveries: many publishes in flight and 10 consumers (one channel each, manual ack of every
 *   message). Deliveries/s = acked messages across all queues / wall time from the first publish
 *   to the last ack.
 * - the POST bound: no consumers (the POST phase runs no agents) and only as many publishes in
 *   flight as the POST phase has requests in flight, with a task message's properties (TTL,
 *   message id). That is the most POSTs/s the broker alone allows at that concurrency, and its
 *   confirm latency is a floor under POST latency.
 */
import * as amqp from 'amqplib';
import { startCpuMeter, servicePids, type CpuShare } from '../lib/cpu-meter';
import { AMQP_URL, prefixFor } from '../lib/run-resources';
import { latency, rate, type Latency } from '../lib/stats';

export interface AmqpCeilingOptions {
  queues: number;
  durationMs: number;
  /** unconfirmed publishes allowed at once */
  inFlight: number;
  /** consumers acking with this prefetch, or null for none (the queues fill, then are deleted) */
  prefetch: number | null;
  progress: (line: string) => void;
}

export interface AmqpCeiling {
  queues: number;
  published: number;
  publish_confirms_per_s: number;
  deliveries_acked: number;
  deliveries_per_s: number;
  elapsed_ms: number;
  message_bytes: number;
  in_flight: number;
  prefetch: number | null;
  /** time from publish to confirm */
  confirm_latency: Latency;
  /** broker CPU per confirmed publish, in ms */
  broker_cpu_ms_per_publish: number | null;
  /** CPU of the broker and of this publishing/consuming client */
  cpu: Record<string, CpuShare>;
}

function sampleMessage(n: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      v: 1,
      id: n,
      identifier: `ceiling-${n}`,
      type: 'noop',
      payload: { n, note: 'bench' },
      endpoints: ['e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7', 'e8', 'e9', 'e10'],
      created_at: new Date().toISOString(),
      deliver_by: new Date(Date.now() + 600_000).toISOString(),
      execution_timeout_ms: 30_000,
      max_deliveries: 5,
    }),
  );
}

export async function amqpCeiling(options: AmqpCeilingOptions): Promise<AmqpCeiling> {
  const stem = prefixFor('ceil');
  const exchange = `${stem}.fanout`;
  const queues = Array.from({ length: options.queues }, (_, i) => `${stem}.q${i + 1}`);
  const pubConn = await amqp.connect(AMQP_URL, {
    clientProperties: { connection_name: 'bench pub' },
  });
  const subConn = await amqp.connect(AMQP_URL, {
    clientProperties: { connection_name: 'bench sub' },
  });
  try {
    const admin = await pubConn.createChannel();
    await admin.assertExchange(exchange, 'fanout', { durable: true });
    for (const queue of queues) {
      await admin.assertQueue(queue, { durable: true });
      await admin.purgeQueue(queue);
      await admin.bindQueue(queue, exchange, '');
    }

    let acked = 0;
    let lastAckAt = 0;
    let expected = Number.POSITIVE_INFINITY;
    let allAcked: () => void = () => undefined;
    const drained = new Promise<void>((resolve) => (allAcked = resolve));
    const { prefetch } = options;
    for (const queue of prefetch === null ? [] : queues) {
      const ch = await subConn.createChannel();
      await ch.prefetch(prefetch ?? 0);
      await ch.consume(queue, (message) => {
        if (message === null) return;
        ch.ack(message);
        acked += 1;
        lastAckAt = performance.now();
        if (acked >= expected) allAcked();
      });
    }

    const pub = await pubConn.createConfirmChannel();
    let published = 0;
    let confirmed = 0;
    let inFlight = 0;
    let wake: (() => void) | null = null;
    const confirmMs: number[] = [];
    const meter = startCpuMeter({ rabbitmq: servicePids().rabbitmq ?? [] });
    const started = performance.now();
    const stopAt = started + options.durationMs;
    let nextReport = started + 1000;
    while (performance.now() < stopAt) {
      if (inFlight >= options.inFlight) {
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      inFlight += 1;
      published += 1;
      const publishedAt = performance.now();
      const ok = pub.publish(
        exchange,
        '',
        sampleMessage(published),
        {
          persistent: true,
          contentType: 'application/json',
          messageId: `task-${published}`,
          expiration: '600000',
        },
        (err: unknown) => {
          inFlight -= 1;
          if (err === null || err === undefined) {
            confirmed += 1;
            confirmMs.push(performance.now() - publishedAt);
          }
          const resume = wake;
          wake = null;
          resume?.();
        },
      );
      if (!ok) await new Promise<void>((resolve) => pub.once('drain', resolve));
      if (performance.now() >= nextReport) {
        nextReport += 1000;
        const deliveries = prefetch === null ? '' : `, ${acked} deliveries acked`;
        options.progress(`  amqp ceiling: ${published} published${deliveries}`);
      }
      // let confirms and deliveries in every now and then
      if (published % 200 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await pub.waitForConfirms();
    const publishWall = performance.now() - started;
    const publishCpu = meter.stop();
    expected = prefetch === null ? 0 : published * queues.length;
    if (acked < expected) {
      const timeout = setTimeout(allAcked, 60_000);
      await drained;
      clearTimeout(timeout);
    }
    // without consumers the run ends with the last confirm
    const wall =
      prefetch === null
        ? publishWall
        : (acked >= expected ? lastAckAt : performance.now()) - started;
    const cpu = prefetch === null ? publishCpu : meter.stop();
    const brokerCpuS = publishCpu.rabbitmq?.cpu_s;
    await pub.close();
    for (const queue of queues) await admin.deleteQueue(queue);
    await admin.deleteExchange(exchange);
    await admin.close();
    return {
      queues: queues.length,
      published,
      publish_confirms_per_s: rate(confirmed, publishWall),
      deliveries_acked: acked,
      deliveries_per_s: rate(acked, wall),
      elapsed_ms: Math.round(wall),
      message_bytes: sampleMessage(1).length,
      in_flight: options.inFlight,
      prefetch,
      confirm_latency: latency(confirmMs),
      broker_cpu_ms_per_publish:
        brokerCpuS === undefined || confirmed === 0
          ? null
          : Math.round((100_000 * brokerCpuS) / confirmed) / 100,
      cpu,
    };
  } finally {
    await subConn.close().catch(() => undefined);
    await pubConn.close().catch(() => undefined);
  }
}
