/**
 * The HTTP listeners of a process: the API's, and the listener of its metrics alone
 * (`server.metrics_listen`, `agent.metrics_listen`), which serves /metrics without tokens.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMetricsApp } from '../api';
import { listenAddress } from '../config';
import type { Logger } from '../log';

export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Close a listener: idle connections at once, busy ones within 5 s. */
export function closeListener(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 5000).unref();
  });
}

export interface MetricsListener {
  readonly port: number;
  close(): Promise<void>;
}

/** Serve /metrics on `address` (HOST:PORT, checked by config). */
export async function startMetricsListener(
  address: string,
  metrics: { contentType: string },
  scrape: () => Promise<string>,
  log: Logger,
): Promise<MetricsListener> {
  const where = listenAddress(address);
  if (where === null) throw new Error(`not a HOST:PORT listen address: ${address}`);
  const server = createServer(createMetricsApp(metrics, scrape, log));
  await listen(server, where.port, where.host);
  const { port } = server.address() as AddressInfo;
  log.info('metrics listening', { host: where.host, port });
  return { port, close: () => closeListener(server) };
}
