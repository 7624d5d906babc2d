/**
 * The endpoint registry, fed by the agents' heartbeats through the recorder: one row per
 * endpoint, with what its agent said of itself last and when the server heard it.
 */
import type { Knex } from 'knex';
import { exactCollation, tableOptions, timestamp } from './support';

export async function up(knex: Knex): Promise<void> {
  const exact = await exactCollation(knex);
  await knex.schema.createTable('endpoints', (table) => {
    tableOptions(knex, table);
    const name = table.string('name', 64).notNullable().primary();
    if (exact) name.collate(exact);
    table.text('types').notNullable();
    table.text('labels').notNullable();
    table.string('version', 64).notNullable();
    table.text('handlers').notNullable();
    table.string('hostname', 255).notNullable();
    table.integer('pid').unsigned().notNullable();
    timestamp(table, 'started_at').notNullable();
    timestamp(table, 'first_seen_at').notNullable();
    timestamp(table, 'last_seen_at').notNullable();
    // last_seen_at plus three heartbeat intervals: online before it, offline after
    timestamp(table, 'offline_at').notNullable();
    timestamp(table, 'stopped_at').nullable();
    table.integer('interval_ms').unsigned().notNullable();
    table.integer('running').unsigned().notNullable();
    table.integer('capacity').unsigned().notNullable();
    timestamp(table, 'updated_at').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('endpoints');
}
