// Damaged workspace state files (a manifest, a current pointer, an event record, a record of a run
// started from the server, the alert state): the CLI exits 30 naming the file, never 50 after
// retries; doctor names it and --repair really recovers; the ops server reports it and serves the rest.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { buildServer } from '../../src/ops/server.js';
import { opsSettings } from '../../src/ops/settings.js';
import { parsePrometheusText } from '../../src/ops/reports/prom-text.js';
import { workspacePaths } from '../../src/storage/paths.js';
import { BIN, DEMO_INPUTS, tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';

const POINTER = join('manifests', 'current', 's1', 'date=2026-01-15.json');

/** A workspace with two published dates, made once and copied for each test (runs are the slow part). */
let base = '';
beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'metaspn-it-base-'));
  mkdirSync(join(base, 'inputs'));
  cpSync(DEMO_INPUTS, join(base, 'inputs', 's1_signals.jsonl'));
  for (const date of ['2026-01-15', '2026-01-16']) {
    const r = await cliIn(['s1', 'run-local', '--workspace', base, '--date', date]);
    expect(r.code, r.stderr).toBe(0);
  }
}, 120_000);
afterAll(() => rmSync(base, { recursive: true, force: true }));

function copy(): string {
  const ws = tempWorkspace({ demo: false });
  cpSync(base, ws, { recursive: true });
  return ws;
}

function manifestOf(ws: string, step: string, date: string): string {
  const dir = join(ws, 'manifests', step, `date=${date}`);
  return join(dir, readdirSync(dir)[0]!, 'manifest.json');
}

function damagePointer(ws: string): string {
  const p = join(ws, POINTER);
  writeFileSync(p, readFileSync(p, 'utf8').replace('"run_id": "', '"run_id" "'));
  return readFileSync(p, 'utf8');
}

