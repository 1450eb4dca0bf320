import type { LockStatus } from '../../guard/run-lock.js';
import type { DeadLetter } from '../../queue/types.js';
import type { RunInfo } from '../../storage/runs.js';
import type { StateFileProblem } from '../../storage/state-file.js';
import type { WorkerPresence } from '../source.js';
import type { QueueView } from '../workspace-view.js';
import { OPS_CSS, OPS_JS } from './client.js';
import { html, raw, type Html } from './html.js';

/** A section's data, or why it could not be read (the rest of the page still renders). */
export type Section<T> = { ok: true; value: T } | { ok: false; error: string };

/** Which page of a list is shown (1-based) and how many there are. */
export interface Paged {
  page: number;
  pages: number;
  /** Items before this page. */
  offset: number;
}

export interface DeadLetterGroup extends Partial<Paged> {
  worker: string;
  /** This page's dead letters, oldest first. */
  items: DeadLetter[];
  total: number;
}

export interface OpsPageView {
  env: 'development' | 'production';
  writeEnabled: boolean;
  version: string;
  workspace: string;
  /** Where the queues, runs and locks are read when they are in a database (`PostgreSQL schema S at host:port/db`); absent on files. */
  database?: string;
  generatedAt: Date;
  queues: Section<QueueView[]>;
  deadLetters: Section<DeadLetterGroup[]>;
  /** `problems`: run files that do not read back (left out of the table, named under it). */
  runs: Section<{ recent: RunInfo[]; total: number; problems?: StateFileProblem[] } & Partial<Paged>>;
  /** The run lock of each pipeline, bundled first. */
  locks: Section<{ name: string; status: LockStatus }[]>;
  /** Worker presence in the database (null on files: the file backend has none). */
  workers?: Section<WorkerPresence> | null;
  /** Attempts ended per minute over the last hour, every queue together, oldest first. */
  throughput: Section<{ minute: number; completed: number; failed: number }[]>;
  /** Live refresh period of the page, in ms. */
  refreshMs: number;
  /** The paging parameters of this view (kept by the pager's links and by Refresh). */
  query?: Record<string, string>;
}

/** A relative link to this page with `key` set to `value` (and the other paging parameters kept). */
function pageHref(v: OpsPageView, key: string, value: number): string {
  const q = new URLSearchParams({ ...(v.query ?? {}), [key]: String(value) });
  return `?${q.toString()}`;
}

/** "← newer · page 2 of 5 · older →": links to the neighbouring pages of one list. */
function pager(v: OpsPageView, key: string, p: Partial<Paged>, total: number, what: string, shown: number, prev: string, next: string): Html | null {
  if (!p.pages || p.pages <= 1 || !p.page) return null;
  const from = (p.offset ?? 0) + 1;
  return html`<p class="pager muted" data-pager="${key}">${p.page > 1 ? html`<a href="${pageHref(v, key, p.page - 1)}" rel="prev">← ${prev}</a> · ` : null}${what} ${from}–${from + shown - 1} of ${total} (page ${p.page} of ${p.pages})${p.page < p.pages ? html` · <a href="${pageHref(v, key, p.page + 1)}" rel="next">${next} →</a>` : null}</p>`;
}

/** A link to a task's detail page (relative: it works under a path prefix). */
export function taskHref(worker: string, id: string): string {
  return `ops/task/${encodeURIComponent(worker)}/${encodeURIComponent(id)}`;
}

/** A link to a run's detail page (relative). */
export function runHref(runId: string): string {
  return `ops/run/${encodeURIComponent(runId)}`;
}

