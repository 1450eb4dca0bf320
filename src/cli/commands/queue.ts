import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { policyFor } from '../../config/load.js';
import { DataInvalidError, UsageError } from '../../guard/errors.js';
import { DeadLetterFiles } from '../../queue/file/deadletter-files.js';
import { readStats } from '../../queue/file/stats-file.js';
import { openQueueLazy } from '../../queue/open-lazy.js';
import { LIMITS } from '../../config/limits.js';
import { utf8Text } from '../../config/json-limits.js';
import { assertQueueName, checkTaskId } from '../../queue/record.js';
import { parseTaskLines, taskFromPayloadText } from '../../queue/validate.js';
import type { DeadLetter, NewTask, QueueStats } from '../../queue/types.js';
import { bundledQueues } from '../../runtime/load-worker.js';
import { deadletterDir, queueDir, type WorkspacePaths } from '../../storage/paths.js';
import { Ledger } from '../../storage/ledger.js';
import { safeExists } from '../../storage/safe-path.js';
import { ago, isoSeconds, printErr, printJson, printOut, table, truncate, visible } from '../format.js';
import { collect, openWorkspace } from '../options.js';
import { discardDeadLetters } from '../../ops/discard.js';
import { nearQueueOfNew, queueNamesOf, queueView, unknownQueueError, type QueueView } from '../../ops/workspace-view.js';
import { EXIT } from '../../guard/exit-codes.js';
import { setExitCode } from '../exit.js';
import { openSession } from '../session.js';
import { targetOf, type PgSetting } from '../../backend/pg/setting.js';
import { loadConfig } from '../../config/load.js';
import { backendFor, databaseUrlOption, pgQueueExists, pgQueueNames } from '../backend.js';
import { nearest } from '../../config/nearest.js';

/**
 * The dead-letter files of a worker, made consistent with its queue log first when they may not be:
 * the log is the authority, the files are written from it (and a crash can leave one missing or
 * half-written). When the file count matches the log's dead count, no log is loaded.
 */
async function deadLetters(ws: WorkspacePaths, worker: string, pg: PgSetting | null = null): Promise<Pick<DeadLetterFiles, 'list' | 'read' | 'ids'>> {
  if (pg) return pgDeadLetters(ws, worker, pg);
  const files = new DeadLetterFiles(deadletterDir(ws, worker));
  const readable = files.list().length;
  const dead = safeExists(queueDir(ws, worker)) ? readStats(queueDir(ws, worker), worker, Date.now()).dead : 0;
  if (readable !== dead || readable !== files.ids().length) {
    const s = openSession(ws.root);
    const q = await openQueueLazy(ws, worker, policyFor(s.cfg, worker), s.log.logger);
    try {
      await q.stats();
    } finally {
      await q.close();
    }
  }
  return files;
}

/** The dead letters of a worker on PostgreSQL, read once through its queue (the database is the authority; no files). */
async function pgDeadLetters(ws: WorkspacePaths, worker: string, pg: PgSetting): Promise<Pick<DeadLetterFiles, 'list' | 'read' | 'ids'>> {
  const s = openSession(ws.root);
  const q = await openQueueLazy(ws, worker, policyFor(s.cfg, worker), s.log.logger, pg);
  let list: DeadLetter[];
  try {
    list = await q.listDead();
  } finally {
    await q.close();
  }
  return { list: () => list, read: (id) => list.find((d) => d.task.id === id) ?? null, ids: () => list.map((d) => d.task.id) };
}

/** Where a worker's dead letters are, for messages. */
function deadLettersPlace(ws: WorkspacePaths, worker: string, pg: PgSetting | null): string {
  return pg ? `PostgreSQL schema ${pg.schema} at ${targetOf(pg.url)}` : deadletterDir(ws, worker);
}

/** The workspace's backend for a command that opened no session: --database-url, METASPN_DATABASE_URL, the config file. */
function backendOfWs(ws: WorkspacePaths, flag: string | undefined): PgSetting | null {
  return backendFor(loadConfig(ws), flag);
}

/**
 * {@link knownQueue} on the backend in use: on PostgreSQL, a bundled worker's queue or one the
 * database knows (it was enqueued to or paused).
 */
