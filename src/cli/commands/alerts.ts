import type { Command } from 'commander';
import { EXIT } from '../../guard/exit-codes.js';
import { checkAlerts, type CheckResult } from '../../ops/alerts/check.js';
import { alertSettings } from '../../config/alerts.js';
import { readOpenAlerts, type OpenAlert } from '../../ops/alerts/state.js';
import { setExitCode } from '../exit.js';
import { printJson, table, printOut } from '../format.js';
import { openWorkspace } from '../options.js';
import { openSession } from '../session.js';
import { backendFor, databaseUrlOption } from '../backend.js';
import { opsSource } from '../../ops/source.js';

/**
 * Exit codes of `alerts check` (docs/OPS.md), one of:
 * 0 no alert is open (and no delivery is pending); 60 (ANOMALY_HALT) at least one alert is open and
 * every delivery due was made (or no webhook is set); 50 (INTERNAL_ERROR) a delivery failed: the
 * alert stays pending and is sent again at the next check. 50 wins over 60: when the webhook is down
 * the exit code is the only notice anybody gets, and it must say the webhook needs fixing.
 */
export function alertsExitCode(r: Pick<CheckResult, 'open' | 'failed'>): number {
  if (r.failed.length > 0) return EXIT.INTERNAL_ERROR;
  return r.open.length > 0 ? EXIT.ANOMALY_HALT : EXIT.SUCCESS;
}

function rows(open: OpenAlert[], note: (a: OpenAlert) => string): string[][] {
  return open.map((a) => [a.severity.toUpperCase(), a.rule, `${a.message}${note(a) ? `  [${note(a)}]` : ''}`]);
}

export function registerAlerts(program: Command): void {
  const alerts = program.command('alerts').description('alert rules over the workspace, sent to METASPN_ALERT_WEBHOOK_URL');

  alerts
    .command('check')
    .description('evaluate the rules, send what is due (once per cooldown), retry failed deliveries; for cron. Exit 0 none open, 60 open, 50 a delivery failed')
    .option('--workspace <dir>', 'workspace folder', '.')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON')
    .action(async (o: { workspace: string; json?: boolean; databaseUrl?: string }) => {
      const s = openSession(o.workspace, { module: 'alerts' });
      const settings = alertSettings(s.cfg.alerts);
      // The rules read the queues and runs of the backend in use (the database's, on PostgreSQL).
      const source = opsSource(s.ws, backendFor(s.cfg, o.databaseUrl));
      let r;
      try {
        r = await checkAlerts(s.ws, settings, { log: s.log.logger, source });
      } finally {
        await source.close();
      }
      const code = alertsExitCode(r);
      setExitCode(code);
      if (o.json) return printJson({ ...r, exit_code: code });
      const sent = new Set(r.sent.map((x) => x.fingerprint));
      const failed = new Map(r.failed.map((x) => [x.fingerprint, x]));
      const cooling = new Set(r.cooling);
      const note = (a: OpenAlert): string => {
        if (sent.has(a.fingerprint)) return 'sent';
        const f = failed.get(a.fingerprint);
        if (f) return `NOT DELIVERED (attempt ${f.attempts}): ${f.error}`;
        if (cooling.has(a.fingerprint)) return `sent ${a.last_sent_at}, within the cooldown`;
        return r.webhook === 'configured' ? '' : 'not sent: no webhook';
      };
      const lines: string[] = [];
      if (r.open.length) lines.push(table(rows(r.open, note)));
      for (const fp of r.resolved) lines.push(`resolved: ${fp}`);
      for (const f of r.failed.filter((x) => !r.open.some((a) => a.fingerprint === x.fingerprint))) lines.push(`not delivered (resolved since): ${f.fingerprint}: ${f.error}`);
      for (const u of r.unreadable) lines.push(`unreadable queue ${u.queue}: ${u.error}`);
      const tail =
        r.webhook === 'configured'
          ? `sent ${r.sent.length}, within the cooldown ${r.cooling.length}, not delivered ${r.failed.length}${r.failed.length ? ' (retried at the next check)' : ''}`
          : 'METASPN_ALERT_WEBHOOK_URL is not set: nothing sent';
      lines.push(`${r.open.length ? `${r.open.length} open alert(s)` : 'no open alerts'}; ${tail} (exit ${code})`);
      printOut(`${lines.join('\n')}\n`);
    });

  alerts
    .command('list')
    .description('the open alerts as of the last check (nothing is evaluated or sent); always exit 0')
    .option('--workspace <dir>', 'workspace folder', '.')
    .option('--json', 'print JSON')
    .action((o: { workspace: string; json?: boolean }) => {
      const ws = openWorkspace(o.workspace);
      const r = readOpenAlerts(ws);
      if (o.json) return printJson(r);
      const note = (a: OpenAlert): string => (a.delivery === 'pending' ? 'delivery pending' : a.last_sent_at ? `sent ${a.last_sent_at}` : 'not sent');
      const head = r.checked_at ? `last check ${r.checked_at}` : 'never checked: run `metaspn alerts check`';
      printOut(`${[head, ...(r.open.length ? [table(rows(r.open, note))] : ['no open alerts'])].join('\n')}\n`);
    });
}
