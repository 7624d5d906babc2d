/**
 * Prometheus on HTTP: the request durations of every route, labelled by the route's pattern
 * (`/:type/:identifier`, never the path a client sent, which would make a series per task), and
 * GET /metrics, served by the API behind its tokens or by a listener of its own
 * (`server.metrics_listen`), which serves nothing else.
 */
import express, { type RequestHandler } from 'express';
import type { Logger } from '../log';
import type { ServerMetrics } from '../metrics';

/** What serves a scrape: the format it writes. */
export type MetricsFormat = Pick<ServerMetrics, 'contentType'>;
import { errorHandler, notFound } from './errors';
import { requestIds } from './request-id';

/**
 * the route label of a request no route took (refused by the token check, unknown, or a file of
 * the dashboard)
 */
export const UNMATCHED_ROUTE = 'unmatched';

/** Time each request from its arrival until its answer ends (or its client goes). */
export function requestDurations(metrics: ServerMetrics): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.once('close', () => {
      const route: unknown = (req.route as { path?: unknown } | undefined)?.path;
      metrics.httpRequest(
        req.method,
        typeof route === 'string' ? `${req.baseUrl}${route}` : UNMATCHED_ROUTE,
        res.statusCode,
        Number(process.hrtime.bigint() - started) / 1e9,
      );
    });
    next();
  };
}

/** GET /metrics: a scrape, in the text exposition format. */
export function metricsRoute(
  metrics: MetricsFormat,
  scrape: () => Promise<string>,
): express.Router {
  const router = express.Router();
  router.get('/metrics', async (_req, res) => {
    const text = await scrape();
    res.set('content-type', metrics.contentType).set('cache-control', 'no-store').send(text);
  });
  return router;
}

/** The app of a metrics listener (a server's or an agent's): /metrics alone, without tokens. */
export function createMetricsApp(
  metrics: MetricsFormat,
  scrape: () => Promise<string>,
  log: Logger,
): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestIds(log));
  app.use(metricsRoute(metrics, scrape));
  app.use(notFound);
  app.use(errorHandler(log));
  return app;
}
