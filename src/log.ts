import { hostname } from 'node:os';
import pino, { type Logger } from 'pino';
import sonicBoom from 'sonic-boom';
import type { WorkspacePaths } from './storage/paths.js';
import { safeMkdir, safeOpen } from './storage/safe-path.js';
import { visible } from './strings.js';

export type { Logger };

// sonic-boom is CommonJS: its module object is the class, which also carries itself as .SonicBoom.
const { SonicBoom } = sonicBoom;

/** Bytes SonicBoom writes at once, at most (see openLog). */
const WRITE_MAX = 2 ** 20;
/** Characters of lines joined before they are handed to SonicBoom (see openLog). */
const BATCH_CHARS = 65_536;

/**
 * A line the terminal redraws in place (a live counter): a warning or an error printed meanwhile
 * clears it first and has it drawn again after, so the two never mix on one line.
 */
export interface StatusLine {
  clear(): void;
  redraw(): void;
}

export interface LogHandle {
  logger: Logger;
  /** The file it writes (logs/metaspn.jsonl of its workspace). */
  file: string;
  /** Writes what is buffered (at most `ms`); call before the process exits. */
  flush(ms?: number): Promise<void>;
  /** Writes what is buffered and closes the file (waits at most `ms`, default 2000); nothing may be logged after. */
  close(ms?: number): Promise<void>;
}

/**
 * Structured logs go to logs/metaspn.jsonl, one JSON event a line; warnings and errors also reach
 * the terminal as one readable line each. Level from METASPN_LOG_LEVEL (default info).
 *
 * Every line carries `pid` and `hostname`, and the fields of `base`, but for `base.cmd`: the command
 * line is logged once, on a `command_start` line of its own, not repeated on every line (the CLI
 * passes it to the first log it opens on a workspace). An error goes in `err` (an Error object: pino writes its type, message
 * and stack).
 *
 * The file stream is a SonicBoom made here rather than by pino.destination(): that one registers
 * an exit hook calling flushSync, which on a full disk retries forever (it sleeps and loops on any
 * error but EAGAIN), and a command must exit on a full disk with its one-line message. A write
 * error stops file logging with one warning on stderr; the terminal still gets warnings.
 */
export function openLog(ws: WorkspacePaths, base: Record<string, unknown>, opts: { quiet?: boolean; status?: StatusLine } = {}): LogHandle {
  const { cmd, ...fields } = base;
  safeMkdir(ws.logs);
  // Opened here, synchronously: a command that exits at once must not find its log still opening.
  // Never through a link (logs/metaspn.jsonl -> a file outside): that is refused, exit 30.
  // Up to 1 MiB a write (SonicBoom's default: 16 KiB): it writes one chunk at a time and the next
  // only on a later turn of the event loop, which a busy stage turns a few times a second: at 16
  // KiB a write, a million-signal run-local held 26 MB of unwritten `task_end` lines from its
  // scoring to its end.
  const file = new SonicBoom({ fd: safeOpen(ws.logFile, 'a'), sync: false, minLength: 4096, maxWrite: WRITE_MAX });
  let broken = false;
  // Closed by the command's end: a line logged later (a late callback) is dropped, not an error.
  let closed = false;
  file.on('error', (err: NodeJS.ErrnoException) => {
    if (broken) return;
    broken = true;
    process.stderr.write(`warning: ${ws.logFile}: ${err.code ?? err.message}; structured logging to the file stopped\n`);
  });
  // Lines are written in batches of 64 KiB; a process that then waits (a 30-day retry, a long task)
  // must not keep its last lines from someone tailing the log: what is buffered goes out within a second.
  let pending = false;
  // Lines are handed to the file stream a batch (~64 KiB) at a time, joined here: SonicBoom measures
  // the UTF-8 length of its whole unwritten chunk (a string grown by +=, up to WRITE_MAX) at each
  // write, which flattened that chunk once a line (half a second of CPU over 100k `task_end` lines
  // at 16 KiB); once a batch, it copies each MiB ~8 times over.
  // The same lines in the same order; what a crash can lose is unchanged (unwritten lines either way).
  let batch: string[] = [];
  let batchChars = 0;
  const pass = (): void => {
    if (batch.length === 0) return;
    const text = batch.length === 1 ? batch[0]! : batch.join('');
    batch = [];
    batchChars = 0;
    file.write(text);
  };
  const writeLine = (line: string): void => {
    if (broken || closed) return;
    pending = true;
    batch.push(line);
    batchChars += line.length;
    if (batchChars >= BATCH_CHARS) pass();
  };
  const tick = setInterval(() => {
    if (broken || closed || !pending) return;
    pending = false;
    try {
      pass();
      file.flush();
    } catch {
      // Being written or closed: the next tick, or the final flush, writes it.
    }
  }, 1000);
  tick.unref();
  const streams: pino.StreamEntry[] = [{ level: 'trace', stream: { write: writeLine } }];
  // Failed attempts shown on the terminal by this log (the file keeps every one).
  const shown = { failures: 0 };
  const toTerminal = (text: string): void => {
    if (text === '') return;
    opts.status?.clear();
    process.stderr.write(text);
    opts.status?.redraw();
  };
  if (!opts.quiet) streams.push({ level: 'warn', stream: { write: (line: string) => toTerminal(readable(line, shown)) } });
  const level = process.env.METASPN_LOG_LEVEL ?? 'info';
  const logger = pino({ level, base: { pid: process.pid, hostname: HOSTNAME, ...fields }, serializers: { err: serializeErr }, timestamp: isoTime }, pino.multistream(streams));
  if (cmd !== undefined) logger.info({ event: 'command_start', cmd }, 'command started');
  return {
    logger,
    file: ws.logFile,
    flush: (ms = 2000) =>
      new Promise<void>((resolve) => {
        if (broken || closed) return resolve();
        const t = setTimeout(resolve, ms);
        try {
          pass();
          file.flush(() => {
            clearTimeout(t);
            resolve();
          });
        } catch {
          clearTimeout(t);
          resolve();
        }
      }),
    close: (ms = 2000) =>
      new Promise<void>((resolve) => {
        clearInterval(tick);
        if (closed) return resolve();
        closed = true;
        const destroy = (): void => {
          try {
            file.destroy();
          } catch {
            // Already closed.
          }
        };
        // A log that failed (a full disk) writes nothing more: closed at once, never waited for.
        if (broken) return (destroy(), resolve());
        const t = setTimeout(resolve, ms);
        const done = (): void => {
          clearTimeout(t);
          resolve();
        };
        file.once('close', done);
        file.once('error', () => (destroy(), done()));
        try {
          pass();
          file.end();
        } catch {
          done();
        }
      }),
  };
}