async function knownQueueOn(ws: WorkspacePaths, worker: string, pg: PgSetting | null): Promise<string> {
  if (!pg) return knownQueue(ws, worker);
  assertQueueName(worker);
  if (bundledQueues().includes(worker) || (await pgQueueExists(pg, worker))) return worker;
  const names = [...new Set([...bundledQueues(), ...(await pgQueueNames(pg))])].sort();
  const near = nearest(worker, names);
  throw new UsageError(`unknown worker "${worker}": no queue of that name in PostgreSQL schema ${pg.schema} at ${targetOf(pg.url)}${near ? `; did you mean ${near}?` : ''}`, {
    hint: `queues there: ${names.join(', ')}; \`metaspn queue list\` shows their counts`,
  });
}

interface WsOpts {
  workspace: string;
  json?: boolean;
  /** --database-url: the PostgreSQL backend (src/cli/backend.ts). */
  databaseUrl?: string;
}

/**
 * A queue name must be a bundled worker's or one that has a folder already: a typo is an error
 * naming the nearest existing queue, not an empty queue.
 */
function knownQueue(ws: WorkspacePaths, worker: string): string {
  assertQueueName(worker);
  if (bundledQueues().includes(worker) || safeExists(queueDir(ws, worker)) || safeExists(deadletterDir(ws, worker))) return worker;
  throw unknownQueueError(ws, worker);
}

