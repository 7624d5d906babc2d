/**
 * The task types this server accepts, each with its effective settings (its own, or the `api.`
 * default it falls back to): GET /types and GET /types/<name>. Type settings hold no secrets;
 * nothing else of the configuration is shown.
 */
import express, { type Router } from 'express';
import type { TaskerConfig, TaskTypeConfig } from '../config';
import { NotFoundError, describeShare, retryToWire, type WireRetry } from '../domain';

export interface TypeView {
  name: string;
  /** the route tasks of this type are posted to */
  route: string;
  /** the fanout exchange its tasks are published to */
  exchange: string;
  wait_for_endpoints_timeout_ms: number;
  execution_timeout_ms: number;
  max_deliveries: number;
  rollout: { batch: string; max_errors: string; pause_ms: number } | null;
  success_threshold: string | null;
  /** how a run asking for it is retried (errnr 75, 76); null: it is not */
  retry: WireRetry | null;
  /** a task's priority when its POST gives none */
  priority: number;
}

export function toTypeView(type: TaskTypeConfig, prefix: string): TypeView {
  return {
    name: type.name,
    route: `/${type.name}`,
    exchange: `${prefix}.${type.name}`,
    wait_for_endpoints_timeout_ms: type.waitForEndpointsTimeoutMs,
    execution_timeout_ms: type.executionTimeoutMs,
    max_deliveries: type.maxDeliveries,
    rollout:
      type.rollout === null
        ? null
        : {
            batch: describeShare(type.rollout.batch),
            max_errors: describeShare(type.rollout.maxErrors),
            pause_ms: type.rollout.pauseMs,
          },
    success_threshold: type.successThreshold === null ? null : describeShare(type.successThreshold),
    retry: type.retry === null ? null : retryToWire(type.retry),
    priority: type.priority,
  };
}

export function typeRoutes(config: TaskerConfig): Router {
  const router = express.Router();
  const views = (): TypeView[] =>
    Object.values(config.taskTypes).map((type) => toTypeView(type, config.broker.prefix));

  router.get('/types', (_req, res) => {
    res.json({ types: views() });
  });

  router.get('/types/:name', (req, res) => {
    const name = String(req.params.name);
    const view = views().find((type) => type.name === name);
    if (view === undefined) {
      throw new NotFoundError(
        'unknown_task_type',
        `unknown task type ${JSON.stringify(name)}; configured: ${Object.keys(config.taskTypes).join(', ')}`,
      );
    }
    res.json(view);
  });

  return router;
}
