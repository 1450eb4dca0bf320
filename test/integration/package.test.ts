// The packed tarball, installed into a project of its own, as a user gets it: the CLI runs from
// its bin, Season 1 works from it, and a worker module importing from 'metaspn' runs and is typed.
// `npm test` builds dist/ first; the tarball is packed from it once for the file (--ignore-scripts:
// prepack would only build it again).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './cli.js';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

let dir = '';
let tgz = '';
let project = '';
let failed = false;
/** What `npm install <tarball>` printed on stderr. */
let installStderr = '';

interface Out {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The tests' processes run without NODE_EXTRA_CA_CERTS (it costs each start about 50 ms; scripts/test.mjs
 * and test/global-setup.ts keep it aside): npm, which may reach the registry over TLS, gets it back.
 */
const CA_CERTS = process.env.NODE_EXTRA_CA_CERTS ?? process.env.METASPN_TEST_NPM_CA_CERTS;
const npmEnv = CA_CERTS === undefined ? {} : { NODE_EXTRA_CA_CERTS: CA_CERTS };

function sh(cmd: string, args: string[], cwd: string, timeout = 180_000): Out {
  const env = { ...process.env, ...(cmd === npm ? npmEnv : {}), npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error ? String(r.error) : '') };
}

/** The installed CLI, through the link npm made in node_modules/.bin (its shebang runs it). */
function metaspn(args: string[], cwd = project): Out {
  return sh(join(project, 'node_modules', '.bin', 'metaspn'), args, cwd, 60_000);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'metaspn-pkg-'));
  const pack = sh(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT);
  expect(pack.code, pack.stderr).toBe(0);
  const [info] = JSON.parse(pack.stdout) as { filename: string }[];
  tgz = join(dir, info!.filename);
  project = join(dir, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-project', version: '1.0.0', private: true, type: 'module' }));
  // Dependencies come from npm's cache when it has them, else from the registry.
  const install = sh(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', tgz], project);
  expect(install.code, install.stderr).toBe(0);
  installStderr = install.stderr;
}, 240_000);

afterAll(() => {
  if (dir && !failed) rmSync(dir, { recursive: true, force: true });
  else if (dir) process.stderr.write(`kept the package test's folder: ${dir}\n`);
});

// A failed test keeps the folder (tarball, project, workspaces) for a look.
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') failed = true;
});

