import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { readLockStatus } from '../storage/run-lock.js';
import { writeAtomicSync } from '../storage/atomic.js';
import { safeMkdir, safeOpen, safeReaddir, safeReadFile, SECRET_FILE_MODE } from '../storage/safe-path.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { findRun } from '../storage/runs.js';
import { readStateJson, shape } from '../storage/state-file.js';

/**
 * ops/runs/<run_id>.json: a run started from the server, from the request to the end of its
 * process. `GET /api/runs/:run_id` answers from it while the run has no manifest yet, and
 * when the run ended before writing one (refused by the run lock, bad inputs, a damaged pointer).
 */
export interface RunStart {
  run_id: string;
  date: string;
  as_of: string | null;
  requested_at: string;
  requested_by: string;
  pid: number | null;
  /** starting: spawned, no lock yet; running: it holds the run lock; refused: the lock was held (exit 11); exited: it ended. */
  status: 'starting' | 'running' | 'refused' | 'exited';
  exit_code: number | null;
  exited_at: string | null;
  /** The process's `error:` line, when it printed one. */
  error: string | null;
}

const RUN_START_HINT = 'records of runs started from the server are written atomically, so this one was changed outside metaspn: `metaspn doctor --repair` moves it to quarantine/';
const runStartShape = shape({ run_id: 'string', date: 'string', requested_at: 'string', status: 'string' });

export function runStartsDir(ws: WorkspacePaths): string {
  return join(ws.root, 'ops', 'runs');
}

function recordPath(ws: WorkspacePaths, runId: string): string {
  return join(runStartsDir(ws), `${runId}.json`);
}

/** The record of a run started from the server, or null. StateFileError (30) when it is damaged. */
export function readRunStart(ws: WorkspacePaths, runId: string): RunStart | null {
  return readStateJson<RunStart>(recordPath(ws, runId), runStartShape, RUN_START_HINT);
}

/** Every run-start record file (for doctor). */
export function runStartFiles(ws: WorkspacePaths): string[] {
  return safeReaddir(runStartsDir(ws))
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => join(runStartsDir(ws), f));
}

export function readRunStartFile(path: string): unknown {
  return readStateJson(path, runStartShape, RUN_START_HINT);
}

function write(ws: WorkspacePaths, r: RunStart): void {
  writeAtomicSync(recordPath(ws, r.run_id), `${JSON.stringify(r, null, 2)}\n`, SECRET_FILE_MODE);
}

function errorLine(path: string): string | null {
  try {
    return (
      safeReadFile(path)
        .split('\n')
        .find((l) => l.startsWith('error: '))
        ?.slice(7, 500) ?? null
    );
  } catch {
    // Missing, or a link (never read through): no line to show.
    return null;
  }
}

export interface StartRequest {
  /** The pipeline, whose run lock the start waits for. */
  pipeline: string;
  date: string;
  asOf: string | null;
  runId: string;
  by: string;
  /** The run's CLI arguments after the entry (`s1 run-local …`, `pipeline run NAME …`). */
  args: string[];
}

export interface StartAnswer {
  status: 202 | 409;
  body: Record<string, unknown>;
}

/** How long POST /api/runs waits for its run to take the run lock (or to end) before answering 202 anyway. Default 15 s. */
export const RUN_START_WAIT_MS = 15_000;

/**
 * Starts runs as detached processes, one start at a time. Each start waits until its process
 * holds the run lock (202), ends refused by the lock (409, recorded as refused: the run never
 * happened), or ends otherwise (202: its record or its manifests say how it ended). So ten
 * concurrent requests get one 202 and nine 409s, never ten 202s whose status URLs stay 404.
 */
