import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../temp.js';
import { BIN, cleanWorkspaces, cliEnv, spec, tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';
import { freePort, http, startServe } from './serve-process.js';

afterEach(() => cleanWorkspaces());

/** A folder outside every workspace, holding the files a planted link points to. */
function outside(): string {
  return tempDir('metaspn-outside-');
}

/** Every file below `dir` with its bytes: what must not change. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[relative(dir, p)] = readFileSync(p).toString('base64');
    }
  };
  walk(dir);
  return out;
}

const DATE = '2026-01-15';

describe('the workspace is a boundary: planted symlinks are refused (30), never followed', () => {
  const cases: Array<{ name: string; plant: (ws: string, out: string) => string; run: (ws: string) => string[]; before?: (ws: string) => Promise<void> }> = [
    {
      name: 'queue log -> a file outside',
      plant: (ws, out) => {
        writeFileSync(join(out, 'victim.conf'), 'line one\nline two\nsecret tail without newline');
        mkdirSync(join(ws, 'queue', 'q'), { recursive: true });
        symlinkSync(join(out, 'victim.conf'), join(ws, 'queue', 'q', 'log.000001.jsonl'));
        return 'queue/q/log.000001.jsonl';
      },
      run: (ws) => ['queue', 'enqueue', 'q', '--workspace', ws, '--payload', '{"k":1}'],
    },
    {
      name: 'deadletter/<worker> -> a folder outside',
      before: async (ws) => void expect((await cliIn(['queue', 'enqueue', 'contract', '--workspace', ws, '--payload', '{"k":2}'])).code).toBe(0),
      plant: (ws, out) => {
        mkdirSync(join(out, 'dl'));
        mkdirSync(join(ws, 'deadletter'), { recursive: true });
        symlinkSync(join(out, 'dl'), join(ws, 'deadletter', 'contract'));
        return 'deadletter/contract';
      },
      run: (ws) => ['worker', 'run', spec('Contract'), '--workspace', ws, '--once'],
    },
    {
      name: 'logs/metaspn.jsonl -> a file outside',
      plant: (ws, out) => {
        writeFileSync(join(out, 'victim.txt'), 'PRECIOUS ORIGINAL CONTENT\n');
        mkdirSync(join(ws, 'logs'), { recursive: true });
        symlinkSync(join(out, 'victim.txt'), join(ws, 'logs', 'metaspn.jsonl'));
        return 'logs/metaspn.jsonl';
      },
      run: (ws) => ['queue', 'enqueue', 'q', '--workspace', ws, '--payload', '{"k":1}'],
    },
    {
      name: 'a store file -> a file outside',
      plant: (ws, out) => {
        writeFileSync(join(out, 'scores.jsonl'), '{"keep":"me"}\n');
        mkdirSync(join(ws, 'store'), { recursive: true });
        symlinkSync(join(out, 'scores.jsonl'), join(ws, 'store', 's1_attention_scores.jsonl'));
        return 'store/s1_attention_scores.jsonl';
      },
      run: (ws) => ['s1', 'run-local', '--workspace', ws, '--date', DATE],
    },
    {
      name: 'manifests/ -> a folder outside',
      plant: (ws, out) => {
        mkdirSync(join(out, 'm'));
        writeFileSync(join(out, 'm', 'keep.json'), '{}\n');
        symlinkSync(join(out, 'm'), join(ws, 'manifests'));
        return 'manifests';
      },
      run: (ws) => ['s1', 'run-local', '--workspace', ws, '--date', DATE],
    },
    {
      name: 'ledger.jsonl -> a file outside',
      plant: (ws, out) => {
        writeFileSync(join(out, 'ledger.jsonl'), "not a ledger, somebody else's file\n");
        symlinkSync(join(out, 'ledger.jsonl'), join(ws, 'ledger.jsonl'));
        return 'ledger.jsonl';
      },
      run: (ws) => ['s1', 'run-local', '--workspace', ws, '--date', DATE],
    },
    // Readers: a link is refused before anything is read through it.
    {
      name: 'the run lock payload locks/s1.lock -> a file outside (lock status reads it)',
      plant: (ws, out) => {
        writeFileSync(join(out, 'payload.json'), '{"active":1,"pid":1}\n');
        mkdirSync(join(ws, 'locks'), { recursive: true });
        symlinkSync(join(out, 'payload.json'), join(ws, 'locks', 's1.lock'));
        return 'locks/s1.lock';
      },
      run: (ws) => ['lock', 'status', '--workspace', ws],
    },
    {
      name: 'locks/ -> a folder outside (the run lock is never made there)',
      plant: (ws, out) => {
        mkdirSync(join(out, 'locks'));
        symlinkSync(join(out, 'locks'), join(ws, 'locks'));
        return 'locks';
      },
      run: (ws) => ['s1', 'run-local', '--workspace', ws, '--date', DATE],
    },
    {
      name: 'a step folder of manifests/ -> a folder outside (runs list reads it)',
      plant: (ws, out) => {
        mkdirSync(join(out, 'step', 'date=2026-01-15', 'run=r1'), { recursive: true });
        writeFileSync(join(out, 'step', 'date=2026-01-15', 'run=r1', 'manifest.json'), '{"not":"a manifest"}\n');
        mkdirSync(join(ws, 'manifests'), { recursive: true });
        symlinkSync(join(out, 'step'), join(ws, 'manifests', 'update_attention_scores'));
        return 'manifests/update_attention_scores';
      },
      run: (ws) => ['runs', 'list', '--workspace', ws],
    },
    {
      name: "a store index's meta.json -> a file outside",
      plant: (ws, out) => {
        writeFileSync(join(out, 'meta.json'), '{"covered":0,"counts":{}}');
        mkdirSync(join(ws, 'store', '.index', 's1_attention_scores'), { recursive: true });
        symlinkSync(join(out, 'meta.json'), join(ws, 'store', '.index', 's1_attention_scores', 'meta.json'));
        return 'store/.index/s1_attention_scores/meta.json';
      },
      run: (ws) => ['s1', 'run-local', '--workspace', ws, '--date', DATE],
    },
    {
      name: 'queue/<worker> -> a folder outside (queue stats)',
      plant: (ws, out) => {
        mkdirSync(join(out, 'q'));
        writeFileSync(join(out, 'q', 'log.000001.jsonl'), 'not a queue log\n');
        mkdirSync(join(ws, 'queue'), { recursive: true });
        symlinkSync(join(out, 'q'), join(ws, 'queue', 'q'));
        return 'queue/q';
      },
      run: (ws) => ['queue', 'stats', 'q', '--workspace', ws],
    },
    {
      name: 'ops/alerts-log.jsonl -> a file outside (report weekly reads it)',
      plant: (ws, out) => {
        writeFileSync(join(out, 'alerts.jsonl'), '{"at":"2026-01-15T00:00:00Z"}\n');
        mkdirSync(join(ws, 'ops'), { recursive: true });
        symlinkSync(join(out, 'alerts.jsonl'), join(ws, 'ops', 'alerts-log.jsonl'));
        return 'ops/alerts-log.jsonl';
      },
      run: (ws) => ['report', 'weekly', '--workspace', ws, '--json'],
    },
  ];

  for (const c of cases) {
    it(`${c.name}: the command exits 30 naming the link, the outside is byte-identical, doctor names it`, async () => {
      const ws = tempWorkspace();
      const out = outside();
      await c.before?.(ws);
      const link = c.plant(ws, out);
      const before = snapshot(out);
      const r = await cliIn(c.run(ws), { env: { METASPN_LOG_LEVEL: 'warn' } });
      expect(r.code, r.stderr).toBe(30);
      // One line naming the link: on stderr, or in a run's `failed:` line on stdout.
      expect(`${r.stdout}${r.stderr}`).toContain(`${join(ws, link)}: is a symbolic link inside the workspace`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(snapshot(out)).toEqual(before);
      expect(lstatSync(join(ws, link)).isSymbolicLink()).toBe(true);

      const doc = await cliIn(['doctor', '--workspace', ws, '--json']);
      expect(doc.code, doc.stderr).toBe(30);
      const report = JSON.parse(doc.stdout) as { findings: Array<{ area: string; path: string; severity: string }> };
      expect(report.findings).toContainEqual(expect.objectContaining({ area: 'link', path: link, severity: 'error' }));
      expect(snapshot(out)).toEqual(before);
    });
  }

  it('serve: a linked step folder is named, never read through: /api/runs 500 naming it, /health/test degraded naming it, /metrics counts it; a linked queue/ stops serve at start (30)', async () => {
    const ws = tempWorkspace();
    const out = outside();
    mkdirSync(join(out, 'step', 'date=2026-01-15', 'run=r1'), { recursive: true });
    writeFileSync(join(out, 'step', 'date=2026-01-15', 'run=r1', 'manifest.json'), '{"not":"a manifest"}\n');
    mkdirSync(join(ws, 'manifests'), { recursive: true });
    const link = join(ws, 'manifests', 'update_attention_scores');
    symlinkSync(join(out, 'step'), link);
    const before = snapshot(out);
    const s = await startServe(ws, { env: { METASPN_LOG_LEVEL: 'warn' } });
    try {
      const runs = await http('GET', `${s.url}/api/runs`);
      expect(runs.status).toBe(500);
      expect((JSON.parse(runs.text) as { error: string }).error).toBe(`${link}: is a symbolic link inside the workspace; metaspn does not follow links`);
      const health = await http('GET', `${s.url}/health/test`);
      expect(health.status).toBe(200);
      const h = JSON.parse(health.text) as { status: string; checks: Array<{ name: string; ok: boolean; detail: string }> };
      expect(h.status).toBe('degraded');
      expect(h.checks.find((c) => c.name === 'state_files_readable')).toMatchObject({
        ok: false,
        detail: expect.stringContaining('manifests/update_attention_scores (is a symbolic link inside the workspace'),
      });
      const metrics = await http('GET', `${s.url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(metrics.text).toMatch(/^metaspn_state_files_unreadable\{kind="manifest"\} 1$/m);
    } finally {
      await s.stop();
    }
    expect(snapshot(out)).toEqual(before);

    const ws2 = tempWorkspace();
    symlinkSync(join(out, 'step'), join(ws2, 'queue'));
    // With writes on, serve opens every queue at start: the link stops it there.
    const r = await cliIn(['serve', '--workspace', ws2, '--port', String(await freePort()), '--alert-interval-sec', '0'], { env: { METASPN_LOG_LEVEL: 'warn', METASPN_ADMIN_TOKEN: 'tok' } });
    expect(r.code, r.stderr).toBe(30);
    expect(r.stderr.split('\n')[0]).toBe(`error: ${join(ws2, 'queue')}: is a symbolic link inside the workspace; metaspn does not follow links`);
    expect(snapshot(out)).toEqual(before);
  });

  it('the workspace root itself may be a link', async () => {
    const ws = tempWorkspace();
    const parent = outside();
    const alias = join(parent, 'ws');
    symlinkSync(ws, alias);
    expect((await cliIn(['queue', 'enqueue', 'q', '--workspace', alias, '--payload', '{"k":1}'])).code).toBe(0);
    expect((await cliIn(['doctor', '--workspace', alias])).code).toBe(0);
  });
});

describe('modes are explicit, whatever the umask', () => {
  it('under umask 000 no created file or folder is group- or world-writable; --payload is not copied into the log', async () => {
    const ws = tempWorkspace();
    const sh = (args: string[]): number | null => {
      const cmd = `umask 000; exec "${process.execPath}" "${BIN}" ${args.map((a) => `'${a}'`).join(' ')}`;
      return spawnSync('/bin/sh', ['-c', cmd], { env: cliEnv(), encoding: 'utf8', timeout: 120_000 }).status;
    };
    expect(sh(['s1', 'run-local', '--workspace', ws, '--date', DATE])).toBe(0);
    expect(sh(['queue', 'enqueue', 'q', '--workspace', ws, '--payload', '{"secret":"hunter2-payload"}'])).toBe(0);
    expect(sh(['queue', 'enqueue', 'q', '--workspace', ws, '--payload={"secret":"hunter3-payload"}'])).toBe(0);
    expect(sh(['worker', 'run', spec('Contract'), '--workspace', ws, '--once'])).not.toBe(null);
    expect(sh(['queue', 'enqueue', 'contract', '--workspace', ws, '--payload', '{"k":3}'])).toBe(0);
    expect(sh(['worker', 'run', spec('Contract'), '--workspace', ws, '--once'])).not.toBe(null);
    expect(sh(['doctor', '--workspace', ws, '--repair'])).toBe(0);

    const wide: string[] = [];
    let entries = 0;
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        // inputs/ is the test's, executions.log the fixture worker's own file.
        if (['inputs', 'executions.log'].includes(relative(ws, p)) || relative(ws, p).startsWith('inputs/')) continue;
        const st = lstatSync(p);
        entries++;
        if (st.mode & 0o022) wide.push(`${relative(ws, p)} ${(st.mode & 0o777).toString(8)}`);
        if (e.isDirectory()) walk(p);
      }
    };
    walk(ws);
    expect(entries).toBeGreaterThan(20);
    expect(wide).toEqual([]);
    expect(lstatSync(join(ws, 'deadletter', 'contract')).mode & 0o777).toBe(0o750);
    expect(lstatSync(join(ws, 'logs', 'metaspn.jsonl')).mode & 0o777).toBe(0o640);

    const log = readFileSync(join(ws, 'logs', 'metaspn.jsonl'), 'utf8');
    expect(log).not.toContain('hunter2-payload');
    expect(log).not.toContain('hunter3-payload');
    expect(log).toContain('<redacted>');
  });
});
