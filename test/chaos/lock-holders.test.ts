// Crash suite, lock holders: a holder of a workspace mutex that is stopped (SIGSTOP) keeps it however
// long; one that is SIGKILLed is overtaken at once. The queue and store cases drive real processes
// (the CLI, or the compiled store module) and check that nothing acknowledged is lost.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { scale } from '../../chaos/lib.js';
import { probeLock } from '../../src/storage/file-lock.js';
import { ArtifactStore, paramsKey } from '../../src/storage/store/artifact-store.js';
import { assertNoChildren, cleanWorkspaces, cli, exit, ROOT, spec, start, tempWorkspace, waitFor, type Proc } from '../integration/cli.js';
import { cliIn } from '../integration/in-process.js';

const s = scale();
/** How long a holder stays stopped: past every stale timeout the old locks had (5 s, 10 s); a minute under `npm run chaos`. */
const STOP_MS = s.full ? 60_000 : 12_000;
const FIXTURE = join(ROOT, 'test', 'fixtures', 'hold-mutex.mjs');

afterEach(() => {
  assertNoChildren();
  for (const c of fixtures.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  cleanWorkspaces();
});

const fixtures: ChildProcess[] = [];

/** A hold-mutex fixture process with its stdout lines collected. */
function fixture(args: string[]): { child: ChildProcess; lines: string[]; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [FIXTURE, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  fixtures.push(child);
  const lines: string[] = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, lines, exited };
}

/**
 * Stops `child` while it holds the lock at `lockPath`: waits until the lock is held, stops the
 * process, and checks the lock is still held (else it was stopped outside its critical section:
 * continue it and try again). False if the process exited first.
 */
async function stopWhileHolding(child: ChildProcess, lockPath: string): Promise<boolean> {
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    if (probeLock(lockPath) === 'held') {
      child.kill('SIGSTOP');
      if (probeLock(lockPath) === 'held') return true;
      child.kill('SIGCONT');
    }
    await new Promise((r) => setImmediate(r));
  }
}

/** Resolves to true if `p` settles within `ms`, false otherwise (the deliberate length of a stop). */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([p.then(() => true), sleep(ms).then(() => false)]);
}

const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