describe('the packed package', () => {
  it('ships the built CLI, its declarations, Season 1 and the docs; not the tests, sources or bench', () => {
    const r = sh('tar', ['tzf', tgz], dir);
    expect(r.code).toBe(0);
    const files = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, ''));
    for (const f of [
      'bin/metaspn.js',
      'dist/src/cli/main.js',
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'dist/workers/s1/bundle.js',
      'dist/src/runtime/isolation/entry.js',
      'inputs/s1_signals.jsonl',
      'README.md',
      'docs/EXIT-CODES.md',
      'package.json',
    ]) {
      expect(files, f).toContain(f);
    }
    const stray = files.filter((f) => /^(test|chaos|bench|src|workers|scripts|examples|dist\/bench|dist\/scripts)\//.test(f) || f.endsWith('.map') || (f.endsWith('.ts') && !f.endsWith('.d.ts')));
    expect(stray).toEqual([]);
  });

  it('installs on this Node with no dependency that declares another (no EBADENGINE): package.json pins them', () => {
    expect(installStderr).not.toMatch(/EBADENGINE/);
    const lmr = JSON.parse(readFileSync(join(project, 'node_modules', 'light-my-request', 'package.json'), 'utf8')) as { version: string };
    expect(lmr.version).toBe('6.6.0');
  });

  it('`metaspn --version` runs from the installed bin', () => {
    const r = metaspn(['--version']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(VERSION);
  });

  // npx installs the tarball and its dependencies again, into a cache of its own: 23 s at load 12,
  // over 60 s at load 19. The test may take as long as the command may.
  it('`npx` runs it from the tarball', { timeout: 150_000 }, () => {
    const r = sh(npm, ['exec', '--yes', '--prefer-offline', '--package', tgz, '--', 'metaspn', '--version'], dir, 120_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe(VERSION);
  });

  it('the bundled Season 1 runs from the installed package (smoke)', () => {
    const ws = join(dir, 'smoke-ws');
    mkdirSync(ws);
    const r = metaspn(['smoke', '--workspace', ws]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('STATUS=PASS');
  });

  it("a user's worker module importing from 'metaspn' runs with the installed CLI", () => {
    const ws = join(project, 'ws');
    mkdirSync(ws);
    writeFileSync(
      join(project, 'worker.mjs'),
      `import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { ContractError, defineWorker, EXIT } from 'metaspn';

export const Greeter = defineWorker({
  name: 'greetings',
  handle(task, ctx) {
    if (typeof task.payload.to !== 'string') throw new ContractError('payload.to must be a string');
    appendFileSync(join(ctx.workspace.root, 'greeted.txt'), \`hello \${task.payload.to} (exit codes known: \${EXIT.DATA_INVALID})\\n\`);
  },
});
`,
    );
    const ok = metaspn(['queue', 'enqueue', 'greetings', '--workspace', ws, '--payload', '{"to":"ada"}', '--id', 'ada']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('enqueued 1 task(s) to greetings');
    const bad = metaspn(['queue', 'enqueue', 'greetings', '--workspace', ws, '--payload', '{"to":7}', '--id', 'seven']);
    expect(bad.code, bad.stderr).toBe(0);
    const r = metaspn(['worker', 'run', './worker.mjs:Greeter', '--workspace', ws, '--once']);
    // One done, one contract error in the dead letters: exit 20 (DATA_INVALID).
    expect(r.code, r.stderr).toBe(20);
    expect(r.stdout).toContain('worker greetings: claimed 2, completed 1, dead-lettered 1 (contract 1)');
    expect(readFileSync(join(ws, 'greeted.txt'), 'utf8')).toBe('hello ada (exit codes known: 20)\n');
    const dead = metaspn(['queue', 'deadletter', 'list', 'greetings', '--workspace', ws, '--json']);
    expect(dead.code, dead.stderr).toBe(0);
    const list = (JSON.parse(dead.stdout) as { dead_letters: { task: { id: string }; reason: { class: string; message: string } }[] }).dead_letters;
    expect(list.map((d) => [d.task.id, d.reason.class, d.reason.message])).toEqual([['seven', 'ContractError', 'payload.to must be a string']]);
  });

  it("the API is typed in a user's TypeScript project: a right worker compiles, a wrong one is refused", () => {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const good = `import { ContractError, definePipeline, defineStep, defineWorker, type WorkerDefinition } from 'metaspn';

export const Receipts: WorkerDefinition<{ to: string; cents: number }> = defineWorker<{ to: string; cents: number }>({
  name: 'receipts',
  async handle(task, ctx) {
    if (task.payload.cents < 0) throw new ContractError(\`negative amount for \${task.payload.to}\`);
    ctx.logger.info({ attempt: ctx.attempt }, 'sent');
  },
});

export const pipeline = definePipeline({
  name: 'tiny',
  partition: 'date',
  steps: [defineStep<{ n: number }>({ name: 'count', plan: () => [{ key: '*', payload: { n: 1 } }], worker: defineWorker<{ n: number }>({ handle: (t) => [{ key: '*', n: t.payload.n }] }) })],
});
`;
    // Both files in one compilation (one tsc start instead of two): the errors must all be the
    // wrong one's, and it must have one.
    writeFileSync(join(project, 'typed.ts'), good);
    writeFileSync(join(project, 'wrong.ts'), good.replace('task.payload.cents < 0', 'task.payload.amount < 0'));
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
        },
        files: ['typed.ts', 'wrong.ts'],
      }),
    );
    const r = sh(process.execPath, [tsc, '-p', 'tsconfig.json', '--pretty', 'false'], project, 120_000);
    const errors = r.stdout.split('\n').filter((l) => / error TS\d+:/.test(l));
    expect(
      errors.filter((l) => !l.startsWith('wrong.ts(')),
      r.stdout + r.stderr,
    ).toEqual([]);
    expect(r.code).not.toBe(0);
    expect(errors.join('\n')).toMatch(/wrong\.ts\(\d+,\d+\): error TS2339: Property 'amount' does not exist/);
  });
});
