import { Option, type Command } from 'commander';
import { policyFor } from '../../config/load.js';
import { EXIT, mostSevere } from '../../guard/exit-codes.js';
import { makeOwner } from '../../queue/owner.js';
import { assertQueueName } from '../../queue/record.js';
import { openQueueLazy } from '../../queue/open-lazy.js';
import { monotonicMs } from '../../queue/system-clock.js';
import { DEFAULT_ISOLATION, inProcessHost, ISOLATIONS, type Isolation } from '../../runtime/isolation/host.js';
import { isolatedHost } from '../../runtime/isolation/pool.js';
import { loadWorker, resolveWorkerSpec } from '../../runtime/load-worker.js';
import { runWorker, type RunSummary } from '../../runtime/runner.js';
import { stopSignals } from '../../runtime/signals.js';
import { failureRatioGuard } from '../../runtime/stop-condition.js';
import { Ledger } from '../../storage/ledger.js';
import { DurationRecorder } from '../../storage/task-durations.js';
import { sleep } from '../../runtime/sleep.js';
import { setExitCode } from '../exit.js';
import { backendFor, databaseUrlOption } from '../backend.js';
import { nearQueueOfNew } from '../../ops/workspace-view.js';
import { printJson, printOut, printErr } from '../format.js';
import { LiveCounter } from '../progress.js';
import { UsageError } from '../../guard/errors.js';
import { positiveInt } from '../options.js';
import { openSession } from '../session.js';

interface RunOpts {
  workspace: string;
  quiet?: boolean;
  verbose?: boolean;
  once?: boolean;
  maxTasks?: number;
  concurrency?: number;
  pollMs?: number;
  isolation?: Isolation;
  databaseUrl?: string;
  json?: boolean;
}

/**
 * Exit codes of `worker run` (docs/EXIT-CODES.md), the most severe wins:
 * 0 every claimed task completed (or there was nothing to do); 11 some remain scheduled for retry,
 * were given back on a stop, or lost their lease; 20 some went to the dead letters with a contract
 * error; 30 a dead letter reports inconsistent state; 50 some went to the dead letters after
 * exhausting their retries.
 */
