import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { MetaspnError, UsageError } from '../../src/guard/errors.js';
import {
  acquireRunLock,
  lockPaths,
  readLockStatus,
  type AcquireRunLockOptions,
  type LockPayload,
  type RunLock,
  type RunLockLog,
} from '../../src/guard/run-lock.js';
import { HOST } from '../../src/queue/owner.js';

// A pino logger is a RunLockLog: the CLI passes its own.
const _pinoFits: RunLockLog = pino({ level: 'silent' });

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
let buildDir = '';
let FIXTURE = '';

/**
 * The holder child runs the real module: compile test/fixtures/hold-lock.ts and what it imports
 * (only that, so others' unfinished files cannot break it) into a temp dir that sees our node_modules.
 */
function buildFixture(out: string): string {
  writeFileSync(join(out, 'package.json'), '{ "type": "module" }\n');
  symlinkSync(join(REPO, 'node_modules'), join(out, 'node_modules'), 'dir');
  const parsed = ts.getParsedCommandLineOfConfigFile(join(REPO, 'tsconfig.json'), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    },
  });
  if (!parsed) throw new Error('cannot read tsconfig.json');
  const program = ts.createProgram([join(REPO, 'test', 'fixtures', 'hold-lock.ts')], {
    ...parsed.options,
    noEmit: false,
    outDir: out,
    rootDir: REPO,
    sourceMap: false,
    incremental: false,
  });
  if (program.emit().emitSkipped) throw new Error('could not compile the hold-lock fixture');
  return join(out, 'test', 'fixtures', 'hold-lock.js');
}

beforeAll(() => {
  buildDir = mkdtempSync(join(tmpdir(), 'metaspn-runlock-build-'));
  FIXTURE = buildFixture(buildDir);
});
afterAll(() => rmSync(buildDir, { recursive: true, force: true }));

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
}

