import { dirname, join } from 'node:path';
import { splitJsonl } from '../../storage/io.js';
import { writeAtomicSync } from '../../storage/atomic.js';
import { safeAppendFile, safeExists, safeMkdir, safeReadFile, SECRET_FILE_MODE } from '../../storage/safe-path.js';
import type { WorkspacePaths } from '../../storage/paths.js';
import { problemOf, readStateJson, shape, StateFileError, type StateFileProblem } from '../../storage/state-file.js';
import type { RuleName } from '../../config/alerts.js';
import type { AlertCandidate, Severity, WorkerMemory } from './rules.js';

/** A delivery not yet acknowledged by the webhook: sent again, same event id and body, at each check. */
export interface PendingDelivery {
  event_id: string;
  /** The JSON body, frozen at the first attempt. */
  body: string;
  first_attempt_at: string;
  attempts: number;
  last_error: string | null;
}

/** One alert, by fingerprint: open or recently resolved (kept until its cooldown has passed). */
export interface AlertRecord extends AlertCandidate {
  open: boolean;
  /** When it opened (this time). */
  since: string;
  last_seen: string;
  resolved_at: string | null;
  /** Last successful delivery; the cooldown counts from it. */
  last_sent_at: string | null;
  last_event_id: string | null;
  pending: PendingDelivery | null;
}

/** ops/alerts-state.json: what the last check saw and sent. Replaced atomically at each check. */
export interface AlertState {
  schema_version: 1;
  checked_at: string | null;
  workers: Record<string, WorkerMemory>;
  alerts: Record<string, AlertRecord>;
}

export function alertStatePath(ws: WorkspacePaths): string {
  return join(ws.root, 'ops', 'alerts-state.json');
}

/** ops/alerts-log.jsonl: one line per alert opened, resolved, sent or not delivered (the weekly report reads it). */
export function alertLogPath(ws: WorkspacePaths): string {
  return join(ws.root, 'ops', 'alerts-log.jsonl');
}

export function emptyState(): AlertState {
  return { schema_version: 1, checked_at: null, workers: {}, alerts: {} };
}

const ALERT_STATE_HINT =
  'the alert state is replaced atomically, so this file was changed outside metaspn: `metaspn doctor --repair` (or the next `metaspn alerts check`) moves it to quarantine/ and starts afresh (open alerts are sent again)';
const stateShape = shape({ schema_version: 'number', workers: 'object', alerts: 'object' });
const recordShape = shape({ fingerprint: 'string', rule: 'string', subject: 'string', severity: 'string', message: 'string', details: 'object', open: 'boolean', since: 'string', last_seen: 'string' });
const pendingShape = shape({ event_id: 'string', body: 'string', first_attempt_at: 'string', attempts: 'number' });
const memoryShape = shape({ dead_lettered: 'number', dead: 'number', samples: 'array' });

/** The rule an alert state breaks, or null. */
function checkState(v: unknown): string | null {
  const bad = stateShape(v);
  if (bad) return bad;
  const s = v as AlertState;
  if (s.schema_version !== 1) return `schema_version ${String(s.schema_version)} is not 1`;
  if (s.checked_at !== null && typeof s.checked_at !== 'string') return 'checked_at is neither null nor a time';
  for (const [fp, r] of Object.entries(s.alerts)) {
    const b = recordShape(r) ?? (r.pending === null || r.pending === undefined ? null : pendingShape(r.pending));
    if (b) return `alerts["${fp.slice(0, 80)}"]: ${b}`;
  }
  for (const [w, m] of Object.entries(s.workers)) {
    const b = memoryShape(m);
    if (b) return `workers["${w.slice(0, 80)}"]: ${b}`;
  }
  return null;
}

/**
 * The state file; a missing one starts afresh. One that is not JSON or not of the state's shape
 * throws StateFileError (30) naming it: `alerts check` sets it aside and starts afresh (alerts
 * must keep flowing), `alerts list` and `doctor` report it.
 */
export function readAlertState(ws: WorkspacePaths): AlertState {
  return readStateJson<AlertState>(alertStatePath(ws), checkState, ALERT_STATE_HINT) ?? emptyState();
}

/** The alert state as a problem when it is damaged, else null. */
export function alertStateProblem(ws: WorkspacePaths): StateFileProblem | null {
  try {
    readAlertState(ws);
    return null;
  } catch (err) {
    if (!(err instanceof StateFileError)) throw err;
    return problemOf(ws, 'alert_state', err);
  }
}

export function writeAlertState(ws: WorkspacePaths, s: AlertState): void {
  writeAtomicSync(alertStatePath(ws), `${JSON.stringify(s, null, 2)}\n`, SECRET_FILE_MODE);
}

export type AlertLogEvent = 'opened' | 'resolved' | 'sent' | 'delivery_failed';

export interface AlertLogLine {
  at: string;
  event: AlertLogEvent;
  fingerprint: string;
  rule: RuleName;
  subject: string;
  severity: Severity;
  message?: string;
  event_id?: string;
  error?: string;
}

export function appendAlertLog(ws: WorkspacePaths, lines: readonly AlertLogLine[]): void {
  if (lines.length === 0) return;
  const p = alertLogPath(ws);
  safeMkdir(dirname(p));
  safeAppendFile(p, lines.map((l) => `${JSON.stringify(l)}\n`).join(''), SECRET_FILE_MODE);
}

export function readAlertLog(ws: WorkspacePaths): AlertLogLine[] {
  const p = alertLogPath(ws);
  if (!safeExists(p)) return [];
  const out: AlertLogLine[] = [];
  // A torn last line (a crash mid-append) is not a line yet: left out. A complete line that does
  // not parse was damaged by hand: skipped too, as the log is only history for `alerts list`.
  for (const line of splitJsonl(safeReadFile(p)).lines) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as AlertLogLine);
    } catch {
      continue;
    }
  }
  return out;
}

/** An open alert as the API, the /ops page and `alerts list` show it. */
export interface OpenAlert {
  fingerprint: string;
  rule: RuleName;
  subject: string;
  severity: Severity;
  message: string;
  since: string;
  last_seen: string;
  last_sent_at: string | null;
  /** sent: delivered within the cooldown; pending: a delivery failed and is retried at the next check; not_sent: no webhook, or not due yet. */
  delivery: 'sent' | 'pending' | 'not_sent';
  details: Record<string, unknown>;
}

export function toOpenAlert(r: AlertRecord): OpenAlert {
  return {
    fingerprint: r.fingerprint,
    rule: r.rule,
    subject: r.subject,
    severity: r.severity,
    message: r.message,
    since: r.since,
    last_seen: r.last_seen,
    last_sent_at: r.last_sent_at,
    delivery: r.pending ? 'pending' : r.last_sent_at ? 'sent' : 'not_sent',
    details: r.details,
  };
}

const RANK: Record<Severity, number> = { critical: 0, warning: 1 };

export function sortAlerts<T extends { severity: Severity; fingerprint: string }>(xs: T[]): T[] {
  return xs.sort((a, b) => RANK[a.severity] - RANK[b.severity] || (a.fingerprint < b.fingerprint ? -1 : a.fingerprint > b.fingerprint ? 1 : 0));
}

/** The open alerts as of the last check (GET /api/alerts, `alerts list`): nothing is evaluated or sent. */
export function readOpenAlerts(ws: WorkspacePaths): { checked_at: string | null; open: OpenAlert[] } {
  const s = readAlertState(ws);
  return { checked_at: s.checked_at, open: sortAlerts(Object.values(s.alerts).filter((a) => a.open).map(toOpenAlert)) };
}
