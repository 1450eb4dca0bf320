import { createHash } from 'node:crypto';
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

  it('digests the rows of a date and params as sha256 of their lines in id order, over several windows of the file', async () => {
    const path = join(tempDir('metaspn-index-'), 'store', 'rows.jsonl');
    const store = new ArtifactStore(path);
    // 48k rows of ~250 bytes (more than one 8 MiB window), ids scattered against the write order,
    // lengths varying, some not ASCII; rows of another params and another date in between.
    const id = (i: number): string => `x${createHash('sha256').update(String(i)).digest('hex').slice(0, 12)}`;
    const mine: { id: string; text: string }[] = [];
    for (let slice = 0; slice < 6; slice++) {
      const rows = [];
      for (let i = slice * 8000; i < (slice + 1) * 8000; i++) {
        const text = JSON.stringify({ id: id(i), pad: 'é'.repeat(i % 7) + 'a'.repeat(200 + (i % 50)) });
        rows.push({ id: id(i), date: '2026-01-02', p: 'k', text });
        mine.push({ id: id(i), text });
        if (i % 1000 === 0) rows.push({ id: `other${i}`, date: '2026-01-02', p: 'other', text: `{"o":${i}}` }, { id: `d${i}`, date: '2026-01-03', p: 'k', text: `{"d":${i}}` });
      }
      expect((await store.put(rows)).conflicts).toEqual([]);
    }
    const h = createHash('sha256');
    for (const r of [...mine].sort((a, b) => (a.id < b.id ? -1 : 1))) h.update(`${r.text}\n`);
    expect(await store.digest('2026-01-02', 'k')).toEqual({ rows: 48_000, sha256: h.digest('hex') });
    expect((await store.digest('2026-01-02', 'other')).rows).toBe(48);
    expect(await store.digest('2026-01-04', 'k')).toEqual({ rows: 0, sha256: createHash('sha256').digest('hex') });
    await store.close();
  });
  it('writes a group commit as its rows encoded once: the bytes, lengths and hashes of what was kept, nothing of a refused put', async () => {
    const path = join(tempDir('metaspn-index-'), 'store', 'rows.jsonl');
    const store = new ArtifactStore(path);
    const row = (id: string, v: string, date = '2026-01-02'): { id: string; date: string; p: string; text: string } => ({ id, date, p: 'k', text: JSON.stringify({ id, v }) });
    expect(await store.put([row('a', 'first')])).toEqual({ written: 1, present: 0, conflicts: [] });
    // One turn of the event loop: one commit of four puts. Texts of 2- and 4-byte characters (more
    // bytes than characters: the commit's buffer grows), a put refused for a conflict, a put with
    // an id twice and a row already stored.
    const wide = 'é'.repeat(3000) + '😀'.repeat(3000);
    const [p1, p2, p3, p4] = await Promise.all([
      store.put([row('b', wide), row('c', 'plain', '2026-01-03')]),
      store.put([row('d', 'refused'), row('a', 'other content')]),
      store.put([row('e', 'twice'), row('e', 'twice'), row('a', 'first')]),
      store.put([row('f', `${wide}!`)]),
    ]);
    expect(p1).toEqual({ written: 2, present: 0, conflicts: [] });
    expect(p2).toEqual({ written: 0, present: 0, conflicts: [{ id: 'a', existing: row('a', 'first').text, incoming: row('a', 'other content').text }] });
    expect(p3).toEqual({ written: 1, present: 2, conflicts: [] });
    expect(p4).toEqual({ written: 1, present: 0, conflicts: [] });
    await store.close();
    const kept = [row('a', 'first'), row('b', wide), row('c', 'plain', '2026-01-03'), row('e', 'twice'), row('f', `${wide}!`)];
    const bytes = readFileSync(path);
    expect(bytes.equals(Buffer.from(kept.map((r) => `${r.text}\n`).join('')))).toBe(true);
    // The index files: each row where it is, its length in bytes with the newline, the hash of its text.
    const dir = join(path, '..', '.index', 'rows');
    const entries = ['2026-01-02', '2026-01-03'].flatMap((d) => new DateIndexFiles(dir).read(d, d === '2026-01-02' ? 4 : 1) ?? []);
    let o = 0;
    const expected = new Map<string, { o: number; l: number; h: string }>();
    for (const r of kept) {
      const l = Buffer.byteLength(r.text) + 1;
      expected.set(r.id, { o, l, h: createHash('sha256').update(r.text).digest('hex').slice(0, 16) });
      o += l;
    }
    expect(new Map(entries.map((e) => [e.id, { o: e.o, l: e.l, h: e.h }]))).toEqual(expected);
    expect(new DateIndexFiles(dir).meta()).toEqual({ covered: bytes.length, counts: { '2026-01-02': 4, '2026-01-03': 1 } });
    // A store opened afresh finds them present with the same content, and the conflict still refused.
    const again = new ArtifactStore(path);
    expect(await again.put([row('b', wide), row('f', `${wide}!`)])).toEqual({ written: 0, present: 2, conflicts: [] });
    expect((await again.put([row('e', 'changed')])).conflicts.map((c) => c.id)).toEqual(['e']);
    expect((await again.textsFor('2026-01-02', 'k')).map((t) => t.text)).toEqual(kept.filter((r) => r.date === '2026-01-02').map((r) => r.text));
    await again.close();
    expect(readFileSync(path).equals(bytes)).toBe(true);
  });

  it("keeps a commit's new rows out of its index when their put is refused or the commit fails, and finds a row of the same commit by its id", async () => {
    const path = join(tempDir('metaspn-index-'), 'store', 'rows.jsonl');
    const store = new ArtifactStore(path);
    const row = (id: string, v: string): { id: string; date: string; p: string; text: string } => ({ id, date: '2026-01-02', p: 'k', text: JSON.stringify({ id, v }) });
    expect(await store.put([row('a', 'first')])).toEqual({ written: 1, present: 0, conflicts: [] });
    // One commit: a put refused (its 'x' is not kept, so a later put of the commit writes its own
    // 'x'); a row of an earlier put of the commit met again with other content (a conflict naming
    // the text in the commit's buffer) and with the same (present).
    const wide = 'é'.repeat(50);
    const [p1, p2, p3, p4] = await Promise.all([
      store.put([row('x', 'refused'), row('a', 'other')]),
      store.put([row('x', 'kept'), row('y', wide)]),
      store.put([row('z', 'z'), row('y', 'changed')]),
      store.put([row('y', wide)]),
    ]);
    expect(p1).toEqual({ written: 0, present: 0, conflicts: [{ id: 'a', existing: row('a', 'first').text, incoming: row('a', 'other').text }] });
    expect(p2).toEqual({ written: 2, present: 0, conflicts: [] });
    expect(p3).toEqual({ written: 0, present: 0, conflicts: [{ id: 'y', existing: row('y', wide).text, incoming: row('y', 'changed').text }] });
    expect(p4).toEqual({ written: 0, present: 1, conflicts: [] });
    // A commit that fails before its rows are durable leaves nothing behind: the same rows put
    // again are written, not found present.
    const s = store as unknown as { appendBytes: (b: Buffer, start: number) => void };
    const append = s.appendBytes;
    s.appendBytes = () => {
      throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    };
    await expect(store.put([row('n', 'new'), row('z', 'z')])).rejects.toThrow('no space left');
    s.appendBytes = append;
    expect(await store.put([row('n', 'new'), row('z', 'z')])).toEqual({ written: 2, present: 0, conflicts: [] });
    expect((await store.has('2026-01-02', 'k', ['a', 'x', 'y', 'z', 'n'])).missing).toEqual([]);
    await store.close();
    const kept = [row('a', 'first'), row('x', 'kept'), row('y', wide), row('n', 'new'), row('z', 'z')];
    expect(readFileSync(path, 'utf8')).toBe(kept.map((r) => `${r.text}\n`).join(''));
    const again = new ArtifactStore(path);
    expect((await again.textsFor('2026-01-02', 'k')).map((t) => t.text)).toEqual(kept.map((r) => r.text));
    await again.close();
  });

  it('makes its folder again when another process removed it between commits', () => {
    const dir = join(tempDir('metaspn-index-'), 'idx');
    const index = new DateIndexFiles(dir);
    const e = { id: 'a', p: 'k', o: 0, l: 2, h: '0123456789abcdef' };
    index.append(new Map([['2026-01-02', [e]]]));
    index.setMeta({ covered: 2, counts: { '2026-01-02': 1 } });
    new DateIndexFiles(dir).clear();
    index.append(new Map([['2026-01-02', [e]]]));
    expect(index.read('2026-01-02', 1)).toEqual([e]);
    new DateIndexFiles(dir).clear();
    index.setMeta({ covered: 2, counts: { '2026-01-02': 1 } });
    expect(index.meta()).toEqual({ covered: 2, counts: { '2026-01-02': 1 } });
  });
});