export class RunStarter {
  /** The end of the last start queued (never its answer). */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly o: { ws: WorkspacePaths; bin: string; log: Logger; waitMs?: number; env?: NodeJS.ProcessEnv },
  ) {}

  start(req: StartRequest): Promise<StartAnswer> {
    const mine = this.chain.then(() => this.startOne(req));
    this.chain = mine.then(
      () => undefined,
      () => undefined,
    );
    return mine;
  }

  private holder(pipeline: string): string | null {
    const lock = readLockStatus(this.o.ws.locks, pipeline);
    return lock.held && lock.payload?.active === 1 ? `pid ${lock.payload.pid} since ${lock.payload.start_ts_utc}` : null;
  }

  private async startOne(req: StartRequest): Promise<StartAnswer> {
    const { ws, log } = this.o;
    const held = this.holder(req.pipeline);
    const rec: RunStart = {
      run_id: req.runId,
      date: req.date,
      as_of: req.asOf,
      requested_at: new Date().toISOString(),
      requested_by: req.by,
      pid: null,
      status: 'starting',
      exit_code: null,
      exited_at: null,
      error: null,
    };
    safeMkdir(runStartsDir(ws));
    if (held) {
      // Refused before a process is started; recorded all the same, so the status URL answers.
      const error = `the run lock is held by ${held}`;
      write(ws, { ...rec, status: 'refused', exited_at: rec.requested_at, error });
      return { status: 409, body: { error, run_id: req.runId, status_url: `/api/runs/${req.runId}` } };
    }
    write(ws, rec);
    const stderrPath = join(runStartsDir(ws), `${req.runId}.stderr`);
    const errFd = safeOpen(stderrPath, 'a', SECRET_FILE_MODE);
    let exit: { code: number | null } | null = null;
    try {
      const child = spawn(process.execPath, [this.o.bin, ...req.args], { detached: true, stdio: ['ignore', 'ignore', errFd], ...(this.o.env ? { env: { ...process.env, ...this.o.env } } : {}) });
      child.unref();
      rec.pid = child.pid ?? null;
      const ended = new Promise<void>((resolve) => {
        child.once('error', (err) => {
          exit = { code: null };
          rec.error = err.message;
          resolve();
        });
        child.once('exit', (code) => {
          exit = { code };
          resolve();
        });
      });
      // When the process ends (however long after the answer), its record says how.
      void ended.then(() => {
        try {
          const refused = rec.status === 'refused';
          Object.assign(rec, { status: refused ? 'refused' : 'exited', exit_code: exit?.code ?? null, exited_at: new Date().toISOString(), error: rec.error ?? errorLine(stderrPath) });
          write(ws, rec);
        } catch (err) {
          log.warn({ event: 'ops_run_record_failed', run_id: req.runId, error: (err as Error).message }, 'could not record how a run ended');
        }
      });
      write(ws, rec);
    } finally {
      closeSync(errFd);
    }
    const deadline = Date.now() + (this.o.waitMs ?? RUN_START_WAIT_MS);
    for (;;) {
      const lock = readLockStatus(ws.locks, req.pipeline);
      if (lock.held && lock.payload?.active === 1 && lock.payload.pid === rec.pid) {
        rec.status = 'running';
        write(ws, rec);
        break;
      }
      if (exit !== null) {
        const code = (exit as { code: number | null }).code;
        if (code === 11 && !findRun(ws, req.runId)) {
          rec.status = 'refused';
          const why = errorLine(stderrPath) ?? 'the run lock is held';
          write(ws, { ...rec, exit_code: 11, exited_at: new Date().toISOString(), error: why });
          log.info({ event: 'ops_run_refused', run_id: req.runId, date: req.date }, 'run refused: the run lock is held');
          return { status: 409, body: { error: why, run_id: req.runId, status_url: `/api/runs/${req.runId}` } };
        }
        break;
      }
      if (Date.now() > deadline) break;
      await sleep(25);
    }
    log.info({ event: 'ops_run_started', run_id: req.runId, date: req.date, pid: rec.pid }, 'run started from ops');
    return { status: 202, body: { run_id: req.runId, date: req.date, pid: rec.pid, status_url: `/api/runs/${req.runId}` } };
  }
}
