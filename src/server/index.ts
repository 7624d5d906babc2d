/**
 * The server's parts besides the API: the intake that accepts a task, the relay that publishes
 * what the intake could not, the recorder of result events, the sweeper of deadlines, the
 * scheduler of recurring schedules, delayed tasks and dependencies. The
 * process that runs them with the API is src/cli/server-process.ts.
 */
export { Intake, type Accepted, type IntakeDeps, type TaskRequest } from './intake';
export { cancelMessage, outboxPublishers, taskMessage } from './publish';
export { startRecorder } from './recorder';
export { startRelay } from './relay';
export { startSweeper } from './sweeper';
export { startScheduler, type SchedulerOptions } from './scheduler';
export { ChangeFeed, changeEvent } from './changes';
export { countChanges, databaseProbe, metricsScraper, timedPublishers } from './metrics';
