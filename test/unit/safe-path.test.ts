import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkLocks } from '../../src/doctor/locks.js';
import { Findings } from '../../src/doctor/finding.js';
import { checkQueue, queueNames } from '../../src/doctor/queues.js';
import { checkLedger, checkManifests } from '../../src/doctor/records.js';
import { checkStore, storeFiles } from '../../src/doctor/store.js';
import { MetaspnError } from '../../src/guard/errors.js';
import { acquireRunLock, livenessFiles, lockPaths, readLockStatus } from '../../src/storage/run-lock.js';
import { silentLogger } from '../../src/log.js';
import { readAlertLog } from '../../src/ops/alerts/state.js';
import { runStartFiles } from '../../src/ops/run-start.js';
import { eventFiles } from '../../src/ops/signature.js';
import { queueNamesOf } from '../../src/ops/workspace-view.js';
import { fsyncDir } from '../../src/storage/atomic.js';
import { readLedger } from '../../src/storage/ledger.js';
import { manifestsOf } from '../../src/storage/manifest.js';
import { workspacePaths, type WorkspacePaths } from '../../src/storage/paths.js';
import { pointerDates } from '../../src/storage/pointers.js';
import { readRuns } from '../../src/storage/runs.js';
import {
  DIR_MODE,
  FILE_MODE,
  safeAppendFile,
  safeExists,
  safeFsyncDir,
  safeLstat,
  safeMkdir,
  safeOpen,
  safeReaddir,
  safeReaddirEntries,
  safeReadFile,
  safeRename,
  safeRm,
} from '../../src/storage/safe-path.js';
import { DateIndexFiles } from '../../src/storage/store/date-index.js';
import { DeadLetterFiles } from '../../src/queue/file/deadletter-files.js';
import { listGens } from '../../src/queue/file/log-io.js';
import { readStats } from '../../src/queue/file/stats-file.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup(): { ws: string; out: string } {
  const base = mkdtempSync(join(tmpdir(), 'metaspn-safe-'));
  dirs.push(base);
  const ws = join(base, 'ws');
  const out = join(base, 'out');
  mkdirSync(ws);
  mkdirSync(out);
  workspacePaths(ws);
  return { ws, out };
}

const refused = (f: () => unknown, path: string): void => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(MetaspnError);
    expect((err as MetaspnError).exitCode).toBe(30);
    expect((err as Error).message).toBe(`${path}: is a symbolic link inside the workspace; metaspn does not follow links`);
    return;
  }
  throw new Error('not refused');
};

describe('safe-path: no link below the workspace root is followed', () => {
  it('refuses a linked file and a linked folder on the way, for every operation, leaving the outside alone', () => {
    const { ws, out } = setup();
    writeFileSync(join(out, 'f'), 'outside\n');
    symlinkSync(join(out, 'f'), join(ws, 'file.jsonl'));
    symlinkSync(out, join(ws, 'dir'));
    refused(() => safeOpen(join(ws, 'file.jsonl'), 'a+'), join(ws, 'file.jsonl'));
    refused(() => safeAppendFile(join(ws, 'file.jsonl'), 'x\n'), join(ws, 'file.jsonl'));
    refused(() => safeReadFile(join(ws, 'file.jsonl')), join(ws, 'file.jsonl'));
    refused(() => safeAppendFile(join(ws, 'dir', 'new.jsonl'), 'x\n'), join(ws, 'dir'));
    refused(() => safeMkdir(join(ws, 'dir', 'a', 'b')), join(ws, 'dir'));
    refused(() => safeRename(join(ws, 'x'), join(ws, 'dir', 'f')), join(ws, 'dir'));
    refused(() => safeRm(join(ws, 'dir', 'f'), { force: true }), join(ws, 'dir'));
    expect(readFileSync(join(out, 'f'), 'utf8')).toBe('outside\n');
  });

  it('creates folders and files with explicit modes, whatever the umask', () => {
    const { ws } = setup();
    const old = process.umask(0);
    try {
      safeMkdir(join(ws, 'a', 'b'));
      safeAppendFile(join(ws, 'a', 'b', 'f.jsonl'), 'x\n');
    } finally {
      process.umask(old);
    }
    expect(statSync(join(ws, 'a')).mode & 0o777).toBe(DIR_MODE);
    expect(statSync(join(ws, 'a', 'b')).mode & 0o777).toBe(DIR_MODE);
    expect(statSync(join(ws, 'a', 'b', 'f.jsonl')).mode & 0o777).toBe(FILE_MODE);
  });

  it('the workspace root itself may be a link', () => {
    const { ws, out } = setup();
    const alias = join(out, 'alias');
    symlinkSync(ws, alias);
    workspacePaths(alias);
    safeMkdir(join(alias, 'queue', 'q'));
    safeAppendFile(join(alias, 'queue', 'q', 'log.000001.jsonl'), 'x\n');
    expect(readFileSync(join(ws, 'queue', 'q', 'log.000001.jsonl'), 'utf8')).toBe('x\n');
  });
});

