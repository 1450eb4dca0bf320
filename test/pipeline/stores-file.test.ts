import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../temp.js';
import { FileStores } from '../../src/pipeline/stores.js';
import { workspacePaths, type WorkspacePaths } from '../../src/storage/paths.js';
import type { StoredRow } from '../../src/pipeline/types.js';
import { describeStoresBackend } from './stores-conformance.js';

const roots = new WeakMap<object, WorkspacePaths>();

describeStoresBackend('file', {
  open: () => {
    const ws = workspacePaths(tempDir('metaspn-stores-'));
    const s = new FileStores(ws);
    roots.set(s, ws);
    return Promise.resolve(s);
  },
  reopen: async (s) => {
    const ws = roots.get(s)!;
    await s.close();
    const again = new FileStores(ws);
    roots.set(again, ws);
    return again;
  },
});

describe('file stores, read-only (what doctor reads through)', () => {
  it('reads the same rows and digest straight from the file, writes nothing, and refuses a put', async () => {
    const ws = workspacePaths(tempDir('metaspn-stores-ro-'));
    const rw = new FileStores(ws);
    const row = (key: string, identity: string): StoredRow => ({ key, v: key.length, id: `row_${key}_${identity}`, step: 'load', date: '2026-01-02', identity });
    await rw.rows('demo', 'load').put([row('b', 'i1'), row('a', 'i1'), row('c', 'i2')]);
    const want = { rows: await rw.rows('demo', 'load').rows('2026-01-02', 'i1'), digest: await rw.rows('demo', 'load').digest('2026-01-02', 'i1') };
    await rw.close();
    const before = snapshot(ws.store);
    const ro = new FileStores(ws, undefined, true);
    expect(await ro.rows('demo', 'load').rows('2026-01-02', 'i1')).toEqual(want.rows);
    expect(await ro.rows('demo', 'load').digest('2026-01-02', 'i1')).toEqual(want.digest);
    expect(await ro.rows('demo', 'load').rows('2026-01-03', 'i1')).toEqual([]);
    await expect(ro.rows('demo', 'load').put([row('d', 'i1')])).rejects.toThrow(/read-only/);
    await ro.close();
    expect(snapshot(ws.store)).toEqual(before);
  });
});

describe('file stores: rows indexed by what reads them back', () => {
  const row = (key: string, identity: string): StoredRow => ({ key, v: key.length, id: `row_${key}_${identity}`, step: 'load', date: '2026-01-02', identity });

  it('the rows of a step read back under their identity after the store index is rebuilt, and after another process wrote them', async () => {
    const ws = workspacePaths(tempDir('metaspn-stores-idx-'));
    const a = new FileStores(ws);
    await a.rows('demo', 'load').put([row('a', 'i1'), row('b', 'i1'), row('c', 'i2')]);
    const want = { rows: await a.rows('demo', 'load').rows('2026-01-02', 'i1'), digest: await a.rows('demo', 'load').digest('2026-01-02', 'i1') };
    expect(want.rows).toHaveLength(2);
    // Another process (another FileStores) writes while `a` has the date cached: `a` catches up from the file.
    const b = new FileStores(ws);
    await b.rows('demo', 'load').put([row('d', 'i1')]);
    await b.close();
    expect((await a.rows('demo', 'load').rows('2026-01-02', 'i1')).map((r) => r.key)).toEqual(['a', 'b', 'd']);
    await a.close();
    // The index lost (a restore, a hand edit): rebuilt from the store file, every row under its identity.
    rmSync(join(ws.store, '.index'), { recursive: true, force: true });
    const c = new FileStores(ws);
    expect((await c.rows('demo', 'load').rows('2026-01-02', 'i1')).map((r) => r.key)).toEqual(['a', 'b', 'd']);
    expect((await c.rows('demo', 'load').rows('2026-01-02', 'i2')).map((r) => r.key)).toEqual(['c']);
    const again = await c.rows('demo', 'load').put([row('a', 'i1')]);
    expect(again).toMatchObject({ written: 0, present: 1 });
    await c.close();
  });
});

/** Every file below `dir` with its bytes and mtime: what a reader must leave as it was. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out[p] = `${statSync(p).mtimeMs}:${readFileSync(p).toString('base64')}`;
  }
  return out;
}
