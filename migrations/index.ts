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
];
