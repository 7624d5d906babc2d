import type { Knex } from 'knex';
import { exactCollation, tableOptions, timestamp } from './support';

export async function up(knex: Knex): Promise<void> {
  const exact = await exactCollation(knex);
  await knex.schema.createTable('tasks', (table) => {
    tableOptions(knex, table);
    table.bigIncrements('id').primary();
    table.string('type', 32).notNullable();
    const identifier = table.string('identifier', 255).notNullable();
    if (exact) identifier.collate(exact);
    table.string('status', 16).notNullable();
    table.text('payload', 'longtext').notNullable();
    table.text('endpoints', 'longtext').nullable();
    table.text('counts', 'longtext').notNullable();
    table.integer('execution_timeout_ms').unsigned().notNullable();
    timestamp(table, 'created_at').notNullable();
    timestamp(table, 'sent_at').nullable();
    timestamp(table, 'deliver_by').notNullable();
    timestamp(table, 'sweep_at').nullable();
    timestamp(table, 'finished_at').nullable();
    timestamp(table, 'updated_at').notNullable();
    table.unique(['type', 'identifier'], { indexName: 'tasks_type_identifier_unique' });
    table.index(['sweep_at'], 'tasks_sweep_at_index');
    table.index(['type', 'created_at'], 'tasks_type_created_at_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('tasks');
}
