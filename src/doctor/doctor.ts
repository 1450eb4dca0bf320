import { join, relative } from 'node:path';
import { silentLogger } from '../log.js';
import { acquireRunLock } from '../storage/run-lock.js';
import { DataInvalidError } from '../guard/errors.js';
import { EXIT } from '../guard/exit-codes.js';
import { FileQueue } from '../queue/file/file-queue.js';
import { Ledger } from '../storage/ledger.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { ArtifactStore } from '../storage/store/artifact-store.js';
import { DateIndexFiles } from '../storage/store/date-index.js';
import { basename } from 'node:path';
import { loadConfig, type WorkspaceConfig } from '../config/load.js';
import { targetOf, type PgSetting } from '../backend/pg/setting.js';
import { Findings, type Finding } from './finding.js';
import { checkLinks } from './links.js';
import { checkLocks, removeMutex } from './locks.js';
import { checkQueue, noteSalvage, queueNames } from './queues.js';
import { checkLedger, checkManifests, checkOpsRecords, repairRecords } from './records.js';
import { bundledPipelines } from '../pipeline/bundled.js';
import { checkStore, storeFiles } from './store.js';
import { checkPipelines, workspacePipelines } from './pipelines.js';

interface Plan {
  queues: string[];
  tornStores: string[];
  staleIndexes: string[];
  ledgerTail: boolean;
  staleRunLocks: string[];
  staleMutexes: string[];
  /** Workspace pipelines (their damaged pointers are rewritten from the ledger like s1's). */
  pipelines: string[];
  /** PostgreSQL: queues whose task counters drifted from the rows (doctor/pg.ts recountTasks). */
  recount: string[];
}

async function check(ws: WorkspacePaths, cfg: WorkspaceConfig | null, database: PgSetting | null): Promise<{ findings: Finding[]; plan: Plan }> {
  const f = new Findings();
  const plan: Plan = { queues: [], tornStores: [], staleIndexes: [], ledgerTail: false, staleRunLocks: [], staleMutexes: [], pipelines: [], recount: [] };
  if (checkLinks(ws, f).length > 0) return { findings: f.list, plan }; // nothing else is read through a link
  for (const q of queueNames(ws)) if (checkQueue(ws, q, f)) plan.queues.push(q);
  for (const s of storeFiles(ws)) {
    const r = checkStore(ws, s, f);
    if (r.tornTail) plan.tornStores.push(s);
    if (r.indexStale) plan.staleIndexes.push(s);
  }
  checkManifests(ws, f);
  checkOpsRecords(ws, f);
  plan.ledgerTail = checkLedger(ws, f).tornTail;
  Object.assign(plan, checkLocks(ws, f));
  cfg ??= checkConfig(ws, f);
  if (cfg) {
    const defs = await workspacePipelines(ws, cfg, f);
    await checkPipelines(ws, defs, cfg, f);
    plan.pipelines = defs.map((d) => d.name);
  }
  // Bundled pipelines check their own inputs and published dates (Season 1: its pointers, signals, staleness).
  if (cfg) for (const p of bundledPipelines()) await p.doctor?.(ws, cfg, f, database);
  return { findings: f.list, plan };
}

/** The workspace's config (and METASPN_QUEUE_* variables), or null with a finding saying why it does not load. */
function checkConfig(ws: WorkspacePaths, f: Findings): WorkspaceConfig | null {
  try {
    return loadConfig(ws);
  } catch (err) {
    if (!(err instanceof DataInvalidError)) throw err;
    const inFile = err.message.startsWith(`${ws.config}:`);
    const where = inFile ? relative(ws.root, ws.config) : err.message.split(':')[0]!;
    const message = inFile
      ? err.message
          .slice(ws.config.length + 1)
          .replace(/^(\d+): /, 'line $1: ')
          .trim()
      : err.message.slice(where.length + 1).trim();
    f.error('config', where, message, 'fix it (docs/LIMITS.md lists every range); every command that reads it exits 20 until then', EXIT.DATA_INVALID);
    return null;
  }
}

/**
 * Fixes what is safe to fix; never deletes data (what is cut off goes to quarantine/). Returns
 * notes on what it did that the findings alone do not say (a salvaged queue log).
 */
async function repair(ws: WorkspacePaths, plan: Plan, database: PgSetting | null): Promise<Finding[]> {
  const notes = new Findings();
  if (database && plan.recount.length > 0) {
    try {
      await (await import('./pg.js')).recountTasks(database, plan.recount);
    } catch (err) {
      const e = err as Error & { exitCode?: number };
      notes.error('database', `pg:${targetOf(database.url)}/${database.schema}.queue_counts`, e.message, 'run metaspn doctor --repair again', e.exitCode);
    }
  }
  for (const name of plan.staleRunLocks) {
    const lock = await acquireRunLock({ locksDir: ws.locks, name, cmd: 'metaspn doctor --repair', reason: 'doctor --repair: releasing a stale lock', onLockHeld: 'retryable', log: silentLogger });
    await lock.release();
  }
  for (const d of plan.staleMutexes) removeMutex(d);
  for (const name of plan.queues) {
    const q = new FileQueue({ workspace: ws.root, name, warn: () => undefined });
    try {
      const done = await q.repair();
      if (done.conflict) noteSalvage(ws, done.conflict, notes);
    } finally {
      await q.close();
    }
  }
  for (const s of new Set([...plan.tornStores, ...plan.staleIndexes])) {
    if (plan.staleIndexes.includes(s)) new DateIndexFiles(join(ws.store, '.index', basename(s, '.jsonl'))).clear();
    const store = new ArtifactStore(s);
    try {
      // Any locked read catches the index up and cuts a torn tail into quarantine/.
      await store.digest('0000-00-00', '');
    } finally {
      await store.close();
    }
  }
  if (plan.ledgerTail) await new Ledger(ws).repairTail();
  // After the ledger's tail: damaged pointers are rewritten from the ledger.
  for (const name of [...bundledPipelines().map((p) => p.name), ...plan.pipelines]) await repairRecords(ws, name, silentLogger);
  return notes.list;
}

export interface DoctorReport {
  findings: Finding[];
  /** Errors left (after --repair, those it could not fix). */
  errors: number;
  repaired: number;
}

export async function doctor(ws: WorkspacePaths, cfg: WorkspaceConfig | null, opts: { repair: boolean; database?: PgSetting | null }): Promise<DoctorReport> {
  const checkAll = async (): Promise<{ findings: Finding[]; plan: Plan }> => {
    const r = await check(ws, cfg, opts.database ?? null);
    // On PostgreSQL, what the database keeps too (read-only; --repair recounts drifted counters).
    if (opts.database) {
      const f = new Findings();
      r.plan.recount = (await (await import('./pg.js')).checkDatabase(opts.database, f)).recount;
      r.findings.push(...f.list);
    }
    return r;
  };
  const first = await checkAll();
  if (!opts.repair) return { findings: first.findings, errors: first.findings.filter((x) => x.severity === 'error').length, repaired: 0 };
  const notes = await repair(ws, first.plan, opts.database ?? null);
  const after = await checkAll();
  const key = (x: Finding): string => `${x.area}|${x.path}|${x.message}`;
  const still = new Set(after.findings.map(key));
  const findings = first.findings.map((x) => (still.has(key(x)) || x.severity === 'info' ? x : { ...x, repaired: true }));
  findings.push(...notes);
  for (const x of after.findings) if (!first.findings.some((y) => key(y) === key(x))) findings.push(x);
  return {
    findings,
    errors: after.findings.filter((x) => x.severity === 'error').length,
    repaired: findings.filter((x) => x.repaired).length,
  };
}
