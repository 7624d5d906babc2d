/**
 * Helpers shared by the migrations. Identifiers and endpoint names compare byte for byte:
 * "Deploy" and "deploy", or "a" and "a ", are different tasks.
 */
import type { Knex } from 'knex';

export async function exactCollation(knex: Knex): Promise<string | null> {
  if (knex.client.config.client !== 'mysql2') return null;
  const [rows] = (await knex.raw('SELECT VERSION() AS version')) as [Array<{ version: string }>];
  const version = rows[0]?.version ?? '';
  if (/mariadb/i.test(version)) return 'utf8mb4_nopad_bin';
  return Number.parseInt(version, 10) >= 8 ? 'utf8mb4_0900_bin' : 'utf8mb4_bin';
}

/** DATETIME with milliseconds (MySQL needs the precision spelled out). */
export function timestamp(table: Knex.CreateTableBuilder, name: string): Knex.ColumnBuilder {
  return table.datetime(name, { precision: 3 });
}

/** utf8mb4 InnoDB tables on MySQL; SQLite has none of these (and is UTF-8 and byte-exact). */
export function tableOptions(knex: Knex, table: Knex.CreateTableBuilder): void {
  if (knex.client.config.client !== 'mysql2') return;
  table.charset('utf8mb4');
  table.collate('utf8mb4_unicode_ci');
  table.engine('InnoDB');
}
