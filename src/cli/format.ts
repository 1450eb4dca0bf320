/** Human output helpers: plain text that reads well in a terminal and in a cron mail. */
import { jsonDoc, type JsonObject } from '../json-doc.js';
import { invocation } from './invocation.js';

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

/** Left-aligned columns; the last column is not padded. */
export function table(rows: string[][]): string {
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
  process.stdout.write(`${JSON.stringify(jsonDoc(value), null, 2)}\n`);
}

/** Whether this invocation printed a JSON document. */
export function jsonPrinted(): boolean {
  return invocation().jsonPrinted;
}

/** `truncate` (src/strings.ts), where the commands import their formatting from. */
export { truncate } from '../strings.js';
