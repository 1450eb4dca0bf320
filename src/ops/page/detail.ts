/**
 * The /ops page's detail views, server-rendered like the page and read-only: a task in any state
 * and a dead letter (its payload, every attempt's error, its history) and a run (its steps, and from each step's manifest
 * what it read, wrote and checked). Links are relative, so they work under a path prefix.
 */
import type { DeadLetter, TaskRecord, TaskView } from '../../queue/types.js';
import type { Manifest } from '../../storage/manifest.js';
import type { RunInfo } from '../../storage/runs.js';
import { OPS_CSS } from './client.js';
import { html, raw, type Html } from './html.js';
import { formatDuration, formatTime } from './render.js';

/** A detail page: the page's stylesheet, a title, a way back. `up` is the relative path to /ops. */
function shell(nonce: string, title: string, up: string, body: Html): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · metaspn ops</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">${raw(OPS_CSS)}</style>
</head>
<body class="detail">
<div class="toolbar"><a href="${up}" id="back">← ops</a><span class="spacer"></span><span class="stamp">${title}</span></div>
<main>
${body}
</main>
</body>
</html>
`.text;
}

/** A dead letter: what it is, its payload, each attempt's error with its stack, retries and cancellation. */
export function renderTaskPage(nonce: string, worker: string, d: DeadLetter): string {
  const t = d.task;
  const body = html`<section id="task"><h2>Dead letter <span class="mono">${t.id}</span></h2>
<dl class="kv">
<dt>Queue</dt><dd class="mono">${worker}</dd>
<dt>Attempts</dt><dd>${d.attempt_count} of ${t.max_attempts}</dd>
<dt>Created</dt><dd>${formatTime(t.created_at)}</dd>
<dt>First failure</dt><dd>${formatTime(d.first_failure_at)}</dd>
<dt>Dead since</dt><dd>${formatTime(d.dead_at)}</dd>
${t.group ? html`<dt>Group</dt><dd class="mono">${t.group}</dd>` : null}
<dt>Last error</dt><dd>${d.reason ? html`<span class="badge bad">${d.reason.kind}</span> <span class="mono">${d.reason.class}</span>: ${d.reason.message}` : '—'}</dd>
</dl>
<p class="muted">Retry or discard it from the dead letters on the ops page, or: <span class="mono">metaspn queue retry ${worker} --task-id ${t.id}</span></p>
</section>
${taskSections(t)}`;
  return shell(nonce, `${worker} / ${t.id}`, '../../../ops', body);
}

/** Any task of a queue, in whatever state it is (ready, scheduled, leased, completed, cancelled). */
export function renderTaskViewPage(nonce: string, worker: string, v: TaskView): string {
  const t = v.task;
  const body = html`<section id="task"><h2>Task <span class="mono">${t.id}</span> <span class="badge">${v.state}</span></h2>
<dl class="kv">
<dt>Queue</dt><dd class="mono">${worker}</dd>
<dt>State</dt><dd>${v.state}</dd>
<dt>Attempts</dt><dd>${t.attempt_count} of ${t.max_attempts}</dd>
<dt>Created</dt><dd>${formatTime(t.created_at)}</dd>
<dt>Updated</dt><dd>${formatTime(t.updated_at)}</dd>
${t.group ? html`<dt>Group</dt><dd class="mono">${t.group}</dd>` : null}
</dl>
</section>
${taskSections(t)}`;
  return shell(nonce, `${worker} / ${t.id}`, '../../../ops', body);
}

/** What every task view shows: the payload, each attempt's error (with its stack), and the history. */
function taskSections(t: TaskRecord): Html {
  return html`<section id="payload"><h2>Payload</h2><pre class="payload mono">${JSON.stringify(t.payload, null, 2)}</pre></section>
<section id="errors"><h2>Attempts</h2>
${t.errors.length
  ? html`<div class="scroll"><table id="errors-table">
<thead><tr><th class="num">#</th><th>At (UTC)</th><th>Kind</th><th>Error</th></tr></thead>
<tbody>${t.errors.map(
      (e) => html`<tr data-attempt="${e.attempt}">
<td class="num">${e.attempt}</td>
<td>${formatTime(e.at)}</td>
<td><span class="badge ${e.kind === 'contract' ? 'bad' : 'warn'}">${e.kind}</span></td>
<td class="err"><span class="mono">${e.class}</span>${e.code ? html` <span class="mono">[${e.code}]</span>` : null}: ${e.message}${e.stack?.length ? html`<pre class="payload mono">${e.stack.join('\n')}</pre>` : null}</td>
</tr>`,
    )}</tbody>
</table></div>`
  : html`<p class="empty">No failed attempt.</p>`}
