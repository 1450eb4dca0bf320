import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, exit, ROOT, start, tempWorkspace, waitFor, type CliResult } from './cli.js';
import { cliIn } from './in-process.js';
import { startServe } from './serve-process.js';

/**
 * A user's workspace done wrong. Pipeline modules: a config naming a file that is no module, a
 * module whose top-level await never settles, steps named after metaspn's own folders. Each is
 * refused with one line naming the file and the rule and a documented exit code, and nothing is
 * written. And `store export --out` through a link back into the workspace, which must not
 * replace the workspace's own store.
 *
 * What a case is about runs as a CLI process; the runs that set a case up (the runs before an
 * export or a list) and the lists that read one back run in the test's process (`cliIn`).
 */

/** A workspace naming `mod` as pipeline `p`, with `metaspn` linked beside it. */
function workspace(mod: string, files: Record<string, string> = {}): string {
  const dir = tempWorkspace({ demo: false, config: { pipelines: { p: mod } } });
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'metaspn'), 'dir');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const oneStep = (stepName: string): string => `import { definePipeline, defineStep, defineWorker } from 'metaspn';
const s = defineStep({ name: '${stepName}', plan: () => [{ key: '*', payload: {} }], worker: defineWorker({ handle: () => [{ key: 'r', v: 1 }] }) });
export default definePipeline({ name: 'p', partition: 'date', steps: [s] });
`;

function expectOneLineError(r: CliResult, code: number, pattern: RegExp): void {
  expect(r.code, r.stdout + r.stderr).toBe(code);
  const lines = r.stderr.trim().split('\n');
  expect(lines[0]).toMatch(pattern);
  expect(lines.slice(1).every((l) => l.startsWith('hint: '))).toBe(true);
  expect(r.stderr).not.toMatch(/^\s+at /m);
}

describe('a config that names something other than a JavaScript module', () => {
  it('a folder, a JSON file or a text file is exit 20 naming the config file, for run and list', () => {
    const dir = workspace('./pipe.txt', { 'pipe.txt': 'hello\n', 'pipe.json': '{}\n' });
    mkdirSync(join(dir, 'lib'));
    for (const [mod, rule] of [
      ['./pipe.txt', /pipelines\.p: \.\/pipe\.txt is not a JavaScript module file \(\.js, \.mjs or \.cjs\)$/],
      ['./pipe.json', /pipelines\.p: \.\/pipe\.json is not a JavaScript module file \(\.js, \.mjs or \.cjs\)$/],
      ['./lib', /pipelines\.p: \.\/lib is a folder, not a module file$/],
    ] as const) {
      writeFileSync(join(dir, 'metaspn.config.json'), JSON.stringify({ pipelines: { p: mod } }));
      const run = cli(['pipeline', 'run', 'p', '--workspace', dir, '--date', '2026-01-05']);
      expectOneLineError(run, 20, new RegExp(`^error: ${dir}/metaspn\\.config\\.json: ${rule.source}`));
      const list = cli(['pipeline', 'list', '--workspace', dir]);
      expect(list.code).toBe(20);
    }
    expect(existsSync(join(dir, 'manifests'))).toBe(false);
    expect(existsSync(join(dir, 'queue'))).toBe(false);
  }, 60_000);
});

describe('a module that parses but throws a SyntaxError while it loads', () => {
  it('is the failure of its import (50, the error as thrown), not "the module does not parse" (20)', () => {
    const dir = workspace('./pipe.mjs', { 'pipe.mjs': `const keys = JSON.parse(process.env.NO_SUCH_VARIABLE ?? 'undefined');\n${oneStep('a')}` });
    const r = cli(['pipeline', 'run', 'p', '--workspace', dir, '--date', '2026-01-05']);
    expectOneLineError(r, 50, new RegExp(`^error: pipeline p: importing ${dir}/pipe\\.mjs failed: "undefined" is not valid JSON$`));
    expect(r.stderr).not.toMatch(/does not parse/);
    const parse = workspace('./pipe.mjs', { 'pipe.mjs': `const x = ;\n${oneStep('a')}` });
    expectOneLineError(
      cli(['pipeline', 'run', 'p', '--workspace', parse, '--date', '2026-01-05']),
      20,
      new RegExp(`^error: ${parse}/pipe\\.mjs:1: pipeline p: Unexpected token ';' \\(the module does not parse\\)$`),
    );
  }, 60_000);
});

