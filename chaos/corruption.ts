// Corruption suite (promises 4, 5, 6): every JSONL file kind of a workspace cut at a random byte
// offset ("torn": mid-line, no newline) or cut and given a garbage line ("garbage"). Readers must
// report it without a crash or a stack trace, doctor must find it, doctor --repair must fix what
// is repairable (what it cuts off kept in quarantine/), and the next run must succeed.
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSignals } from '../scripts/gen-signals.js';
import { CHAOS_WORKER } from './concurrency.js';
import { chaosWorkspace, doctor, duplicateIds, filesUnder, lines, problems, run, runIn, STACK, STAGES, STORE_FILES, storeHashes, type DoctorFinding, type Rng, type Run } from './lib.js';

export const KINDS = ['queue-log', 'store-file', 'store-index', 'ledger', 'deadletter', 'enqueue-input', 'signals-input'] as const;
export type Kind = (typeof KINDS)[number];
export type Variant = 'torn' | 'garbage';

export const DATES = ['2026-01-03', '2026-01-04'];
const POISON = 'p1';

/** Garbage lines: binary junk, a JSON fragment, JSON that is not an object, an object of the wrong shape. */
const GARBAGE = ['\u0000\u0001\u0002 binary junk \u00ff', 'garbage{"x":', '[1,2,3]', '{"id":42,"oops":true}', '   \t  #'];

/**
 * The base's runs lease their tasks for 2 s, not the default 60 s: a case that cuts the completion
 * of a task off a queue log leaves that task leased by a process long gone, and the next run takes
 * it back only once the lease has run out (the same recovery, without a minute of waiting).
 */
const BASE_ENV = { METASPN_QUEUE_LEASE_MS: '2000' };

/**
 * The workspace every case starts from: two dates run and published, a dead letter in the
 * `chaos` queue, and a task file for `queue enqueue --file`. Removed by the caller.
 */
export async function prepareBase(seed: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'metaspn-chaos-base-'));
  writeFileSync(join(dir, 'tasks.jsonl'), Array.from({ length: 40 }, (_, i) => `${JSON.stringify({ id: `e${i}`, payload: { n: i } })}\n`).join(''));
  writeFileSync(join(dir, 'signals.jsonl'), `${generateSignals({ subjects: 30, perSubject: 20, start: '2026-01-01', days: 10, seed: seed % 1000 }).join('\n')}\n`);
  cpSync(join(dir, 'signals.jsonl'), join(dir, 'inputs', 's1_signals.jsonl'));
  for (const date of DATES) {
    const r = await runIn(['s1', 'run-local', '--workspace', dir, '--date', date], { env: BASE_ENV });
    if (r.code !== 0) throw new Error(`base run-local ${date} exited ${r.code}: ${r.stderr}`);
  }
  const e = await runIn(['queue', 'enqueue', 'chaos', '--workspace', dir, '--payload', '{"n":0,"poison":true}', '--id', POISON]);
  if (e.code !== 0) throw new Error(`base enqueue exited ${e.code}: ${e.stderr}`);
  const w = await runIn(['worker', 'run', CHAOS_WORKER, '--workspace', dir, '--once'], { env: BASE_ENV });
  if (w.code !== 20) throw new Error(`base worker run should dead-letter the poison task (exit 20), exited ${w.code}: ${w.stderr}`);
  const d = await doctor(dir);
  if (d.code !== 0) throw new Error(`base workspace is not clean: ${JSON.stringify(d.findings)}`);
  return dir;
}

