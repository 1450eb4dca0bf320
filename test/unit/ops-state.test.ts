// Pure and file-level rules of the ops server and the workspace state files: Host names, signature
// formats, event ids answered once, queues kept open, state files read with a shape check.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { EXIT } from '../../src/guard/exit-codes.js';
import { checkHost, hostName, hostPolicy } from '../../src/ops/host.js';
import { QueueHandles } from '../../src/ops/queue-handles.js';
import { EventMemory, sign, signRequest, verifySignature } from '../../src/ops/signature.js';
import { isUnrecoverable } from '../../src/runtime/worker-api.js';
import { manifestPath, readManifest } from '../../src/storage/manifest.js';
import { workspacePaths } from '../../src/storage/paths.js';
import { assertPointersReadable, pointerPath, readPointer } from '../../src/storage/pointers.js';
import { readRuns } from '../../src/storage/runs.js';
import { readStateJson, shape, StateFileError } from '../../src/storage/state-file.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'metaspn-unit-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('state files', () => {
  it('StateFileError is exit 30, names the file, and is never retried by the worker runtime', () => {
    const e = new StateFileError('/ws/x.json', 'not valid JSON', 'fix it');
    expect(e.exitCode).toBe(EXIT.STATE_CORRUPT);
    expect(e.message).toBe('/ws/x.json: not valid JSON');
    expect(isUnrecoverable(e)).toBe(true);
  });

  it('reads JSON with a shape check: missing is null; not JSON, wrong shape or a folder is StateFileError', () => {
    const d = tmp();
    const check = shape({ a: 'string', n: 'number', o: 'object', l: 'array' });
    expect(readStateJson(join(d, 'none.json'), check, 'h')).toBeNull();
    const cases: [string, RegExp][] = [
      ['{', /not valid JSON/],
      ['1', /not a JSON object \(number\)/],
      ['[]', /not a JSON object \(an array\)/],
      ['{"a":"x","n":1,"o":{}}', /field "l" is missing/],
      ['{"a":"x","n":"1","o":{},"l":[]}', /field "n" is not a number/],
      ['{"a":"x","n":1e999,"o":{},"l":[]}', /field "n" is not a number/],
      ['{"a":"x","n":1,"o":[],"l":[]}', /field "o" is not an object/],
    ];
    for (const [text, why] of cases) {
      writeFileSync(join(d, 'f.json'), text);
      expect(() => readStateJson(join(d, 'f.json'), check, 'h'), text).toThrow(why);
    }
    writeFileSync(join(d, 'f.json'), '{"a":"x","n":1,"o":{},"l":[]}');
    expect(readStateJson(join(d, 'f.json'), check, 'h')).toEqual({ a: 'x', n: 1, o: {}, l: [] });
    mkdirSync(join(d, 'dir.json'));
    expect(() => readStateJson(join(d, 'dir.json'), check, 'h')).toThrow(/is a folder/);
  });

  it('a pointer must name its own pipeline and date; a manifest must lie in the folder of its step, date and run', () => {
    const ws = workspacePaths(tmp());
    const p = pointerPath(ws, 's1', '2026-01-15');
    mkdirSync(join(p, '..'), { recursive: true });
    const ptr = { pipeline: 's1', date: '2026-01-15', run_id: 'r1', summary_id: 's', published_at: '2026-01-16T00:00:00Z', params: { as_of: 'a', config_hash: 'h' } };
    writeFileSync(p, JSON.stringify(ptr));
    expect(readPointer(ws, 's1', '2026-01-15')).toEqual(ptr);
    writeFileSync(p, JSON.stringify({ ...ptr, date: '2026-01-14' }));
    expect(() => readPointer(ws, 's1', '2026-01-15')).toThrow(/names s1 2026-01-14, not s1 2026-01-15/);
    expect(() => assertPointersReadable(ws, 's1')).toThrow(StateFileError);
    writeFileSync(p, JSON.stringify({ ...ptr, params: { as_of: 'a' } }));
    expect(() => readPointer(ws, 's1', '2026-01-15')).toThrow(/params: field "config_hash" is missing/);

    const m = {
      schema_version: 1,
      pipeline: 's1',
      run_id: 'r1',
      step: 'project_rewards',
      date: '2026-01-15',
      as_of: 'a',
      params: {},
      status: 'success',
      started_at: '2026-01-16T00:00:00Z',
      finished_at: '2026-01-16T00:00:01Z',
      duration_ms: 1000,
      tasks: {},
      inputs: [],
      outputs: [],
      checks: [],
      exit_code: 0,
    };
    const mp = manifestPath(ws, 'project_rewards', '2026-01-15', 'r1');
    mkdirSync(join(mp, '..'), { recursive: true });
    writeFileSync(mp, JSON.stringify(m));
    expect(readManifest(mp)).toEqual(m);
    const moved = manifestPath(ws, 'project_rewards', '2026-01-15', 'r2');
    mkdirSync(join(moved, '..'), { recursive: true });
    writeFileSync(moved, JSON.stringify(m));
    expect(() => readManifest(moved)).toThrow(/lies in project_rewards\/date=2026-01-15\/run=r2/);
    writeFileSync(moved, JSON.stringify({ ...m, run_id: 'r2', status: 'done' }));
    expect(() => readManifest(moved)).toThrow(/status "done"/);
    // readRuns: the good run is listed, the damaged manifest and the pointer named.
    const r = readRuns(ws);
    expect(r.runs.map((x) => x.run_id)).toEqual(['r1']);
    expect(r.problems.map((x) => `${x.kind} ${x.path}`).sort()).toEqual([
      `manifest ${join('manifests', 'project_rewards', 'date=2026-01-15', 'run=r2', 'manifest.json')}`,
      `pointer ${join('manifests', 'current', 's1', 'date=2026-01-15.json')}`,
    ]);
  });
});

