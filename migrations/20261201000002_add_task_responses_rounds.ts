/**
 * A response row's round and wave, its own delivery deadline (null while its wave waits to be
 * sent), and a cancel asked of its endpoint while it ran.
 */
import type { Knex } from 'knex';
import { timestamp } from './support';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('task_responses', (table) => {
    table.integer('round').unsigned().notNullable().defaultTo(1);
    table.integer('wave').unsigned().notNullable().defaultTo(1);
    timestamp(table, 'deliver_by').nullable();
    timestamp(table, 'cancel_requested_at').nullable();
    table.text('cancel_reason').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('task_responses', (table) => {
    for (const column of ['round', 'wave', 'deliver_by', 'cancel_requested_at', 'cancel_reason']) {
      table.dropColumn(column);
    }
  });
}
