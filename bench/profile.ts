#!/usr/bin/env node
/**
 * Summarise a V8 .cpuprofile (from `node --cpu-prof`, e.g. the server's with
 * `npm run bench -- --server-node-args="--cpu-prof --cpu-prof-dir=DIR"`): where the process
 * spent its time, by package/module and by function (self time), and by the tasker functions on
 * the stack (total time). Usage: node dist/bench/profile.js FILE.cpuprofile [--top N]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** "src/store/db.js", "knex", "node:internal", "(garbage collector)" … */
function moduleOf(url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg !== null) return pkg[1] as string;
  if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/');
  const own = /\/dist\/(.*)$/.exec(url);
  return own !== null ? (own[1] as string) : url;
}

function top(map: Map<string, number>, total: number, n: number): string {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(
      ([key, us]) =>
        `${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${key}`,
    )
    .join('\n');
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string' } },
  });
  const file = positionals[0];
  if (file === undefined) throw new Error('usage: profile.js FILE.cpuprofile [--top N]');
  const n = Number.parseInt(values.top ?? '25', 10);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id);

  const selfTime = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfTime.set(id, (selfTime.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const total = [...selfTime.values()].reduce((a, b) => a + b, 0);
  const byModule = new Map<string, number>();
  const byFunction = new Map<string, number>();
  const taskerTotal = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of selfTime) {
    const node = byId.get(id);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName === '' ? '(anonymous)' : functionName;
    if (name === '(idle)') idle += us;
    const mod = moduleOf(url, name);
    byModule.set(mod, (byModule.get(mod) ?? 0) + us);
    const fn = `${name} ${mod}:${lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    // total time of tasker's own functions: every distinct one on this sample's stack
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)?.callFrame;
      if (frame === undefined || !/\/dist\/src\//.test(frame.url)) continue;
      const key = `${frame.functionName || '(anonymous)'} ${moduleOf(frame.url, '')}:${frame.lineNumber + 1}`;
      if (!seen.has(key)) {
        seen.add(key);
        taskerTotal.set(key, (taskerTotal.get(key) ?? 0) + us);
      }
    }
  }
  const wall = (profile.endTime - profile.startTime) / 1000;
  console.log(
    `${file}: ${(wall / 1000).toFixed(1)} s profiled, busy ${((100 * (total - idle)) / total).toFixed(0)}%`,
  );
  console.log(`\nself time by module\n${top(byModule, total, n)}`);
  console.log(`\nself time by function\n${top(byFunction, total, n)}`);
  console.log(`\ntotal time of tasker functions on the stack\n${top(taskerTotal, total, n)}`);
}

main();