describe('Host names', () => {
  it('parses Host headers and answers loopback names, IP addresses, the listen name and allowed names only', () => {
    expect(hostName('Example.COM.:8080')).toBe('example.com');
    expect(hostName('[::1]:4001')).toBe('::1');
    expect(hostName('[::1')).toBeNull();
    expect(hostName('a:b:c')).toBeNull();
    const p = hostPolicy('ops.internal', ['Metrics.Example.org']);
    for (const ok of [undefined, 'localhost', 'localhost:4001', 'app.localhost', '127.0.0.1:4001', '10.1.2.3', '[::1]:1', '[fe80::1]', 'ops.internal:4001', 'metrics.example.org'])
      expect(checkHost(p, ok), String(ok)).toBeNull();
    for (const bad of ['rebind.attacker.example', 'attacker.example:4001', 'localhost.attacker.example', 'ops.internal.attacker.example', '', ' ', 'x y'])
      expect(checkHost(p, bad), bad).not.toBeNull();
    expect(checkHost(hostPolicy('0.0.0.0', []), 'evil.example')).not.toBeNull();
  });
});

describe('signatures', () => {
  const secret = 'k';
  const body = '{"tasks":[]}';
  const at = 1_800_000_000;
  const ts = String(at);
  const req = (sig: string, o: { path?: string; t?: string } = {}) => ({ timestamp: o.t ?? ts, signature: sig, method: 'POST', path: o.path ?? '/api/queues/a/tasks', body });
  const v = (r: ReturnType<typeof req>, acceptLegacy = false) => verifySignature(secret, r, { toleranceSec: 300, acceptLegacy, nowMs: at * 1000 }).refused;

  it('version 2 signs timestamp, method, path and body, one per line; the same bytes for another path do not verify', () => {
    const good = signRequest(secret, ts, 'POST', '/api/queues/a/tasks', body);
    expect(v(req(good))).toBeNull();
    expect(v(req(`sha256=${good}`))).toBeNull();
    expect(v(req(good, { path: '/api/queues/b/tasks' }))).toBe('signature does not match');
    expect(v(req(good.toUpperCase()))).toMatch(/64 lower-case hex/);
    expect(v(req(`${good}00`))).toMatch(/64 lower-case hex/);
    expect(v(req(good, { t: `${ts}.0` }))).toMatch(/digits only/);
    expect(v(req(good, { t: `0x${at.toString(16)}` }))).toMatch(/digits only/);
    expect(v(req(signRequest(secret, String(at - 301), 'POST', '/api/queues/a/tasks', body), { t: String(at - 301) }))).toMatch(/tolerance/);
  });

  it('the legacy format (timestamp.body) verifies only when accepted explicitly', () => {
    const legacy = sign(secret, ts, body);
    expect(v(req(legacy))).toBe('signature does not match');
    expect(verifySignature(secret, req(legacy), { toleranceSec: 300, acceptLegacy: true, nowMs: at * 1000 })).toEqual({ refused: null, legacy: true });
  });
});

