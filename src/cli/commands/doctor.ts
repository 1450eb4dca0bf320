import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import { doctor } from '../../doctor/doctor.js';
import { EXIT, mostSevere } from '../../guard/exit-codes.js';
import { setExitCode } from '../exit.js';
import { printJson, printOut } from '../format.js';
import { openWorkspace } from '../options.js';
import { openSession } from '../session.js';
import { resolveBackend } from '../../backend/pg/setting.js';
import { backendFor, databaseUrlOption } from '../backend.js';

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('verify every file of a workspace; --repair fixes what is safe to fix (nothing is deleted)')
    .option('--workspace <dir>', 'workspace folder', '.')
    .option('--repair', 'fix torn tails, indexes, stale locks, expired leases, dead-letter files; on PostgreSQL, task counters that drifted from the rows')
    .option('--json', 'print JSON')
    .addOption(databaseUrlOption())
    .action(async (o: { workspace: string; repair?: boolean; json?: boolean; databaseUrl?: string }) => {
      const ws = openWorkspace(o.workspace);
      let cfg = null;
      try {
        cfg = loadConfig(ws);
      } catch {
        cfg = null;
      }
      const s = o.repair ? openSession(o.workspace, { module: 'doctor' }) : null;
      // On PostgreSQL (--database-url, METASPN_DATABASE_URL or backend.url) the database is checked too.
      const database = cfg ? backendFor(cfg, o.databaseUrl) : o.databaseUrl !== undefined ? resolveBackend({ flag: o.databaseUrl }) : null;
      const report = await doctor(ws, cfg, { repair: !!o.repair, database });
      // Each error left means its own code: a config that does not load or a database that refuses
      // the login 20, a database that cannot be reached 11, anything else 30; the most severe wins.
      const left = report.findings.filter((x) => x.severity === 'error' && !x.repaired);
      const code = report.errors === 0 ? EXIT.SUCCESS : mostSevere(left.map((x) => x.exit_code ?? EXIT.STATE_CORRUPT));
      s?.log.logger.info({ event: 'doctor', repaired: report.repaired, errors: report.errors, rc: code }, 'doctor --repair finished');
      setExitCode(code);
      if (o.json) return printJson({ ...report, exit_code: code });
      const lines = report.findings.map((x) => `${x.repaired ? 'FIXED' : x.severity.toUpperCase().padEnd(7)} ${x.path}: ${x.message}${x.fix && !x.repaired ? `\n        fix: ${x.fix}` : ''}`);
      const errs = report.findings.filter((x) => x.severity === 'error' && !x.repaired).length;
      const warns = report.findings.filter((x) => x.severity === 'warning' && !x.repaired).length;
      lines.push(report.findings.length === 0 ? 'clean: every file verifies' : `${errs} error(s), ${warns} warning(s)${o.repair ? `, ${report.repaired} fixed` : ''}`);
      printOut(`${lines.join('\n')}\n`);
    });
}
