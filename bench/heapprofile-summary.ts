/**
 * Summarizes a V8 sampling heap profile (profile-queue's `--heapprof`, or `node --heap-prof`): bytes
 * allocated per function (self: allocated in it; inclusive: in it and what it called), heaviest first.
 *
 *   node dist/bench/heapprofile-summary.js <file.heapprofile> [--top 30] [--per N (divide by N: bytes a task)]
 */
import { readFileSync } from 'node:fs';
import { fmtNum, shortUrl, table } from './lib.js';

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

function main(): void {
  const argv = process.argv.slice(2);
  const file = argv[0];
  if (!file) throw new Error('usage: heapprofile-summary <file.heapprofile> [--top N] [--per N]');
  const top = argv.includes('--top') ? Number(argv[argv.indexOf('--top') + 1]) || 30 : 30;
  const per = argv.includes('--per') ? Number(argv[argv.indexOf('--per') + 1]) || 1 : 1;
  const { head } = JSON.parse(readFileSync(file, 'utf8')) as { head: HeapNode };
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  let total = 0;
  const walk = (n: HeapNode, stack: string[]): number => {
    const f = n.callFrame;
    const k = `${f.functionName || '(anonymous)'}  ${shortUrl(f.url)}:${f.lineNumber + 1}`;
    self.set(k, (self.get(k) ?? 0) + n.selfSize);
    total += n.selfSize;
    let sum = n.selfSize;
    for (const c of n.children) sum += walk(c, [...stack, k]);
    // Inclusive: counted once per stack even when the function recurses.
    if (!stack.includes(k)) incl.set(k, (incl.get(k) ?? 0) + sum);
    return sum;
  };
  walk(head, []);
  const rows = (m: Map<string, number>): string[][] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, b]) => [k, fmtNum(b / per, per === 1 ? 0 : 1), `${fmtNum((100 * b) / total, 1)}%`]);
  const unit = per === 1 ? 'bytes' : `bytes / ${per}`;
  console.log(`heap profile ${file}: ${fmtNum(total / 1e6, 1)} MB sampled${per === 1 ? '' : ` (${fmtNum(total / per, 0)} bytes / ${per})`}`);
  console.log('\nself');
  console.log(table(['function  file:line', unit, '%'], rows(self)));
  console.log('\ninclusive');
  console.log(table(['function  file:line', unit, '%'], rows(incl)));
}

main();
