/**
 * The ordered list of schema migrations. Listed here rather than discovered on disk, so the
 * same list runs from the compiled build, from the TypeScript sources under test, and in any
 * working directory. One DDL change per migration: MySQL commits DDL implicitly.
 */
import type { Knex } from 'knex';
import * as createTasks from './20261122000001_create_tasks';
import * as createTaskResponses from './20261122000002_create_task_responses';
import * as createOutbox from './20261122000003_create_outbox';
import * as addLastHeardAt from './20261130000001_add_task_responses_last_heard_at';
import * as addTaskRounds from './20261201000001_add_tasks_rounds_and_rollout';
import * as addResponseRounds from './20261201000002_add_task_responses_rounds';
import * as fillResponseDeliverBy from './20261201000003_fill_task_responses_deliver_by';
import * as createResponseHistory from './20261201000004_create_response_history';
import * as addOutboxKind from './20261201000005_add_outbox_kind';
import * as dropOutboxTaskIdUnique from './20261201000006_drop_outbox_task_id_unique';
import * as addListingIndexes from './20261201000007_add_listing_indexes';
import * as addEndpointIndex from './20261201000008_add_task_responses_endpoint_index';
import * as createEndpoints from './20261201000009_create_endpoints';
import * as addTasksSelector from './20261201000010_add_tasks_selector';
import * as createResponseOutputs from './20261202000001_create_response_outputs';
import * as addNextAttemptAt from './20261202000002_add_task_responses_next_attempt_at';
import * as addTasksPriority from './20261202000003_add_tasks_priority';
import * as addTasksNotBefore from './20261203000001_add_tasks_not_before';
import * as addTasksDueIndex from './20261203000002_add_tasks_due_index';
import * as createTaskDependencies from './20261203000003_create_task_dependencies';
import * as addTasksDependencyColumns from './20261203000004_add_tasks_dependency_columns';
import * as createSchedules from './20261203000005_create_schedules';
import * as addSchedulesBackoff from './20261203000006_add_schedules_backoff';

export interface Migration {
  name: string;
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

export const migrations: readonly Migration[] = [
  { name: '20261122000001_create_tasks', ...createTasks },
  { name: '20261122000002_create_task_responses', ...createTaskResponses },
  { name: '20261122000003_create_outbox', ...createOutbox },
  { name: '20261130000001_add_task_responses_last_heard_at', ...addLastHeardAt },
  { name: '20261201000001_add_tasks_rounds_and_rollout', ...addTaskRounds },
  { name: '20261201000002_add_task_responses_rounds', ...addResponseRounds },
  { name: '20261201000003_fill_task_responses_deliver_by', ...fillResponseDeliverBy },
  { name: '20261201000004_create_response_history', ...createResponseHistory },
  { name: '20261201000005_add_outbox_kind', ...addOutboxKind },
  { name: '20261201000006_drop_outbox_task_id_unique', ...dropOutboxTaskIdUnique },
  { name: '20261201000007_add_listing_indexes', ...addListingIndexes },
  { name: '20261201000008_add_task_responses_endpoint_index', ...addEndpointIndex },
  { name: '20261201000009_create_endpoints', ...createEndpoints },
  { name: '20261201000010_add_tasks_selector', ...addTasksSelector },
  { name: '20261202000001_create_response_outputs', ...createResponseOutputs },
  { name: '20261202000002_add_task_responses_next_attempt_at', ...addNextAttemptAt },
  { name: '20261202000003_add_tasks_priority', ...addTasksPriority },
  { name: '20261203000001_add_tasks_not_before', ...addTasksNotBefore },
  { name: '20261203000002_add_tasks_due_index', ...addTasksDueIndex },
  { name: '20261203000003_create_task_dependencies', ...createTaskDependencies },
  { name: '20261203000004_add_tasks_dependency_columns', ...addTasksDependencyColumns },
  { name: '20261203000005_create_schedules', ...createSchedules },
  { name: '20261203000006_add_schedules_backoff', ...addSchedulesBackoff },
];