export function workerExitCode(s: RunSummary, deadCodes: readonly string[]): number {
  const codes: number[] = [EXIT.SUCCESS];
  if (s.retry_scheduled || s.released || s.lease_lost || s.abandoned || s.forced) codes.push(EXIT.BUSINESS_SKIP);
  if (s.dead_contract) codes.push(EXIT.DATA_INVALID);
  if (deadCodes.includes('STATE_CORRUPT')) codes.push(EXIT.STATE_CORRUPT);
  if (s.dead) codes.push(EXIT.INTERNAL_ERROR);
  return mostSevere(codes);
}

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('run worker modules')
    .command('run <spec>')
    .description('drain a queue with a worker: metaspn_ops.workers.s1:ProjectRewardsWorker or ./file.js:Export')
    .option('--workspace <dir>', 'workspace folder', '.')
    .option('--once', 'drain what is ready, then exit')
    .option('--max-tasks <n>', 'claim at most N tasks', positiveInt('--max-tasks'))
    .option('--concurrency <n>', 'tasks at once', positiveInt('--concurrency'))
    .option('--poll-ms <n>', 'idle poll interval', positiveInt('--poll-ms'))
    .addOption(new Option('--isolation <mode>', `where handlers run: a thread or a child process per slot, or none (in process); default: the worker's, else ${DEFAULT_ISOLATION}`).choices(ISOLATIONS))
    .addOption(databaseUrlOption())
    .option('--json', 'print the summary as JSON')
    .option('--quiet', 'print nothing but errors (no failed-attempt lines, no live counter, no summary); the log file has everything')
    .option('--verbose', 'print one line per task as it ends (completed ones too), instead of the live counter')
    .action(async (spec: string, o: RunOpts) => {
      if (o.quiet && o.verbose) throw new UsageError('give --quiet or --verbose, not both');
      const worker = await loadWorker(spec);
      assertQueueName(worker.name);
      const owner = makeOwner();
      // On a terminal, a live counter (unless --verbose, --quiet or --json asks for something else).
      const counter = !o.quiet && !o.verbose && !o.json && process.stderr.isTTY ? new LiveCounter(worker.name) : null;
      const s = openSession(o.workspace, { worker: worker.name, owner: owner.id }, { quiet: !!o.quiet, ...(counter ? { status: counter } : {}) });
      const log = s.log.logger;
      // The worker's own isolation is one of its defaults: config, then --isolation, win over it.
      const own = { ...(worker.defaults ?? {}), ...(worker.isolation !== undefined ? { isolation: worker.isolation } : {}) };
      const policy = policyFor(s.cfg, worker.name, own, { concurrency: o.concurrency, poll_ms: o.pollMs, isolation: o.isolation });
      const isolation = policy.isolation ?? DEFAULT_ISOLATION;
      const pg = backendFor(s.cfg, o.databaseUrl);
      // The worker's queue name comes from its module: one a typo away from an existing queue drains nothing.
      const near = pg ? null : nearQueueOfNew(s.ws, worker.name);
      if (near) printErr(`warning: ${worker.name} (the queue of ${spec}) has no tasks and no folder yet; did you mean ${near}?\n`);
      const queue = await openQueueLazy(s.ws, worker.name, policy, log, pg);
      const signals = stopSignals(log);
      const t0 = Date.now();
      // `backend`: the database the queue is on, for workers that read or write there too (Season 1's); absent on files.
      const init = { logger: log, workspace: s.ws, env: { config: s.cfg, ...(pg ? { backend: pg } : {}) } };
      // In isolates, each one loads the module and runs its init; here, this process does.
      const host = isolation === 'none' ? inProcessHost(worker) : isolatedHost({ isolation, spec: resolveWorkerSpec(spec), init });
      const deadCodes: string[] = [];
      let summary: RunSummary;
      try {
        if (isolation === 'none') await worker.init?.(init);
        log.info({ event: 'worker_start', spec, once: !!o.once, max_tasks: o.maxTasks ?? null, concurrency: policy.concurrency, isolation }, 'worker started');
        summary = await runWorker({
          queue,
          worker,
          host,
          owner,
          policy,
          once: !!o.once,
          ...(o.maxTasks !== undefined ? { maxTasks: o.maxTasks } : {}),
          init,
          stop: signals.stop,
          force: signals.force,
          now: Date.now,
          // Timeouts and lease renewals on the monotonic clock: a wall-clock step must not stop them.
          mono: monotonicMs,
          sleep,
          random: Math.random,
          onOutcome: (out) => {
            if (out.code) deadCodes.push(out.code);
            counter?.add(out.kind);
            // Failed attempts have their line already (the log's warning); --verbose adds the others.
            if (o.verbose && !['retry_scheduled', 'dead', 'dead_contract'].includes(out.kind)) {
              printErr(`${out.kind === 'completed' ? 'done' : out.kind.replace('_', ' ')}: task ${out.id} of ${worker.name}, attempt ${out.attempt}, ${out.duration_ms} ms\n`);
            }
          },
          haltWhen: failureRatioGuard(policy),
          durations: new DurationRecorder(s.ws, worker.name),
        });
        if (summary.halted) {
          // Stop condition: no retry storm against a broken dependency. The queue stays paused until resumed.
          await queue.pause(`guardrail: ${s.actor}`);
          log.error({ event: 'queue_paused_guardrail', worker: worker.name, reason: summary.halted }, `queue ${worker.name} paused: ${summary.halted}`);
          await new Ledger(s.ws).append('queue_paused_guardrail', { worker: worker.name, reason: summary.halted, by: s.actor });
        }
      } finally {
        counter?.stop();
        signals.dispose();
        if (isolation === 'none') await worker.close?.();
        await host.close();
        await queue.close();
      }
      const code = summary.halted ? EXIT.ANOMALY_HALT : workerExitCode(summary, deadCodes);
      const duration_ms = Date.now() - t0;
      log.info({ event: 'worker_end', ...summary, duration_ms, rc: code }, 'worker finished');
      setExitCode(code);
      if (o.json) return printJson({ worker: worker.name, ...summary, duration_ms, exit_code: code });
      if (o.quiet) return;
      const parts = [`claimed ${summary.claimed}`, `completed ${summary.completed}`];
      if (summary.retry_scheduled) parts.push(`retry scheduled ${summary.retry_scheduled}`);
      if (summary.dead || summary.dead_contract) parts.push(`dead-lettered ${summary.dead + summary.dead_contract} (contract ${summary.dead_contract})`);
      if (summary.released) parts.push(`given back ${summary.released}`);
      if (summary.lease_lost) parts.push(`lease lost ${summary.lease_lost}`);
      if (summary.abandoned) parts.push(`abandoned ${summary.abandoned}`);
      printOut(`worker ${worker.name}: ${parts.join(', ')} in ${(duration_ms / 1000).toFixed(1)}s (exit ${code})\n`);
    });
}
