import type { Command } from 'commander';
import { UsageError } from '../../guard/errors.js';
import { EXIT } from '../../guard/exit-codes.js';
import { alertSettings } from '../../config/alerts.js';
import { captureBaseline, writeBaseline } from '../../ops/reports/baseline.js';
import { checkDate, weeklyMarkdown, weeklyReport, writeWeekly } from '../../ops/reports/weekly.js';
import { opsSettings, type OpsSettings } from '../../ops/settings.js';
import { setExitCode } from '../exit.js';
import { printJson, printOut } from '../format.js';
import { nonNegativeInt, positiveInt } from '../options.js';
import { openSession } from '../session.js';

interface WeeklyOpts {
  workspace: string;
  anchorDate?: string;
  printMarkdown?: boolean;
  json?: boolean;
  minRuns?: number;
  minTasks?: number;
}

export function registerReport(program: Command): void {
  const report = program.command('report').description('reports over a workspace');
  report
    .command('weekly')
    .description('the week ending on --anchor-date: runs, exit codes, throughput, dead letters, retries, alerts (JSON and Markdown under reports/weekly/); exit 10 when the evidence is insufficient')
    .option('--workspace <dir>', 'workspace folder', '.')
    .option('--anchor-date <date>', 'last day of the week, YYYY-MM-DD (UTC); default today')
    .option('--print-markdown', 'print the Markdown report')
    .option('--json', 'print the JSON report')
    .option('--min-runs <n>', 'runs needed in the week (default: reports.weekly_min_runs, 5)', nonNegativeInt('--min-runs'))
    .option('--min-tasks <n>', 'tasks completed needed in the week (default: reports.weekly_min_tasks, 25)', nonNegativeInt('--min-tasks'))
    .action((o: WeeklyOpts) => {
      if (o.json && o.printMarkdown) throw new UsageError('--json and --print-markdown both print the report: choose one');
      const anchor = checkDate(o.anchorDate ?? new Date().toISOString().slice(0, 10), '--anchor-date');
      const s = openSession(o.workspace, { module: 'report' });
      const r = weeklyReport(s.ws, { anchor, minRuns: o.minRuns ?? s.cfg.reports.weekly_min_runs, minTasks: o.minTasks ?? s.cfg.reports.weekly_min_tasks });
      const ok = r.status === 'ok';
      const files = ok ? writeWeekly(s.ws, r) : null;
      const code = ok ? EXIT.SUCCESS : EXIT.BUSINESS_REJECT;
      s.log.logger.info({ event: 'report_weekly', anchor, status: r.status, observed: r.evidence.observed, required: r.evidence.required, rc: code }, `weekly report ${r.status}`);
      setExitCode(code);
      if (o.json) return printJson({ ...r, files, exit_code: code });
      if (o.printMarkdown) return void printOut(weeklyMarkdown(r));
      const ev = `runs ${r.evidence.observed.runs}/${r.evidence.required.runs}, tasks ${r.evidence.observed.tasks}/${r.evidence.required.tasks} (observed/required)`;
      const lines = [`weekly report ${r.window.from.slice(0, 10)}..${anchor}: status=${r.status}; ${ev}`];
      if (ok) {
        lines.push(
          `runs ${r.runs.total} (${Object.entries(r.runs.by_exit_code)
            .map(([c, n]) => `exit ${c}: ${n}`)
            .join(
              ', ',
            )}), tasks completed ${r.throughput.tasks_completed}, dead-lettered ${r.dead_letters.in_runs}, retries ${r.retries.task_retries_in_runs} + ${r.retries.deadletter_tasks_retried} dead letters, alerts opened ${r.alerts.opened}`,
          `written: ${files!.json}`,
          `         ${files!.markdown}`,
        );
      } else lines.push('nothing written: not enough evidence for a weekly report (exit 10)');
      printOut(`${lines.join('\n')}\n`);
    });

  program
    .command('baseline')
    .description('baseline snapshots to compare before and after a change')
    .command('capture')
    .description('queue stats, rates over the latest runs and every threshold in effect, to reports/baseline/baseline-<ts>.json and baseline_latest.json')
    .option('--workspace <dir>', 'workspace folder', '.')
    .option('--runs <n>', 'rates over this many of the latest runs (default: reports.baseline_runs, 20)', positiveInt('--runs'))
    .option('--json', 'print the snapshot')
    .action((o: { workspace: string; runs?: number; json?: boolean }) => {
      const s = openSession(o.workspace, { module: 'baseline' });
      let ops: OpsSettings | null = null;
      try {
        ops = opsSettings();
      } catch {
        ops = null; // a bad METASPN_ADMIN_* setting is `serve`'s to report; the snapshot records it as unknown
      }
      const b = captureBaseline(s.ws, s.cfg, { alerts: alertSettings(s.cfg.alerts), ops, runs: o.runs ?? s.cfg.reports.baseline_runs });
      const files = writeBaseline(s.ws, b);
      s.log.logger.info({ event: 'baseline_capture', file: files.file }, 'baseline captured');
      if (o.json) return printJson({ ...b, files });
      const r = b.rates;
      printOut(
        [
          `baseline ${b.captured_at}: ${Object.keys(b.queues).length} queue(s), ${r.runs_considered} run(s): ${r.tasks_per_hour ?? 'n/a'} tasks/hour, success rate ${r.success_rate ?? 'n/a'}, open alerts ${b.open_alerts}`,
          `written: ${files.file}`,
          `         ${files.latest}`,
        ].join('\n') + '\n',
      );
    });
}
