/**
 * MariaDB's global counters over a phase (SHOW GLOBAL STATUS deltas): statements, commits,
 * fsyncs (MariaDB 10.11 counts redo-log fsyncs in Innodb_data_fsyncs) and row-lock waits, to tell
 * how much database work each task costs. Global: anything else using the server counts too.
 */
import { mysqlRoot } from './run-resources';

const COUNTERS = [
  'Questions',
  'Com_begin',
  'Com_commit',
  'Com_rollback',
  'Com_select',
  'Com_insert',
  'Com_update',
  'Com_delete',
  'Com_set_option',
  'Innodb_data_fsyncs',
  'Innodb_log_writes',
  'Innodb_row_lock_waits',
  'Innodb_row_lock_time',
  'Innodb_rows_read',
  'Innodb_rows_inserted',
  'Innodb_rows_updated',
  'Innodb_rows_deleted',
  'Handler_read_rnd_next',
];

async function snapshot(): Promise<Map<string, number>> {
  const conn = await mysqlRoot();
  try {
    const [rows] = await conn.query('SHOW GLOBAL STATUS');
    const out = new Map<string, number>();
    for (const row of rows as Array<{ Variable_name: string; Value: string }>) {
      if (COUNTERS.includes(row.Variable_name)) out.set(row.Variable_name, Number(row.Value));
    }
    return out;
  } finally {
    await conn.end();
  }
}

export interface DbMeter {
  /** counter deltas since start (this meter's own two SHOW statements included) */
  stop(): Promise<Record<string, number>>;
}

export async function startDbMeter(): Promise<DbMeter> {
  const before = await snapshot();
  return {
    stop: async () => {
      const after = await snapshot();
      const out: Record<string, number> = {};
      for (const name of COUNTERS) out[name] = (after.get(name) ?? 0) - (before.get(name) ?? 0);
      return out;
    },
  };
}

/** "12.0 statements, 2.0 commits, 2.0 fsyncs, 0.0 lock waits per task" */
export function perUnit(delta: Record<string, number>, units: number, unit: string): string {
  if (units <= 0) return '-';
  const f = (name: string): string => ((delta[name] ?? 0) / units).toFixed(1);
  return (
    `${f('Questions')} statements, ${f('Com_commit')} commits, ` +
    `${f('Innodb_data_fsyncs')} fsyncs, ${f('Innodb_row_lock_waits')} lock waits per ${unit}`
  );
}
