/**
 * What a run printed (a command's stdout and stderr, a module's ctx.log lines), head and tail
 * as the agent kept them: one row per endpoint, round and attempt, apart from the response rows
 * so that reading and locking those never carries it. The response rows and their history say
 * how long it was (output_bytes).
 */
import type { Knex } from 'knex';
import { endpointOfTask, exactCollation, tableOptions, timestamp } from './support';

export async function up(knex: Knex): Promise<void> {
  const exact = await exactCollation(knex);
  await knex.schema.createTable('response_outputs', (table) => {
    tableOptions(knex, table);
    table.bigIncrements('id').primary();
    endpointOfTask(table, exact);
    table.integer('round').unsigned().notNullable();
    table.integer('attempt').unsigned().notNullable();
    table.text('output', 'longtext').notNullable();
    table.bigInteger('output_bytes').unsigned().notNullable();
    timestamp(table, 'recorded_at').notNullable();
    table.unique(['task_id', 'endpoint', 'round', 'attempt'], {
      indexName: 'response_outputs_run_unique',
    });
  });
  for (const name of ['task_responses', 'response_history']) {
    await knex.schema.alterTable(name, (table) => {
      table.bigInteger('output_bytes').unsigned().nullable();
    });
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const name of ['task_responses', 'response_history']) {
    await knex.schema.alterTable(name, (table) => {
      table.dropColumn('output_bytes');
    });
  }
  await knex.schema.dropTable('response_outputs');
}