export function removeBase(dir: string): void {
  if (process.env.CHAOS_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
}

/** The file of `kind` to damage, relative to the workspace (random where there are several). */
function targetOf(kind: Kind, rng: Rng): string {
  switch (kind) {
    case 'queue-log':
      return join('queue', rng.pick(STAGES), 'log.000001.jsonl');
    case 'store-file':
      return join('store', rng.pick(STORE_FILES));
    case 'store-index':
      return join('store', '.index', rng.pick(STORE_FILES).replace(/\.jsonl$/, ''), `date=${rng.pick(DATES)}.jsonl`);
    case 'ledger':
      return 'ledger.jsonl';
    case 'deadletter':
      return join('deadletter', 'chaos', `${POISON}.json`);
    case 'enqueue-input':
      return 'tasks.jsonl';
    case 'signals-input':
      return join('inputs', 's1_signals.jsonl');
  }
}

export interface Damage {
  file: string;
  size: number;
  offset: number;
  garbage: string | null;
  /** 1-based number of the first damaged line. */
  line: number;
}

/** Cuts `path` at a random offset (mid-line for "torn") and, for "garbage", appends a garbage line. */
export function damage(path: string, variant: Variant, rng: Rng): Damage {
  const buf = readFileSync(path);
  let offset: number;
  if (variant === 'torn') {
    // Mid-line: neither just after a newline (a clean cut no reader can see) nor just before one.
    const mids: number[] = [];
    for (let i = 1; i < buf.length; i++) if (buf[i - 1] !== 0x0a && buf[i] !== 0x0a) mids.push(i);
    offset = rng.pick(mids);
  } else {
    offset = rng.int(0, buf.length);
  }
  truncateSync(path, offset);
  const garbage = variant === 'garbage' ? rng.pick(GARBAGE) : null;
  if (garbage !== null) appendFileSync(path, `${garbage}\n`);
  let line = 1;
  for (let i = 0; i < offset; i++) if (buf[i] === 0x0a) line++;
  return { file: path, size: buf.length, offset, garbage, line };
}

export interface CaseResult {
  kind: Kind;
  variant: Variant;
  file: string;
  size: number;
  offset: number;
  garbage: string | null;
  doctor_exit: number | null;
  doctor_found: boolean;
  readers: { cmd: string; code: number | null; stack: boolean; reported: boolean }[];
  repair_exit: number | null;
  quarantined: string[];
  next: { cmd: string; code: number | null }[];
  final_doctor_exit: number | null;
  final_problems: DoctorFinding[];
  duplicate_ids: number;
  /** Rows of the base store missing at the end. */
  rows_lost: number;
  store_identical_to_base: boolean;
  /** What went against the promises; empty when the case passed. */
  failures: string[];
  /** What the suite accepts by design, said out loud. */
  notes: string[];
}

function rowsOf(ws: string): Set<string> {
  return new Set(STORE_FILES.flatMap((f) => lines(join(ws, 'store', f)).map((l) => `${f}|${l}`)));
}

/** One damaged file: doctor, readers, doctor --repair, the next run, and the final checks. */
export async function corruptionCase(base: string, kind: Kind, variant: Variant, rng: Rng): Promise<CaseResult> {
  const ws = chaosWorkspace();
  cpSync(base, ws, { recursive: true });
  const rel = targetOf(kind, rng);
  const path = join(ws, rel);
  const original = readFileSync(path);
  const dmg = damage(path, variant, rng);
  const baseRows = rowsOf(base);
  const failures: string[] = [];
  const notes: string[] = [];
  const fail = (msg: string): void => void failures.push(msg);
  const readers: CaseResult['readers'] = [];
  const reader = async (args: string[], ok: (r: Run) => boolean, reported: (r: Run) => boolean): Promise<Run> => {
    const r = await run(args);
    const stack = STACK.test(r.stderr) || STACK.test(r.stdout);
    const rep = reported(r);
    readers.push({ cmd: args.slice(0, 3).join(' '), code: r.code, stack, reported: rep });
    if (stack) fail(`${args.slice(0, 3).join(' ')} printed a stack trace: ${r.stderr.slice(0, 400)}`);
    if (!ok(r)) fail(`${args.slice(0, 3).join(' ')} exited ${r.code}: ${r.stderr.trim().slice(0, 400)}`);
    if (!rep) fail(`${args.slice(0, 3).join(' ')} did not report the damage: ${(r.stdout + r.stderr).trim().slice(0, 400)}`);
    return r;
  };
  const named = (r: Run): boolean => (r.stdout + r.stderr).includes(`${rel.split('/').pop()}:${dmg.line}`);
  const isInput = kind === 'enqueue-input' || kind === 'signals-input';

  // 1. doctor finds it (the enqueue input is not a workspace file: doctor does not know it).
  const d1 = kind === 'enqueue-input' ? null : await doctor(ws);
  const where = kind === 'deadletter' ? join('deadletter', 'chaos') : kind === 'store-index' ? rel.split('/').slice(0, 3).join('/') : rel;
  const found = d1 ? d1.findings.some((f) => f.severity !== 'info' && (f.path === where || f.path.startsWith(where))) : true;
  if (d1 && !found) fail(`doctor did not find the damage in ${rel}: ${JSON.stringify(d1.findings)}`);
  if (d1 && STACK.test(d1.stderr)) fail(`doctor printed a stack trace: ${d1.stderr.slice(0, 400)}`);
  // Derived files (index, dead-letter files) are warnings by design: the log or the store rebuilds them.
  const derived = kind === 'store-index' || kind === 'deadletter';
  if (d1 && !derived && d1.code !== 30) fail(`doctor exited ${d1.code}, not 30, on a damaged ${kind}`);
  if (d1 && derived && d1.code !== 30) notes.push(`doctor exits ${d1.code} (a warning): ${kind} is derived data`);

  // 2. Readers: no crash, no stack trace, and the damage reported.
  switch (kind) {
    case 'queue-log': {
      const q = rel.split('/')[1]!;
      await reader(
        ['queue', 'stats', q, '--workspace', ws],
        (r) => r.code === 0,
        // A torn tail is invisible to the read-only stats (the next writer cuts it); a checksum failure is shown.
        (r) => variant === 'torn' || /corrupt\s+\d+/.test(r.stdout),
      );
      break;
    }
    case 'store-index':
      // The store trusts its index: cron's next run is the reader that matters. It must not write an id twice.
      await reader(
        ['s1', 'run-local', '--workspace', ws, '--date', /date=(\d{4}-\d\d-\d\d)/.exec(rel)![1]!],
        (r) => r.code === 0,
        () => true,
      );
      {
        const dupes = Object.values(duplicateIds(ws)).flat();
        if (dupes.length) fail(`after a damaged ${rel}, run-local wrote ${dupes.length} id(s) a second time (first ${dupes[0]})`);
      }
      break;
    case 'ledger':
      // --strict: the chain must verify, so the damage is the one-line error (the lenient reader is tested on its own).
      await reader(['s1', 'rollback', '--workspace', ws, '--steps', '1', '--dry-run', '--strict', '--reason', 'chaos'], (r) => r.code === 30, named);
      break;
    case 'deadletter':
      await reader(
        ['queue', 'deadletter', 'list', 'chaos', '--workspace', ws, '--json'],
        (r) => r.code === 0 && r.stdout.includes(`"${POISON}"`),
        () => true,
      );
      break;
    case 'enqueue-input': {
      const before = JSON.parse((await runIn(['queue', 'stats', 'chaos', '--workspace', ws, '--json'])).stdout) as { ready: number };
      await reader(['queue', 'enqueue', 'chaos', '--workspace', ws, '--file', path], (r) => r.code === 20, named);
      const after = JSON.parse((await runIn(['queue', 'stats', 'chaos', '--workspace', ws, '--json'])).stdout) as { ready: number };
      if (after.ready !== before.ready) fail(`a bad enqueue file added ${after.ready - before.ready} task(s)`);
      break;
    }
    case 'signals-input': {
      const before = storeHashes(ws).join();
      await reader(['s1', 'run-local', '--workspace', ws, '--date', DATES[1]!], (r) => r.code === 20, named);
      if (storeHashes(ws).join() !== before) fail('a bad signals file changed the store');
      break;
    }
    case 'store-file':
      // No read-only reader of the store besides doctor; the next run reads it.
      break;
  }

  // 3. doctor --repair: what it fixes, what it sets aside.
  const before = new Set(filesUnder(ws).filter((f) => f.includes('quarantine')));
  const rep = kind === 'enqueue-input' ? null : await doctor(ws, true);
  if (rep && STACK.test(rep.stderr)) fail(`doctor --repair printed a stack trace: ${rep.stderr.slice(0, 400)}`);
  if (rep && rep.code !== 0 && rep.code !== 30) fail(`doctor --repair exited ${rep.code}`);
  const quarantined = filesUnder(ws).filter((f) => f.includes('quarantine') && !before.has(f));
  // A torn tail of a log the workspace owns is cut off into quarantine/, its bytes kept.
  if (variant === 'torn' && (kind === 'queue-log' || kind === 'store-file' || kind === 'ledger')) {
    const kept = filesUnder(ws)
      .filter((f) => f.includes('quarantine'))
      .flatMap((f) => lines(join(ws, f)))
      .some((l) => {
        try {
          const q = JSON.parse(l) as { bytes_base64?: string };
          const bytes = Buffer.from(q.bytes_base64 ?? '', 'base64');
          return bytes.length > 0 && original.subarray(0, dmg.offset).includes(bytes);
        } catch {
          return false;
        }
      });
    if (!kept)
      fail(
        `the torn tail of ${rel} is not in quarantine/ (files: ${
          filesUnder(ws)
            .filter((f) => f.includes('quarantine'))
            .join(', ') || 'none'
        })`,
      );
  }

  // 4. The inputs are fixed by their owner; then, and for every other kind at once, the next run succeeds.
  if (isInput) writeFileSync(path, original);
  const next: CaseResult['next'] = [];
  // In this process: the readers above met the damage as processes of their own.
  const step = async (args: string[], want: number[]): Promise<void> => {
    const r = await runIn(args);
    next.push({ cmd: args.slice(0, 3).join(' '), code: r.code });
    if (STACK.test(r.stderr)) fail(`${args.slice(0, 3).join(' ')} printed a stack trace: ${r.stderr.slice(0, 400)}`);
    if (!want.includes(r.code ?? -1)) fail(`next ${args.slice(0, 3).join(' ')} exited ${r.code}: ${r.stderr.trim().slice(0, 400)}`);
  };
  const ledgerGarbage = kind === 'ledger' && variant === 'garbage';
  if (kind === 'enqueue-input') await step(['queue', 'enqueue', 'chaos', '--workspace', ws, '--file', path], [0]);
  else if (kind === 'deadletter') {
    await step(['queue', 'retry', 'chaos', '--workspace', ws], [0]);
    await step(['worker', 'run', CHAOS_WORKER, '--workspace', ws, '--once'], [0]);
  } else {
    for (const date of DATES) await step(['s1', 'run-local', '--workspace', ws, '--date', date], ledgerGarbage ? [30] : [0]);
  }
  if (ledgerGarbage) notes.push('a garbage last line of the ledger is not repairable (the chain is the audit trail): runs exit 30 naming ledger.jsonl until an operator moves the line out');

  // 5. The end state.
  const d2 = await doctor(ws);
  const left = problems(d2).filter((f) => {
    if (kind === 'store-file' && variant === 'garbage' && f.area === 'store' && f.path === rel && /not JSON rows/.test(f.message)) {
      notes.push('a garbage line inside a store file stays (doctor never deletes data; the operator moves it out)');
      return false;
    }
    if (ledgerGarbage && f.area === 'ledger') return false;
    return true;
  });
  if (left.length) fail(`doctor after repair and the next run still finds: ${JSON.stringify(left)}`);
  const dupes = Object.values(duplicateIds(ws)).flat();
  if (dupes.length && kind !== 'store-index') fail(`${dupes.length} id(s) twice in the store at the end (first ${dupes[0]})`);
  const finalRows = rowsOf(ws);
  const lost = [...baseRows].filter((r) => !finalRows.has(r)).length;
  if (lost) fail(`${lost} row(s) of the base store are missing at the end`);
  return {
    kind,
    variant,
    file: rel,
    size: dmg.size,
    offset: dmg.offset,
    garbage: dmg.garbage,
    doctor_exit: d1?.code ?? null,
    doctor_found: found,
    readers,
    repair_exit: rep?.code ?? null,
    quarantined,
    next,
    final_doctor_exit: d2.code,
    final_problems: problems(d2),
    duplicate_ids: dupes.length,
    rows_lost: lost,
    store_identical_to_base: storeHashes(ws).join() === storeHashes(base).join(),
    failures,
    notes: [...new Set(notes)],
  };
}
