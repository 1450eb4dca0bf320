// Disk-full suite (promises 4, 5, 6): `s1 run-local` on a disk that fills up mid-run. A small
// tmpfs when this machine lets us mount one (filled to leave a random number of bytes free), else
// ENOSPC injected at the file-system seam (chaos/fixtures/enospc.mjs, a random byte budget).
// Expected: exit 50 with a one-line "disk full" message and no stack trace (or 0 when it fit),
// no file left half-written (doctor clean, or clean after --repair), and once space is back the
// same command completes with the store byte-identical to a clean run's.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSignals } from '../scripts/gen-signals.js';
import { ROOT } from '../test/integration/cli.js';
import { chaosWorkspace, doctor, duplicateIds, finish, kill, problems, sleep, start, STACK, storeHashes, type DoctorFinding, type Rng } from './lib.js';

export type DiskMode = 'tmpfs' | 'preload';
export const ENOSPC_PRELOAD = join(ROOT, 'chaos', 'fixtures', 'enospc.mjs');
const DATE = '2026-01-04';

let mountable: boolean | null = null;

/** Whether this process may mount a tmpfs (root in a container with CAP_SYS_ADMIN, for one). */
export function canMountTmpfs(): boolean {
  if (mountable !== null) return mountable;
  const dir = mkdtempSync(join(tmpdir(), 'metaspn-chaos-mnt-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'ignore' });
    execFileSync('umount', [dir], { stdio: 'ignore' });
    mountable = true;
  } catch {
    mountable = false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return mountable;
}

export function signalsText(seed: number): string {
  return `${generateSignals({ subjects: 30, perSubject: 20, start: '2026-01-01', days: 10, seed: seed % 1000 }).join('\n')}\n`;
}

export interface DiskFullCase {
  mode: DiskMode;
  /** tmpfs: bytes left free; preload: bytes writes may add. */
  space: number;
  first: { code: number | null; hung: boolean; ms: number; message: string; stack: boolean };
  doctor_while_full: number | null;
  repair_exit: number | null;
  next_code: number | null;
  /** The next run found the lock of the killed, hung run and was tried again after its stale time. */
  next_waited_for_lock: boolean;
  store_identical: boolean;
  duplicate_ids: number;
  final_doctor_exit: number | null;
  final_problems: DoctorFinding[];
  failures: string[];
}

/**
 * One disk-full run. `cleanHashes` are the store hashes of a clean run of the same date and
 * input; `hangMs` is how long a run may take before it counts as hung (and is killed).
 */
export async function diskFullCase(mode: DiskMode, rng: Rng, signals: string, cleanHashes: string[], hangMs: number): Promise<DiskFullCase> {
  const failures: string[] = [];
  let mnt: string | null = null;
  let ws: string;
  let space: number;
  let env: NodeJS.ProcessEnv = {};
  if (mode === 'tmpfs') {
    mnt = mkdtempSync(join(tmpdir(), 'metaspn-chaos-mnt-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
    ws = join(mnt, 'ws');
    mkdirSync(join(ws, 'inputs'), { recursive: true });
    writeFileSync(join(ws, 'inputs', 's1_signals.jsonl'), signals);
    // A run needs about 150 KiB here (tmpfs counts whole pages): leave 0 to 160 KiB.
    space = rng.int(0, 160 << 10);
    const st = statfsSync(mnt);
    const fill = st.bavail * st.bsize - space;
    if (fill > 0) writeFileSync(join(mnt, 'filler'), Buffer.alloc(fill));
  } else {
    ws = chaosWorkspace({ signals });
    space = rng.int(0, 120_000);
    env = { NODE_OPTIONS: `--import=${ENOSPC_PRELOAD}`, METASPN_CHAOS_ENOSPC_BUDGET: String(space), METASPN_CHAOS_ENOSPC_UNDER: ws };
  }
  const args = ['s1', 'run-local', '--workspace', ws, '--date', DATE];
  try {
    const p = start(args, { env });
    const first = await finish(p, hangMs).then(
      (r) => ({ ...r, hung: false }),
      // Hung: finish() sent SIGKILL; wait until it is gone (a tmpfs cannot be unmounted under it).
      async () => ({ ...(await kill(p)), hung: true }),
    );
    const message = first.stderr.split('\n').find((l) => l.startsWith('error:')) ?? '';
    const stack = STACK.test(first.stderr);
    if (first.hung) failures.push(`run-local on a full disk did not exit within ${hangMs} ms (killed)`);
    else if (first.code === 50) {
      if (!/disk full/.test(message)) failures.push(`exit 50 without a "disk full" message: ${first.stderr.trim().slice(0, 300)}`);
    } else if (first.code !== 0) failures.push(`run-local on a full disk exited ${first.code}: ${first.stderr.trim().slice(0, 300)}`);
    if (stack) failures.push(`a stack trace on a full disk: ${first.stderr.slice(0, 400)}`);

    // Nothing half-written: doctor (which writes nothing) finds the workspace clean or repairable.
    const d = await doctor(ws);
    // Space is back.
    if (mnt) rmSync(join(mnt, 'filler'), { force: true });
    let repairExit: number | null = null;
    if (d.code !== 0) {
      const r = await doctor(ws, true);
      repairExit = r.code;
      if (r.code !== 0) failures.push(`doctor --repair left errors after a full disk: ${JSON.stringify(problems(r))}`);
    }
    const again = async (): Promise<{ code: number | null; stderr: string }> => {
      const q = start(args);
      return finish(q, hangMs).catch(async () => ({ ...(await kill(q)), code: null }));
    };
    let next = await again();
    let waitedForLock = false;
    if (next.code === 11 && first.hung) {
      // A killed (hung) holder can leave the lock folder without its payload: nobody to ask, so it
      // is taken over once not refreshed for 10 s. Cron's next try, then.
      waitedForLock = true;
      await sleep(11_000);
      next = await again();
    }
    if (next.code !== 0) failures.push(`the run once space was back exited ${next.code}: ${next.stderr.trim().slice(0, 300)}`);
    const identical = storeHashes(ws).join() === cleanHashes.join();
    if (!identical) failures.push('the store differs from a clean run of the same date');
    const dupes = Object.values(duplicateIds(ws)).flat();
    if (dupes.length) failures.push(`${dupes.length} id(s) twice in the store`);
    const fin = await doctor(ws);
    if (problems(fin).length) failures.push(`doctor at the end: ${JSON.stringify(problems(fin))}`);
    return {
      mode,
      space,
      first: { code: first.code, hung: first.hung, ms: Math.round(first.ms), message, stack },
      doctor_while_full: d.code,
      repair_exit: repairExit,
      next_code: next.code,
      next_waited_for_lock: waitedForLock,
      store_identical: identical,
      duplicate_ids: dupes.length,
      final_doctor_exit: fin.code,
      final_problems: problems(fin),
      failures,
    };
  } finally {
    if (mnt) {
      // A kept copy of a failed case, then the mount goes (a test must leave no mount behind).
      if (failures.length || process.env.CHAOS_KEEP === '1') {
        const keep = mkdtempSync(join(tmpdir(), 'metaspn-chaos-diskfull-'));
        cpSync(ws, keep, { recursive: true });
        process.stderr.write(`kept chaos workspace (tmpfs copy): ${keep}\n`);
      }
      execFileSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  }
}