describe('crash: lock holders', () => {
  it(
    `a queue round stopped (SIGSTOP) for ${STOP_MS / 1000}s keeps its lock; the waiting enqueue and the big one both land whole, every task runs once`,
    async () => {
      // Big enough that its round is caught holding the queue's lock (5,000-10,000 tasks held it for
      // 1,500-5,000 looks at load 20); 30,000 under `npm run chaos` (in npm test their drain below
      // alone took 14 s of CPU).
      const BIG = s.full ? 30_000 : 10_000;
      for (let attempt = 1; ; attempt++) {
        const ws = tempWorkspace({ demo: false });
        expect((await cliIn(['queue', 'enqueue', 'ok', '--workspace', ws, '--id', 'seed0', '--payload', '{}'])).code).toBe(0);
        writeFileSync(join(ws, 'big.jsonl'), jsonl(Array.from({ length: BIG }, (_, i) => ({ id: `A${i}`, payload: { a: i } }))));
        writeFileSync(join(ws, 'small.jsonl'), jsonl(Array.from({ length: 50 }, (_, i) => ({ id: `B${i}`, payload: { b: i } }))));
        const a = start(['queue', 'enqueue', 'ok', '--workspace', ws, '--file', join(ws, 'big.jsonl')]);
        if (!(await stopWhileHolding(a.child, join(ws, 'queue', 'ok', '.mutex')))) {
          expect((await exit(a)).code).toBe(0);
          if (attempt < 5) continue;
          throw new Error('the big enqueue was never caught inside its round');
        }
        let b: Proc;
        try {
          b = start(['queue', 'enqueue', 'ok', '--workspace', ws, '--file', join(ws, 'small.jsonl')]);
          // The small enqueue waits for the stopped holder, however long it is stopped.
          expect(await settlesWithin(b.exited, STOP_MS)).toBe(false);
          expect(probeLock(join(ws, 'queue', 'ok', '.mutex'))).toBe('held');
        } finally {
          a.child.kill('SIGCONT');
        }
        const [ra, rb] = [await exit(a, 60_000), await exit(b, 60_000)];
        expect(ra.code, ra.stderr).toBe(0);
        expect(ra.stdout).toContain(`enqueued ${BIG} task(s) to ok; 0 already present`);
        expect(rb.code, rb.stderr).toBe(0);
        expect(rb.stdout).toContain('enqueued 50 task(s) to ok; 0 already present');

        // The reads after the stop run in this process (what was stopped were the processes above).
        const stats = JSON.parse((await cliIn(['queue', 'stats', 'ok', '--workspace', ws, '--json'])).stdout) as Record<string, unknown>;
        expect(stats).toMatchObject({ ready: 1 + BIG + 50, leased: 0, completed: 0, dead: 0, corrupt_records: 0 });
        // Acknowledged ids are known: enqueueing them again adds nothing.
        const again = await cliIn(['queue', 'enqueue', 'ok', '--workspace', ws, '--file', join(ws, 'small.jsonl')]);
        expect(again.stdout).toContain('enqueued 0 task(s) to ok; 50 already present');
        expect((await cliIn(['doctor', '--workspace', ws])).code).toBe(0);

        const drained = cli(['worker', 'run', spec('Succeed'), '--workspace', ws, '--once', '--concurrency', '16']);
        expect(drained.code, drained.stderr).toBe(0);
        const ran = readFileSync(join(ws, 'executions.log'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => l.split(' ')[1]!);
        expect(ran.length).toBe(1 + BIG + 50);
        expect(new Set(ran).size).toBe(1 + BIG + 50);
        for (let i = 0; i < 50; i++) expect(ran).toContain(`B${i}`);
        return;
      }
    },
    STOP_MS + 150_000,
  );

  it(
    `a store append stopped (SIGSTOP) for ${STOP_MS / 1000}s keeps the store's lock; both writers' rows land once and the index agrees`,
    async () => {
      // One put long enough to be caught holding the store's lock (20,000 rows held it for 3,500
      // looks at load 28); 100,000 under `npm run chaos`.
      const BIG = s.full ? 100_000 : 20_000;
      for (let attempt = 1; ; attempt++) {
        const ws = tempWorkspace({ demo: false });
        const file = join(ws, 'store', 'rows.jsonl');
        const lock = join(ws, 'store', '.index', 'rows', '.mutex');
        const a = fixture(['store', file, 'A', String(BIG)]);
        if (!(await stopWhileHolding(a.child, lock))) {
          expect(await a.exited).toBe(0);
          if (attempt < 5) continue;
          throw new Error('the big put was never caught holding the store lock');
        }
        let b: ReturnType<typeof fixture>;
        try {
          b = fixture(['store', file, 'B', '50']);
          expect(await settlesWithin(b.exited, STOP_MS)).toBe(false);
          expect(probeLock(lock)).toBe('held');
        } finally {
          a.child.kill('SIGCONT');
        }
        expect(await a.exited).toBe(0);
        expect(await b.exited).toBe(0);
        expect(a.lines).toContain(`stored ${BIG} present 0 conflicts 0`);
        expect(b.lines).toContain('stored 50 present 0 conflicts 0');

        const ids = readFileSync(file, 'utf8')
          .trim()
          .split('\n')
          .map((l) => (JSON.parse(l) as { id: string }).id);
        expect(ids.length).toBe(BIG + 50);
        expect(new Set(ids).size).toBe(BIG + 50);
        const store = new ArtifactStore(file);
        const want = [...Array.from({ length: 50 }, (_, i) => `B${i}`), 'A0', `A${BIG - 1}`];
        expect(await store.has('2026-01-15', paramsKey({ fixture: 1 }), want)).toEqual({ present: want.length, missing: [] });
        await store.close();
        return;
      }
    },
    STOP_MS + 90_000,
  );

  it('a SIGKILLed holder of the queue, store or ledger mutex is overtaken in under 1 s', async () => {
    const ws = tempWorkspace({ demo: false });
    for (const lock of [join(ws, 'queue', 'ok', '.mutex'), join(ws, 'store', '.index', 'rows', '.mutex'), join(ws, 'locks', 'ledger.mutex')]) {
      const holder = fixture(['mutex', lock]);
      await waitFor(() => holder.lines.some((l) => l.startsWith('acquired')), 20_000, `holder of ${lock}`);
      const waiter = fixture(['mutex', lock]);
      await waitFor(() => waiter.lines.includes('waiting'), 20_000, `waiter on ${lock}`);
      // The waiter polls; give it a look at the held lock first, so the take-over is what is timed.
      expect(await settlesWithin(waiter.exited, 200)).toBe(false);
      expect(waiter.lines.some((l) => l.startsWith('acquired'))).toBe(false);
      const killedAt = Date.now();
      holder.child.kill('SIGKILL');
      await waitFor(() => waiter.lines.some((l) => l.startsWith('acquired')), 5_000, `waiter to take ${lock}`);
      const tookAt = Number(waiter.lines.find((l) => l.startsWith('acquired'))!.split(' ')[1]);
      expect(tookAt - killedAt, lock).toBeLessThan(1000);
      waiter.child.kill('SIGKILL');
      await waiter.exited;
    }
  }, 60_000);
});
