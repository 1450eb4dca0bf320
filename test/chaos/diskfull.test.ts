// Disk-full suite, short: 2 runs on a nearly full tmpfs (when mountable, else 3 injected) and 1
// with ENOSPC injected (npm run chaos: iterations/20 of each).
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { canMountTmpfs, diskFullCase, ENOSPC_PRELOAD, signalsText, type DiskFullCase, type DiskMode } from '../../chaos/diskfull.js';
import { chaosWorkspace, report, Rng, run, scale, STACK, storeHashes } from '../../chaos/lib.js';

const s = scale();
const tmpfs = canMountTmpfs();
const n = (short: number): number => (s.full ? Math.max(short, Math.round(s.iterations / 20)) : short);
const cases: { mode: DiskMode; i: number }[] = [
  ...Array.from({ length: tmpfs ? n(2) : 0 }, (_, i) => ({ mode: 'tmpfs' as const, i })),
  ...Array.from({ length: n(tmpfs ? 1 : 3) }, (_, i) => ({ mode: 'preload' as const, i })),
];
const signals = signalsText(s.seed);
let clean: string[] = [];
/** Wall time of the clean run: a run on a full disk taking four times as long (and at least 6 s) counts as hung, however loaded the machine. */
let cleanMs = 0;
const results: DiskFullCase[] = [];

describe(`chaos: disk full (seed ${s.seed}; tmpfs ${tmpfs ? 'mountable' : 'not mountable: ENOSPC injected only'})`, () => {
  it('a clean run of the same date, for reference', async () => {
    const ws = chaosWorkspace({ signals });
    const r = await run(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-04']);
    expect(r.code, r.stderr).toBe(0);
    clean = storeHashes(ws);
    cleanMs = r.ms;
  }, 60_000);

  it.each(cases)(
    '$mode #$i: exit 50 with one line and no stack, nothing half-written, completes once space is back',
    async ({ mode, i }) => {
      const r = await diskFullCase(mode, new Rng(s.seed + (mode === 'tmpfs' ? 0 : 100) + i), signals, clean, Math.max(s.full ? 10_000 : 6_000, 4 * cleanMs));
      results.push(r);
      expect(r.failures, `${mode} with ${r.space} bytes`).toEqual([]);
    },
    180_000,
  );

  afterAll(() => {
    report('diskfull', {
      seed: s.seed,
      tmpfs,
      cases: results.length,
      failed: results.filter((r) => r.failures.length).length,
      hung: results.filter((r) => r.first.hung).length,
      results: results.map((r) => ({
        mode: r.mode,
        space: r.space,
        first: r.first,
        doctor_while_full: r.doctor_while_full,
        repair: r.repair_exit,
        next: r.next_code,
        next_waited_for_lock: r.next_waited_for_lock,
        identical: r.store_identical,
        failures: r.failures,
      })),
    });
  });

  // Found by the cases above (a tmpfs run whose store append failed): an ENOSPC inside a task used
  // to count as a transient task error, so every task spent its attempts at once and the next run
  // exited 50 until someone ran `queue retry`. Now the runtime gives the task back untouched and the
  // command fails with the cause. Only writes under store/ fail here.
  it('ENOSPC inside the stage tasks (store writes): once space is back, the same run-local completes', async () => {
    const ws = chaosWorkspace({ signals });
    const args = ['s1', 'run-local', '--workspace', ws, '--date', '2026-01-04'];
    const full = await run(args, { env: { NODE_OPTIONS: `--import=${ENOSPC_PRELOAD}`, METASPN_CHAOS_ENOSPC_BUDGET: '0', METASPN_CHAOS_ENOSPC_UNDER: join(ws, 'store') }, ms: 30_000 });
    expect(full.code).toBe(50);
    expect(full.stderr).not.toMatch(STACK);
    expect(full.stdout + full.stderr).toMatch(/ENOSPC|disk full/);
    const next = await run(args, { ms: 30_000 });
    expect(next.code, next.stdout + next.stderr).toBe(0);
    expect(storeHashes(ws)).toEqual(clean);
  }, 90_000);
});