export function registerQueue(program: Command): void {
  const queue = program.command('queue').description('inspect and repair the queues of a workspace');

  queue
    .command('list')
    .description('every queue of the workspace with its counts (ready, scheduled, leased, dead, completed, cancelled, paused)')
    .option('--workspace <dir>', 'workspace folder', '.')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON')
    .action(async (o: WsOpts) => {
      const ws = openWorkspace(o.workspace);
      const pg = backendOfWs(ws, o.databaseUrl);
      const now = Date.now();
      const queues = pg ? await pgQueueViews(ws, pg, now) : queueNamesOf(ws).map((name) => viewOrError(name, () => queueView(ws, name, now)));
      // A queue whose counts do not read back is named, the others still listed: exit 30.
      if (queues.some((v) => 'error' in v)) setExitCode(EXIT.STATE_CORRUPT);
      if (o.json) return printJson({ workspace: ws.root, now, queues });
      printOut(`${formatQueueList(queues, now)}\n`);
    });

  queue
    .command('stats <worker>')
    .description('counts by state, next retry, oldest ready task')
    .option('--workspace <dir>', 'workspace folder', '.')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON')
    .action(async (worker: string, o: WsOpts) => {
      const ws = openWorkspace(o.workspace);
      const pg = backendOfWs(ws, o.databaseUrl);
      await knownQueueOn(ws, worker, pg);
      const now = Date.now();
      const s = pg ? await pgStats(ws, worker, pg) : readStats(queueDir(ws, worker), worker, now);
      if (o.json) return printJson({ ...s, now });
      printOut(`${formatStats(s, now)}\n`);
    });

  const dl = queue.command('deadletter').description('tasks whose retries are exhausted');
  dl.command('list <worker>')
    .option('--workspace <dir>', 'workspace folder', '.')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON')
    .action(async (worker: string, o: WsOpts) => {
      const ws = openWorkspace(o.workspace);
      const pg = backendOfWs(ws, o.databaseUrl);
      await knownQueueOn(ws, worker, pg);
      const list = (await deadLetters(ws, worker, pg)).list();
      if (o.json) return printJson({ worker, dead_letters: list });
      if (list.length === 0) return void printOut(`no dead letters for ${worker}\n`);
      const rows = [['TASK', 'ATTEMPTS', 'DEAD AT', 'LAST ERROR']];
      for (const d of list) {
        const e = d.reason;
        rows.push([d.task.id, String(d.attempt_count), d.dead_at.replace(/\.\d{3}Z$/, 'Z'), e ? truncate(`${e.kind} ${e.class}: ${e.message}`, 90) : '']);
      }
      printOut(`${table(rows)}\n${list.length} dead letter(s) in ${deadLettersPlace(ws, worker, pg)}\n`);
    });

  dl.command('show <worker> <task_id>')
    .option('--workspace <dir>', 'workspace folder', '.')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON')
    .action(async (worker: string, id: string, o: WsOpts) => {
      const ws = openWorkspace(o.workspace);
      const pg = backendOfWs(ws, o.databaseUrl);
      await knownQueueOn(ws, worker, pg);
      const d = (await deadLetters(ws, worker, pg)).read(id);
      if (!d) throw new UsageError(`no dead letter "${id}" for ${worker}`, { hint: `list them: metaspn queue deadletter list ${worker}` });
      if (o.json) return printJson(d);
      const lines = [
        `task        ${visible(d.task.id)}`,
        `worker      ${d.worker}`,
        `attempts    ${d.attempt_count} of ${d.task.max_attempts}`,
        `first fail  ${d.first_failure_at ?? '-'}`,
        `last fail   ${d.last_failure_at ?? '-'}`,
        `dead at     ${d.dead_at}`,
        `payload     ${JSON.stringify(d.task.payload)}`,
        'errors:',
        ...d.errors.flatMap((e) => [
          visible(`  #${e.attempt} ${e.at} ${e.kind} ${e.class}${e.code ? ` [${e.code}]` : ''}: ${e.message}`),
          ...(e.stack ?? []).slice(0, 3).map((l) => `      ${visible(l)}`),
        ]),
        ...(d.task.retries.length ? ['retried before:', ...d.task.retries.map((r) => visible(`  ${r.at} by ${r.by} (after ${r.attempt_count} attempts)`))] : []),
      ];
      printOut(`${lines.join('\n')}\n`);
    });

  dl.command('discard <worker>')
    .description('give up on dead letters: they leave the dead letters for good (cancelled), recorded in the ledger with who and why')
    .option('--workspace <dir>', 'workspace folder', '.')
    .option('--task-id <id>', 'this dead letter (repeatable)', collect)
    .option('--all', 'every dead letter of the worker')
    .option('--reason <text>', 'why (required but with --dry-run): recorded on each task and in the ledger')
    .option('--dry-run', 'print what would be discarded, change nothing')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON')
    .action(async (worker: string, o: WsOpts & { taskId?: string[]; all?: boolean; reason?: string; dryRun?: boolean }) => {
      if ((o.taskId === undefined) === !o.all) throw new UsageError('give --task-id ID (repeatable) or --all, one of the two');
      if (!o.reason?.trim() && !o.dryRun) throw new UsageError('--reason TEXT is required: say why these dead letters are given up (it is recorded in the ledger)');
      for (const id of o.taskId ?? []) {
        const bad = checkTaskId(id);
        if (bad) throw new UsageError(`--task-id: ${bad}`);
      }
      const s = openSession(o.workspace);
      const pg = backendFor(s.cfg, o.databaseUrl);
      await knownQueueOn(s.ws, worker, pg);
      const q = await openQueueLazy(s.ws, worker, policyFor(s.cfg, worker), s.log.logger, pg);
      try {
        const r = await discardDeadLetters(s.ws, q, { worker, ids: o.all ? 'all' : o.taskId!, reason: o.reason ?? '', by: s.actor, dryRun: !!o.dryRun }, s.log.logger);
        if (o.json) return printJson(r);
        const list = (ids: string[]): string => (ids.length ? `:\n  ${ids.join('\n  ')}` : '');
        if (r.dry_run) return void printOut(`dry run: would discard ${r.discarded.length} dead letter(s) of ${worker}${list(r.discarded)}\n`);
        if (r.discarded.length === 0 && r.skipped.length === 0) return void printOut(`no dead letters for ${worker}: nothing discarded\n`);
        printOut(`discarded ${r.discarded.length} dead letter(s) of ${worker}${list(r.discarded)}\n`);
        if (r.ledger_seq !== null) printOut(`recorded in the ledger (seq ${r.ledger_seq}): ${visible(r.reason)}\n`);
        if (r.skipped.length) printErr(`warning: no longer dead letters (retried meanwhile), left alone: ${r.skipped.join(', ')}\n`);
      } finally {
        await q.close();
      }
    });

  queue
    .command('retry <worker>')
    .description('move dead letters back to ready (attempt count reset, history kept)')
    .option('--workspace <dir>', 'workspace folder', '.')
    .option('--task-id <id>', 'only this task (repeatable)', collect)
    .option('--dry-run', 'print what would move, change nothing')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON')
    .action(async (worker: string, o: WsOpts & { taskId?: string[]; dryRun?: boolean }) => {
      const s = openSession(o.workspace);
      const pg = backendFor(s.cfg, o.databaseUrl);
      await knownQueueOn(s.ws, worker, pg);
      const present = new Set((await deadLetters(s.ws, worker, pg)).ids());
      const unknown = (o.taskId ?? []).filter((id) => !present.has(id));
      if (unknown.length) {
        throw new UsageError(`not in the dead letters of ${worker}: ${unknown.join(', ')}`, { hint: `list them: metaspn queue deadletter list ${worker}` });
      }
      const targets = o.taskId ?? [...present].sort();
      if (o.dryRun) {
        if (o.json) return printJson({ worker, dry_run: true, would_retry: targets });
        return void printOut(`dry run: would move ${targets.length} task(s) of ${worker} back to ready${targets.length ? `:\n  ${targets.join('\n  ')}` : ''}\n`);
      }
      const q = await openQueueLazy(s.ws, worker, policyFor(s.cfg, worker), s.log.logger, pg);
      try {
        const moved = await q.retry({ ...(o.taskId ? { ids: o.taskId } : {}), by: s.actor });
        s.log.logger.info({ event: 'queue_retry', worker, moved }, `retried ${moved.length} dead letter(s)`);
        if (moved.length) await new Ledger(s.ws).append('deadletter_retry', { worker, ids: moved, by: s.actor });
        if (o.json) return printJson({ worker, retried: moved });
        printOut(`moved ${moved.length} task(s) of ${worker} back to ready${moved.length ? `:\n  ${moved.join('\n  ')}` : ''}\n`);
      } finally {
        await q.close();
      }
    });

  queue
    .command('enqueue <worker>')
    .description('add tasks: one from --payload, or a JSONL file of {"id"?, "payload", "max_attempts"?, "group"?}')
    .option('--workspace <dir>', 'workspace folder', '.')
    .option('--payload <json>', 'the payload of one task')
    .option('--id <id>', 'task id for --payload (default: derived from the payload)')
    .option('--file <path>', 'JSONL file, one task a line')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON')
    .action(async (worker: string, o: WsOpts & { payload?: string; id?: string; file?: string }) => {
      if ((o.payload === undefined) === (o.file === undefined)) throw new UsageError('give exactly one of --payload JSON or --file F.jsonl');
      assertQueueName(worker);
      openWorkspace(o.workspace);
      // Every task is checked before the workspace is touched: a bad one and nothing is written.
      const tasks = o.file !== undefined ? readTaskFile(o.file) : [taskFromPayload(o.payload!, o.id)];
      const s = openSession(o.workspace);
      const pg = backendFor(s.cfg, o.databaseUrl);
      // A new queue is allowed; one a typo away from an existing queue is most likely a typo.
      const near = pg ? null : nearQueueOfNew(s.ws, worker);
      const q = await openQueueLazy(s.ws, worker, policyFor(s.cfg, worker), s.log.logger, pg);
      try {
        const r = await q.enqueue(tasks);
        s.log.logger.info({ event: 'enqueue', worker, added: r.added.length, existing: r.existing.length }, 'enqueued');
        if (near) printErr(`warning: ${worker} is a new queue; did you mean ${near}? (its tasks wait there until a worker of ${worker} runs)\n`);
        if (o.json) return printJson({ worker, ...r });
        printOut(`enqueued ${r.added.length} task(s) to ${worker}; ${r.existing.length} already present\n`);
      } finally {
        await q.close();
      }
    });

  for (const verb of ['pause', 'resume'] as const) {
    queue
      .command(`${verb} <worker>`)
      .description(verb === 'pause' ? 'stop handing out tasks (enqueue still works)' : 'hand out tasks again')
      .option('--workspace <dir>', 'workspace folder', '.')
      .addOption(databaseUrlOption())
      .action(async (worker: string, o: WsOpts) => {
        const s = openSession(o.workspace);
        const pg = backendFor(s.cfg, o.databaseUrl);
        await knownQueueOn(s.ws, worker, pg);
        const q = await openQueueLazy(s.ws, worker, policyFor(s.cfg, worker), s.log.logger, pg);
        try {
          await (verb === 'pause' ? q.pause(s.actor) : q.resume(s.actor));
          s.log.logger.info({ event: `queue_${verb}`, worker }, `queue ${verb}d`);
          printOut(`${worker}: ${verb}d\n`);
        } finally {
          await q.close();
        }
      });
  }
}