describe('a damaged current pointer', () => {
  it('stops later runs at once with exit 30 naming it (no task retried or dead-lettered); runs list names it (30); doctor --repair rewrites it from the ledger and runs work again', async () => {
    const ws = copy();
    const good = readFileSync(join(ws, POINTER), 'utf8');
    damagePointer(ws);

    const t0 = Date.now();
    const r = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-17']);
    expect(r.code, r.stderr).toBe(30);
    expect(r.stderr).toContain(`${join(ws, POINTER)}: not valid JSON`);
    expect(r.stderr).toMatch(/hint: .*metaspn doctor --repair/);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(existsSync(join(ws, 'deadletter', 'settle_season'))).toBe(false);

    const list = await cliIn(['runs', 'list', '--workspace', ws]);
    expect(list.code).toBe(30);
    expect(list.stdout.match(/^\d{8}T\d{6}Z-/gm)).toHaveLength(2);
    expect(list.stderr).toContain(`warning: ${POINTER}: not valid JSON`);
    expect(list.stderr).toMatch(/error: 1 run file\(s\) do not read back/);

    const doc = await cliIn(['doctor', '--workspace', ws, '--json']);
    expect(doc.code).toBe(30);
    const finding = (JSON.parse(doc.stdout) as { findings: { area: string; path: string; message: string; fix: string }[] }).findings.find((f) => f.area === 'pointer');
    expect(finding).toMatchObject({ path: POINTER, message: expect.stringMatching(/^not valid JSON/), fix: expect.stringMatching(/--repair rewrites it from the ledger/) });

    const fixed = await cliIn(['doctor', '--workspace', ws, '--repair']);
    expect(fixed.code, fixed.stdout).toBe(0);
    expect(fixed.stdout).toMatch(new RegExp(`FIXED ${POINTER.replace(/[.]/g, '\\.')}`));
    expect(JSON.parse(readFileSync(join(ws, POINTER), 'utf8'))).toEqual(JSON.parse(good));
    expect(readdirSync(join(ws, 'quarantine', 'manifests', 'current', 's1')).some((f) => f.startsWith('date=2026-01-15.json.'))).toBe(true);
    expect((await cliIn(['runs', 'list', '--workspace', ws])).code).toBe(0);
    expect((await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-17'])).code).toBe(0);
  }, 180_000);

  it('is rewritten by s1 rollback from the ledger (with a warning); --strict refuses it (30)', async () => {
    const ws = copy();
    const good = readFileSync(join(ws, POINTER), 'utf8');
    damagePointer(ws);
    const first = (JSON.parse(readFileSync(join(ws, 'ledger.jsonl'), 'utf8').split('\n')[1]!) as { hash: string }).hash;
    const strict = await cliIn(['s1', 'rollback', '--workspace', ws, '--to-hash', first, '--reason', 'repair', '--strict']);
    expect(strict.code).toBe(30);
    expect(strict.stderr).toContain(`${join(ws, POINTER)}: not valid JSON`);
    const r = await cliIn(['s1', 'rollback', '--workspace', ws, '--to-hash', first, '--reason', 'repair']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/warning: .*date=2026-01-15\.json: not valid JSON .*it is rewritten from the ledger/);
    expect(JSON.parse(readFileSync(join(ws, POINTER), 'utf8'))).toEqual(JSON.parse(good));
    expect((await cliIn(['doctor', '--workspace', ws])).code).toBe(0);
  }, 180_000);

  it('that names another date, or lacks a field, is damaged too', async () => {
    const ws = copy();
    const p = join(ws, POINTER);
    const ptr = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
    writeFileSync(p, JSON.stringify({ ...ptr, date: '2026-01-16' }));
    const r = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-17']);
    expect(r.code).toBe(30);
    expect(r.stderr).toMatch(/names s1 2026-01-16, not s1 2026-01-15/);
    const { params: _params, ...noParams } = ptr;
    writeFileSync(p, JSON.stringify(noParams));
    expect((await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-17'])).stderr).toMatch(/field "params" is missing/);
    expect((await cliIn(['doctor', '--workspace', ws, '--repair'])).code).toBe(0);
    expect(JSON.parse(readFileSync(p, 'utf8'))).toEqual(ptr);
  }, 180_000);
});

describe('a damaged manifest', () => {
  it('is left out of runs list and named (30); doctor names it, --repair moves it to quarantine/, and the list is whole again', async () => {
    const ws = copy();
    const m = manifestOf(ws, 'update_attention_scores', '2026-01-16');
    const rel = m.slice(ws.length + 1);
    for (const bad of ['1', '{"schema_version":1,"run_id":"r","steps":[]}', '{"not json']) {
      writeFileSync(m, bad);
      const list = await cliIn(['runs', 'list', '--workspace', ws, '--json']);
      expect(list.code, bad).toBe(30);
      expect(list.stderr).toContain(`warning: ${rel}: `);
      // The other runs are still listed; the damaged step is left out of its run.
      const runs = (JSON.parse(list.stdout) as { runs: { date: string; steps: unknown[] }[] }).runs;
      expect(runs.map((x) => x.date).sort()).toEqual(['2026-01-15', '2026-01-16']);
      expect(runs.find((x) => x.date === '2026-01-16')!.steps).toHaveLength(3);
    }
    // runs show of that run: printed without the step, the file named, exit 30.
    const run16 = (JSON.parse((await cliIn(['runs', 'list', '--workspace', ws, '--json'])).stdout) as { runs: { run_id: string; date: string }[] }).runs.find((x) => x.date === '2026-01-16')!.run_id;
    const show = await cliIn(['runs', 'show', run16, '--workspace', ws]);
    expect(show.code).toBe(30);
    expect(show.stdout).toContain('project_rewards');
    expect(show.stderr).toContain(`warning: ${rel}: `);
    const doc = await cliIn(['doctor', '--workspace', ws, '--json']);
    expect(doc.code).toBe(30);
    expect((JSON.parse(doc.stdout) as { findings: { area: string; path: string }[] }).findings).toContainEqual(expect.objectContaining({ area: 'manifest', path: rel }));
    const fixed = await cliIn(['doctor', '--workspace', ws, '--repair', '--json']);
    // The run of 2026-01-16 is published and now lacks a step: doctor says to re-run the date.
    const left = (JSON.parse(fixed.stdout) as { findings: { area: string; message: string; repaired?: boolean }[] }).findings.filter((f) => !f.repaired && f.area !== 'manifest');
    expect(left.map((f) => f.message).join('\n')).toMatch(/has no successful update_attention_scores manifest/);
    expect(existsSync(m)).toBe(false);
    expect((await cliIn(['runs', 'list', '--workspace', ws])).code).toBe(0);
    expect((await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-16'])).code).toBe(0);
    expect((await cliIn(['doctor', '--workspace', ws])).code).toBe(0);
  }, 180_000);
});

describe('damaged ops records', () => {
  it('alerts list names a damaged alert state (30); alerts check sets it aside and carries on; doctor reports event and run records and --repair sets them aside', async () => {
    const ws = copy();
    mkdirSync(join(ws, 'ops', 'events', 'q'), { recursive: true });
    mkdirSync(join(ws, 'ops', 'runs'), { recursive: true });
    writeFileSync(join(ws, 'ops', 'alerts-state.json'), '{"schema_version":1,"checked_at":null,"workers":{},"alerts":{"x":{"open":"yes"}}}');
    writeFileSync(join(ws, 'ops', 'events', 'q', '0123456789abcdef0123456789abcdef.json'), '{"event_id":"e","status":201}');
    writeFileSync(join(ws, 'ops', 'runs', '20260115T000000Z-abcdef.json'), '[]');

    const doc = await cliIn(['doctor', '--workspace', ws, '--json']);
    expect(doc.code).toBe(30);
    const paths = (JSON.parse(doc.stdout) as { findings: { area: string; path: string }[] }).findings
      .filter((f) => f.area === 'ops')
      .map((f) => f.path)
      .sort();
    expect(paths).toEqual([join('ops', 'alerts-state.json'), join('ops', 'events', 'q', '0123456789abcdef0123456789abcdef.json'), join('ops', 'runs', '20260115T000000Z-abcdef.json')]);

    const list = await cliIn(['alerts', 'list', '--workspace', ws]);
    expect(list.code).toBe(30);
    expect(list.stderr).toMatch(/alerts-state\.json: alerts\["x"\]: field "fingerprint" is missing/);
    const check = await cliIn(['alerts', 'check', '--workspace', ws, '--json']);
    expect([0, 60]).toContain(check.code);
    expect((JSON.parse(check.stdout) as { state_reset: { path: string; moved_to: string } }).state_reset).toMatchObject({
      path: join('ops', 'alerts-state.json'),
      moved_to: expect.stringMatching(/^quarantine\/ops\/alerts-state\.json\./),
    });
    expect((await cliIn(['alerts', 'list', '--workspace', ws])).code).toBe(0);

    expect((await cliIn(['doctor', '--workspace', ws, '--repair'])).code).toBe(0);
    expect(readdirSync(join(ws, 'quarantine', 'ops', 'events', 'q'))).toHaveLength(1);
    expect((await cliIn(['doctor', '--workspace', ws])).code).toBe(0);
  }, 180_000);
});

describe('the ops server over damaged run files', () => {
  it('never answers 500 on /metrics, /api/runs, /ops or /api/alerts: each damaged file is named and counted, the rest served, /health/test degraded', async () => {
    const cases: { name: string; file: (ws: string) => string; text: string; kind: string }[] = [
      { name: 'manifest without pipeline', file: (ws) => manifestOf(ws, 'update_attention_scores', '2026-01-16'), text: '{"schema_version":1,"run_id":"r","steps":[]}', kind: 'manifest' },
      { name: 'manifest = 1', file: (ws) => manifestOf(ws, 'settle_season', '2026-01-15'), text: '1', kind: 'manifest' },
      { name: 'pointer not JSON', file: (ws) => join(ws, POINTER), text: '{"run_id" "x"}', kind: 'pointer' },
      { name: 'alert state not JSON', file: (ws) => join(ws, 'ops', 'alerts-state.json'), text: '{', kind: 'alert_state' },
      { name: 'none (control)', file: () => '', text: '', kind: '' },
    ];
    for (const c of cases) {
      const ws = copy();
      const file = c.file(ws);
      if (file) {
        mkdirSync(join(file, '..'), { recursive: true });
        writeFileSync(file, c.text);
      }
      const p = workspacePaths(ws);
      const app = await buildServer({ ws: p, cfg: loadConfig(p), settings: opsSettings({}), log: pino({ level: 'silent' }), bin: BIN, minFreeBytes: 1 });
      try {
        const get = async (url: string) => app.inject({ url });
        const metrics = await get('/metrics');
        expect(`${c.name} /metrics ${metrics.statusCode}`).toBe(`${c.name} /metrics 200`);
        const prom = parsePrometheusText(metrics.body);
        expect(prom.errors).toEqual([]);
        const unreadable = prom.families.get('metaspn_state_files_unreadable')!.samples;
        expect(
          unreadable.reduce((n, x) => n + x.value, 0),
          c.name,
        ).toBe(file ? 1 : 0);
        if (file) expect(unreadable.find((x) => x.labels.kind === c.kind)?.value, c.name).toBe(1);
        // The queue metrics and the latest run survive.
        expect(prom.families.get('metaspn_queue_ready')!.samples.length).toBeGreaterThan(0);
        expect(prom.families.get('metaspn_last_run_exit_code')!.samples.length).toBeGreaterThan(0);

        const runs = await get('/api/runs');
        expect(`${c.name} /api/runs ${runs.statusCode}`).toBe(`${c.name} /api/runs 200`);
        const body = runs.json() as { runs: { date: string }[]; problems: { path: string; kind: string; error: string }[] };
        expect(body.runs.map((r) => r.date).sort()).toEqual(['2026-01-15', '2026-01-16']);
        if (c.kind === 'manifest' || c.kind === 'pointer') expect(body.problems).toEqual([expect.objectContaining({ path: file.slice(ws.length + 1), kind: c.kind })]);
        else expect(body.problems).toEqual([]);

        const page = await get('/ops');
        expect(page.statusCode).toBe(200);
        if (c.kind === 'manifest' || c.kind === 'pointer') expect(page.body).toContain(file.slice(ws.length + 1));
        const alerts = await get('/api/alerts');
        expect(alerts.statusCode).toBe(200);
        expect((alerts.json() as { problems: unknown[] }).problems).toHaveLength(c.kind === 'alert_state' ? 1 : 0);

        const ready = await get('/health/test');
        expect(ready.statusCode).toBe(200);
        expect((ready.json() as { status: string }).status).toBe(file ? 'degraded' : 'ok');
        if (file) expect(ready.body).toContain(file.slice(ws.length + 1));
      } finally {
        await app.close();
      }
    }
  });
});
