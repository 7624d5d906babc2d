/**
 * A stored task as its wire message, and publishing it: shared by the intake (which publishes a
 * task as soon as it is stored) and the relay (which publishes what the intake could not). The
 * message is built from the stored row, never from the HTTP view, so the API's JSON can change
 * without changing what agents receive.
 */
import type { TaskBroker } from '../broker';
import type { TaskTypeConfig } from '../config';
import { WIRE_VERSION, type TaskMessage } from '../domain';
import { parseJsonColumn, taskEndpoints, type TaskRow } from '../store';

/** deliveries per endpoint for a task whose type is no longer configured */
const FALLBACK_MAX_DELIVERIES = 5;

export function taskMessage(row: TaskRow, types: Record<string, TaskTypeConfig>): TaskMessage {
  const type = Object.hasOwn(types, row.type) ? types[row.type] : undefined;
  return {
    v: WIRE_VERSION,
    id: Number(row.id),
    identifier: row.identifier,
    type: row.type,
    payload: parseJsonColumn(row.payload),
    endpoints: taskEndpoints(row),
    created_at: row.created_at.toISOString(),
    deliver_by: row.deliver_by.toISOString(),
    execution_timeout_ms: row.execution_timeout_ms,
    max_deliveries: type?.maxDeliveries ?? FALLBACK_MAX_DELIVERIES,
  };
}

export type TaskPublisher = (row: TaskRow) => Promise<void>;

export function taskPublisher(
  broker: TaskBroker,
  types: Record<string, TaskTypeConfig>,
): TaskPublisher {
  return (row) => broker.publishTask(taskMessage(row, types));
}
