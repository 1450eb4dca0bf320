import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { waitFor } from '../wait.js';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { Findings } from '../../src/doctor/finding.js';
import { checkLocks, removeMutex } from '../../src/doctor/locks.js';
import { MetaspnError, UsageError } from '../../src/guard/errors.js';
import {
  acquireRunLock,
  livenessFiles,
  livenessPath,
  lockPaths,
  readLockStatus,
  RunLockLostError,
  type AcquireRunLockOptions,
  type LockPayload,
  type RunLock,
  type RunLockLog,
} from '../../src/storage/run-lock.js';
import { HOST } from '../../src/queue/owner.js';
import { probeLock } from '../../src/storage/file-lock.js';
import { workspacePaths } from '../../src/storage/paths.js';

// A pino logger is a RunLockLog: the CLI passes its own.
const _pinoFits: RunLockLog = pino({ level: 'silent' });

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/**
 * The holder child runs the real module: test/fixtures/hold-lock.ts as the TypeScript pass of
 * `npm test` compiled it, beside the CLI the other tests drive (dist/test/fixtures/hold-lock.js
 * imports dist/src/storage/run-lock.js). test/global-setup.ts checks that dist/ has it.
 */
const FIXTURE = join(REPO, 'dist', 'test', 'fixtures', 'hold-lock.js');