const HOSTNAME = hostname();

let isoMs = NaN;
let isoField = '';
/**
 * pino's `isoTime` (`,"time":"<ISO date>"`), its text made once a millisecond: a run logs many
 * lines in the same one (100k `task_end` lines in a few seconds).
 */
function isoTime(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    isoField = `,"time":"${new Date(now).toISOString()}"`;
  }
  return isoField;
}

const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'cmd']);

/**
 * Events the CLI prints itself (or sums up: a stage's line counts its tasks): the terminal gets
 * them once, the log file keeps every one. A `task_end` of a failed attempt (it carries `err`) is
 * the exception: its message says it all (task, attempt n of m, the error, what happens next).
 */
const FILE_ONLY = new Set(['command_failed', 'task_end']);

/** Failed attempts a log shows on the terminal; the log file keeps every one. */
export const TERMINAL_FAILURES_MAX = 100;

function readable(line: string, shown: { failures: number }): string {
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    const level = Number(o.level) >= 50 ? 'error' : 'warning';
    if (o.event === 'task_end' && o.err !== undefined) {
      shown.failures++;
      if (shown.failures > TERMINAL_FAILURES_MAX) return '';
      const more = shown.failures === TERMINAL_FAILURES_MAX ? `warning: further failed attempts are logged to logs/metaspn.jsonl only (${TERMINAL_FAILURES_MAX} shown)\n` : '';
      return `${level}: ${visible(String(o.msg))}\n${more}`;
    }
    if (FILE_ONLY.has(String(o.event))) return '';
    const extra = Object.entries(o)
      .filter(([k]) => !HIDDEN.has(k))
      .map(([k, v]) => `${k}=${k === 'err' ? errText(v) : typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    // One line each: a handler's error or a name from data is shown with its control characters escaped.
    return `${level}: ${visible(String(o.msg))}${extra ? ` (${visible(extra)})` : ''}\n`;
  } catch {
    return visible(line, true);
  }
}

/**
 * pino's error serializer (type, message, stack, own fields), but an error's own `name` is its type:
 * what it says it is (`this.name = 'ContractError'`, or the class a handler's error had, as the
 * runner reads it from an isolate), where pino would write its constructor's name.
 */
function serializeErr(e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const out = pino.stdSerializers.err(e);
  return Object.hasOwn(e, 'name') && typeof e.name === 'string' && e.name !== '' ? { ...out, type: e.name } : out;
}

/** pino's serialized error ({type, message, stack}) as `Type: message`. */
function errText(v: unknown): string {
  const e = (typeof v === 'object' && v !== null ? v : {}) as { type?: unknown; message?: unknown };
  return `${typeof e.type === 'string' ? e.type : 'Error'}: ${typeof e.message === 'string' ? e.message : JSON.stringify(v)}`;
}

export const silentLogger: Logger = pino({ level: 'silent' });
