import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, cleanWorkspaces, cli, cliEnv, spec, tempWorkspace } from './cli.js';

afterEach(() => cleanWorkspaces());

/** A folder outside every workspace, holding the files a planted link points to. */
function outside(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metaspn-outside-'));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
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
  const cases: Array<{ name: string; plant: (ws: string, out: string) => string; run: (ws: string) => string[]; before?: (ws: string) => void }> = [
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
      before: (ws) => expect(cli(['queue', 'enqueue', 'contract', '--workspace', ws, '--payload', '{"k":2}']).code).toBe(0),
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
        writeFileSync(join(out, 'ledger.jsonl'), 'not a ledger, somebody else\'s file\n');
        symlinkSync(join(out, 'ledger.jsonl'), join(ws, 'ledger.jsonl'));
        return 'ledger.jsonl';
      },
      run: (ws) => ['s1', 'run-local', '--workspace', ws, '--date', DATE],
    },
  ];

  for (const c of cases) {
    it(`${c.name}: the command exits 30 naming the link, the outside is byte-identical, doctor names it`, () => {
      const ws = tempWorkspace();
      const out = outside();
      c.before?.(ws);
      const link = c.plant(ws, out);
      const before = snapshot(out);
      const r = cli(c.run(ws), { env: { METASPN_LOG_LEVEL: 'warn' } });
      expect(r.code, r.stderr).toBe(30);
      // One line naming the link: on stderr, or in a run's `failed:` line on stdout.
      expect(`${r.stdout}${r.stderr}`).toContain(`${join(ws, link)}: is a symbolic link inside the workspace`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(snapshot(out)).toEqual(before);
      expect(lstatSync(join(ws, link)).isSymbolicLink()).toBe(true);

      const doc = cli(['doctor', '--workspace', ws, '--json']);
      expect(doc.code, doc.stderr).toBe(30);
      const report = JSON.parse(doc.stdout) as { findings: Array<{ area: string; path: string; severity: string }> };
      expect(report.findings).toContainEqual(expect.objectContaining({ area: 'link', path: link, severity: 'error' }));
      expect(snapshot(out)).toEqual(before);
    });
  }

  it('the workspace root itself may be a link', () => {
    const ws = tempWorkspace();
    const parent = outside();
    const alias = join(parent, 'ws');
    symlinkSync(ws, alias);
    expect(cli(['queue', 'enqueue', 'q', '--workspace', alias, '--payload', '{"k":1}']).code).toBe(0);
    expect(cli(['doctor', '--workspace', alias]).code).toBe(0);
  });
});

describe('modes are explicit, whatever the umask', () => {
  it('under umask 000 no created file or folder is group- or world-writable; --payload is not copied into the log', () => {
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
