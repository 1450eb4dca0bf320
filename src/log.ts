import { mkdirSync, openSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import type { WorkspacePaths } from './storage/paths.js';

export type { Logger };

export interface LogHandle {
  logger: Logger;
  /** Writes what is buffered; call before the process exits. */
  flush(): void;
}

/**
 * Structured logs go to logs/metaspn.jsonl, one JSON event a line; warnings and errors also reach
 * the terminal as one readable line each. Level from METASPN_LOG_LEVEL (default info).
 */
export function openLog(ws: WorkspacePaths, base: Record<string, unknown>, opts: { quiet?: boolean } = {}): LogHandle {
  mkdirSync(ws.logs, { recursive: true });
  // Opened here, synchronously: a command that exits at once must not find its log still opening.
  const file = pino.destination({ dest: openSync(ws.logFile, 'a'), sync: false, minLength: 4096 });
  const streams: pino.StreamEntry[] = [{ level: 'trace', stream: file }];
  if (!opts.quiet) streams.push({ level: 'warn', stream: { write: (line: string) => process.stderr.write(readable(line)) } });
  const level = process.env.METASPN_LOG_LEVEL ?? 'info';
  const logger = pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, pino.multistream(streams));
  return {
    logger,
    flush: () => {
      try {
        file.flushSync();
      } catch {
        // nothing buffered, or the file is gone: nothing to save
      }
    },
  };
}

const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'cmd']);

/** Events the CLI prints itself: the terminal gets them once, the log file keeps them. */
const FILE_ONLY = new Set(['command_failed']);

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
