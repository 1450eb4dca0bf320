import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PgRunLocks, type HeldPgRunLock } from '../../src/backend/pg/run-locks.js';
import { MetaspnError } from '../../src/guard/errors.js';
import { RunLockLostError, type RunLockLog } from '../../src/guard/run-lock.js';
import { createTestDatabase, pgAvailable, type TestDatabase } from '../queue/pg-db.js';
import { until, waitFor } from '../wait.js';
import { describeRunLocks } from '../unit/run-lock-conformance.js';

/**
 * The run-lock conformance suite on PostgreSQL (a schema per test), and what needs other
 * processes: a holder SIGKILLed is taken over at once (its session ended), a live one past its TTL
 * is told so (its session is ended by the breaker), a generation moved under a holder refuses its
 * fence. The holder is test/fixtures/hold-pg-run-lock.mjs, through the compiled module.
 */
const up = await pgAvailable();
const ROOT = join(import.meta.dirname, '..', '..');
let db: TestDatabase;
let schemas = 0;
const quiet: RunLockLog = { warn: () => undefined, info: () => undefined };
const children = new Set<ChildProcess>();

interface Holder {
  child: ChildProcess;
  events: Record<string, unknown>[];
}

function hold(schema: string, name: string, ttl?: number): Holder {
  const child = spawn(process.execPath, [join(ROOT, 'test', 'fixtures', 'hold-pg-run-lock.mjs'), db.url, schema, name, ...(ttl === undefined ? [] : [String(ttl)])], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  const events: Record<string, unknown>[] = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      events.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
    }
  });
  return { child, events };
}

const event = (h: Holder, name: string): Promise<Record<string, unknown>> =>
  until(() => h.events.find((e) => e.event === name) ?? (h.events.find((e) => e.event === 'error') ? Promise.reject(new Error(JSON.stringify(h.events))) : null), 20_000, `the holder's ${name} event`);

