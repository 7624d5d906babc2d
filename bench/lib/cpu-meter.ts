/**
 * CPU time per process over a phase, from /proc/<pid>/stat (user + system), so a phase can say
 * where the machine's cores went: the tasker server, the agents (with their handler processes),
 * RabbitMQ, MariaDB, this client.
 */
import { readFileSync, readdirSync } from 'node:fs';

const TICKS_PER_S = 100; // USER_HZ on Linux

/** The fields of /proc/<pid>/stat after the command (which may contain spaces), or null. */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/**
 * CPU seconds of a process, with those of its children that ended (cutime, cstime): an
 * agent's handler processes that came and went count as the agent's.
 */
export function cpuSeconds(pid: number): number | null {
  const fields = statFields(pid);
  if (fields === null) return null;
  const [utime, stime, cutime, cstime] = [11, 12, 13, 14].map((i) => Number(fields[i]));
  return ((utime ?? 0) + (stime ?? 0) + (cutime ?? 0) + (cstime ?? 0)) / TICKS_PER_S;
}

/** Live descendants of `pids` (an agent's handler processes, say). */
function descendants(pids: readonly number[]): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = Number(statFields(Number(entry))?.[1]);
    if (Number.isInteger(ppid)) parentOf.set(Number(entry), ppid);
  }
  const found = new Set(pids);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parentOf) {
      if (!found.has(pid) && found.has(ppid)) {
        found.add(pid);
        grew = true;
      }
    }
  }
  return [...found].filter((pid) => !pids.includes(pid));
}

/** Pids of running processes whose command name (/proc/<pid>/comm) is `name`. */
export function pidsNamed(name: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** The broker's and the database's processes, for the CPU table. */
export function servicePids(): Record<string, number[]> {
  return { rabbitmq: pidsNamed('beam.smp'), mariadb: pidsNamed('mariadbd') };
}

export interface CpuShare {
  cpu_s: number;
  /** of one core, over the phase's wall time: 200 means two cores busy */
  pct_of_core: number;
}

export interface CpuMeter {
  stop(): Record<string, CpuShare>;
}

/**
 * Start measuring the processes in `roles` (role → pids; a pid that exits before `stop` counts
 * what it used until the last reading), each with its descendants, plus this process as
 * "bench client".
 */
export function startCpuMeter(roles: Record<string, number[]>): CpuMeter {
  const started = performance.now();
  const before = new Map<number, number>();
  for (const pids of Object.values(roles)) {
    for (const pid of [...pids, ...descendants(pids)]) before.set(pid, cpuSeconds(pid) ?? 0);
  }
  const self = process.cpuUsage();
  return {
    stop: () => {
      const wall = (performance.now() - started) / 1000;
      const out: Record<string, CpuShare> = {};
      const share = (cpu: number): CpuShare => ({
        cpu_s: Math.round(cpu * 100) / 100,
        pct_of_core: wall <= 0 ? 0 : Math.round((100 * cpu) / wall),
      });
      for (const [role, pids] of Object.entries(roles)) {
        let sum = 0;
        for (const pid of [...pids, ...descendants(pids)]) {
          const now = cpuSeconds(pid);
          if (now !== null) sum += now - (before.get(pid) ?? 0);
        }
        out[role] = share(sum);
      }
      const used = process.cpuUsage(self);
      out['bench client'] = share((used.user + used.system) / 1e6);
      return out;
    },
  };
}

export function formatCpu(cpu: Record<string, CpuShare>): string {
  return Object.entries(cpu)
    .map(([role, s]) => `${role} ${s.pct_of_core}%`)
    .join(', ');
}
