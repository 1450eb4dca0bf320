import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { workspacePaths } from '../../../src/storage/paths.js';
import { resolveS1Config } from '../../../workers/s1/config.js';
import { ReplayConflictError, S1Context, STORE_FILES } from '../../../workers/s1/context.js';
import { makeParams } from '../../../workers/s1/ids.js';
import { tempDir } from '../../temp.js';

const params = makeParams('2026-01-03T00:00:00.000Z', '0123456789abcdef', 'e3b0c44298fc1c14');
const DATE = '2026-01-02';

/** A stage-2-like output of n rows; `odd` changes the content of one row. */
function rowsOf(n: number, odd = -1): { id: string; text: string }[] {
  return Array.from({ length: n }, (_, i) => {
    const id = `rwd_${String(i).padStart(24, '0')}`;
    return { id, text: JSON.stringify({ date: DATE, id, projected_units: i === odd ? -1 : i, stage: 'project_rewards', subject_ref: `s${i}` }) };
  });
}

function open(dir: string): S1Context {
  const ws = workspacePaths(dir);
  return new S1Context(ws, resolveS1Config({}, 'metaspn.config.json'), pino({ level: 'silent' }));
}

describe('S1Context.putEach on files, past one slice of rows', () => {
  it('writes the rows in order, byte for byte as one put; a second put finds them all present', async () => {
    const dir = tempDir('metaspn-s1-slices-');
    const rows = rowsOf(40_000);
    const s1 = open(dir);
    try {
      expect(await s1.putEach('project_rewards', DATE, params, rows, (r) => r)).toEqual({ written: 40_000, present: 0, conflicts: [] });
      expect(await s1.putEach('project_rewards', DATE, params, rows, (r) => r)).toEqual({ written: 0, present: 40_000, conflicts: [] });
      expect(s1.written('project_rewards', DATE)).toEqual({ written: 40_000, present: 40_000 });
      expect((await s1.digest('project_rewards', DATE, params)).rows).toBe(40_000);
    } finally {
      await s1.close();
    }
    const file = readFileSync(join(dir, 'store', STORE_FILES.project_rewards), 'utf8');
    expect(file).toBe(rows.map((r) => `${r.text}\n`).join(''));
  });

  it('stops at the slice holding a conflict (exit 30), overwriting nothing; the slices before it are written', async () => {
    const dir = tempDir('metaspn-s1-slices-');
    const s1 = open(dir);
    const stored = [...rowsOf(20_000), rowsOf(35_001)[35_000]!];
    try {
      await s1.putEach('project_rewards', DATE, params, stored, (r) => r);
      const err = await s1.putEach('project_rewards', DATE, params, rowsOf(40_000, 35_000), (r) => r).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ReplayConflictError);
      // Slices of 16,384 rows: the first present, the second written (rows 20,000–32,767), the third held the conflict.
      expect((await s1.digest('project_rewards', DATE, params)).rows).toBe(32_769);
    } finally {
      await s1.close();
    }
    const file = readFileSync(join(dir, 'store', STORE_FILES.project_rewards), 'utf8');
    expect(file).toBe([...stored, ...rowsOf(32_768).slice(20_000)].map((r) => `${r.text}\n`).join(''));
  });
});