describe.skipIf(!up)('PostgreSQL run locks', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterEach(() => {
    for (const c of children) c.kill('SIGKILL');
  });
  afterAll(async () => {
    await db?.drop();
  });

  describeRunLocks('postgres', () => new PgRunLocks({ setting: { url: db.url, source: 'test', schema: `l_${++schemas}` } }));

  it('a holder SIGKILLed is taken over at once (its session ended), as holder_gone, with the next generation', async () => {
    const schema = `l_${++schemas}`;
    const locks = new PgRunLocks({ setting: { url: db.url, source: 'test', schema } });
    const h = hold(schema, 'daily');
    const got = await event(h, 'acquired');
    expect(await locks.status('daily')).toMatchObject({ held: true, holder_alive: true, stale_reason: null, payload: { active: 1, pid: got.pid, reason: 'fixture holding the lock' } });
    const held = await locks.acquire({ name: 'daily', cmd: 'test', log: quiet }).catch((e: unknown) => e);
    expect((held as MetaspnError).exitCode).toBe(11);
    expect((held as MetaspnError).message).toMatch(new RegExp(`^run lock daily is held by pid ${String(got.pid)} on `));

    h.child.kill('SIGKILL');
    const killedAt = performance.now();
    const lock = await locks.acquire({ name: 'daily', cmd: 'test', onLockHeld: 'wait', lockWaitSec: 10, pollMs: 20, log: quiet });
    const tookMs = performance.now() - killedAt;
    expect(tookMs).toBeLessThan(1000);
    expect(lock.broke).toMatchObject({ why: 'holder_gone', holder: { pid: got.pid } });
    expect(lock.payload.generation).toBe((got.generation as number) + 1);
    expect(await lock.whileHeld(() => 'published')).toBe('published');
    await lock.release();
    expect(await locks.status('daily')).toMatchObject({ held: false, holder_alive: null, stale_reason: null, payload: { active: 0 } });
  });

  it('two processes taking the lock at once, 12 rounds: exactly one holds it each round, the other is refused (40)', async () => {
    const schema = `l_${++schemas}`;
    for (let round = 0; round < 12; round++) {
      const pair = [hold(schema, 'daily'), hold(schema, 'daily')];
      const ends = await Promise.all(pair.map((h) => until(() => h.events.find((e) => e.event === 'acquired' || e.event === 'error'), 20_000, `round ${round}: a holder's outcome`)));
      expect(ends.map((e) => (e.event === 'error' ? `error ${String(e.code)}` : 'acquired')).sort(), `round ${round}`).toEqual(['acquired', 'error LOCK_TIMEOUT']);
      // The winner dies; the next round finds its lock gone (holder_gone) and races again.
      for (const h of pair) h.child.kill('SIGKILL');
    }
  }, 120_000);

  it('status of a killed holder before anyone takes over: not held, holder not alive, holder_gone', async () => {
    const schema = `l_${++schemas}`;
    const locks = new PgRunLocks({ setting: { url: db.url, source: 'test', schema } });
    const h = hold(schema, 'daily');
    await event(h, 'acquired');
    h.child.kill('SIGKILL');
    await waitFor(async () => !(await locks.status('daily')).held, 10_000, "the killed holder's session to end");
    expect(await locks.status('daily')).toMatchObject({ held: false, holder_alive: false, stale_reason: 'holder_gone', payload: { active: 1 } });
  });

  it('a live holder in another process past its TTL (database clock) is taken over and learns it: its session is ended', async () => {
    const schema = `l_${++schemas}`;
    const locks = new PgRunLocks({ setting: { url: db.url, source: 'test', schema } });
    const h = hold(schema, 'daily', 60);
    await event(h, 'acquired');
    // Within its TTL it is never taken.
    expect(((await locks.acquire({ name: 'daily', cmd: 'test', log: quiet }).catch((e: unknown) => e)) as MetaspnError).exitCode).toBe(11);
    const later = (): number => Date.now() + 61_000;
    expect(await locks.status('daily', { now: later })).toMatchObject({ held: true, holder_alive: true, stale_reason: 'ttl_expired' });
    const lock = await locks.acquire({ name: 'daily', cmd: 'test', now: later, log: quiet });
    expect(lock.broke).toMatchObject({ why: 'ttl_expired' });
    await event(h, 'compromised');
    await lock.release();
  });

  it('a generation moved under a holder (by any host) refuses its fence (30) and marks it lost', async () => {
    const schema = `l_${++schemas}`;
    const locks = new PgRunLocks({ setting: { url: db.url, source: 'test', schema } });
    const lock = (await locks.acquire({ name: 'daily', cmd: 'test', log: quiet })) as HeldPgRunLock;
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      await c.query(`UPDATE ${schema}.run_lock SET generation = generation + 1, lock_id = 'someone-else' WHERE name = 'daily'`);
    } finally {
      await c.end();
    }
    let called = false;
    const err = await lock.whileHeld(() => (called = true)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunLockLostError);
    expect((err as RunLockLostError).exitCode).toBe(30);
    expect(called).toBe(false);
    expect(lock.stillHeld()).toBe(false);
    expect(lock.compromised).toBe(true);
    await lock.release();
  });

  it('a database default idle_session_timeout ends idle sessions, never the lock session', async () => {
    const schema = `l_${++schemas}`;
    const locks = new PgRunLocks({ setting: { url: db.url, source: 'test', schema } });
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    await admin.query(`ALTER DATABASE ${db.name} SET idle_session_timeout = '300ms'`);
    try {
      const lock = await locks.acquire({ name: 'daily', cmd: 'test', log: quiet });
      // A plain session opened now is ended by the timeout: that is when the lock session would be.
      const control = new pg.Client({ connectionString: db.url });
      let ended = false;
      control.on('error', () => undefined);
      control.on('end', () => (ended = true));
      await control.connect();
      await waitFor(() => ended, 10_000, 'the idle control session to be ended by the server');
      expect(lock.stillHeld()).toBe(true);
      expect(await lock.whileHeld(() => 'published')).toBe('published');
      await lock.release();
    } finally {
      await admin.query(`ALTER DATABASE ${db.name} RESET idle_session_timeout`);
      await admin.end();
    }
  });

  it('an unreachable database is exit 11, named, without a password', async () => {
    const locks = new PgRunLocks({ setting: { url: 'postgres://postgres:secret@127.0.0.1:1/nowhere', source: 'test' } });
    const err = (await locks.acquire({ name: 'daily', cmd: 'test', log: quiet }).catch((e: unknown) => e)) as MetaspnError;
    expect(err).toBeInstanceOf(MetaspnError);
    expect(err.exitCode).toBe(11);
    expect(err.message).toMatch(/^PostgreSQL at 127\.0\.0\.1:1\/nowhere is unavailable while /);
    expect(err.message).not.toMatch(/secret/);
  });
});
