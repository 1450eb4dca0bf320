/** Human output helpers: plain text that reads well in a terminal and in a cron mail. */
import { jsonDoc, type JsonObject } from '../json-doc.js';
import { invocation } from './invocation.js';
import { jsonText, visible } from '../strings.js';

export { isoTimes, jsonDoc, SCHEMA_VERSION, type JsonObject } from '../json-doc.js';

export function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Left-aligned columns; the last column is not padded. A cell is one line: its control characters are shown escaped ({@link visible}). */
export function table(cells: string[][]): string {
  const rows = cells.map((r) => r.map((c) => visible(c)));
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** Prints a `--json` document (an object: a list goes under a name, `{"runs": [...]}`), through {@link jsonDoc}. */
export function printJson<T extends object>(value: JsonObject<T>): void {
  // Remembered: a failure after it prints no second document.
  invocation().jsonPrinted = true;
  process.stdout.write(`${jsonText(jsonDoc(value))}\n`);
}

/** Whether this invocation printed a JSON document. */
export function jsonPrinted(): boolean {
  return invocation().jsonPrinted;
}

/** `truncate` and `visible` (src/strings.ts), where the commands import their formatting from. */
export { truncate, visible } from '../strings.js';

/**
 * Writes human output to stdout: every control character in `text` but its line feeds shown
 * escaped ({@link visible}), so text from data (a reason, a handler's error, an id) cannot move the
 * cursor, clear the screen, ring the bell, link, or reorder the line. The CLI's one printer for
 * stdout; a value that must stay on one line goes through `visible` first.
 */
export function printOut(text: string): void {
  process.stdout.write(visible(text, true));
}

/** {@link printOut} for stderr (warnings, progress lines, one-line errors). */
export function printErr(text: string): void {
  process.stderr.write(visible(text, true));
}
