import pino, { type Logger } from 'pino';
import sonicBoom from 'sonic-boom';
import type { WorkspacePaths } from './storage/paths.js';
import { safeMkdir, safeOpen } from './storage/safe-path.js';

export type { Logger };

// sonic-boom is CommonJS: its module object is the class, which also carries itself as .SonicBoom.
const { SonicBoom } = sonicBoom;

export interface LogHandle {
  logger: Logger;
  /** Writes what is buffered (at most `ms`); call before the process exits. */
  flush(ms?: number): Promise<void>;
}

/**
 * Structured logs go to logs/metaspn.jsonl, one JSON event a line; warnings and errors also reach
 * the terminal as one readable line each. Level from METASPN_LOG_LEVEL (default info).
 *
 * The file stream is a SonicBoom made here rather than by pino.destination(): that one registers
 * an exit hook calling flushSync, which on a full disk retries forever (it sleeps and loops on any
 * error but EAGAIN), and a command must exit on a full disk with its one-line message. A write
 * error stops file logging with one warning on stderr; the terminal still gets warnings.
 */
export function openLog(ws: WorkspacePaths, base: Record<string, unknown>, opts: { quiet?: boolean } = {}): LogHandle {
  safeMkdir(ws.logs);
  // Opened here, synchronously: a command that exits at once must not find its log still opening.
  // Never through a link (logs/metaspn.jsonl -> a file outside): that is refused, exit 30.
  const file = new SonicBoom({ fd: safeOpen(ws.logFile, 'a'), sync: false, minLength: 4096 });
  let broken = false;
  file.on('error', (err: NodeJS.ErrnoException) => {
    if (broken) return;
    broken = true;
    process.stderr.write(`warning: ${ws.logFile}: ${err.code ?? err.message}; structured logging to the file stopped\n`);
  });
  // Lines are written in batches of 4 KiB; a process that then waits (a 30-day retry, a long task)
  // must not keep its last lines from someone tailing the log: what is buffered goes out within a second.
  let pending = false;
  const tick = setInterval(() => {
    if (broken || !pending) return;
    pending = false;
    try {
      file.flush();
    } catch {
      // Being written or closed: the next tick, or the final flush, writes it.
    }
  }, 1000);
  tick.unref();
  const streams: pino.StreamEntry[] = [{ level: 'trace', stream: { write: (line: string) => void (broken || ((pending = true), file.write(line))) } }];
  if (!opts.quiet) streams.push({ level: 'warn', stream: { write: (line: string) => process.stderr.write(readable(line)) } });
  const level = process.env.METASPN_LOG_LEVEL ?? 'info';
  const logger = pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, pino.multistream(streams));
  return {
    logger,
    flush: (ms = 2000) =>
      new Promise<void>((resolve) => {
        if (broken) return resolve();
        const t = setTimeout(resolve, ms);
        try {
          file.flush(() => {
            clearTimeout(t);
            resolve();
          });
        } catch {
          clearTimeout(t);
          resolve();
        }
      }),
  };
}

const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'cmd']);

/**
 * Events the CLI prints itself (or sums up: a stage's line counts its tasks): the terminal gets
 * them once, the log file keeps every one.
 */
const FILE_ONLY = new Set(['command_failed', 'task_end']);

function readable(line: string): string {
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    if (FILE_ONLY.has(String(o.event))) return '';
    const level = Number(o.level) >= 50 ? 'error' : 'warning';
    const extra = Object.entries(o)
      .filter(([k]) => !HIDDEN.has(k))
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    return `${level}: ${String(o.msg)}${extra ? ` (${extra})` : ''}\n`;
  } catch {
    return line;
  }
}

export const silentLogger: Logger = pino({ level: 'silent' });
