import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cli, exit, ROOT, run, start, tempWorkspace, waitFor } from './cli.js';
import { cliIn } from './in-process.js';

let holder: ChildProcess | null = null;

/** A live process holding the workspace's s1 run lock. */
async function holdLock(ws: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(ROOT, 'test', 'fixtures', 'hold-run-lock.mjs'), ws], { stdio: ['ignore', 'pipe', 'inherit'] });
  holder = child;
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => out.includes('held'), 20_000, 'the fixture to take the lock');
  return child;
}

async function kill(child: ChildProcess, sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill(sig);
  await gone;
}

afterEach(async () => {
  if (holder) await kill(holder);
  holder = null;
});

describe('run lock through the CLI', () => {
  it('held by a live process: 11 by default, 40 with --on-lock-held fail, 40 after --lock-wait-sec', async () => {
    const ws = tempWorkspace();
    const h = await holdLock(ws);
    // This one end to end, in a process of its own; the others in this process (the holder is the process that matters).
    const r = cli(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15']);
    expect(r.code).toBe(11);
    expect(r.stderr).toContain(`pid ${h.pid}`);
    expect(r.stderr).toContain('--force-lock-break');
    expect((await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--on-lock-held', 'fail'])).code).toBe(40);
    expect((await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--on-lock-held', 'wait', '--lock-wait-sec', '1'])).code).toBe(40);
    const st = await cliIn(['lock', 'status', '--workspace', ws]);
    expect(st.code).toBe(0);
    expect(st.stdout).toContain('lock s1: HELD');
    expect(st.stdout).toContain(`pid           ${h.pid} (running)`);
    const json = JSON.parse((await cliIn(['lock', 'status', '--workspace', ws, '--json'])).stdout);
    expect(json).toMatchObject({ held: true, holder_alive: true, payload: { active: 1, pid: h.pid, reason: 'fixture holding the lock' } });
  });

  it("a SIGKILLed holder's lock is broken by the next run, which logs it", async () => {
    const ws = tempWorkspace();
    const h = await holdLock(ws);
    const pid = h.pid;
    await kill(h);
    // The kernel freed its liveness file with the process: not held, at once.
    expect(JSON.parse((await cliIn(['lock', 'status', '--workspace', ws, '--json'])).stdout)).toMatchObject({
      held: false,
      holder_alive: false,
      stale_reason: 'pid_dead',
      payload: { active: 1, pid },
    });
    expect((await cliIn(['lock', 'status', '--workspace', ws])).stdout).toContain('its process is gone');
    const r = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15']);
    expect(r.code).toBe(0);
    const log = readFileSync(join(ws, 'logs', 'metaspn.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    const broke = log.find((e) => e.level === 40 && JSON.stringify(e).includes(String(pid)));
    expect(broke).toBeDefined();
  });

  it("--force-lock-break needs --reason (64), and with one takes a live holder's lock", async () => {
    const ws = tempWorkspace();
    await holdLock(ws);
    expect((await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--force-lock-break'])).code).toBe(64);
    const r = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--force-lock-break', '--reason', 'holder hung']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('holder hung');
  });

  it('a SIGSTOPped holder keeps the lock past every old stale time (11 s): each run exits 11 naming it; after SIGCONT it still holds', async () => {
    const ws = tempWorkspace();
    const h = await holdLock(ws);
    const args = ['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15'];
    let runs = 0;
    h.kill('SIGSTOP');
    try {
      const stoppedAt = Date.now();
      for (;;) {
        const r = await run(args);
        expect(r.code).toBe(11);
        expect(r.stderr).toContain(`run lock s1 is held by pid ${h.pid}`);
        runs++;
        if (Date.now() - stoppedAt >= 11_000 && runs >= 2) break;
        // One look every 2 s of the stop, the last past 11 s: back to back they were 20-30 runs of
        // the same look on a quiet machine (0.5 s of CPU each). A run that took longer is followed at once.
        await waitFor(() => Date.now() - stoppedAt >= Math.min(runs * 2_000, 11_000), 20_000, 'the next look at the stopped holder', 50);
      }
      // The reads back run in this process (the runs above are the looks at the stopped holder).
      const json = JSON.parse((await cliIn(['lock', 'status', '--workspace', ws, '--json'])).stdout);
      expect(json).toMatchObject({ held: true, holder_alive: true, stale_reason: null, payload: { active: 1, pid: h.pid } });
    } finally {
      h.kill('SIGCONT');
    }
    const st = await cliIn(['lock', 'status', '--workspace', ws]);
    expect(st.stdout).toContain('lock s1: HELD');
    expect(st.stdout).toContain(`pid           ${h.pid} (running)`);
  }, 40_000);

  it('a backfill whose lock is taken over (--force-lock-break) publishes nothing after the takeover and exits 30', async () => {
    const ws = tempWorkspace();
    const a = start(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-01', '--end', '2026-01-12']);
    const payload = (): { active?: number; pid?: number } => {
      try {
        return JSON.parse(readFileSync(join(ws, 'locks', 's1.lock'), 'utf8')) as { active?: number; pid?: number };
      } catch {
        return {};
      }
    };
    let ra;
    try {
      await waitFor(() => payload().active === 1 && payload().pid === a.child.pid, 20_000, 'the backfill to take the lock');
      const b = await run(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-20', '--force-lock-break', '--reason', 'drill'], { ms: 60_000 });
      expect(b.code).toBe(0);
    } finally {
      ra = await exit(a, 120_000);
    }
    expect(ra.code).toBe(30);
    expect(ra.stderr).toContain('run lock was lost during the run: not publishing');
    const ledger = readFileSync(join(ws, 'ledger.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { kind: string; run_id?: string });
    const broke = ledger.findIndex((e) => e.kind === 'lock_break');
    expect(broke).toBeGreaterThanOrEqual(0);
    const after = ledger.slice(broke + 1).filter((e) => e.kind === 'publish');
    expect(after.map((e) => e.run_id)).toEqual([ledger[broke]!.run_id]);
  }, 90_000);
});
