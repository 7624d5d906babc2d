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
  findTask,
  getTaskRow,
  type CreateResult,
  type NewTask,
} from './tasks';
export { SentMarker, markSent, relayDueTasks, type RelayOutcome } from './outbox';
export { recordResultEvents, type RecordOutcome } from './results';
export { sweepDeadlines, type SweepOutcome } from './sweeps';
export {
  toTaskView,
  toResponseView,
  type ResponseView,
  type TaskRow,
  type TaskView,
  type TaskWithResponses,
} from './rows';
