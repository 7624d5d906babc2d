/**
 * What operating a task needs on the task: a version that grows with every change (for clients
 * that wait for news), the latest round (a retry opens a new one), the delivery window (each
 * wave and round starts its own), the rollout and its progress, the success threshold, and why
 * it was cancelled or its rollout stopped.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (table) => {
    table.integer('version').unsigned().notNullable().defaultTo(0);
    table.integer('round').unsigned().notNullable().defaultTo(1);
    table.integer('wait_ms').unsigned().nullable();
    table.text('rollout').nullable();
    table.integer('wave').unsigned().notNullable().defaultTo(1);
    table.string('success_threshold', 16).nullable();
    table.text('cancel_reason').nullable();
    table.text('stopped_reason').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (table) => {
    for (const column of [
      'version',
      'round',
      'wait_ms',
      'rollout',
      'wave',
      'success_threshold',
      'cancel_reason',
      'stopped_reason',
    ]) {
      table.dropColumn(column);
    }
  });
}