describe('doctor on a workspace whose pipeline module does not load', () => {
  it('exits 20 (bad input to fix), not 30 (corrupt state to freeze), and the finding names the module', () => {
    const dir = workspace('./pipe.mjs', { 'pipe.mjs': `throw new Error('no settings');\n` });
    const r = cli(['doctor', '--workspace', dir]);
    expect(r.code, r.stdout + r.stderr).toBe(20);
    expect(r.stdout).toMatch(/^ERROR {3}\.\/pipe\.mjs: pipeline p does not load: .*no settings/m);
    const j = cli(['doctor', '--workspace', dir, '--json']);
    expect(j.code).toBe(20);
    expect(JSON.parse(j.stdout)).toMatchObject({ exit_code: 20, findings: [{ severity: 'error', area: 'pipeline', exit_code: 20 }] });
  }, 60_000);
});

describe('a pipeline name that is a property of every object', () => {
  it('pipeline show|run constructor, __proto__, toString: 64 "no pipeline" (was 50, an unexpected failure); a long name is cut', () => {
    const dir = workspace('./pipe.mjs', { 'pipe.mjs': oneStep('a') });
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      expectOneLineError(cli(['pipeline', 'show', name, '--workspace', dir]), 64, new RegExp(`^error: no pipeline ${name} in ${dir}/metaspn\\.config\\.json$`));
      expect(cli(['pipeline', 'run', name, '--workspace', dir, '--date', '2026-01-05']).code).toBe(64);
    }
    expectOneLineError(cli(['pipeline', 'show', 'p'.repeat(500), '--workspace', dir]), 64, /^error: no pipeline p{79}… in /);
    expect(existsSync(join(dir, 'manifests'))).toBe(false);
  }, 60_000);
});

describe('a module whose top-level await never settles', () => {
  it('is exit 20 naming the module, not an undocumented exit code with no message', () => {
    const dir = workspace('./pipe.mjs', { 'pipe.mjs': `${oneStep('a')}await new Promise(() => {});\n` });
    const run = cli(['pipeline', 'run', 'p', '--workspace', dir, '--date', '2026-01-05']);
    expectOneLineError(run, 20, new RegExp(`^error: ${dir}/pipe\\.mjs: pipeline p: the module's top-level await never settles \\(nothing is left that could settle it\\)$`));
    expect(run.stdout).toBe('');
    const show = cli(['pipeline', 'show', 'p', '--workspace', dir, '--json']);
    expect(show.code).toBe(20);
    expect(JSON.parse(show.stdout)).toMatchObject({ schema_version: 1, error: { exit_code: 20 } });
    expect(existsSync(join(dir, 'manifests'))).toBe(false);
  }, 60_000);
});

describe('step names that are metaspn folders under manifests/', () => {
  it('current and backfills are refused by definePipeline (exit 64), nothing is written', () => {
    for (const name of ['current', 'backfills']) {
      const dir = workspace('./pipe.mjs', { 'pipe.mjs': oneStep(name) });
      const run = cli(['pipeline', 'run', 'p', '--workspace', dir, '--date', '2026-01-05']);
      expectOneLineError(run, 64, new RegExp(`^error: pipeline p: step name "${name}" is reserved \\(manifests/${name}/ holds metaspn's own files\\) \\(.*pipe\\.mjs\\)$`));
      expect(existsSync(join(dir, 'manifests'))).toBe(false);
    }
  }, 60_000);

  it('a step named like them otherwise runs, and its run is listed', async () => {
    const dir = workspace('./pipe.mjs', { 'pipe.mjs': oneStep('current_view') });
    const run = cli(['pipeline', 'run', 'p', '--workspace', dir, '--date', '2026-01-05']);
    expect(run.code, run.stderr).toBe(0);
    expect(readdirSync(join(dir, 'manifests')).sort()).toEqual(['current', 'current_view']);
    const runs = await cliIn(['runs', 'list', '--workspace', dir, '--json']);
    expect(runs.code).toBe(0);
    expect((JSON.parse(runs.stdout) as { runs: { pipeline: string; status: string }[] }).runs).toMatchObject([{ pipeline: 'p', status: 'success' }]);
  }, 60_000);
});

