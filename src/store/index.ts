export {
  createDb,
  databaseEngine,
  ensureDatabase,
  failsEveryWrite,
  isDatabaseAway,
  isDatabaseUnavailable,
  isRefusedData,
  parseMysqlUrl,
  pingDatabase,
  type Db,
  type Engine,
} from './db';
export { migrateLatest, migrateRollback, migrationStatus } from './migrate';
export {
  TaskWriter,
  createTask,
  type CreateResult,
  type FirstPublication,
  type NewTask,
} from './task-writer';
export {
  findResponse,
  findTask,
  findTaskRow,
  getTaskRow,
  listTasks,
  listTasksQuery,
  type ResponseDetail,
  type TaskFilter,
  type TaskPage,
} from './task-queries';
export { cancelTask, retryTask, type ActionOutcome } from './task-actions';
export {
  markSent,
  relayDueTasks,
  sentMarker,
  type Confirmed,
  type Publishers,
  type RelayOutcome,
} from './outbox';
export { recordResultEvents, type RecordOutcome } from './result-events';
export { sweepDeadlines, type SweepOutcome } from './deadlines';
export { findTaskIds, reachesTask } from './dependencies';
export {
  createSchedule,
  deleteSchedule,
  describeSchedule,
  fireDueSchedules,
  listSchedules,
  setSchedulePaused,
  toScheduleView,
  updateSchedule,
  rowToSpec,
  findScheduleRow,
  type FireOutcome,
  type ScheduleRow,
  type ScheduleView,
} from './schedules';
export { releaseDueTasks, releaseReadyTasks, type ReleaseOutcome } from './releases';
export type { TaskChange } from './locked-tasks';
export {
  outboxBody,
  parseJsonColumn,
  taskEndpoints,
  type HistoryRow,
  type OutboxBody,
  type ResponseRow,
  type TaskRow,
} from './rows';
export {
  toTaskView,
  toResponseView,
  type HistoryView,
  type RegistryStatus,
  type ResponseView,
  type TaskView,
  type TaskWithResponses,
} from './views';
export {
  endpointStatus,
  findEndpointRow,
  forgetEndpoint,
  listEndpointRows,
  listEndpoints,
  recordHeartbeats,
  recentTasksOf,
  registryOf,
  selectEndpoints,
  toEndpointView,
  type EndpointFilter,
  type EndpointPage,
  type EndpointRow,
  type EndpointTask,
  type EndpointView,
  type FleetSummary,
} from './endpoints';
export { endpointCounts, outboxStats, type EndpointCounts, type OutboxStats } from './stats';
