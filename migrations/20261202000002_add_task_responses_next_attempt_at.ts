/** A RETRYING response's next run: when its agent runs the task again. */
import type { Knex } from 'knex';
import { timestamp } from './support';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('task_responses', (table) => {
    timestamp(table, 'next_attempt_at').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('task_responses', (table) => {
    table.dropColumn('next_attempt_at');
  });
}
