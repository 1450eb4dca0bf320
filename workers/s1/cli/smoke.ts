import type { Command } from 'commander';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { loadConfig } from '../../../src/config/load.js';
import { EXIT } from '../../../src/guard/exit-codes.js';
import { silentLogger } from '../../../src/log.js';
import { manifestsOf } from '../../../src/storage/manifest.js';
import { workspacePaths, type WorkspacePaths } from '../../../src/storage/paths.js';
import { readPointer } from '../../../src/storage/pointers.js';
import { safeExists, safeMkdir, safeReadFile, safeRm, safeWriteFile } from '../../../src/storage/safe-path.js';
import { addDays } from '../dates.js';
import { STORE_FILES } from '../context.js';
import { STAGES } from '../ids.js';
import { runS1 } from '../pipeline.js';
import { planRun } from '../plan.js';
import { newRunId } from '../../../src/runtime/run-id.js';
import { setExitCode } from '../../../src/cli/exit.js';
import { printJson } from '../../../src/cli/format.js';
import { openSession } from '../../../src/cli/session.js';

/** The demo inputs shipped with the package. */
const DEMO_INPUTS = fileURLToPath(new URL('../../../../inputs/s1_signals.jsonl', import.meta.url));

class SmokeFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.INTERNAL_ERROR,
  ) {
    super(message);
  }
}

function sha(path: string): string {
  return safeExists(path) ? createHash('sha256').update(safeReadFile(path)).digest('hex') : 'missing';
}

/**
 * The whole pipeline on a temporary copy of the bundled demo inputs (with the workspace's config):
 * two consecutive dates, a replay, and checks of artifacts, manifests and pointers. Never writes
 * into the workspace's store; its summary goes to the workspace's log.
 */
async function smoke(ws: WorkspacePaths, tmp: string): Promise<{ dates: string[]; checks: string[] }> {
  const t = workspacePaths(tmp);
  safeMkdir(t.inputs);
  // The demo inputs are the package's, the config the user's (a link there is read, as everywhere).
  safeWriteFile(join(t.inputs, 's1_signals.jsonl'), readFileSync(DEMO_INPUTS));
  if (existsSync(ws.config)) safeWriteFile(t.config, readFileSync(ws.config));
  const cfg = loadConfig(t);
  const first = cfg.s1.season.start <= '2026-01-14' && '2026-01-15' <= cfg.s1.season.end ? '2026-01-14' : cfg.s1.season.start;
  const dates = [first, addDays(first, 1) <= cfg.s1.season.end ? addDays(first, 1) : first];
  const checks: string[] = [];
  const stop = new AbortController().signal;
  const run = async (date: string): Promise<void> => {
    const r = await runS1({ ws: t, cfg, plan: planRun(cfg.s1, date, undefined), runId: newRunId(), log: silentLogger, stop });
    if (r.exit_code !== 0 || r.status !== 'published') {
      const failed = r.stages.find((s) => s.status === 'failed');
      throw new SmokeFailure(`run-local ${date} exited ${r.exit_code}${failed?.error ? `: ${failed.step}: ${failed.error.message}` : ''}`, r.exit_code || EXIT.INTERNAL_ERROR);
    }
  };
  for (const d of dates) await run(d);
  checks.push(`run-local ${dates.join(' and ')}: exit 0, published`);
  for (const [stage, file] of Object.entries(STORE_FILES)) {
    const lines = safeExists(join(t.store, file)) ? safeReadFile(join(t.store, file)).split('\n').filter(Boolean) : [];
    if (lines.length === 0) throw new SmokeFailure(`store/${file} is empty after ${stage}`);
    const ids = lines.map((l) => (JSON.parse(l) as { id: string }).id);
    if (new Set(ids).size !== ids.length) throw new SmokeFailure(`store/${file} holds a duplicate id`);
  }
  checks.push('store: four artifact files, no duplicate id');
  for (const d of dates) {
    for (const step of STAGES) {
      const m = manifestsOf(t, step, d);
      if (!m.some((x) => x.status === 'success')) throw new SmokeFailure(`no successful manifest for ${step} on ${d}`);
    }
    const ptr = readPointer(t, 's1', d);
    if (!ptr) throw new SmokeFailure(`no current pointer for ${d}`);
    const ok = manifestsOf(t, 'publish_season_summary', d).some((m) => m.run_id === ptr.run_id && m.status === 'success');
    if (!ok) throw new SmokeFailure(`the pointer of ${d} names run ${ptr.run_id}, which has no successful summary manifest`);
  }
  checks.push('manifests: every step of every date succeeded; pointers name those runs');
  const before = Object.values(STORE_FILES).map((f) => sha(join(t.store, f)));
  await run(dates[dates.length - 1]!);
  const after = Object.values(STORE_FILES).map((f) => sha(join(t.store, f)));
  if (before.join() !== after.join()) throw new SmokeFailure('a replay changed the store: artifacts are not idempotent');
  checks.push('replay: store byte-identical');
  return { dates, checks };
}

export function registerSmoke(program: Command): void {
  program
    .command('smoke')
    .description('run the whole pipeline on a temporary copy of the demo inputs; prints STATUS=PASS or STATUS=FAIL')
    .option('--workspace <dir>', 'workspace whose config is used and whose log gets the summary', '.')
    .option('--json', 'print JSON')
    .action(async (o: { workspace: string; json?: boolean }) => {
      const s = openSession(o.workspace, { module: 'smoke' });
      const t0 = Date.now();
      let result: { status: 'PASS' | 'FAIL'; reason?: string; checks: string[]; exit_code: number };
      const tmp = mkdtempSync(join(tmpdir(), 'metaspn-smoke-'));
      try {
        const r = await smoke(s.ws, tmp);
        safeRm(tmp, { recursive: true, force: true });
        result = { status: 'PASS', checks: r.checks, exit_code: 0 };
      } catch (err) {
        // Kept for forensics: the reason may name files in it.
        const code = err instanceof SmokeFailure ? err.exitCode : ((err as { exitCode?: number }).exitCode ?? EXIT.INTERNAL_ERROR);
        result = { status: 'FAIL', reason: `${(err as Error).message} (smoke workspace kept at ${tmp})`, checks: [], exit_code: code };
      }
      const duration_ms = Date.now() - t0;
      s.log.logger[result.status === 'PASS' ? 'info' : 'error'](
        { event: 'smoke_summary', status: result.status, reason: result.reason ?? null, rc: result.exit_code, duration_ms },
        `smoke ${result.status}`,
      );
      setExitCode(result.exit_code);
      if (o.json) return printJson({ ...result, duration_ms });
      const lines = [...result.checks.map((c) => `ok  ${c}`), result.status === 'PASS' ? 'STATUS=PASS' : `STATUS=FAIL reason=${result.reason}`];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
