import type { Command } from 'commander';
import { UsageError } from '../../guard/errors.js';
import { EXIT } from '../../guard/exit-codes.js';
import { verifyDeployment } from '../../ops/reports/verify.js';
import { setExitCode } from '../exit.js';
import { printJson, printOut } from '../format.js';
import { positiveInt } from '../options.js';

/**
 * `metaspn verify --url URL [--token T]`: exit 0 when every check passed, 50 when any failed (one
 * `FAIL <check>: <why>` line each), 64 for a bad URL.
 */
export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('after a deployment: health, readiness, metrics, and writes refused where they should be; exit 0 or 50')
    .requiredOption('--url <url>', 'base URL of `metaspn serve`, e.g. http://127.0.0.1:4001')
    .option('--token <token>', 'the admin token (default: METASPN_ADMIN_TOKEN); needed from non-loopback addresses')
    .option('--timeout-ms <n>', 'per request', positiveInt('--timeout-ms'), 10_000)
    .option('--json', 'print JSON')
    .action(async (o: { url: string; token?: string; timeoutMs: number; json?: boolean }) => {
      let ok = false;
      try {
        ok = ['http:', 'https:'].includes(new URL(o.url).protocol);
      } catch {
        ok = false;
      }
      if (!ok) throw new UsageError(`--url must be an http(s) URL, got "${o.url}"`);
      const token = o.token ?? process.env.METASPN_ADMIN_TOKEN ?? null;
      const r = await verifyDeployment(o.url, { token: token || null, timeoutMs: o.timeoutMs });
      const code = r.status === 'pass' ? EXIT.SUCCESS : EXIT.INTERNAL_ERROR;
      setExitCode(code);
      if (o.json) return printJson({ ...r, exit_code: code });
      const failed = r.checks.filter((c) => !c.ok);
      const lines = r.checks.map((c) => `${c.ok ? 'PASS' : 'FAIL'} ${c.name}: ${c.detail}`);
      lines.push(failed.length ? `STATUS=FAIL failed=${failed.map((c) => c.name).join(',')} (exit ${code})` : `STATUS=PASS ${r.url} (${r.env ?? 'env unknown'})`);
      printOut(`${lines.join('\n')}\n`);
    });
}
