// Promise 4: a torn last line in any file is detected, set aside and reported, never fatal, and
// never dropped with the good lines before it. One test per file kind, through the real CLI.
import { appendFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_INPUTS, ROOT, tempWorkspace, type Run } from './cli.js';
import { cliIn } from './in-process.js';

const WORKERS = join(ROOT, 'test', 'fixtures', 'workers.mjs');
const spec = (exportName: string): string => `${WORKERS}:${exportName}`;
const DATE = '2026-01-15';
const NO_STACK = /\n\s+at \S+/;

interface Stats {
  ready: number;
  scheduled: number;
  leased: number;
  completed: number;
  dead: number;
}

async function stats(ws: string, queue: string): Promise<Stats> {
  const r = await cliIn(['queue', 'stats', queue, '--workspace', ws, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Stats;
}

function executions(ws: string): string[] {
  const f = join(ws, 'executions.log');
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : [];
}

function lines(ids: string[]): string {
  return ids.map((id) => JSON.stringify({ id, payload: { id } })).join('\n') + '\n';
}

async function enqueue(ws: string, queue: string, ids: string[]): Promise<void> {
  const f = join(ws, `${queue}-${ids[0]}.jsonl`);
  writeFileSync(f, lines(ids));
  const r = await cliIn(['queue', 'enqueue', queue, '--workspace', ws, '--file', f]);
  expect(r.code, r.stderr).toBe(0);
}

interface Quarantined {
  file: string;
  offset: number;
  length: number;
  reason: string;
  bytes_base64: string;
}

function quarantined(file: string): Quarantined[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Quarantined);
}

function runLocal(ws: string): Promise<Run> {
  return cliIn(['s1', 'run-local', '--workspace', ws, '--date', DATE]);
}

const STORE_FILES = ['s1_attention_scores.jsonl', 's1_reward_projections.jsonl', 's1_settlements.jsonl', 's1_summaries.jsonl'];

/** The file's JSON, or null when it is missing or does not parse. */
function readJson(f: string): unknown {
  try {
    return JSON.parse(readFileSync(f, 'utf8'));
  } catch {
    return null;
  }
}

/** A contract failure: the quickest way to a dead letter. Returns the dead-letter file. */
async function deadLetter(ws: string, id: string): Promise<string> {
  await enqueue(ws, 'contract', [id]);
  const r = await cliIn(['worker', 'run', spec('Contract'), '--workspace', ws, '--once']);
  expect(r.code, r.stderr).toBe(20);
  const f = join(ws, 'deadletter', 'contract', `${id}.json`);
  expect(existsSync(f)).toBe(true);
  return f;
}

describe('torn last lines', () => {
  it('queue log: stats still works, worker run cuts the torn tail into quarantine/corrupt.jsonl and keeps every good line', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(ws, 'ok', ['q1', 'q2', 'q3']);
    const log = join(ws, 'queue', 'ok', 'log.000001.jsonl');
    const good = readFileSync(log);
    // Half of a record, as a writer killed mid-append leaves it: no newline.
    const torn = '{"c":"0badf00d","r":{"t":"enq","n":3,"at":17';
    appendFileSync(log, torn);

    expect(await stats(ws, 'ok')).toMatchObject({ ready: 3, leased: 0, completed: 0, dead: 0 });

    const r = await cliIn(['worker', 'run', spec('Succeed'), '--workspace', ws, '--once']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^worker ok: claimed 3, completed 3 in /);
    expect(r.stderr).toMatch(/torn last line set aside .*offset=\d+ length=\d+/);
    expect(
      executions(ws)
        .map((l) => l.split(' ')[1])
        .sort(),
    ).toEqual(['q1', 'q2', 'q3']);

    const [entry, ...more] = quarantined(join(ws, 'queue', 'ok', 'quarantine', 'corrupt.jsonl'));
    expect(more).toEqual([]);
    expect(entry).toMatchObject({ file: log, offset: good.length, length: Buffer.byteLength(torn) });
    expect(Buffer.from(entry!.bytes_base64, 'base64').toString('utf8')).toBe(torn);

    const after = readFileSync(log);
    expect(after.subarray(0, good.length).equals(good)).toBe(true);
    expect(after.toString('utf8')).not.toContain(torn);
    expect(after.at(-1)).toBe(0x0a);
    for (const line of after.toString('utf8').split('\n').filter(Boolean)) expect(JSON.parse(line)).toHaveProperty('r');

    // The queue goes on: a new task lands after the cut, not glued onto the torn bytes.
    await enqueue(ws, 'ok', ['q4']);
    expect(await stats(ws, 'ok')).toMatchObject({ ready: 1, leased: 0, completed: 3, dead: 0 });
  });

  it('store file: a re-run sets the torn row aside in quarantine/ and keeps the stored rows intact (exit 0)', async () => {
    const ws = tempWorkspace();
    const first = await runLocal(ws);
    expect(first.code, first.stderr).toBe(0);
    const before = Object.fromEntries(STORE_FILES.map((f) => [f, readFileSync(join(ws, 'store', f), 'utf8')]));
    expect(before['s1_attention_scores.jsonl']!.split('\n').filter(Boolean).length).toBeGreaterThan(0);

    const scores = join(ws, 'store', 's1_attention_scores.jsonl');
    const torn = `{"id":"att_torn","date":"${DATE}","sco`;
    appendFileSync(scores, torn);

    const again = await runLocal(ws);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`published: manifests/current/s1/date=${DATE}.json`);
    expect(again.stderr).toMatch(/torn last line of a store file set aside in quarantine\//);
    // Same rows, byte for byte: none lost, none duplicated, the torn bytes gone.
    for (const f of STORE_FILES) expect(readFileSync(join(ws, 'store', f), 'utf8'), f).toBe(before[f]);

    const [entry, ...more] = quarantined(join(ws, 'quarantine', 's1_attention_scores.jsonl.torn.jsonl'));
    expect(more).toEqual([]);
    expect(entry).toMatchObject({ file: scores, offset: Buffer.byteLength(before['s1_attention_scores.jsonl']!), length: Buffer.byteLength(torn) });
    expect(Buffer.from(entry!.bytes_base64, 'base64').toString('utf8')).toBe(torn);
  });

  it('inputs file: a last line cut mid-JSON exits 20 naming s1_signals.jsonl and its line; nothing is written to store/', async () => {
    const demo = readFileSync(DEMO_INPUTS, 'utf8');
    const body = demo.replace(/\n$/, '');
    const lastLine = body.split('\n').length;
    const cut = body.slice(0, body.length - 30);
    const ws = tempWorkspace({ signals: cut });

    const r = await runLocal(ws);
    expect(r.code).toBe(20);
    expect(r.stderr).toContain(`${join(ws, 'inputs', 's1_signals.jsonl')}:${lastLine}: not valid JSON`);
    expect(r.stderr).not.toMatch(NO_STACK);
    const stored = existsSync(join(ws, 'store')) ? readdirSync(join(ws, 'store')).filter((f) => f.endsWith('.jsonl')) : [];
    expect(stored).toEqual([]);
    expect(existsSync(join(ws, 'manifests', 'current'))).toBe(false);
  });

  it('enqueue file: a last line cut mid-JSON exits 20 naming the file and line; nothing is enqueued', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(ws, 'ok', ['before']);
    const f = join(ws, 'cut.jsonl');
    writeFileSync(f, lines(['e1', 'e2', 'e3']) + '{"id":"e4","payl');

    const r = await cliIn(['queue', 'enqueue', 'ok', '--workspace', ws, '--file', f]);
    expect(r.code).toBe(20);
    expect(r.stderr).toContain(`${f}:4: not valid JSON`);
    expect(r.stderr).not.toMatch(NO_STACK);
    expect(await stats(ws, 'ok')).toMatchObject({ ready: 1, scheduled: 0, leased: 0, completed: 0, dead: 0 });
  });

  describe('dead-letter file (deadletter/<worker>/<id>.json), written from the queue log', () => {
    it('missing: the next queue command (deadletter list/show) still reports the dead letter', async () => {
      const ws = tempWorkspace({ demo: false });
      const f = await deadLetter(ws, 'd1');
      const original = readFileSync(f, 'utf8');
      rmSync(f);

      const [list, show, dry, s] = await Promise.all([
        cliIn(['queue', 'deadletter', 'list', 'contract', '--workspace', ws, '--json']),
        cliIn(['queue', 'deadletter', 'show', 'contract', 'd1', '--workspace', ws]),
        cliIn(['queue', 'retry', 'contract', '--workspace', ws, '--task-id', 'd1', '--dry-run']),
        stats(ws, 'contract'),
      ]);
      expect(s.dead).toBe(1);
      expect(list.code, list.stderr).toBe(0);
      expect((JSON.parse(list.stdout) as { dead_letters: { task: { id: string } }[] }).dead_letters.map((d) => d.task.id)).toEqual(['d1']);
      expect(show.code, show.stderr).toBe(0);
      expect(show.stdout).toMatch(/^task +d1$/m);
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stdout).toContain('would move 1 task(s) of contract back to ready');
      expect(readJson(f)).toEqual(JSON.parse(original));
    });

    it('missing: a queue command that loads the log (enqueue) rewrites it', async () => {
      const ws = tempWorkspace({ demo: false });
      const f = await deadLetter(ws, 'd1');
      const original = readFileSync(f, 'utf8');
      rmSync(f);

      await enqueue(ws, 'contract', ['other']);
      expect(readJson(f)).toEqual(JSON.parse(original));
    });

    it('half-written: the next queue command (deadletter list/show) still reports the dead letter', async () => {
      const ws = tempWorkspace({ demo: false });
      const f = await deadLetter(ws, 'd1');
      const original = readFileSync(f, 'utf8');
      writeFileSync(f, original.slice(0, Math.floor(original.length / 2)));

      const [list, show] = await Promise.all([
        cliIn(['queue', 'deadletter', 'list', 'contract', '--workspace', ws, '--json']),
        cliIn(['queue', 'deadletter', 'show', 'contract', 'd1', '--workspace', ws]),
      ]);
      expect(list.code, list.stderr).toBe(0);
      expect((JSON.parse(list.stdout) as { dead_letters: { task: { id: string } }[] }).dead_letters.map((d) => d.task.id)).toEqual(['d1']);
      expect(show.code, show.stderr).toBe(0);
      expect(show.stdout).toMatch(/^task +d1$/m);
    });

    it('half-written: a queue command that loads the log (enqueue) rewrites it', async () => {
      const ws = tempWorkspace({ demo: false });
      const f = await deadLetter(ws, 'd1');
      const original = readFileSync(f, 'utf8');
      writeFileSync(f, original.slice(0, Math.floor(original.length / 2)));

      await enqueue(ws, 'contract', ['other']);
      expect(readJson(f)).toEqual(JSON.parse(original));
    });
  });
});
