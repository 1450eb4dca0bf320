import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ArtifactStore } from '../../src/storage/store/artifact-store.js';
import { DateIndexFiles } from '../../src/storage/store/date-index.js';
import { tempDir } from '../temp.js';

describe('the store index meta, written over in place', () => {
  it('reads back what was written last, padded to the length it had', () => {
    const dir = join(tempDir('metaspn-index-'), 'idx');
    const index = new DateIndexFiles(dir);
    expect(index.meta()).toEqual({ covered: 0, counts: {} });
    index.setMeta({ covered: 123_456, counts: { '2026-01-01': 10, '2026-01-02': 20 } });
    const long = statSync(join(dir, 'meta.json')).size;
    index.setMeta({ covered: 7, counts: { '2026-01-01': 1 } });
    expect(index.meta()).toEqual({ covered: 7, counts: { '2026-01-01': 1 } });
    expect(statSync(join(dir, 'meta.json')).size).toBe(long);
    expect(readFileSync(join(dir, 'meta.json'), 'utf8').trimEnd()).toBe('{"covered":7,"counts":{"2026-01-01":1}}');
    index.setMeta({ covered: 99_999_999, counts: { '2026-01-01': 1, '2026-01-02': 2, '2026-01-03': 3 } });
    expect(index.meta()).toEqual({ covered: 99_999_999, counts: { '2026-01-01': 1, '2026-01-02': 2, '2026-01-03': 3 } });
  });

  it('keeps a store readable across processes: a new store object finds every row, none twice', async () => {
    const path = join(tempDir('metaspn-index-'), 'store', 'rows.jsonl');
    const row = (i: number): { id: string; date: string; p: string; text: string } => ({ id: `r${i}`, date: '2026-01-02', p: 'k', text: JSON.stringify({ id: `r${i}`, date: '2026-01-02', v: i }) });
    const a = new ArtifactStore(path);
    expect(await a.put(Array.from({ length: 20_000 }, (_, i) => row(i)))).toEqual({ written: 20_000, present: 0, conflicts: [] });
    expect(await a.put([row(20_000)])).toEqual({ written: 1, present: 0, conflicts: [] });
    await a.close();
    const b = new ArtifactStore(path);
    const warnings: string[] = [];
    const c = new ArtifactStore(path, (msg) => warnings.push(msg));
    expect(await b.put([row(5), row(20_001)])).toEqual({ written: 1, present: 1, conflicts: [] });
    expect((await c.has('2026-01-02', 'k', ['r0', 'r19999', 'r20000', 'r20001'])).missing).toEqual([]);
    expect((await c.digest('2026-01-02', 'k')).rows).toBe(20_002);
    expect(warnings).toEqual([]);
    await b.close();
    await c.close();
  });
});
