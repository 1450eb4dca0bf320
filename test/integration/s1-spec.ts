import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import stringify from 'fast-json-stable-stringify';

/**
 * S1-SPEC's digests written again from the spec's words, apart from workers/s1: the integration
 * tests check the ids the CLI writes against these, never against what the code prints.
 */

const sha16 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 16);

/** The inputs digest of `date` over the signals file at `path` (default as-of: the next midnight UTC). */
export function specInputsDigest(path: string, date: string, asOf?: string, windowDays = 28): string {
  const end = Date.parse(`${date}T00:00:00Z`);
  const first = new Date(end - (windowDays - 1) * 86_400_000).toISOString().slice(0, 10);
  const asOfMs = Date.parse(asOf ?? new Date(end + 86_400_000).toISOString());
  const used = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { signal_id: string; ts: string; subject_ref: string; kind: string; value?: number })
    .filter((s) => s.ts.slice(0, 10) >= first && s.ts.slice(0, 10) <= date && Date.parse(s.ts) < asOfMs)
    .sort((a, b) => Date.parse(a.ts) - Date.parse(b.ts) || (a.signal_id < b.signal_id ? -1 : a.signal_id > b.signal_id ? 1 : 0));
  return sha16(used.map((s) => `${stringify({ signal_id: s.signal_id, ts: s.ts, subject_ref: s.subject_ref, kind: s.kind, value: s.value ?? 1 })}\n`).join(''));
}

/** The counted digest over projection row ids. */
export function specCountedDigest(ids: readonly string[]): string {
  return sha16(
    [...ids]
      .sort()
      .map((id) => `${id}\n`)
      .join(''),
  );
}

/** The rows of a store file. */
export function storeRows(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The ids of the projection rows of `date` written under `params` (stage 2 params: no counted). */
export function projectionIds(path: string, date: string, params: Record<string, unknown>): string[] {
  const key = stringify(params);
  return storeRows(path)
    .filter((r) => r.date === date && stringify(r.params) === key)
    .map((r) => r.id as string);
}