describe('a worker module whose top-level await never settles', () => {
  it('worker run is exit 64 naming the module, with one line', () => {
    const dir = tempWorkspace({ demo: false });
    writeFileSync(join(dir, 'w.mjs'), "await new Promise(() => {});\nexport const W = { name: 'q', handle() {} };\n");
    const r = cli(['worker', 'run', `${dir}/w.mjs:W`, '--workspace', dir, '--once']);
    expectOneLineError(r, 64, new RegExp(`^error: worker module ${dir}/w\\.mjs failed to load: its top-level await never settles \\(nothing is left that could settle it\\)$`));
  }, 60_000);
});

describe('store export --out through a link to the workspace', () => {
  it('is refused with 64 and the store keeps every row (a --date export would have cut it to one date)', async () => {
    const dir = workspace('./pipe.mjs', { 'pipe.mjs': oneStep('a') });
    for (const date of ['2026-01-05', '2026-01-06']) expect((await cliIn(['pipeline', 'run', 'p', '--workspace', dir, '--date', date])).code).toBe(0);
    const store = join(dir, 'store', 'p.a.jsonl');
    const before = readFileSync(store, 'utf8');
    expect(before.trim().split('\n')).toHaveLength(2);
    const outside = tempWorkspace({ demo: false });
    symlinkSync(dir, join(outside, 'to-ws'), 'dir');
    mkdirSync(join(outside, 'out'));
    symlinkSync(join(dir, 'store'), join(outside, 'out', 'store'), 'dir');
    for (const out of [join(outside, 'to-ws'), join(outside, 'out')]) {
      const r = cli(['store', 'export', '--workspace', dir, '--out', out, '--date', '2026-01-05']);
      expectOneLineError(r, 64, /^error: --out .* is the workspace itself: exporting there would replace its store$/);
      expect(readFileSync(store, 'utf8')).toBe(before);
    }
    const ok = cli(['store', 'export', '--workspace', dir, '--out', join(outside, 'export'), '--date', '2026-01-05']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(readFileSync(join(outside, 'export', 'store', 'p.a.jsonl'), 'utf8')).toBe(`${before.split('\n')[0]}\n`);
    expect(readFileSync(store, 'utf8')).toBe(before);
  }, 60_000);
});

describe('a date that is no calendar date, where runs are listed', () => {
  it('runs list --date is 64 and GET /api/runs?date= is 400, as every other date; a long unknown run id is cut in the error', async () => {
    const dir = workspace('./pipe.mjs', { 'pipe.mjs': oneStep('a') });
    expect((await cliIn(['pipeline', 'run', 'p', '--workspace', dir, '--date', '2026-01-05'])).code).toBe(0);
    for (const bad of ['2026-13-01', '2026-02-30']) {
      const r = cli(['runs', 'list', '--workspace', dir, '--date', bad]);
      expectOneLineError(r, 64, new RegExp(`^error: --date must be YYYY-MM-DD, got "${bad}" \\(no such calendar date\\)$`));
      expect(r.stdout).toBe('');
    }
    expect((await cliIn(['runs', 'list', '--workspace', dir, '--date', '2026-01-05'])).stdout).toMatch(/2026-01-05/);
    const long = 'r'.repeat(3000);
    for (const sub of ['show', 'retry']) {
      const r = cli(['runs', sub, long, '--workspace', dir]);
      expectOneLineError(r, 64, /^error: no run r{60}… in /);
      expect(r.stderr.length).toBeLessThan(400);
    }
    const served = await startServe(dir);
    try {
      for (const bad of ['2026-13-01', '2026-02-30']) {
        const res = await fetch(`${served.url}/api/runs?date=${bad}`);
        expect(res.status).toBe(400);
        expect(await res.json()).toMatchObject({ schema_version: 1, error: `date must be YYYY-MM-DD, got "${bad}" (no such calendar date)` });
      }
      const ok = await fetch(`${served.url}/api/runs?date=2026-01-05`);
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { runs: unknown[] }).runs).toHaveLength(1);
    } finally {
      expect((await served.stop()).code).toBe(0);
    }
  }, 60_000);
});