interface Holder {
  pid: number;
  payload: LockPayload;
  next(event: string): Promise<ChildEvent>;
  /** Ask it to release; resolves with its 'released' event once it exited. */
  release(): Promise<ChildEvent>;
  sigkill(): Promise<void>;
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
  const waiters: { event: string; resolve: (e: ChildEvent) => void; reject: (e: Error) => void }[] = [];
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  void exited.then(() => {
    for (const w of waiters.splice(0)) w.reject(new Error(`holder exited before '${w.event}'`));
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const ev = JSON.parse(line) as ChildEvent;
    events.push(ev);
    for (const w of waiters.splice(0)) {
      if (w.event === ev.event) w.resolve(ev);
      else waiters.push(w);
    }
  });
  const next = (event: string): Promise<ChildEvent> => {
    const seen = events.find((e) => e.event === event);
    if (seen) return Promise.resolve(seen);
    if (child.exitCode !== null || child.signalCode !== null) return Promise.reject(new Error(`holder exited before '${event}'`));
    return new Promise((resolve, reject) => waiters.push({ event, resolve, reject }));
  };
  const acquired = await next('acquired');
  return {
    pid: child.pid!,
    payload: acquired.payload!,
    next,
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

describe('run lock', () => {
  it('acquire writes active 1, release writes active 0 and keeps who ran last; release is idempotent', async () => {
    const locks = workspace();
    const { log, infos } = recorder();
    const lock = await acquire(locks, log, { reason: 'daily' });
    const held = readPayloadFile(locks);
    expect(held).toMatchObject({ active: 1, pid: process.pid, host: HOST, ttl_sec: 3600, reason: 'daily', cmd: 'metaspn s1 run-local --date 2026-01-15' });
    expect(Number.isFinite(Date.parse(held.start_ts_utc))).toBe(true);
    expect(lock.payload).toEqual(held);
    expect(existsSync(lockPaths(locks, 's1').dir)).toBe(true);
    expect(lock.stillHeld()).toBe(true);
    expect(readLockStatus(locks, 's1')).toMatchObject({ held: true, holder_alive: true, stale_reason: null });

    await Promise.all([lock.release(), lock.release()]);
    await lock.release();
    const after = readPayloadFile(locks);
    expect(after).toEqual({ ...held, active: 0 });
    expect(lock.payload.active).toBe(0);
    expect(lock.compromised).toBe(false);
    expect(existsSync(lockPaths(locks, 's1').dir)).toBe(false);
    expect(readLockStatus(locks, 's1')).toMatchObject({ exists: true, held: false, holder_alive: null, stale_reason: null });
    expect(infos.map((i) => i.msg)).toEqual(['run lock s1 acquired', 'run lock s1 released']);

    const again = await acquire(locks, log);
    expect(readPayloadFile(locks)).toMatchObject({ active: 1, reason: 'scheduled' });
    await again.release();
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
  });

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
    expect(warns[0]!.obj).toMatchObject({ why: 'pid_dead', pid: holder.pid });
    await lock.release();
  });

  it('a SIGKILLed holder: the next acquire breaks its lock and warns naming the dead pid', async () => {
    const locks = workspace();
    const holder = await startHolder(locks);
    await holder.sigkill();
    const { log, warns } = recorder();
    const lock = await acquire(locks, log, { onLockHeld: 'fail' });
    expect(warns).toHaveLength(1);
    expect(warns[0]!.obj).toMatchObject({
      why: 'pid_dead',
      pid: holder.pid,
      host: HOST,
      start_ts_utc: holder.payload.start_ts_utc,
      old_payload: holder.payload,
    });
    expect(warns[0]!.msg).toContain(`pid ${holder.pid} is not running on ${HOST}`);
    expect(readPayloadFile(locks)).toMatchObject({ active: 1, pid: process.pid });
    await lock.release();
  });

  it('TTL expired (fake now): broken with a warning; the live holder learns it lost the lock and leaves ours alone', async () => {
    const locks = workspace();
    const holder = await startHolder(locks, 60);
    const { log, warns } = recorder();
    const lock = await acquire(locks, log, { now: () => Date.now() + 61_000 });
    expect(warns).toHaveLength(1);
    expect(warns[0]!.obj).toMatchObject({ why: 'ttl_expired', pid: holder.pid, host: HOST, start_ts_utc: holder.payload.start_ts_utc });
    expect(warns[0]!.msg).toContain('its ttl of 60s');

    await holder.next('compromised');
    expect(await holder.release()).toMatchObject({ compromised: true });
    expect(lock.stillHeld()).toBe(true);
    expect(existsSync(lockPaths(locks, 's1').dir)).toBe(true);
    expect(readPayloadFile(locks)).toMatchObject({ active: 1, pid: process.pid, lock_id: lock.payload.lock_id });
    await lock.release();
    expect(readPayloadFile(locks)).toMatchObject({ active: 0, pid: process.pid });
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

  it('forceBreak with a reason takes a live holder\'s lock and logs the reason and the old payload', async () => {
    const locks = workspace();
    const holder = await startHolder(locks);
    const { log, warns } = recorder();
    const lock = await acquire(locks, log, { forceBreak: true, reason: 'lock_recovery' });
    expect(warns).toHaveLength(1);
    expect(warns[0]!.obj).toMatchObject({ why: 'forced', reason: 'lock_recovery', pid: holder.pid, old_payload: holder.payload });
    expect(readPayloadFile(locks)).toMatchObject({ active: 1, pid: process.pid, reason: 'lock_recovery' });
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

  it('breakers racing for a dead holder\'s lock: exactly one breaks and wins, the others see it held', async () => {
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

  it('a holder broken in the same process is told so and never frees its successor\'s lock', async () => {
    const locks = workspace();
    const { log } = recorder();
    const lost: Error[] = [];
    const first = await acquire(locks, log, { ttlSec: 60, onCompromised: (e) => lost.push(e) });
    const second = await acquire(locks, log, { now: () => Date.now() + 61_000 });
    expect(first.stillHeld()).toBe(false);
    expect(first.compromised).toBe(true);
    expect(lost).toHaveLength(1);
    await first.release();
    expect(existsSync(lockPaths(locks, 's1').dir)).toBe(true);
    expect(readPayloadFile(locks)).toMatchObject({ active: 1, lock_id: second.payload.lock_id });
    expect(second.stillHeld()).toBe(true);
    await second.release();
    expect(readPayloadFile(locks)).toMatchObject({ active: 0, lock_id: second.payload.lock_id });
    expect(existsSync(lockPaths(locks, 's1').dir)).toBe(false);
    expect(lost).toHaveLength(1);
  });

  it('a lock directory removed under a holder is reported through onCompromised (proper-lockfile notices)', async () => {
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
    rmSync(lockPaths(locks, 's1').dir, { recursive: true });
    await compromised;
    expect(lock.compromised).toBe(true);
    expect(warns.map((w) => w.msg)).toEqual([
      'run lock s1 lost while held (broken or removed by someone else); do not publish',
      'onCompromised callback threw; ignored',
    ]);
    await lock.release();
    expect(readPayloadFile(locks)).toMatchObject({ active: 0, pid: process.pid });
  });

  it('readLockStatus: free, held by a live process, expired, and held by a dead one', async () => {
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
    expect(readLockStatus(locks, 's1', { now: () => Date.now() + 61_000 }).stale_reason).toBe('ttl_expired');
    await holder.sigkill();
    expect(readLockStatus(locks, 's1')).toMatchObject({ held: true, holder_alive: false, stale_reason: 'pid_dead' });
    // Once nobody refreshes the directory, proper-lockfile no longer counts it as held.
    const past = new Date(Date.now() - 60_000);
    utimesSync(lockPaths(locks, 's1').dir, past, past);
    expect(readLockStatus(locks, 's1')).toMatchObject({ held: false, holder_alive: false, stale_reason: 'pid_dead' });
  });

  it('a corrupt, empty or ill-shaped payload never crashes: an unknown holder until its directory goes stale', async () => {
    const locks = workspace();
    const paths = lockPaths(locks, 's1');
    mkdirSync(locks, { recursive: true });
    const { log, warns } = recorder();

    // Garbage with no directory: the lock is free.
    writeFileSync(paths.payload, '{"active":1,"pid":');
    const free = await acquire(locks, log);
    await free.release();
    expect(readPayloadFile(locks)).toMatchObject({ active: 0, pid: process.pid });
    expect(warns).toEqual([]);

    for (const junk of ['', 'not json', '{"active":"yes","pid":"x"}']) {
      writeFileSync(paths.payload, junk);
      mkdirSync(paths.dir);
      expect(readLockStatus(locks, 's1')).toMatchObject({ exists: true, payload: null, held: true, holder_alive: null, stale_reason: null });
      const err = await rejection(acquire(locks, log));
      expect(err.code).toBe('BUSINESS_SKIP');
      expect(err.message).toContain('an unknown process');
      expect(err.hint).toContain('has not been refreshed for 10s');

      const past = new Date(Date.now() - 60_000);
      utimesSync(paths.dir, past, past);
      const lock = await acquire(locks, log);
      expect(warns.at(-1)!.obj).toMatchObject({ why: 'not_refreshed', pid: null, old_payload: null });
      await lock.release();
    }
    expect(warns).toHaveLength(3);
  });

  it('rejects a bad lock name and bad numbers as usage errors', async () => {
    const locks = workspace();
    const { log } = recorder();
    expect((await rejection(acquireRunLock({ locksDir: locks, name: '../s1', cmd: 'x', log }))).code).toBe('USAGE');
    expect((await rejection(acquire(locks, log, { ttlSec: 0 }))).code).toBe('USAGE');
    expect((await rejection(acquire(locks, log, { lockWaitSec: -1 }))).code).toBe('USAGE');
    expect((await rejection(acquire(locks, log, { onLockHeld: 'later' as never }))).code).toBe('USAGE');
  });
});