describe('safe-path: reading and listing never go through a link either', () => {
  it('safeReaddir, safeReaddirEntries, safeExists, safeLstat and safeFsyncDir refuse a linked folder or file, and answer for real ones', () => {
    const { ws, out } = setup();
    writeFileSync(join(out, 'f'), 'outside\n');
    symlinkSync(out, join(ws, 'dir'));
    symlinkSync(join(out, 'f'), join(ws, 'file'));
    symlinkSync(join(out, 'missing'), join(ws, 'dangling'));
    refused(() => safeReaddir(join(ws, 'dir')), join(ws, 'dir'));
    refused(() => safeReaddirEntries(join(ws, 'dir')), join(ws, 'dir'));
    refused(() => safeReaddir(join(ws, 'dir', 'sub')), join(ws, 'dir'));
    refused(() => safeExists(join(ws, 'file')), join(ws, 'file'));
    refused(() => safeExists(join(ws, 'dangling')), join(ws, 'dangling'));
    refused(() => safeExists(join(ws, 'dir', 'f')), join(ws, 'dir'));
    refused(() => safeLstat(join(ws, 'file')), join(ws, 'file'));
    refused(() => safeFsyncDir(join(ws, 'dir')), join(ws, 'dir'));

    mkdirSync(join(ws, 'real'));
    writeFileSync(join(ws, 'real', 'a'), 'x');
    expect(safeReaddir(join(ws, 'real'))).toEqual(['a']);
    expect(safeReaddirEntries(join(ws, 'real')).map((d) => [d.name, d.isFile()])).toEqual([['a', true]]);
    expect(safeReaddir(join(ws, 'nope'))).toEqual([]);
    expect(safeReaddir(join(ws, 'real', 'a'))).toEqual([]);
    expect(safeExists(join(ws, 'real', 'a'))).toBe(true);
    expect(safeExists(join(ws, 'nope', 'a'))).toBe(false);
    expect(safeLstat(join(ws, 'real'))?.isDirectory()).toBe(true);
    expect(safeLstat(join(ws, 'nope'))).toBeNull();
    safeFsyncDir(join(ws, 'real'));
    // A link inside a listed folder is listed as what it is, never followed.
    symlinkSync(out, join(ws, 'real', 'l'));
    expect(
      safeReaddirEntries(join(ws, 'real'))
        .find((d) => d.name === 'l')
        ?.isSymbolicLink(),
    ).toBe(true);
  });

  it('a linked workspace root is read as the workspace', () => {
    const { ws, out } = setup();
    const alias = join(out, 'alias');
    symlinkSync(ws, alias);
    workspacePaths(alias);
    mkdirSync(join(ws, 'queue'));
    expect(safeReaddir(alias)).toContain('queue');
    expect(safeExists(alias)).toBe(true);
    expect(safeLstat(alias)?.isDirectory()).toBe(true);
    safeFsyncDir(alias);
  });

  /** Every file and folder below `dir` with its bytes: what a refused read must leave as it was. */
  const snapshot = (dir: string): Record<string, string> => {
    const all: Record<string, string> = {};
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) {
          all[`${relative(dir, p)}/`] = '';
          walk(p);
        } else all[relative(dir, p)] = readFileSync(p).toString('base64');
      }
    };
    walk(dir);
    return all;
  };

  /** `at` (relative to the workspace) made a link to a file (`kind: 'file'`) or a folder outside holding one. */
  const readers: Array<{ name: string; at: string; kind: 'file' | 'dir'; read: (p: WorkspacePaths) => unknown }> = [
    { name: 'doctor: store files', at: 'store', kind: 'dir', read: (p) => storeFiles(p) },
    { name: 'doctor: one store file', at: 'store/s1_scores.jsonl', kind: 'file', read: (p) => checkStore(p, join(p.store, 's1_scores.jsonl'), new Findings()) },
    { name: 'doctor: queue names', at: 'queue', kind: 'dir', read: (p) => queueNames(p) },
    { name: 'doctor: a queue log', at: 'queue/q/log.000001.jsonl', kind: 'file', read: (p) => checkQueue(p, 'q', new Findings()) },
    { name: 'doctor: run locks', at: 'locks', kind: 'dir', read: (p) => checkLocks(p, new Findings()) },
    { name: 'doctor: manifests', at: 'manifests/update_attention_scores', kind: 'dir', read: (p) => checkManifests(p, new Findings()) },
    { name: 'doctor: the ledger', at: 'ledger.jsonl', kind: 'file', read: (p) => checkLedger(p, new Findings()) },
    { name: 'runs list: manifests', at: 'manifests/update_attention_scores/date=2026-01-15', kind: 'dir', read: (p) => readRuns(p) },
    { name: 'current pointers', at: 'manifests/current/s1', kind: 'dir', read: (p) => pointerDates(p, 's1') },
    { name: 'manifests of a date', at: 'manifests/update_attention_scores/date=2026-01-15', kind: 'dir', read: (p) => manifestsOf(p, 'update_attention_scores', '2026-01-15') },
    { name: 'the ledger', at: 'ledger.jsonl', kind: 'file', read: (p) => readLedger(p) },
    { name: 'a store index meta.json', at: 'store/.index/s/meta.json', kind: 'file', read: (p) => new DateIndexFiles(join(p.store, '.index', 's')).meta() },
    { name: 'a store index date file', at: 'store/.index/s/date=2026-01-15.jsonl', kind: 'file', read: (p) => new DateIndexFiles(join(p.store, '.index', 's')).read('2026-01-15', 1) },
    { name: 'fsync of a folder', at: 'quarantine', kind: 'dir', read: (p) => fsyncDir(p.quarantine) },
    { name: 'run lock liveness files', at: 'locks', kind: 'dir', read: (p) => livenessFiles(lockPaths(p.locks, 's1')) },
    { name: 'run lock payload', at: 'locks/s1.lock', kind: 'file', read: (p) => readLockStatus(p.locks, 's1') },
    { name: 'ops: queue names', at: 'deadletter', kind: 'dir', read: (p) => queueNamesOf(p) },
    { name: 'ops: event records', at: 'ops/events', kind: 'dir', read: (p) => eventFiles(p) },
    { name: 'ops: run-start records', at: 'ops/runs', kind: 'dir', read: (p) => runStartFiles(p) },
    { name: 'ops: alert log', at: 'ops/alerts-log.jsonl', kind: 'file', read: (p) => readAlertLog(p) },
    { name: 'queue stats: the log', at: 'queue/q/log.000001.jsonl', kind: 'file', read: (p) => readStats(join(p.queues, 'q'), 'q', Date.now()) },
    { name: 'queue: its generations', at: 'queue/q', kind: 'dir', read: (p) => listGens(join(p.queues, 'q')) },
    { name: 'dead letters: the list', at: 'deadletter/q', kind: 'dir', read: (p) => new DeadLetterFiles(join(p.deadletters, 'q')).ids() },
  ];

  for (const r of readers) {
    it(`${r.name}: ${r.at} linked outside is refused (30, naming it), nothing read or changed outside`, () => {
      const { ws, out } = setup();
      const p = workspacePaths(ws);
      writeFileSync(join(out, 'f'), '{"outside":true}\n');
      mkdirSync(join(out, 'd'));
      writeFileSync(join(out, 'd', 'manifest.json'), '{"outside":true}\n');
      mkdirSync(join(out, 'd', 'date=2026-01-15'));
      const link = join(ws, r.at);
      mkdirSync(dirname(link), { recursive: true });
      symlinkSync(join(out, r.kind === 'file' ? 'f' : 'd'), link);
      const before = snapshot(out);
      refused(() => r.read(p), link);
      expect(snapshot(out)).toEqual(before);
    });
  }

  it('the run lock: a linked locks/ is refused before anything is created in it', async () => {
    const { ws, out } = setup();
    symlinkSync(out, join(ws, 'locks'));
    const err = await acquireRunLock({ locksDir: join(ws, 'locks'), name: 's1', cmd: 'test', reason: 'test', onLockHeld: 'retryable', log: silentLogger }).catch((e: unknown) => e);
    refused(
      () => {
        throw err;
      },
      join(ws, 'locks'),
    );
    expect(readdirSync(out)).toEqual([]);
  });
});
