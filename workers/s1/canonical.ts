import { configure } from 'safe-stable-stringify';

/**
 * The stable stringification of a store row: keys sorted at every level, as S1-SPEC requires.
 * safe-stable-stringify gives the same bytes as fast-json-stable-stringify for plain JSON data
 * (test/unit/s1/canonical.test.ts checks it) at a third of the cost, which matters at 100k rows.
 * Ids and config_hash keep fast-json-stable-stringify, as the spec names it.
 */
const stable = configure({ deterministic: true, circularValue: TypeError, bigint: false });

export function canonicalJson(row: object): string {
  const text = stable(row);
  if (text === undefined) throw new TypeError('row is not serialisable');
  return text;
}
