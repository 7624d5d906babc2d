/**
 * A watched task as its event stream tells it: the task and each endpoint's row, changed by
 * `snapshot`, `task`, `response` and `end` events. Pure.
 */
import type { ResponseJson, TaskDocument, TaskJson } from './wire';
import type { ServerEvent } from './events';

export interface WatchState {
  task: TaskJson;
  /** by endpoint name, in the order the server listed them */
  rows: Map<string, ResponseJson>;
  /** the `end` event came: the task is final */
  ended: boolean;
}

export function stateOf(document: TaskDocument): WatchState {
  return {
    task: document.task,
    rows: new Map(document.taskResponseList.map((row) => [row.endpoint, row])),
    ended: false,
  };
}

/** The state after `event`; null before the first snapshot; unknown events change nothing. */
export function applyEvent(state: WatchState | null, event: ServerEvent): WatchState | null {
  switch (event.event) {
    case 'snapshot':
      return stateOf(JSON.parse(event.data) as TaskDocument);
    case 'task':
      return state === null ? null : { ...state, task: JSON.parse(event.data) as TaskJson };
    case 'response': {
      if (state === null) return null;
      const row = JSON.parse(event.data) as ResponseJson;
      const rows = new Map(state.rows);
      rows.set(row.endpoint, row);
      return { ...state, rows };
    }
    case 'end':
      return state === null ? null : { ...state, ended: true };
    default:
      return state;
  }
}
