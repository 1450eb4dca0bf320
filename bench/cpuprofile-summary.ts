/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): self and inclusive time per function,
 * with file and line, heaviest first.
 *
 *   node dist/bench/cpuprofile-summary.js <file.cpuprofile> [--top 30] [--filter src/]
 */
import { readFileSync } from 'node:fs';
import { fmtNum, shortUrl, table } from './lib.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function main(): void {
  const argv = process.argv.slice(2);
  const file = argv[0];
  if (!file) throw new Error('usage: cpuprofile-summary <file.cpuprofile> [--top N] [--filter TEXT]');
  const top = Number(argv[argv.indexOf('--top') + 1] ?? 30) || 30;
  const filter = argv.includes('--filter') ? argv[argv.indexOf('--filter') + 1] : undefined;
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;

  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) byId.set(n.id, n);
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const total = p.endTime - p.startTime;

  const key = (f: CallFrame): string => `${f.functionName || '(anonymous)'}  ${shortUrl(f.url)}:${f.lineNumber + 1}`;
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    const k = key(node.callFrame);
    self.set(k, (self.get(k) ?? 0) + us);
    // Inclusive: count each distinct function once per sample stack.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const kk = key(byId.get(cur)!.callFrame);
      if (seen.has(kk)) continue;
      seen.add(kk);
      incl.set(kk, (incl.get(kk) ?? 0) + us);
    }
  }
  const rows = (m: Map<string, number>): string[][] =>
    [...m.entries()]
      .filter(([k]) => !filter || k.includes(filter))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => [k, fmtNum(us / 1000, 1), `${fmtNum((100 * us) / total, 1)}%`]);
  console.log(`profile ${file}: ${fmtNum(total / 1000, 0)} ms wall, ${p.samples.length} samples`);
  console.log('\nself time');
  console.log(table(['function  file:line', 'ms', '%'], rows(self)));
  console.log('\ninclusive time');
  console.log(table(['function  file:line', 'ms', '%'], rows(incl)));
}

main();
