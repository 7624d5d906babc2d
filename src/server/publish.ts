/**
 * A stored task as its wire message, and publishing what the outbox holds: shared by the
 * intake (which publishes a task's first wave as soon as it is stored) and the relay (which
 * publishes what the intake could not, later waves and rounds, and cancels). Messages are built
 * from the stored row, never from the HTTP view, so the API's JSON can change without changing
 * what agents receive.
 */
import type { TaskBroker } from '../broker';
import type { TaskTypeConfig } from '../config';
import {
  WIRE_VERSION,
  retryToWire,
  taskExpiresAt,
  type ControlMessage,
  type DependencyResult,
  type TaskMessage,
} from '../domain';
import {
  parseJsonColumn,
  taskEndpoints,
  type OutboxBody,
  type Publishers,
  type TaskRow,
} from '../store';

/** deliveries per endpoint for a task whose type is no longer configured */
const FALLBACK_MAX_DELIVERIES = 5;

type TaskBody = Extract<OutboxBody, { kind: 'task' }>;

/** The task message of one publish: a round, the endpoints of a wave (or all), a deadline. */
export function taskMessage(
  row: TaskRow,
  types: Record<string, TaskTypeConfig>,
  body: TaskBody,
  deliverBy: Date,
): TaskMessage {
  const type = Object.hasOwn(types, row.type) ? types[row.type] : undefined;
  return {
    v: WIRE_VERSION,
    id: Number(row.id),
    identifier: row.identifier,
    type: row.type,
    payload: parseJsonColumn(row.payload),
    endpoints: body.endpoints ?? taskEndpoints(row),
    created_at: row.created_at.toISOString(),
    deliver_by: deliverBy.toISOString(),
    execution_timeout_ms: row.execution_timeout_ms,
    max_deliveries: type?.maxDeliveries ?? FALLBACK_MAX_DELIVERIES,
    round: body.round,
    priority: Number(row.priority ?? 0),
    ...(type?.retry == null ? {} : { retry: retryToWire(type.retry) }),
    ...(row.dependencies === null || row.dependencies === undefined
      ? {}
      : { dependencies: parseJsonColumn<DependencyResult[]>(row.dependencies) ?? [] }),
  };
}

export function cancelMessage(
  row: TaskRow,
  body: Extract<OutboxBody, { kind: 'cancel' }>,
): ControlMessage {
  return {
    v: WIRE_VERSION,
    kind: 'cancel',
    task_id: Number(row.id),
    type: row.type,
    round: body.round,
    endpoints: body.endpoints,
    reason: body.reason,
    expires_at: new Date(
      taskExpiresAt({
        deliver_by: row.deliver_by.toISOString(),
        execution_timeout_ms: row.execution_timeout_ms,
      }),
    ).toISOString(),
  };
}

/** Publishing what the outbox holds, through `broker`. */
export function outboxPublishers(
  broker: TaskBroker,
  types: Record<string, TaskTypeConfig>,
): Publishers {
  return {
    task: (row, body, deliverBy) => broker.publishTask(taskMessage(row, types, body, deliverBy)),
    cancel: (row, body) => broker.publishControl(cancelMessage(row, body)),
  };
}
