/**
 * When the server last heard from an endpoint about its row, on the server's clock: the sweeper
 * measures silence from it, not from the agent's own timestamps.
 */
import type { Knex } from 'knex';
import { timestamp } from './support';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('task_responses', (table) => {
    timestamp(table, 'last_heard_at').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('task_responses', (table) => {
    table.dropColumn('last_heard_at');
  });
}
