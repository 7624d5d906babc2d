/** Rows from before rows had their own delivery deadline take their task's. */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    'UPDATE task_responses SET deliver_by = ' +
      '(SELECT deliver_by FROM tasks WHERE tasks.id = task_responses.task_id) ' +
      'WHERE deliver_by IS NULL',
  );
}

export async function down(): Promise<void> {
  // the column goes with the previous migration's down
}
