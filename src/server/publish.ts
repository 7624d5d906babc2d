/**
 * Turning a stored task into its wire message and publishing it: shared by the request that
 * accepts a task and by the relay.
 */
import type { TaskBroker } from '../broker';
import type { TaskTypeConfig } from '../config/types';
import { WIRE_VERSION, type TaskMessage } from '../domain';
import { toTaskView, type TaskRow } from '../store';

const FALLBACK_MAX_DELIVERIES = 5;

export function taskMessage(row: TaskRow, types: Record<string, TaskTypeConfig>): TaskMessage {
  const view = toTaskView(row);
  const type = Object.hasOwn(types, row.type) ? types[row.type] : undefined;
  return {
    v: WIRE_VERSION,
    id: view.id,
    identifier: view.identifier,
    type: view.type,
    payload: view.payload,
    endpoints: view.endpoints.length === 0 ? null : view.endpoints,
    created_at: view.start_time,
    deliver_by: view.deliver_by,
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
