/**
 * A task that comes after others: `after` (JSON of its `<type>/<identifier>` list, as posted),
 * `on_dependency_failure` ("cancel" or "run"), and `dependencies` (JSON of what its handler
 * receives of them, taken when it is released).
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (table) => {
    table.text('after').nullable();
    table.string('on_dependency_failure', 8).nullable();
    table.text('dependencies', 'longtext').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (table) => {
    table.dropColumn('after');
    table.dropColumn('on_dependency_failure');
    table.dropColumn('dependencies');
  });
}
