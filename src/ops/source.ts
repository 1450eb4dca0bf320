/**
 * Where the ops server, /metrics and the alert rules read the state they show: the workspace's
 * files, or the PostgreSQL database a backend URL names (`--database-url`, METASPN_DATABASE_URL,
 * `backend.url`). One interface for both, so the page, the JSON API, the metrics and the alerts
 * are written once.
 */
import { PgQueue } from '../backend/pg/pg-queue.js';
import { PgRunLocks } from '../backend/pg/run-locks.js';
import { targetOf, type PgSetting } from '../backend/pg/setting.js';
import { PgStores } from '../backend/pg/stores.js';
import type { LockStatus } from '../guard/run-lock.js';
import { readLockStatus } from '../storage/run-lock.js';
import type { CurrentPointer } from '../storage/pointers.js';
import { StateFileError } from '../storage/state-file.js';
import { DeadLetterFiles } from '../queue/file/deadletter-files.js';
import type { DeadLetter } from '../queue/types.js';
import { bundledQueues } from '../runtime/load-worker.js';
import { readManifest, type Manifest } from '../storage/manifest.js';
import { deadletterDir, type WorkspacePaths } from '../storage/paths.js';
import { readRuns, runsFrom, type RunsFilter, type RunsRead } from '../storage/runs.js';
import { queueNamesOf, queueView, type QueueView } from './workspace-view.js';

/** Worker processes the database knows, and those whose presence session is held now. */
export interface WorkerPresence {
  /** Worker processes (owners) whose presence session holds its lock now. */
  present: number;
  /** Live owners holding at least one lease, by queue. */
  byQueue: Record<string, number>;
}

/** The state the ops surface reads, from one backend. */
export interface OpsSource {
  /** `files` or `postgres`. */
  readonly backend: 'files' | 'postgres';
  /** Where the state is, for the page and messages: the workspace folder, or `PostgreSQL schema S at host:port/db`. */
  readonly where: string;
  /** The queues there are, sorted (on PostgreSQL: the bundled workers' and every queue the schema knows). */
  queueNames(): Promise<string[]>;
  /** One queue's counts and its oldest ready task's age at `now` (ms). */
  queueView(name: string, now?: number): Promise<QueueView>;
  /** A queue's dead letters, oldest first. */
  deadLetters(worker: string): Promise<DeadLetter[]>;
  /** One dead letter, or null. */
  deadLetter(worker: string, id: string): Promise<DeadLetter | null>;
  /** Every run that reads back, newest first, and the run records that do not (named). */
  runs(filter?: RunsFilter): Promise<RunsRead>;
  /** The manifests of a run's steps, in the order of `paths` (a step's `manifest`); null for one that does not read back. */
  manifests(paths: readonly string[]): Promise<(Manifest | null)[]>;
  /** The run lock `name`. */
  lockStatus(name: string): Promise<LockStatus>;
  /** Worker presence (PostgreSQL only: the file backend has none); null on files. */
  workers(): Promise<WorkerPresence | null>;
  /** Ends what the source opened (connections). */
  close(): Promise<void>;
}

/** The ops state of a workspace on files: what the CLI reads, as it reads it. */
export function fileSource(ws: WorkspacePaths): OpsSource {
  return {
    backend: 'files',
    where: ws.root,
    queueNames: async () => queueNamesOf(ws),
    queueView: async (name, now) => queueView(ws, name, now),
    deadLetters: async (worker) => new DeadLetterFiles(deadletterDir(ws, worker)).list(),
    deadLetter: async (worker, id) => new DeadLetterFiles(deadletterDir(ws, worker)).read(id),
    runs: async (filter) => readRuns(ws, filter),
    manifests: async (paths) =>
      paths.map((p) => {
        try {
          return readManifest(p);
        } catch {
          return null;
        }
      }),
    lockStatus: async (name) => readLockStatus(ws.locks, name),
    workers: async () => null,
    close: async () => undefined,
  };
}

/**
 * The ops state on PostgreSQL: queue counts from the counters (`queue_counts`, never a count over
 * tasks), dead letters, runs (the database's, and the workspace's older ones and Season 1's, as
 * `runs list` shows them), pointers, run locks and worker presence from the schema `pg` names.
 * Queues are opened once and kept (a PgQueue is a name over the process's shared pool).
 */
export function pgSource(ws: WorkspacePaths, pg: PgSetting): OpsSource {
  const queues = new Map<string, PgQueue>();
  const q = (name: string): PgQueue => {
    let x = queues.get(name);
    if (!x) queues.set(name, (x = new PgQueue({ name, setting: pg, presence: false })));
    return x;
  };
  let stores: PgStores | null = null;
  const st = (): PgStores => (stores ??= new PgStores({ setting: pg }));
  const locks = new PgRunLocks({ setting: pg });
  // Manifests by the name a run's step gives (`pg:<schema>.manifest/…`), from the latest scan.
  let scanned = new Map<string, Manifest>();
  return {
    backend: 'postgres',
    where: `PostgreSQL schema ${pg.schema} at ${targetOf(pg.url)}`,
    queueNames: async () => [...new Set([...bundledQueues(), ...(await q('queues').queueNames())])].sort(),
    queueView: async (name, now = Date.now()) => {
      const s = await q(name).stats();
      return { ...s, oldest_ready_age_s: s.oldest_ready_at === null ? null : Math.max(0, (now - s.oldest_ready_at) / 1000) };
    },
    deadLetters: (worker) => q(worker).listDead(),
    deadLetter: (worker, id) => q(worker).getDead(id),
    runs: async (filter = {}) => {
      // The database's runs (one scan of its manifests, a pointer read per date), then the workspace's.
      const db = await st().manifests.scan(filter);
      scanned = new Map(db.manifests.map((e) => [e.path, e.m]));
      const pointers = new Map<string, CurrentPointer | null>();
      for (const { m } of db.manifests) {
        const key = `${m.pipeline}|${m.date}`;
        if (pointers.has(key)) continue;
        try {
          pointers.set(key, await st().pointers.read(m.pipeline, m.date));
        } catch (err) {
          if (!(err instanceof StateFileError)) throw err;
          db.problems.push({ path: err.path, kind: 'pointer', error: err.message.slice(err.path.length + 2) });
          pointers.set(key, null);
        }
      }
      const fromDb = runsFrom(db.manifests, (p, d) => pointers.get(`${p}|${d}`) ?? null, filter);
      const files = readRuns(ws, filter);
      const runs = [...fromDb, ...files.runs].sort((a, b) => (a.started_at < b.started_at ? 1 : a.started_at > b.started_at ? -1 : 0));
      return { runs, problems: [...db.problems, ...files.problems] };
    },
    manifests: async (paths) =>
      paths.map((p) => {
        const m = scanned.get(p);
        if (m) return m;
        if (p.startsWith('pg:')) return null;
        try {
          return readManifest(p);
        } catch {
          return null;
        }
      }),
    lockStatus: (name) => locks.status(name),
    workers: () => q('queues').workersPresent(),
    close: async () => {
      const all = [...queues.values()];
      queues.clear();
      await Promise.all([...all.map((x) => x.close()), stores?.close()]);
    },
  };
}

/** The ops source for a backend choice: PostgreSQL when `pg` is given, else the workspace's files. */
export function opsSource(ws: WorkspacePaths, pg: PgSetting | null): OpsSource {
  return pg ? pgSource(ws, pg) : fileSource(ws);
}
