/**
 * Helpers shared by the migrations, which run on MySQL/MariaDB and on SQLite. Identifiers and
 * endpoint names compare byte for byte: "Deploy" and "deploy", or "a" and "a ", are different
 * tasks. MySQL needs a binary no-pad collation for that; SQLite's default BINARY collation
 * already compares bytes, trailing spaces included.
 */
import type { Knex } from 'knex';

/** MySQL/MariaDB rather than SQLite (the migrations stand apart from the store they serve) */
const isMysql = (knex: Knex): boolean => knex.client.config.client !== 'better-sqlite3';

/** The byte-exact collation for identifier columns; null on SQLite, which needs none. */
export async function exactCollation(knex: Knex): Promise<string | null> {
  if (!isMysql(knex)) return null;
  const [rows] = (await knex.raw('SELECT VERSION() AS version')) as [Array<{ version: string }>];
  const version = rows[0]?.version ?? '';
  if (/mariadb/i.test(version)) return 'utf8mb4_nopad_bin';
  return Number.parseInt(version, 10) >= 8 ? 'utf8mb4_0900_bin' : 'utf8mb4_bin';
}

/**
 * DATETIME with milliseconds (MySQL needs the precision spelled out). SQLite ignores the
 * precision: knex stores Dates there as epoch milliseconds, exact already.
 */
export function timestamp(table: Knex.CreateTableBuilder, name: string): Knex.ColumnBuilder {
  return table.datetime(name, { precision: 3 });
}

/** utf8mb4 InnoDB tables on MySQL; SQLite has none of these (and is UTF-8 and byte-exact). */
export function tableOptions(knex: Knex, table: Knex.CreateTableBuilder): void {
  if (!isMysql(knex)) return;
  table.charset('utf8mb4');
  table.collate('utf8mb4_unicode_ci');
  table.engine('InnoDB');
}

/**
 * The columns that tie a row to one endpoint of a task: `task_id` (the row goes with its task)
 * and `endpoint`, byte-exact (`exact`, from exactCollation).
 */
export function endpointOfTask(table: Knex.CreateTableBuilder, exact: string | null): void {
  table
    .bigInteger('task_id')
    .unsigned()
    .notNullable()
    .references('id')
    .inTable('tasks')
    .onDelete('CASCADE');
  const endpoint = table.string('endpoint', 64).notNullable();
  if (exact) endpoint.collate(exact);
}