function viewOrError(name: string, read: () => QueueView): QueueView | { queue: string; error: string } {
  try {
    return read();
  } catch (err) {
    return { queue: name, error: (err as Error).message };
  }
}

/** Every queue of the database (and the bundled workers'), with its stats read through the backend. */
async function pgQueueViews(ws: WorkspacePaths, pg: PgSetting, now: number): Promise<(QueueView | { queue: string; error: string })[]> {
  const s = openSession(ws.root);
  const out: (QueueView | { queue: string; error: string })[] = [];
  for (const name of [...new Set([...bundledQueues(), ...(await pgQueueNames(pg))])].sort()) {
    const q = await openQueueLazy(ws, name, policyFor(s.cfg, name), s.log.logger, pg);
    try {
      const st = await q.stats();
      out.push({ ...st, oldest_ready_age_s: st.oldest_ready_at === null ? null : Math.max(0, (now - st.oldest_ready_at) / 1000) });
    } catch (err) {
      out.push({ queue: name, error: (err as Error).message });
    } finally {
      await q.close();
    }
  }
  return out;
}

/** `queue list`: one line per queue, like sidekiqmon's queue table. */
export function formatQueueList(queues: readonly (QueueView | { queue: string; error: string })[], now: number): string {
  const rows = [['QUEUE', 'READY', 'SCHEDULED', 'LEASED', 'DEAD', 'COMPLETED', 'CANCELLED', 'PAUSED', 'OLDEST READY']];
  for (const v of queues) {
    if ('error' in v) {
      rows.push([v.queue, '-', '-', '-', '-', '-', '-', '-', `unreadable: ${truncate(v.error, 80)}`]);
      continue;
    }
    rows.push([
      v.queue,
      String(v.ready),
      String(v.scheduled),
      String(v.leased),
      String(v.dead),
      String(v.completed),
      String(v.cancelled),
      v.paused ? 'yes' : 'no',
      v.oldest_ready_at === null ? '-' : ago(now - v.oldest_ready_at),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  // Names left-aligned, numbers right-aligned.
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === 0 || i === 7 || i === 8 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const dead = queues.filter((v) => !('error' in v) && v.dead > 0).map((v) => v.queue);
  const foot = `${queues.length} queue(s)${dead.length ? `; dead letters in ${dead.join(', ')}: metaspn queue deadletter list <worker>` : ''}`;
  return `${rows.map(line).join('\n')}\n${foot}`;
}

/** `queue stats` on PostgreSQL: the counters, read through the queue. */
async function pgStats(ws: WorkspacePaths, worker: string, pg: PgSetting): Promise<QueueStats> {
  const s = openSession(ws.root);
  const q = await openQueueLazy(ws, worker, policyFor(s.cfg, worker), s.log.logger, pg);
  try {
    return await q.stats();
  } finally {
    await q.close();
  }
}

export function formatStats(s: QueueStats, now: number): string {
  const rows = [
    ['ready', String(s.ready), s.oldest_ready_at !== null ? `oldest waiting ${ago(now - s.oldest_ready_at)}` : ''],
    ['scheduled', String(s.scheduled), s.next_due_at !== null ? `next retry ${isoSeconds(s.next_due_at)} (${s.next_due_at <= now ? 'due now' : `in ${ago(s.next_due_at - now)}`})` : ''],
    ['leased', String(s.leased), ''],
    ['completed', String(s.completed), ''],
    ['dead', String(s.dead), s.dead > 0 ? `see: metaspn queue deadletter list ${s.queue}` : ''],
    ['cancelled', String(s.cancelled), s.cancelled > 0 ? 'superseded before they ran, or discarded from the dead letters; an enqueue with rerun runs them again' : ''],
    ['paused', s.paused ? 'yes' : 'no', ''],
  ];
  if (s.corrupt_records > 0) rows.push(['corrupt', String(s.corrupt_records), `records failed their checksum; they are skipped and set aside in queue/${s.queue}/quarantine/ at the next compaction`]);
  return `queue ${s.queue}\n${table(rows.map((r) => ['  ' + r[0]!, r[1]!.padStart(8), r[2]!]))}`;
}

/** `--payload JSON [--id ID]`: not JSON, or a bad --id, is a usage error (64); JSON beyond the data limits is bad input (20). */
function taskFromPayload(text: string, id: string | undefined): NewTask {
  if (id !== undefined) {
    const bad = checkTaskId(id);
    if (bad) throw new UsageError(`--id: ${bad}`);
  }
  const r = taskFromPayloadText(text, id);
  if (r.ok) return r.task;
  if (r.syntax) throw new UsageError(`--payload is ${r.rule}`);
  throw new DataInvalidError('--payload', null, r.rule, { hint: 'nothing was enqueued; see docs/LIMITS.md' });
}

/** Reads every line first: one bad line and nothing from the file is enqueued. */
function readTaskFile(path: string): NewTask[] {
  let bytes: Buffer;
  try {
    if (statSync(path).size > LIMITS.task_file_bytes.max) {
      throw new DataInvalidError(path, null, `the file is larger than ${LIMITS.task_file_bytes.max} bytes (limit task_file_bytes); split it`);
    }
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DataInvalidError(path, null, 'file not found');
    if (code === 'EISDIR') throw new DataInvalidError(path, null, 'is a directory, not a file');
    throw err;
  }
  return parseTaskLines(utf8Text(bytes, path, 'nothing was enqueued'), path);
}