/** A fresh workspace per test; kept (and named) when the test fails. */
function workspace(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metaspn-runlock-'));
  onTestFinished(({ task }) => {
    if (task.result?.state === 'fail') console.error(`run-lock test workspace kept: ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });
  return join(dir, 'locks');
}

interface LogEntry {
  obj: Record<string, unknown>;
  msg: string;
}

function recorder(): { log: RunLockLog; warns: LogEntry[]; infos: LogEntry[]; nextInfo: (re: RegExp) => Promise<LogEntry> } {
  const warns: LogEntry[] = [];
  const infos: LogEntry[] = [];
  const waiters: { re: RegExp; resolve: (e: LogEntry) => void }[] = [];
  return {
    warns,
    infos,
    log: {
      warn: (obj, msg) => void warns.push({ obj, msg }),
      info: (obj, msg) => {
        infos.push({ obj, msg });
        for (const w of waiters.splice(0)) {
          if (w.re.test(msg)) w.resolve({ obj, msg });
          else waiters.push(w);
        }
      },
    },
    nextInfo: (re) => new Promise((resolve) => waiters.push({ re, resolve })),
  };
}

const acquire = (locksDir: string, log: RunLockLog, extra: Partial<AcquireRunLockOptions> = {}): Promise<RunLock> =>
  acquireRunLock({ locksDir, name: 's1', cmd: 'metaspn s1 run-local --date 2026-01-15', log, ...extra });

const readPayloadFile = (locksDir: string): LockPayload => JSON.parse(readFileSync(join(locksDir, 's1.lock'), 'utf8')) as LockPayload;

async function rejection(p: Promise<unknown>): Promise<MetaspnError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(MetaspnError);
    return err as MetaspnError;
  }
  throw new Error('expected the promise to reject');
}

// ---- holder child processes ----

interface ChildEvent {
  event: string;
  payload?: LockPayload;
  compromised?: boolean;
  held?: boolean;
  code?: string;
}

interface Holder {
  pid: number;
  payload: LockPayload;
  /** The first event of this name, past or to come. */
  next(event: string): Promise<ChildEvent>;
  /** Sends a command line; resolves with the first `event` printed after it. */
  ask(command: string, event: string): Promise<ChildEvent>;
  /** Ask it to release; resolves with its 'released' event once it exited. */
  release(): Promise<ChildEvent>;
  /** Sends the signal; resolves once the kernel says the process is gone (SIGKILL) or stopped (SIGSTOP). */
  signal(sig: 'SIGSTOP' | 'SIGCONT'): Promise<void>;
  sigkill(): Promise<void>;
}

/** The process state letter of /proc/<pid>/stat ('T' stopped, 'S' sleeping, …); null without /proc. */
function procState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).charAt(0);
  } catch {
    return null;
  }
}

const children = new Set<ChildProcess>();

afterEach(() => {
  // A test that leaves a holder running fails.
  const running = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  children.clear();
  for (const c of running) c.kill('SIGKILL');
  expect(running.map((c) => c.pid)).toEqual([]);
});

async function startHolder(locksDir: string, ttlSec?: number): Promise<Holder> {
  const args = [FIXTURE, locksDir, 's1', ...(ttlSec === undefined ? [] : [String(ttlSec)])];
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  const events: ChildEvent[] = [];
  const waiters: { event: string; after: number; resolve: (e: ChildEvent) => void; reject: (e: Error) => void }[] = [];
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  void exited.then(() => {
    for (const w of waiters.splice(0)) w.reject(new Error(`holder exited before '${w.event}'`));
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const ev = JSON.parse(line) as ChildEvent;
    events.push(ev);
    for (const w of waiters.splice(0)) {
      if (w.event === ev.event && events.length > w.after) w.resolve(ev);
      else waiters.push(w);
    }
  });
  const nextAfter = (event: string, after: number): Promise<ChildEvent> => {
    const seen = events.slice(after).find((e) => e.event === event);
    if (seen) return Promise.resolve(seen);
    if (child.exitCode !== null || child.signalCode !== null) return Promise.reject(new Error(`holder exited before '${event}'`));
    return new Promise((resolve, reject) => waiters.push({ event, after, resolve, reject }));
  };
  const next = (event: string): Promise<ChildEvent> => nextAfter(event, 0);
  const acquired = await next('acquired');
  return {
    pid: child.pid!,
    payload: acquired.payload!,
    next,
    ask: (command, event) => {
      const p = nextAfter(event, events.length);
      child.stdin!.write(`${command}\n`);
      return p;
    },
    signal: async (sig) => {
      child.kill(sig);
      const want = sig === 'SIGSTOP' ? 'T' : null;
      if (procState(child.pid!) === null) return;
      await waitFor(() => (want ? procState(child.pid!) === want : procState(child.pid!) !== 'T'), 5_000, `${sig} to take effect`);
    },
    release: async () => {
      const released = next('released');
      child.stdin!.write('release\n');
      const ev = await released;
      await exited;
      expect(child.exitCode).toBe(0);
      return ev;
    },
    sigkill: async () => {
      child.kill('SIGKILL');
      await exited;
      expect(child.signalCode).toBe('SIGKILL');
    },
  };
}

// ---- tests ----

const alivePath = (locks: string, lockId: string | undefined): string => livenessPath(lockPaths(locks, 's1'), lockId)!;

describe('run lock', () => {
  it('acquire writes active 1 and locks a liveness file; release writes active 0, removes it and keeps who ran last; idempotent', async () => {
    const locks = workspace();
    const { log, infos } = recorder();
    const lock = await acquire(locks, log, { reason: 'daily' });
    const held = readPayloadFile(locks);
    expect(held).toMatchObject({ active: 1, pid: process.pid, host: HOST, ttl_sec: 3600, reason: 'daily', cmd: 'metaspn s1 run-local --date 2026-01-15', generation: 1 });
    expect(held.lock_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number.isFinite(Date.parse(held.start_ts_utc))).toBe(true);
    expect(lock.payload).toEqual(held);
    const alive = alivePath(locks, held.lock_id);
    expect(alive).toBe(join(locks, `s1.held.${held.lock_id}`));
    expect(probeLock(alive)).toBe('held');
    expect(lock.stillHeld()).toBe(true);
    expect(readLockStatus(locks, 's1')).toMatchObject({ held: true, holder_alive: true, stale_reason: null });

    await Promise.all([lock.release(), lock.release()]);
    await lock.release();
    const after = readPayloadFile(locks);
    expect(after).toEqual({ ...held, active: 0 });
    expect(lock.payload.active).toBe(0);
    expect(lock.compromised).toBe(false);
    expect(lock.stillHeld()).toBe(false);
    expect(existsSync(alive)).toBe(false);
    expect(readLockStatus(locks, 's1')).toMatchObject({ exists: true, held: false, holder_alive: null, stale_reason: null });
    expect(infos.map((i) => i.msg)).toEqual(['run lock s1 acquired', 'run lock s1 released']);

    const again = await acquire(locks, log);
    expect(readPayloadFile(locks)).toMatchObject({ active: 1, reason: 'scheduled', generation: 2 });
    expect(again.payload.lock_id).not.toBe(held.lock_id);
    await again.release();
    // Nothing left behind but the payload and the gate (no proper-lockfile directory any more).
    expect(readdirSync(locks).sort()).toEqual(['s1.gate', 's1.lock']);
  });

  it('held by a live process: retryable (the default) exits 11, fail exits 40, and the holder keeps it', async () => {
    const locks = workspace();
    const holder = await startHolder(locks);
    const { log, warns } = recorder();

    for (const extra of [{}, { onLockHeld: 'retryable' as const }]) {
      const err = await rejection(acquire(locks, log, extra));
      expect(err.code).toBe('BUSINESS_SKIP');
      expect(err.exitCode).toBe(11);
      expect(err.message).toContain(`pid ${holder.pid} on ${HOST} since ${holder.payload.start_ts_utc}`);
      expect(err.hint).toBe('wait for it, or --force-lock-break --reason TEXT if it is stuck');
    }
    const fail = await rejection(acquire(locks, log, { onLockHeld: 'fail' }));
    expect(fail.code).toBe('LOCK_TIMEOUT');
    expect(fail.exitCode).toBe(40);
    expect(fail.message).toContain(`pid ${holder.pid}`);
    expect(warns).toEqual([]);
    expect(readPayloadFile(locks)).toMatchObject({ active: 1, pid: holder.pid });

    expect(await holder.release()).toMatchObject({ compromised: false });
    expect(readPayloadFile(locks)).toMatchObject({ active: 0, pid: holder.pid, cmd: 'hold-lock fixture', reason: 'fixture' });
    expect(livenessFiles(lockPaths(locks, 's1'))).toEqual([]);
  });

  it('a SIGSTOPped holder is never overtaken (stopped 12.5 s, past every old stale time): 11 naming it; after SIGCONT it still holds and releases cleanly', async () => {
    const locks = workspace();
    const holder = await startHolder(locks);
    const { log, warns } = recorder();
    let looks = 0;
    await holder.signal('SIGSTOP');
    try {
      const stoppedAt = performance.now();
      // A wait-mode acquirer for the whole stop: it gives up (40), it never takes the lock.
      const waiter = rejection(acquire(locks, log, { onLockHeld: 'wait', lockWaitSec: 12.5, pollMs: 250 }));
      waiter.catch(() => undefined);
      while (performance.now() - stoppedAt < 12_500) {
        const err = await rejection(acquire(locks, log, { onLockHeld: 'retryable' }));
        expect(err.code).toBe('BUSINESS_SKIP');
        expect(err.exitCode).toBe(11);
        expect(err.message).toContain(`run lock s1 is held by pid ${holder.pid} on ${HOST}`);
        expect(readLockStatus(locks, 's1')).toMatchObject({ held: true, holder_alive: true, stale_reason: null });
        looks++;
        await new Promise((r) => setTimeout(r, 400));
      }
      const waited = await waiter;
      expect(waited.code).toBe('LOCK_TIMEOUT');
      expect(waited.message).toContain(`pid ${holder.pid}`);
      // Still stopped all along (where /proc tells).
      expect(procState(holder.pid) ?? 'T').toBe('T');
    } finally {
      await holder.signal('SIGCONT');
    }
    expect(looks).toBeGreaterThanOrEqual(10);
    expect(warns).toEqual([]);
    expect(readPayloadFile(locks)).toMatchObject({ active: 1, pid: holder.pid, lock_id: holder.payload.lock_id });
    expect(await holder.ask('check', 'checked')).toMatchObject({ held: true });
    expect(await holder.release()).toMatchObject({ compromised: false });
    expect(readPayloadFile(locks)).toMatchObject({ active: 0, pid: holder.pid, lock_id: holder.payload.lock_id });
  }, 30_000);

  it('wait: gives up with 40 after lockWaitSec while the holder stays', async () => {
    const locks = workspace();
    const holder = await startHolder(locks);
    const { log, infos } = recorder();
    const t0 = performance.now();
    const err = await rejection(acquire(locks, log, { onLockHeld: 'wait', lockWaitSec: 0.6, pollMs: 50 }));
    const waited = performance.now() - t0;
    expect(err.code).toBe('LOCK_TIMEOUT');
    expect(err.exitCode).toBe(40);
    expect(err.message).toContain(`waited 0.6s for the lock; run lock s1 is held by pid ${holder.pid}`);
    expect(waited).toBeGreaterThanOrEqual(600);
    expect(infos.filter((i) => /waiting up to/.test(i.msg))).toHaveLength(1);
    await holder.release();
  });

  it('wait: takes the lock as soon as the holder releases it', async () => {
    const locks = workspace();
    const holder = await startHolder(locks);
    const { log, nextInfo, warns } = recorder();
    const waiting = nextInfo(/waiting up to/);
    const pending = acquire(locks, log, { onLockHeld: 'wait', lockWaitSec: 60, pollMs: 50 });
    await waiting;
    await holder.release();
    const lock = await pending;
    expect(readPayloadFile(locks)).toMatchObject({ active: 1, pid: process.pid });
    expect(warns).toEqual([]);
    await lock.release();
  });

  it('wait: takes the lock over when the holder dies while we wait', async () => {
    const locks = workspace();
    const holder = await startHolder(locks);
    const { log, nextInfo, warns } = recorder();
    const waiting = nextInfo(/waiting up to/);
    const pending = acquire(locks, log, { onLockHeld: 'wait', lockWaitSec: 60, pollMs: 50 });
    await waiting;
    await holder.sigkill();
    const lock = await pending;
    expect(warns).toHaveLength(1);
    // The kernel frees the lock as the process closes its files, a moment before it becomes a
    // zombie: a poll in that moment sees a free lock and a live pid, and says holder_gone.
    expect(warns[0]!.obj).toMatchObject({ why: expect.stringMatching(/^(pid_dead|holder_gone)$/), pid: holder.pid });
    await lock.release();
  });

  it('a SIGKILLed holder is taken over at once (under 1 s after the kill), with a warning naming the dead pid; its liveness file is removed', async () => {
    const locks = workspace();
    const holder = await startHolder(locks);
    const dead = alivePath(locks, holder.payload.lock_id);
    const { log, warns } = recorder();
    const t0 = performance.now();
    await holder.sigkill();
    const lock = await acquire(locks, log, { onLockHeld: 'fail' });
    const elapsed = performance.now() - t0;
    console.info(`run lock taken over ${elapsed.toFixed(1)} ms after the holder's SIGKILL`);
    expect(elapsed).toBeLessThan(1000);
    expect(warns).toHaveLength(1);
    expect(warns[0]!.obj).toMatchObject({
      why: 'pid_dead',
      pid: holder.pid,
      host: HOST,
      start_ts_utc: holder.payload.start_ts_utc,
      lock_id: holder.payload.lock_id,
      old_payload: holder.payload,
    });
    expect(warns[0]!.msg).toContain(`pid ${holder.pid} is not running on ${HOST}`);
    expect(lock.broke).toMatchObject({ why: 'pid_dead', holder: holder.payload });
    expect(readPayloadFile(locks)).toMatchObject({ active: 1, pid: process.pid, generation: holder.payload.generation! + 1 });
    expect(existsSync(dead)).toBe(false);
    await lock.release();
  });

  it('a holder whose pid lives on but whose liveness file is not locked (a reused pid) is taken over at once: holder_gone', async () => {
    const locks = workspace();
    mkdirSync(locks, { recursive: true });
    const lockId = '0f0e0d0c-0b0a-4999-8888-777766665555';
    // The payload names a live pid (this process), but nobody locks its liveness file.
    const stale: LockPayload = { active: 1, pid: process.pid, host: HOST, start_ts_utc: new Date().toISOString(), ttl_sec: 3600, reason: 'scheduled', cmd: 'x', lock_id: lockId, generation: 7 };
    writeFileSync(join(locks, 's1.lock'), JSON.stringify(stale));
    writeFileSync(alivePath(locks, lockId), '');
    expect(readLockStatus(locks, 's1')).toMatchObject({ held: false, holder_alive: false, stale_reason: 'holder_gone' });
    const { log, warns } = recorder();
    const lock = await acquire(locks, log, { onLockHeld: 'fail' });
    expect(warns.map((w) => w.obj)).toMatchObject([{ why: 'holder_gone', pid: process.pid, lock_id: lockId }]);
    expect(readPayloadFile(locks)).toMatchObject({ active: 1, generation: 8 });
    expect(existsSync(alivePath(locks, lockId))).toBe(false);
    await lock.release();
  });

  it('TTL expired (fake now): taken over with a warning; the live holder learns it (poll), cannot publish, and leaves ours alone', async () => {
    const locks = workspace();
    const holder = await startHolder(locks, 60);
    const { log, warns } = recorder();
    const lock = await acquire(locks, log, { now: () => Date.now() + 61_000 });
    expect(warns).toHaveLength(1);
    expect(warns[0]!.obj).toMatchObject({ why: 'ttl_expired', pid: holder.pid, host: HOST, start_ts_utc: holder.payload.start_ts_utc });
    expect(warns[0]!.msg).toContain('its ttl of 60s');
    expect(lock.payload.generation).toBe(holder.payload.generation! + 1);
    // The old holder is alive: its liveness file stays locked (it is its own to remove).
    expect(probeLock(alivePath(locks, holder.payload.lock_id))).toBe('held');

    await holder.next('compromised');
    const marker = join(locks, '..', 'published-by-old-holder');
    expect(await holder.ask(`publish ${marker}`, 'publish_refused')).toMatchObject({ code: 'STATE_CORRUPT' });
    expect(existsSync(marker)).toBe(false);
    expect(await holder.release()).toMatchObject({ compromised: true });
    expect(existsSync(alivePath(locks, holder.payload.lock_id))).toBe(false);
    expect(lock.stillHeld()).toBe(true);
    expect(readPayloadFile(locks)).toMatchObject({ active: 1, pid: process.pid, lock_id: lock.payload.lock_id });
    await lock.release();
    expect(readPayloadFile(locks)).toMatchObject({ active: 0, pid: process.pid });
  });

  it('whileHeld: nobody takes the lock over while its function runs; after a takeover it refuses before calling it (RunLockLostError, 30)', async () => {
    const locks = workspace();
    const { log } = recorder();
    const lost: Error[] = [];
    const first = await acquire(locks, log, { onCompromised: (e) => lost.push(e) });
    let entered!: () => void;
    let finish!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const publishing = first.whileHeld(async () => {
      entered();
      await new Promise<void>((r) => (finish = r));
      return 'published';
    });
    await inside;
    let taken = false;
    const breaker = acquire(locks, log, { forceBreak: true, reason: 'drill' }).then((l) => ((taken = true), l));
    // The breaker queues at the gate for as long as the publish runs.
    await new Promise((r) => setTimeout(r, 300));
    expect(taken).toBe(false);
    expect(readPayloadFile(locks).lock_id).toBe(first.payload.lock_id);
    finish();
    expect(await publishing).toBe('published');
    const second = await breaker;
    expect(second.broke).toMatchObject({ why: 'forced' });

    let called = false;
    const err = await rejection(first.whileHeld(() => (called = true)));
    expect(err).toBeInstanceOf(RunLockLostError);
    expect(err.code).toBe('STATE_CORRUPT');
    expect(err.exitCode).toBe(30);
    expect(err.hint).toContain(`pid ${process.pid}`);
    expect(called).toBe(false);
    expect(first.compromised).toBe(true);
    expect(lost).toHaveLength(1);
    expect(await second.whileHeld(() => 'ok')).toBe('ok');
    await first.release();
    await second.release();
    expect(await rejection(second.whileHeld(() => 'late'))).toBeInstanceOf(RunLockLostError);
  });

  it('forceBreak needs a non-empty reason (UsageError, 64)', async () => {
    const locks = workspace();
    const { log } = recorder();
    for (const reason of [undefined, '', '   ']) {
      const err = await rejection(acquire(locks, log, { forceBreak: true, reason }));
      expect(err).toBeInstanceOf(UsageError);
      expect(err.exitCode).toBe(64);
      expect(err.message).toContain('--reason');
    }
    expect(existsSync(locks)).toBe(false);
  });

  it("forceBreak with a reason takes a live holder's lock and logs the reason and the old payload", async () => {
    const locks = workspace();
    const holder = await startHolder(locks);
    const { log, warns } = recorder();
    const lock = await acquire(locks, log, { forceBreak: true, reason: 'lock_recovery' });
    expect(warns).toHaveLength(1);
    expect(warns[0]!.obj).toMatchObject({ why: 'forced', reason: 'lock_recovery', pid: holder.pid, old_payload: holder.payload });
    expect(readPayloadFile(locks)).toMatchObject({ active: 1, pid: process.pid, reason: 'lock_recovery' });
    expect(await holder.ask('check', 'checked')).toMatchObject({ held: false });
    await holder.next('compromised');
    await holder.release();
    expect(lock.stillHeld()).toBe(true);
    await lock.release();
  });

  it('forceBreak on a free lock simply takes it', async () => {
    const locks = workspace();
    const { log, warns } = recorder();
    const lock = await acquire(locks, log, { forceBreak: true, reason: 'lock_recovery' });
    expect(warns).toEqual([]);
    await lock.release();
  });

  it('acquirers racing in one process: exactly one wins, the others see it held', async () => {
    const locks = workspace();
    const { log } = recorder();
    const results = await Promise.allSettled([1, 2, 3, 4].map(() => acquire(locks, log)));
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost.map((r) => (r.reason as MetaspnError).code)).toEqual(['BUSINESS_SKIP', 'BUSINESS_SKIP', 'BUSINESS_SKIP']);
    await won[0]!.value.release();
  });

  it("breakers racing for a dead holder's lock: exactly one breaks and wins, the others see it held", async () => {
    const locks = workspace();
    const holder = await startHolder(locks);
    await holder.sigkill();
    const { log, warns } = recorder();
    const results = await Promise.allSettled([1, 2, 3].map(() => acquire(locks, log)));
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected').map((r) => (r.reason as MetaspnError).code)).toEqual(['BUSINESS_SKIP', 'BUSINESS_SKIP']);
    expect(warns).toHaveLength(1);
    expect(warns[0]!.obj).toMatchObject({ why: 'pid_dead', pid: holder.pid });
    await won[0]!.value.release();
  });

  it('forced breaks racing: exactly one breaks the holder it saw, the other finds the winner and sees it held', async () => {
    const locks = workspace();
    const holder = await startHolder(locks);
    const { log, warns } = recorder();
    const results = await Promise.allSettled([1, 2].map(() => acquire(locks, log, { forceBreak: true, reason: 'lock_recovery' })));
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected').map((r) => (r.reason as MetaspnError).code)).toEqual(['BUSINESS_SKIP']);
    expect(warns.filter((w) => w.obj.why === 'forced')).toHaveLength(1);
    await holder.next('compromised');
    await holder.release();
    await won[0]!.value.release();
  });

  it("a holder broken in the same process is told so and never frees its successor's lock", async () => {
    const locks = workspace();
    const { log } = recorder();
    const lost: Error[] = [];
    const first = await acquire(locks, log, { ttlSec: 60, onCompromised: (e) => lost.push(e) });
    const second = await acquire(locks, log, { now: () => Date.now() + 61_000 });
    expect(first.stillHeld()).toBe(false);
    expect(first.compromised).toBe(true);
    expect(lost).toHaveLength(1);
    await first.release();
    expect(existsSync(alivePath(locks, first.payload.lock_id))).toBe(false);
    expect(probeLock(alivePath(locks, second.payload.lock_id))).toBe('held');
    expect(readPayloadFile(locks)).toMatchObject({ active: 1, lock_id: second.payload.lock_id });
    expect(second.stillHeld()).toBe(true);
    await second.release();
    expect(readPayloadFile(locks)).toMatchObject({ active: 0, lock_id: second.payload.lock_id });
    expect(livenessFiles(lockPaths(locks, 's1'))).toEqual([]);
    expect(lost).toHaveLength(1);
  });

  it('a liveness file removed under a holder is reported through onCompromised (the poll notices) and the lock is free for the next run', async () => {
    const locks = workspace();
    const { log, warns } = recorder();
    let noticed!: (e: Error) => void;
    const compromised = new Promise<Error>((res) => (noticed = res));
    const lock = await acquire(locks, log, {
      onCompromised: (e) => {
        noticed(e);
        throw new Error('a throwing callback is logged, not rethrown');
      },
    });
    rmSync(alivePath(locks, lock.payload.lock_id));
    expect((await compromised).message).toContain('was removed or replaced');
    expect(lock.compromised).toBe(true);
    expect(warns.map((w) => w.msg)).toEqual(['run lock s1 lost while held (taken over, or its liveness file removed); do not publish', 'onCompromised callback threw; ignored']);
    expect(readLockStatus(locks, 's1')).toMatchObject({ held: false, holder_alive: false, stale_reason: 'holder_gone' });
    expect(await rejection(lock.whileHeld(() => 'never'))).toBeInstanceOf(RunLockLostError);
    await lock.release();
    expect(readPayloadFile(locks)).toMatchObject({ active: 0, pid: process.pid });
  });

  it('readLockStatus: free, held by a live process, expired, and left by a dead one', async () => {
    const locks = workspace();
    expect(readLockStatus(locks, 's1')).toEqual({
      path: join(locks, 's1.lock'),
      exists: false,
      payload: null,
      held: false,
      holder_alive: null,
      stale_reason: null,
    });
    const holder = await startHolder(locks, 60);
    expect(readLockStatus(locks, 's1')).toEqual({
      path: join(locks, 's1.lock'),
      exists: true,
      payload: holder.payload,
      held: true,
      holder_alive: true,
      stale_reason: null,
    });
    expect(readLockStatus(locks, 's1', { now: () => Date.now() + 61_000 })).toMatchObject({ held: true, stale_reason: 'ttl_expired' });
    await holder.sigkill();
    // The kernel freed its liveness file with the process: not held, at once.
    expect(readLockStatus(locks, 's1')).toMatchObject({ exists: true, payload: holder.payload, held: false, holder_alive: false, stale_reason: 'pid_dead' });
  });

  it('a corrupt, empty or ill-shaped payload never crashes: taken at once when no liveness file is locked, an unknown live holder while one is', async () => {
    const locks = workspace();
    const paths = lockPaths(locks, 's1');
    mkdirSync(locks, { recursive: true });
    const { log, warns } = recorder();

    for (const junk of ['', 'not json', '{"active":"yes","pid":"x"}']) {
      writeFileSync(paths.payload, junk);
      expect(readLockStatus(locks, 's1')).toMatchObject({ exists: true, payload: null, held: false, holder_alive: null, stale_reason: null });
      const lock = await acquire(locks, log);
      expect(warns.at(-1)!.obj).toMatchObject({ why: 'holder_gone', pid: null, old_payload: null });
      await lock.release();
      expect(readPayloadFile(locks)).toMatchObject({ active: 0, pid: process.pid });
    }
    expect(warns).toHaveLength(3);

    // A live holder whose payload got damaged: who it is is unknown, that it lives is not.
    const holder = await startHolder(locks);
    writeFileSync(paths.payload, 'not json');
    expect(readLockStatus(locks, 's1')).toMatchObject({ exists: true, payload: null, held: true, holder_alive: null, stale_reason: null });
    const err = await rejection(acquire(locks, log));
    expect(err.code).toBe('BUSINESS_SKIP');
    expect(err.message).toContain('an unknown process');
    expect(err.hint).toContain('s1.held.*');
    await holder.sigkill();
    const lock = await acquire(locks, log);
    expect(warns.at(-1)!.obj).toMatchObject({ why: 'holder_gone', pid: null });
    expect(livenessFiles(paths)).toEqual([alivePath(locks, lock.payload.lock_id)]);
    await lock.release();
  });

  it('rejects a bad lock name and bad numbers as usage errors', async () => {
    const locks = workspace();
    const { log } = recorder();
    expect((await rejection(acquireRunLock({ locksDir: locks, name: '../s1', cmd: 'x', log }))).code).toBe('USAGE');
    expect((await rejection(acquire(locks, log, { ttlSec: 0 }))).code).toBe('USAGE');
    expect((await rejection(acquire(locks, log, { lockWaitSec: -1 }))).code).toBe('USAGE');
    expect((await rejection(acquire(locks, log, { onLockHeld: 'later' as never }))).code).toBe('USAGE');
  });

  it("doctor: lists a dead holder's lock, liveness files nobody holds and old proper-lockfile directories; never a held file", async () => {
    const locks = workspace();
    const ws = workspacePaths(dirname(locks));
    const holder = await startHolder(locks, 60);
    const liveFile = alivePath(locks, holder.payload.lock_id);

    // Alive past its TTL: reported, never planned for removal; removeMutex leaves a held file alone.
    let f = new Findings();
    expect(checkLocks(ws, f, Date.now() + 61_000)).toEqual({ staleRunLocks: [], staleMutexes: [] });
    expect(f.list.map((x) => x.message)).toEqual([expect.stringContaining('held past its TTL')]);
    removeMutex(liveFile);
    expect(probeLock(liveFile)).toBe('held');

    const old = new Date(Date.now() - 60_000);
    const legacy = [join(locks, 's1.lock.d'), join(ws.queues, 'project_rewards', '.lock')];
    for (const d of legacy) {
      mkdirSync(d, { recursive: true });
      utimesSync(d, old, old);
    }
    const fresh = join(locks, 's1.lock.gate');
    mkdirSync(fresh); // recently touched: an older metaspn may be running, so it is left alone
    const orphan = alivePath(locks, '11111111-2222-4333-8444-555555555555');
    writeFileSync(orphan, '');
    await holder.sigkill();

    f = new Findings();
    const plan = checkLocks(ws, f);
    expect(plan.staleRunLocks).toEqual(['s1']);
    expect([...plan.staleMutexes].sort()).toEqual([liveFile, orphan, ...legacy].sort());
    expect(f.list.find((x) => x.path === 'locks/s1.lock')!.message).toContain(`run lock s1 is stale (pid_dead): pid ${holder.pid}`);
    for (const m of plan.staleMutexes) removeMutex(m);
    for (const m of plan.staleMutexes) expect(existsSync(m)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
  });
});