</section>
<section id="history"><h2>History</h2>
${t.retries.length || t.cancelled
  ? html`<ul>${t.retries.map((r) => html`<li>${formatTime(r.at)}: retried by <span class="mono">${r.by}</span> after ${r.attempt_count} attempt(s)</li>`)}${t.cancelled ? html`<li>${formatTime(t.cancelled.at)}: ${t.cancelled.discarded ? 'discarded' : 'cancelled'} by <span class="mono">${t.cancelled.by}</span>: ${t.cancelled.reason}</li>` : null}</ul>`
  : html`<p class="empty">Never retried.</p>`}
</section>`;
}

/** A run: its steps, and for each, the manifest: tasks, inputs read (with digests), outputs written, checks. */
export function renderRunPage(nonce: string, run: RunInfo, manifests: (Manifest | null)[]): string {
  const step = (s: RunInfo['steps'][number], m: Manifest | null): Html => html`<section class="step" data-step="${s.step}">
<h3><span class="mono">${s.step}</span> <span class="badge ${s.status === 'success' ? 'ok' : 'bad'}">${s.status}</span> <span class="muted">${formatDuration(s.duration_ms)}, exit ${s.exit_code}</span></h3>
${m
  ? html`<dl class="kv">
<dt>Tasks</dt><dd>${m.tasks.completed} completed of ${m.tasks.total} (${m.tasks.enqueued} enqueued, ${m.tasks.already_queued} already queued, ${m.tasks.retried} retried, ${m.tasks.dead} dead)</dd>
${m.error ? html`<dt>Error</dt><dd class="err"><span class="mono">${m.error.class}</span>: ${m.error.message}</dd>` : null}
<dt>Manifest</dt><dd class="mono">${s.manifest}</dd>
</dl>
<h4>Read</h4>
${m.inputs.length ? html`<div class="scroll"><table class="inputs"><thead><tr><th>File</th><th class="num">Rows</th><th>sha256</th></tr></thead><tbody>${m.inputs.map((i) => html`<tr><td class="mono">${i.path}</td><td class="num">${i.rows}</td><td class="mono">${i.sha256.slice(0, 16)}…</td></tr>`)}</tbody></table></div>` : html`<p class="empty">Nothing read from files.</p>`}
<h4>Wrote</h4>
${m.outputs.length ? html`<div class="scroll"><table class="outputs"><thead><tr><th>File</th><th class="num">Rows written</th><th class="num">Already present</th><th>sha256</th></tr></thead><tbody>${m.outputs.map((o) => html`<tr><td class="mono">${o.path}</td><td class="num">${o.rows_written}</td><td class="num">${o.rows_present}</td><td class="mono">${o.sha256.slice(0, 16)}…</td></tr>`)}</tbody></table></div>` : html`<p class="empty">Nothing written.</p>`}
${m.checks.length ? html`<h4>Checks</h4><ul>${m.checks.map((c) => html`<li><span class="badge ${c.status === 'pass' ? 'ok' : c.status === 'fail' ? 'bad' : 'warn'}">${c.status}</span> <span class="mono">${c.name}</span>${c.note ? html`: ${c.note}` : null}</li>`)}</ul>` : null}`
  : html`<p class="section-error">The manifest <span class="mono">${s.manifest}</span> does not read back.</p>`}
</section>`;
  const body = html`<section id="run"><h2>Run <span class="mono">${run.run_id}</span></h2>
<dl class="kv">
<dt>Pipeline</dt><dd>${run.pipeline}</dd>
<dt>Date</dt><dd>${run.date}${run.current ? html` <span class="badge ok">current</span>` : null}</dd>
<dt>As of</dt><dd>${formatTime(run.as_of)}</dd>
<dt>Status</dt><dd><span class="badge ${run.status === 'success' ? 'ok' : run.status === 'failed' ? 'bad' : 'warn'}">${run.status}</span> exit ${run.exit_code}</dd>
<dt>Started</dt><dd>${formatTime(run.started_at)}</dd>
<dt>Duration</dt><dd>${formatDuration(run.duration_ms)}</dd>
${run.retry_of_run_id ? html`<dt>Retry of</dt><dd class="mono"><a href="${encodeURIComponent(run.retry_of_run_id)}">${run.retry_of_run_id}</a></dd>` : null}
${run.failure ? html`<dt>Failure</dt><dd class="err">${run.failure}</dd>` : null}
</dl>
</section>
${run.steps.map((s, i) => step(s, manifests[i] ?? null))}`;
  return shell(nonce, `run ${run.run_id}`, '../../ops', body);
}

/** A detail that is not there (404), on the same shell. */
export function renderMissingPage(nonce: string, what: string, up: string): string {
  return shell(nonce, 'not found', up, html`<section><h2>Not found</h2><p>${what}</p></section>`);
}
