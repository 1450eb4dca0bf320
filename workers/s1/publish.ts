import { join, relative } from 'node:path';
import { readManifest, writeManifest } from '../../src/storage/manifest.js';
import { toMetaspnError } from '../../src/guard/errors.js';
import { EXIT } from '../../src/guard/exit-codes.js';
import { RunLockLostError } from '../../src/guard/run-lock.js';
import { writeIncident } from '../../src/storage/incidents.js';
import { pointerDates, pointerPath, readPointer, writePointer, type CurrentPointer } from '../../src/storage/pointers.js';
import { PIPELINE } from './context.js';
import { addDays } from './dates.js';
import { BUILTIN_CHECK_NAMES, evaluateGuardrails, windowHasSignals, type GuardrailCheck, type SummaryFacts } from './guardrails.js';
import type { DateRun, S1Env } from './run-types.js';

function facts(row: Record<string, unknown> | undefined): SummaryFacts | null {
  if (!row) return null;
  return {
    total_score: row.total_score as number,
    subjects_scored: row.subjects_scored as number,
    pool_units: row.pool_units as number,
    allocated_units: row.allocated_units as number,
  };
}

/**
 * The checks before publishing: the built-in `window_has_signals`, then the guardrails of the
 * date's summary against the summaries of the dates published before it (newest first). A
 * tripped one writes an incident per check and returns why the run halts.
 */
export async function guardrailChecks(env: S1Env, r: DateRun): Promise<{ checks: GuardrailCheck[]; tripped: string | null }> {
  const { s1, ws, cfg } = env;
  const { date } = r.plan;
  const window = { first: addDays(date, 1 - cfg.s1.attention.window_days), last: date, as_of: r.plan.as_of };
  const checks: GuardrailCheck[] = [windowHasSignals(r.windowSignals, window, env.skipChecks)];
  const today = r.countedParams ? facts((await s1.rows('publish_season_summary', date, r.countedParams))[0]) : null;
  if (today) {
    const depth = Math.max(cfg.guardrails.total_score_ratio.window, cfg.guardrails.subjects_scored_drop.window);
    const history: SummaryFacts[] = [];
    for (const d of pointerDates(ws, PIPELINE).filter((x) => x < date).reverse()) {
      if (history.length >= depth) break;
      const ptr = readPointer(ws, PIPELINE, d);
      if (!ptr) continue;
      const row = (await s1.rows('publish_season_summary', d, ptr.params)).find((x) => x.id === ptr.summary_id);
      const f = facts(row);
      if (f) history.push(f);
    }
    checks.push(...evaluateGuardrails(cfg.guardrails, today, history, env.skipChecks));
  }
  const failed = checks.filter((c) => c.status === 'fail');
  for (const c of failed) {
    const incident = writeIncident(ws, 'anomaly_halt', `${date}-${c.name}`, {
      check: c.name,
      observed: c.observed,
      expected: c.expected,
      threshold: c.threshold,
      run_id: r.runId,
      date,
      note: 'nothing was published; the run\'s artifacts and manifests are kept. If it is a known false alarm: --skip-check NAME --reason TEXT',
    });
    r.log.error({ event: 'anomaly_halt', check: c.name, observed: c.observed, threshold: c.threshold, incident }, `check ${c.name} tripped`);
  }
  for (const c of checks.filter((x) => x.status === 'skipped')) r.log.warn({ event: 'guardrail_skipped', check: c.name, note: c.note }, `check ${c.name} skipped`);
  const kind = (name: string): string => ((BUILTIN_CHECK_NAMES as readonly string[]).includes(name) ? 'check' : 'guardrail');
  const tripped = failed.length
    ? `${failed.map((c) => `${kind(c.name)} ${c.name}`).join(', ')} tripped (${failed.map((c) => JSON.stringify(c.observed)).join('; ')}); nothing published, see reports/incidents/`
    : null;
  return { checks, tripped };
}

/**
 * Moves the date's current pointer to this run: a ledger entry first (durable), then the pointer
 * file, replaced atomically. Only after every stage and check passed, and never with a lost lock:
 * both writes run inside the run lock's fence (RunLock.whileHeld), which checks the lock first.
 */
export async function publishRun(env: S1Env, r: DateRun): Promise<void> {
  try {
    await publishOrThrow(env, r);
  } catch (err) {
    // Every stage passed and its manifests say so; only the pointer did not move. Say why.
    const e = toMetaspnError(err);
    r.failed = true;
    r.exit_code = e.exitCode;
    r.publishError = `${e.message}${e.hint ? ` (${e.hint})` : ''}`;
    r.log.error({ event: 'publish_failed', error: e.message }, 'not published');
    markPublishFailed(env, r, e.message, e.exitCode);
  }
}

/** Publishing ends the last step: when it fails, that step's manifest says so (run history reads it). */
function markPublishFailed(env: S1Env, r: DateRun, message: string, exit: number): void {
  const last = r.stages[r.stages.length - 1];
  if (!last) return;
  const path = join(env.ws.root, last.manifest);
  const m = readManifest(path);
  if (!m) return;
  writeManifest(env.ws, { ...m, status: 'failed', error: { class: 'PublishFailed', message }, exit_code: exit });
  last.status = 'failed';
  last.exit_code = exit;
  last.error = { class: 'PublishFailed', message };
}

async function publishOrThrow(env: S1Env, r: DateRun): Promise<void> {
  const { ws } = env;
  const { date } = r.plan;
  const params = r.countedParams;
  if (!params) throw new Error(`publishing ${date} before its counted digest was planned`);
  const lock = env.lockLost;
  if (lock?.()) {
    refuse(r);
    return;
  }
  const publish = async (): Promise<void> => {
    const previous = readPointer(ws, PIPELINE, date);
    const pointer: CurrentPointer = { pipeline: PIPELINE, date, run_id: r.runId, summary_id: env.s1.summaryIdFor(date, params), published_at: new Date().toISOString(), params };
    const skipped = [...env.skipChecks].map(([name, reason]) => ({ name, reason }));
    // A restatement: the date was published before with other content (a new summary id).
    const restates = previous && previous.summary_id !== pointer.summary_id ? previous.run_id : null;
    await env.ledger.append(
      'publish',
      {
        pipeline: PIPELINE,
        date,
        pointer,
        previous,
        ...(restates ? { restatement_of: restates } : {}),
        ...(r.plan.provisional ? { provisional: true } : {}),
        ...(skipped.length ? { skipped_checks: skipped } : {}),
      },
      r.runId,
    );
    writePointer(ws, pointer);
    env.s1.forgetCounted();
    r.pointer = relative(ws.root, pointerPath(ws, PIPELINE, date));
    if (restates) r.restates = restates;
    r.log.info({ event: 'published', date, summary_id: pointer.summary_id, ...(restates ? { restatement_of: restates } : {}) }, restates ? `published ${date}, restating run ${restates}` : `published ${date}`);
  };
  try {
    // The fence: inside it nobody can take the lock over, and it checks first that the lock is
    // still this run's. A holder that lost it writes neither the ledger entry nor the pointer.
    await (lock ? lock.whileHeld(publish) : publish());
  } catch (err) {
    if (!(err instanceof RunLockLostError)) throw err;
    refuse(r);
  }
}

/** The lock was lost during the run: exit 30, nothing published (the warning names who has it now). */
function refuse(r: DateRun): void {
  r.exit_code = EXIT.STATE_CORRUPT;
  r.failed = true;
  r.log.error({ event: 'publish_refused' }, 'run lock was lost during the run: not publishing');
}