describe('a config file that says null', () => {
  it('is exit 20 naming the file, as [] and 0 are (it was read as no config at all)', () => {
    for (const text of ['null', 'null\n', '[]', '0']) {
      const dir = tempWorkspace({ demo: false });
      writeFileSync(join(dir, 'metaspn.config.json'), text);
      const r = cli(['queue', 'list', '--workspace', dir]);
      expectOneLineError(r, 20, new RegExp(`^error: ${dir}/metaspn\\.config\\.json: \\(root\\): Invalid input: expected object, received (null|array|number)`));
      expect(cli(['doctor', '--workspace', dir]).code).toBe(20);
    }
  }, 60_000);
});

describe('store export --pipeline p, beside a pipeline named p_z', () => {
  it("exports p's stores only (p_z's were taken for p's), and --pipeline s1 still exports Season 1's files", async () => {
    const dir = workspace('./p.mjs', { 'p.mjs': oneStep('x'), 'pz.mjs': oneStep('q').replaceAll("'p'", "'p_z'") });
    writeFileSync(join(dir, 'metaspn.config.json'), JSON.stringify({ pipelines: { p: './p.mjs', p_z: './pz.mjs' } }));
    expect((await cliIn(['pipeline', 'run', 'p', '--workspace', dir, '--date', '2026-01-05'])).code).toBe(0);
    expect((await cliIn(['pipeline', 'run', 'p_z', '--workspace', dir, '--date', '2026-01-05'])).code).toBe(0);
    expect(
      readdirSync(join(dir, 'store'))
        .filter((f) => f.endsWith('.jsonl'))
        .sort(),
    ).toEqual(['p.x.jsonl', 'p_z.q.jsonl']);
    const out = join(tempWorkspace({ demo: false }), 'export');
    const r = cli(['store', 'export', '--workspace', dir, '--out', out, '--pipeline', 'p', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { stores: { store: string }[] }).stores.map((x) => x.store)).toEqual(['p.x']);
    const s1 = tempWorkspace();
    expect((await cliIn(['s1', 'run-local', '--workspace', s1, '--date', '2026-01-15'])).code).toBe(0);
    const e = cli(['store', 'export', '--workspace', s1, '--out', join(s1, 'export'), '--pipeline', 's1', '--json']);
    expect(e.code, e.stderr).toBe(0);
    expect((JSON.parse(e.stdout) as { stores: { store: string }[] }).stores.map((x) => x.store)).toEqual(
      readdirSync(join(s1, 'store'))
        .filter((f) => f.endsWith('.jsonl'))
        .map((f) => f.slice(0, -6))
        .sort(),
    );
  }, 120_000);
});

describe('a planner that never settles', () => {
  it('SIGTERM ends the run with 11 and nothing published (no signal could end it before)', async () => {
    const mod = `import { definePipeline, defineStep, defineWorker } from 'metaspn';
const s = defineStep({ name: 'a', plan: () => new Promise(() => setInterval(() => {}, 1000)), worker: defineWorker({ handle: () => [] }) });
export default definePipeline({ name: 'p', partition: 'date', steps: [s] });
`;
    const dir = workspace('./pipe.mjs', { 'pipe.mjs': mod });
    const p = start(['pipeline', 'run', 'p', '--workspace', dir, '--date', '2026-01-05']);
    const log = join(dir, 'logs', 'metaspn.jsonl');
    await waitFor(() => existsSync(log) && readFileSync(log, 'utf8').includes('"event":"stage_start"'), 20_000, 'step a started');
    p.child.kill('SIGTERM');
    const r = await exit(p, 20_000);
    expect(r.code, r.stdout + r.stderr).toBe(11);
    expect(r.stdout).toMatch(/^failed: a: a: its plan not finished \(stop requested\); re-run to continue$/m);
    expect(r.stdout).toMatch(/^not published$/m);
    expect(existsSync(join(dir, 'manifests', 'current', 'p', 'date=2026-01-05.json'))).toBe(false);
    expect(existsSync(join(dir, 'queue', 'p-a'))).toBe(false);
  }, 60_000);
});