/** 42 → "42s", 754 → "12m 34s", 7300 → "2h 01m", 200000 → "2d 07h". */
export function formatAge(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, Math.round(seconds));
  const two = (n: number): string => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${two(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d ${two(Math.floor((s % 86400) / 3600))}h`;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return formatAge(ms / 1000);
}

/** ISO-8601 as "2026-01-15 12:00:03Z" (UTC, whole seconds). */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function sectionError(e: string): Html {
  return html`<p class="section-error">Could not read this section: ${e}</p>`;
}

function writeButton(v: OpsPageView, label: string, action: 'retry' | 'discard' | 'pause' | 'resume', worker: string, task: string | null, cls: string): Html {
  const off = v.writeEnabled ? null : html` disabled title="${`Writes are disabled on this server (${v.env.toUpperCase()})`}"`;
  return html`<button type="button" class="${cls}" data-action="${action}" data-worker="${worker}"${task === null ? null : html` data-task="${task}"`}${off}>${label}</button>`;
}

function queuesSection(v: OpsPageView): Html {
  if (!v.queues.ok) return sectionError(v.queues.error);
  if (v.queues.value.length === 0) return html`<p class="empty">No queues yet.</p>`;
  const rows = v.queues.value.map(
    (q) => html`<tr data-queue="${q.queue}" class="${q.dead > 0 ? 'hot' : ''}">
<td class="mono">${q.queue}</td>
<td class="num" data-stat="ready">${q.ready}</td>
<td class="num" data-stat="scheduled">${q.scheduled}</td>
<td class="num" data-stat="leased">${q.leased}</td>
<td class="num" data-stat="completed">${q.completed}</td>
<td class="num" data-stat="cancelled">${q.cancelled}</td>
<td class="num dead" data-stat="dead">${q.dead}</td>
<td data-stat="paused">${q.paused ? html`<span class="badge warn">paused</span>` : html`<span class="badge ok">running</span>`}</td>
<td class="num" data-stat="oldest_ready_age">${formatAge(q.oldest_ready_age_s)}</td>
<td>${q.paused ? writeButton(v, 'Resume', 'resume', q.queue, null, 'primary') : writeButton(v, 'Pause', 'pause', q.queue, null, '')}${q.corrupt_records > 0 ? html` <span class="badge bad" title="records failed their checksum and are set aside">${q.corrupt_records} corrupt</span>` : null}</td>
</tr>`,
  );
  return html`<div class="scroll"><table id="queues-table">
<thead><tr><th>Queue</th><th class="num">Ready</th><th class="num">Scheduled</th><th class="num">Leased</th><th class="num">Completed</th><th class="num" title="superseded by a newer run of their partition before they ran, or discarded from the dead letters">Cancelled</th><th class="num">Dead</th><th>State</th><th class="num">Oldest ready</th><th></th></tr></thead>
<tbody>${rows}</tbody>
</table></div>`;
}

/** A button acting on every dead letter of a queue (Retry all asks for a confirmation, Discard all for a reason). */
function bulkButton(v: OpsPageView, label: string, action: 'retry' | 'discard', g: DeadLetterGroup, cls: string): Html {
  const off = v.writeEnabled ? null : html` disabled title="${`Writes are disabled on this server (${v.env.toUpperCase()})`}"`;
  return html`<button type="button" class="${cls}" data-action="${action}" data-worker="${g.worker}" data-count="${g.total}"${off}>${label}</button>`;
}

function lastError(d: DeadLetter): Html {
  const e = d.reason ?? d.errors[d.errors.length - 1] ?? null;
  if (!e) return html`<span class="muted">—</span>`;
  return html`<span class="badge bad">${e.kind}</span> <span class="mono">${e.class}</span>: ${e.message}`;
}

function deadLettersSection(v: OpsPageView): Html {
  if (!v.deadLetters.ok) return sectionError(v.deadLetters.error);
  const groups = v.deadLetters.value.filter((g) => g.total > 0);
  if (groups.length === 0) return html`<p class="empty">No dead letters.</p>`;
  return html`${groups.map(
    (g) => html`<div class="dead-group" data-queue="${g.worker}">
<h3><span><span class="mono">${g.worker}</span> — ${g.total} dead letter${g.total === 1 ? '' : 's'}</span><span class="acts">${bulkButton(v, 'Retry all', 'retry', g, 'primary')}${bulkButton(v, 'Discard all', 'discard', g, 'danger')}</span></h3>
<div class="scroll"><table class="dead">
<colgroup><col class="task"><col class="attempts"><col class="since"><col><col class="act"></colgroup>
<thead><tr><th>Task</th><th class="num">Attempts</th><th>Dead since</th><th>Last error</th><th></th></tr></thead>
<tbody>${g.items.map(
      (d) => html`<tr data-task="${d.task.id}">
<td class="mono"><a href="${taskHref(g.worker, d.task.id)}">${d.task.id}</a></td>
<td class="num">${d.attempt_count}/${d.task.max_attempts}</td>
<td>${formatTime(d.dead_at)}</td>
<td class="err">${lastError(d)}</td>
<td class="act">${writeButton(v, 'Retry', 'retry', g.worker, d.task.id, 'primary')} ${writeButton(v, 'Discard', 'discard', g.worker, d.task.id, 'danger')}</td>
</tr>`,
    )}</tbody>
</table></div>
${g.pages && g.pages > 1 ? pager(v, `dl_${g.worker}`, g, g.total, 'dead letters', g.items.length, 'older', 'newer') : g.total > g.items.length ? html`<p class="muted">Showing the oldest ${g.items.length} of ${g.total}. All of them: <span class="mono">metaspn queue deadletter list ${g.worker}</span></p>` : null}
</div>`,
  )}`;
}

function runProblems(problems: StateFileProblem[]): Html | null {
  if (problems.length === 0) return null;
  return html`<div class="section-error" id="run-problems"><p>${problems.length} run file(s) do not read back and are left out; <span class="mono">metaspn doctor --repair</span> fixes them:</p>
<ul>${problems.slice(0, 20).map((p) => html`<li><span class="mono">${p.path}</span>: ${p.error}</li>`)}</ul></div>`;
}

function runsSection(v: OpsPageView): Html {
  if (!v.runs.ok) return sectionError(v.runs.error);
  const { recent, total } = v.runs.value;
  const problems = runProblems(v.runs.value.problems ?? []);
  if (recent.length === 0) return html`${problems}<p class="empty">No runs yet.</p>`;
  return html`${problems}<div class="scroll"><table id="runs-table">
<thead><tr><th>Run</th><th>Pipeline</th><th>Date</th><th>Status</th><th>Started (UTC)</th><th class="num">Duration</th><th class="num">Exit code</th><th>Failure</th></tr></thead>
<tbody>${recent.map(
    (r) => html`<tr data-run="${r.run_id}">
<td class="mono"><a href="${runHref(r.run_id)}">${r.run_id}</a>${r.current ? html` <span class="badge ok" title="the date's current pointer names this run">current</span>` : null}</td>
<td>${r.pipeline}</td>
<td>${r.date}</td>
<td><span class="badge ${r.status === 'success' ? 'ok' : r.status === 'failed' ? 'bad' : 'warn'}">${r.status}</span></td>
<td>${formatTime(r.started_at)}</td>
<td class="num">${formatDuration(r.duration_ms)}</td>
<td class="num">${r.exit_code}</td>
<td class="err">${r.failure ?? ''}</td>
</tr>`,
  )}</tbody>
</table></div>
${v.runs.value.pages && v.runs.value.pages > 1 ? pager(v, 'runs', v.runs.value, total, 'runs', recent.length, 'newer', 'older') : total > recent.length ? html`<p class="muted">The newest ${recent.length} of ${total} runs.</p>` : null}`;
}

function locksSection(v: OpsPageView): Html {
  if (!v.locks.ok) return sectionError(v.locks.error);
  return html`${v.locks.value.map((x) => html`<h3>Pipeline <span class="mono">${x.name}</span></h3>${lockList(x.name, x.status)}`)}`;
}

function lockList(name: string, l: LockStatus): Html {
  const p = l.payload;
  const active = l.held && p?.active === 1;
  const state = active
    ? html`<span class="badge warn">held</span>`
    : l.held
      ? html`<span class="badge warn">held (no active holder named)</span>`
      : html`<span class="badge ok">free</span>`;
  const alive = l.holder_alive === null ? 'unknown' : l.holder_alive ? 'yes' : 'no';
  return html`<dl class="kv lock" id="${`lock-${name}`}">
<dt>State</dt><dd>${state}${l.stale_reason ? html` <span class="badge bad">stale: ${l.stale_reason}</span>` : null}</dd>
${p
  ? html`<dt>${active ? 'Holder' : 'Last holder'}</dt><dd>pid ${p.pid} on <span class="mono">${p.host}</span>${active ? null : ' (released)'}</dd>
<dt>Since</dt><dd>${formatTime(p.start_ts_utc)} (ttl ${formatAge(p.ttl_sec)})</dd>
<dt>Reason</dt><dd>${p.reason}</dd>
<dt>Command</dt><dd class="mono">${p.cmd}</dd>
${active ? html`<dt>Holder alive</dt><dd>${alive}</dd>` : null}`
  : html`<dt>Holder</dt><dd class="muted">never taken</dd>`}
<dt>File</dt><dd class="mono">${l.path}</dd>
</dl>`;
}

/** Attempts ended per minute over the last hour, as bars: completed below, failed stacked on top. */
function chartSection(v: OpsPageView): Html {
  if (!v.throughput.ok) return sectionError(v.throughput.error);
  const points = v.throughput.value;
  const done = points.reduce((n, p) => n + p.completed, 0);
  const failed = points.reduce((n, p) => n + p.failed, 0);
  const max = Math.max(1, ...points.map((p) => p.completed + p.failed));
  const W = 600;
  const H = 120;
  const bw = W / Math.max(1, points.length);
  const y = (n: number): number => (n / max) * (H - 14);
  const bars = points.map((p, i) => {
    const x = (i * bw).toFixed(1);
    const w = Math.max(1, bw - 1).toFixed(1);
    const hOk = y(p.completed);
    const hBad = y(p.failed);
    const t = `${new Date(p.minute * 60_000).toISOString().slice(11, 16)}Z: ${p.completed} completed, ${p.failed} failed`;
    return html`<g data-minute="${p.minute}"><title>${t}</title>${p.completed ? html`<rect class="bar-ok" x="${x}" y="${(H - hOk).toFixed(1)}" width="${w}" height="${hOk.toFixed(1)}"></rect>` : null}${p.failed ? html`<rect class="bar-bad" x="${x}" y="${(H - hOk - hBad).toFixed(1)}" width="${w}" height="${hBad.toFixed(1)}"></rect>` : null}</g>`;
  });
  const first = points[0] ? new Date(points[0].minute * 60_000).toISOString().slice(11, 16) : '';
  return html`<div class="legend"><span><span class="sw ok"></span>completed <strong id="chart-completed">${done}</strong></span><span><span class="sw bad"></span>failed <strong id="chart-failed">${failed}</strong></span><span>attempts per minute, last ${points.length} min (from ${first}Z), every queue; peak ${max}/min</span></div>
<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${`attempts per minute over the last ${points.length} minutes: ${done} completed, ${failed} failed`}" preserveAspectRatio="none"><line class="axis" x1="0" y1="${H}" x2="${W}" y2="${H}"></line>${bars}</svg>`;
}

/** On PostgreSQL: how many worker processes hold their presence session, and which queues' leases they hold. */
function workersLine(v: OpsPageView): Html | null {
  if (!v.workers) return null;
  if (!v.workers.ok) return sectionError(v.workers.error);
  const w = v.workers.value;
  const by = Object.entries(w.byQueue).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return html`<p class="muted" id="workers" data-present="${w.present}">Workers present (presence session held): <strong>${w.present}</strong>${by.length ? html`; holding leases: ${by.map(([q, n], i) => html`${i ? ', ' : ''}<span class="mono">${q}</span> ${n}`)}` : null}.</p>`;
}

function dataPart(v: OpsPageView): Html {
  return html`<div id="data">
<section id="chart"><h2>Throughput</h2>${chartSection(v)}</section>
<section id="queues"><h2>Queues</h2>${queuesSection(v)}${workersLine(v)}</section>
<section id="deadletters"><h2>Dead letters</h2>${deadLettersSection(v)}</section>
<section id="runs"><h2>Recent runs</h2>${runsSection(v)}</section>
<section id="lock-section"><h2>Run locks</h2>${locksSection(v)}</section>
<p class="muted" id="generated">Rendered ${formatTime(v.generatedAt.toISOString())} from ${v.database ? html`<span class="mono">${v.database}</span> (queues, dead letters, runs, pointers, run locks) and the workspace files` : 'the workspace files'}.</p>
</div>`;
}

/** Only the data panels (`GET /ops?part=data`): what Refresh swaps in, without the page's style and script. */
export function renderOpsData(v: OpsPageView): string {
  return dataPart(v).text;
}

/** The whole /ops page. `nonce` admits the page's own style and script under its CSP. */
export function renderOpsPage(v: OpsPageView, nonce: string): string {
  const env = v.env.toUpperCase();
  const writes = v.writeEnabled ? 'Write controls enabled' : 'Write controls disabled';
  const page = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${env} · metaspn ops</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">${raw(OPS_CSS)}</style>
</head>
<body data-refresh-ms="${v.refreshMs}">
<header class="banner ${v.env}" id="banner">
<span class="env" id="env">${env}</span>
<span class="writes" id="writes">${writes}</span>
<span class="meta">metaspn ${v.version} · workspace <span class="mono">${v.workspace}</span>${v.database ? html` · <span class="mono" id="database">${v.database}</span>` : null}</span>
</header>
<div class="toolbar">
<label for="token">Admin token</label>
<input id="token" type="password" autocomplete="off" spellcheck="false" placeholder="METASPN_ADMIN_TOKEN">
<label for="actor">Actor</label>
<input id="actor" type="text" autocomplete="off" spellcheck="false" placeholder="your name" title="recorded with each write">
<button type="button" id="forget">Forget token</button>
<label for="filter">Filter</label>
<input id="filter" type="search" autocomplete="off" spellcheck="false" placeholder="queue, task, run, error…">
<span class="spacer"></span>
<label class="switch" title="re-read the workspace every few seconds"><input id="live" type="checkbox" checked> Live</label>
<span class="stamp" id="refreshed"></span>
<button type="button" id="refresh" class="primary">Refresh</button>
</div>
${v.writeEnabled ? null : html`<p class="note" id="writes-off">This server refuses writes (${env}${v.env === 'production' ? ': read-only unless METASPN_ADMIN_WRITE_ENABLED=true' : ': METASPN_ADMIN_WRITE_ENABLED=false'}). Retry, pause and resume are disabled here and answered with 403 if sent anyway.</p>`}
<p class="message" id="message" role="status" aria-live="polite" hidden></p>
<main>
<section id="alerts" hidden>
<h2>Alerts <span class="muted">open, from GET /api/alerts</span></h2>
<div id="alerts-list"></div>
</section>
${dataPart(v)}
</main>
<script nonce="${nonce}">${raw(OPS_JS)}</script>
</body>
</html>
`;
  return page.text;
}
