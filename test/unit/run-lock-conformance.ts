import { describe, expect, it } from 'vitest';
import { MetaspnError, UsageError } from '../../src/guard/errors.js';
import { RunLockLostError, type RunLock, type RunLockLog, type RunLockRequest, type RunLocks } from '../../src/guard/run-lock.js';

/**
 * What every backend's run locks must do, with holders in this process (a backend's own suite
 * adds what needs other processes: a SIGKILLed or SIGSTOPped holder, a reused pid). `open` gives a
 * fresh, empty set of locks for each test.
 */
export function describeRunLocks(backend: string, open: () => RunLocks | Promise<RunLocks>): void {
  const quiet: RunLockLog = { warn: () => undefined, info: () => undefined };
  const take = (locks: RunLocks, extra: Partial<RunLockRequest> = {}): Promise<RunLock> => locks.acquire({ name: 'daily', cmd: 'metaspn pipeline run daily', log: quiet, ...extra });
  const rejection = async (p: Promise<unknown>): Promise<MetaspnError> => {
    try {
      await p;
    } catch (err) {
      expect(err).toBeInstanceOf(MetaspnError);
      return err as MetaspnError;
    }
    throw new Error('expected the promise to reject');
  };

  describe(`run locks conformance: ${backend}`, () => {
    it('a free lock is taken; status names the holder; release frees it, idempotently, and it can be taken again', async () => {
      const locks = await open();
      expect((await locks.status('daily')).held).toBe(false);
      const lock = await take(locks, { reason: 'nightly' });
      expect(lock.broke).toBeNull();
      expect(lock.stillHeld()).toBe(true);
      const st = await locks.status('daily');
      expect(st).toMatchObject({ held: true, holder_alive: true, stale_reason: null });
      expect(st.payload).toMatchObject({ active: 1, reason: 'nightly', cmd: 'metaspn pipeline run daily' });
      await lock.release();
      await lock.release();
      expect(lock.stillHeld()).toBe(false);
      expect((await locks.status('daily')).held).toBe(false);
      const again = await take(locks);
      expect(again.stillHeld()).toBe(true);
      await again.release();
    });

    it('held: retryable (the default) is 11, fail is 40, wait gives up with 40; the holder keeps it', async () => {
      const locks = await open();
      const holder = await take(locks);
      expect((await rejection(take(locks))).exitCode).toBe(11);
      expect((await rejection(take(locks, { onLockHeld: 'fail' }))).exitCode).toBe(40);
      expect((await rejection(take(locks, { onLockHeld: 'wait', lockWaitSec: 0 }))).exitCode).toBe(40);
      expect(holder.stillHeld()).toBe(true);
      // Another name is another lock.
      const other = await locks.acquire({ name: 'weekly', cmd: 'x', log: quiet });
      await other.release();
      await holder.release();
    });

    it('wait: takes the lock as soon as the holder releases it', async () => {
      const locks = await open();
      const holder = await take(locks);
      const waiting = take(locks, { onLockHeld: 'wait', lockWaitSec: 10, pollMs: 20 });
      setTimeout(() => void holder.release(), 100);
      const lock = await waiting;
      expect(lock.stillHeld()).toBe(true);
      expect(lock.broke).toBeNull();
      await lock.release();
    });

    it('past its TTL a live holder is taken over; it learns so, its fence refuses (30) and its release leaves the successor alone', async () => {
      const locks = await open();
      const lost: Error[] = [];
      const first = await take(locks, { ttlSec: 60, onCompromised: (e) => lost.push(e) });
      const second = await take(locks, { now: () => Date.now() + 61_000 });
      expect(second.broke).toMatchObject({ why: 'ttl_expired' });
      expect(first.stillHeld()).toBe(false);
      expect(first.compromised).toBe(true);
      let called = false;
      const err = await rejection(first.whileHeld(() => (called = true)));
      expect(err).toBeInstanceOf(RunLockLostError);
      expect(err.exitCode).toBe(30);
      expect(called).toBe(false);
      expect(lost.length).toBeGreaterThanOrEqual(1);
      await first.release();
      expect(second.stillHeld()).toBe(true);
      expect(await second.whileHeld(() => 'published')).toBe('published');
      await second.release();
    });

    it("forceBreak needs a reason (64); with one it takes a live holder's lock, which then cannot publish", async () => {
      const locks = await open();
      const holder = await take(locks);
      for (const reason of [undefined, '', '  ']) expect(await rejection(take(locks, { forceBreak: true, ...(reason === undefined ? {} : { reason }) }))).toBeInstanceOf(UsageError);
      expect(holder.stillHeld()).toBe(true);
      const breaker = await take(locks, { forceBreak: true, reason: 'drill' });
      expect(breaker.broke).toMatchObject({ why: 'forced' });
      expect(breaker.payload.reason).toBe('drill');
      expect(holder.stillHeld()).toBe(false);
      expect(await rejection(holder.whileHeld(() => 'late'))).toBeInstanceOf(RunLockLostError);
      await holder.release();
      expect(breaker.stillHeld()).toBe(true);
      await breaker.release();
    });

    it('nobody takes the lock over while a whileHeld function runs', async () => {
      const locks = await open();
      const first = await take(locks);
      let entered!: () => void;
      let finish!: () => void;
      const inside = new Promise<void>((r) => (entered = r));
      const publishing = first.whileHeld(async () => {
        entered();
        await new Promise<void>((r) => (finish = r));
        return 'published';
      });
      await inside;
      const order: string[] = [];
      const breaking = take(locks, { forceBreak: true, reason: 'drill' }).then((l) => (order.push('taken'), l));
      // Let the breaker run as far as it can while the function is still inside.
      for (let i = 0; i < 20 && order.length === 0; i++) await new Promise((r) => setImmediate(r));
      order.push('finished');
      finish();
      expect(await publishing).toBe('published');
      const second = await breaking;
      expect(order).toEqual(['finished', 'taken']);
      await first.release();
      await second.release();
    });

    it('acquirers racing: exactly one wins, the others are told it is held (11)', async () => {
      const locks = await open();
      const results = await Promise.allSettled([1, 2, 3, 4].map(() => take(locks)));
      const won = results.filter((r): r is PromiseFulfilledResult<RunLock> => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      expect(results.filter((r) => r.status === 'rejected').map((r) => ((r as PromiseRejectedResult).reason as MetaspnError).exitCode)).toEqual([11, 11, 11]);
      await won[0]!.value.release();
    });

    it('a bad lock name or number is a usage error (64)', async () => {
      const locks = await open();
      expect((await rejection(locks.acquire({ name: '../x', cmd: 'x', log: quiet }))).exitCode).toBe(64);
      expect((await rejection(take(locks, { ttlSec: -1 }))).exitCode).toBe(64);
    });
  });
}