describe('EventMemory', () => {
  it('answers an event once per queue however many arrive together; a failure is not remembered', async () => {
    const ws = workspacePaths(tmp());
    const m = new EventMemory(ws);
    try {
      let produced = 0;
      const produce = async () => {
        produced++;
        await new Promise((r) => setTimeout(r, 5));
        return { status: 201, body: { worker: 'a', n: produced } };
      };
      const all = await Promise.all(Array.from({ length: 20 }, () => m.once('a', 'evt', produce)));
      expect(produced).toBe(1);
      expect(all.filter((x) => !x.replayed)).toHaveLength(1);
      expect(new Set(all.map((x) => JSON.stringify(x.answer)))).toEqual(new Set([JSON.stringify({ status: 201, body: { worker: 'a', n: 1 } })]));
      // Another queue, same event id: another event.
      expect((await m.once('b', 'evt', async () => ({ status: 201, body: { worker: 'b' } }))).replayed).toBe(false);
      // A refusal (429) is not remembered: the sender may try again.
      expect((await m.once('c', 'e2', async () => ({ status: 429, body: {} }))).replayed).toBe(false);
      expect((await m.once('c', 'e2', async () => ({ status: 201, body: { worker: 'c' } }))).answer.status).toBe(201);
      // A failing producer lets the next one run.
      await expect(m.once('d', 'e3', async () => Promise.reject(new Error('disk')))).rejects.toThrow('disk');
      expect((await m.once('d', 'e3', async () => ({ status: 201, body: { worker: 'd' } }))).replayed).toBe(false);
    } finally {
      m.close();
    }
  });

  it('a damaged event record is a StateFileError, never a silent second enqueue', async () => {
    const ws = workspacePaths(tmp());
    const m = new EventMemory(ws);
    try {
      await m.once('a', 'evt', async () => ({ status: 201, body: { worker: 'a' } }));
      const dir = join(ws.root, 'ops', 'events', 'a');
      writeFileSync(
        join(
          dir,
          readdirSync(dir).find((f) => f.endsWith('.json'))!,
        ),
        '{"event_id":',
      );
      let ran = false;
      await expect(m.once('a', 'evt', async () => ((ran = true), { status: 201, body: {} }))).rejects.toThrow(StateFileError);
      expect(ran).toBe(false);
    } finally {
      m.close();
    }
  });
});

describe('QueueHandles', () => {
  it('opens a queue once and keeps it; beyond the cap the least recently used idle one is closed', async () => {
    const ws = workspacePaths(tmp());
    const h = new QueueHandles(ws, loadConfig(ws), pino({ level: 'silent' }), 2);
    try {
      const seen = new Map<string, unknown>();
      for (const w of ['a', 'b', 'a', 'b']) {
        await h.use(w, async (q) => {
          if (seen.has(w)) expect(q).toBe(seen.get(w));
          seen.set(w, q);
          await q.enqueue([{ id: `t-${w}-${Math.random().toString(36).slice(2)}`, payload: 1 }]);
        });
      }
      const a = seen.get('a');
      await h.use('c', async (q) => q.stats());
      // 'a' was the least recently used: reopened now, a new handle.
      await h.use('a', async (q) => expect(q).not.toBe(a));
    } finally {
      await h.closeAll();
    }
  });
});
