// `metaspn queue deadletter discard`, `queue list` and the nearest queue name for a typo, driven through
// the real CLI (in the test process: test/integration/in-process.ts) in temp workspaces: exit codes, output, the dead-letter files and the ledger.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, spec, tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';

interface LedgerLine {
  seq: number;
  kind: string;
  detail: { worker: string; ids: string[]; reason: string; by: string };
}

function ledger(ws: string): LedgerLine[] {
  const f = join(ws, 'ledger.jsonl');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LedgerLine);
}

const deadFile = (ws: string, id: string): string => join(ws, 'deadletter', 'contract', `${id}.json`);

/** A workspace whose `contract` queue holds dead letters `ids` (the fixture worker refuses every task). */
async function withDeadLetters(ids: string[]): Promise<string> {
  const ws = tempWorkspace({ demo: false });
  for (const id of ids) {
    const e = await cliIn(['queue', 'enqueue', 'contract', '--workspace', ws, '--payload', JSON.stringify({ id }), '--id', id]);
    expect(e.code, e.stderr).toBe(0);
  }
  const w = await cliIn(['worker', 'run', spec('Contract'), '--workspace', ws, '--once']);
  expect(w.code, w.stderr).toBe(20);
  for (const id of ids) expect(existsSync(deadFile(ws, id))).toBe(true);
  return ws;
}

async function stats(ws: string, queue: string): Promise<{ dead: number; cancelled: number; ready: number }> {
  const r = await cliIn(['queue', 'stats', queue, '--workspace', ws, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { dead: number; cancelled: number; ready: number };
}

/** One line on stderr, `error: …` (and its hint): no stack trace. */
function oneLineError(stderr: string, re: RegExp): void {
  expect(stderr).toMatch(re);
  expect(stderr).not.toMatch(/^\s+at /m);
  expect(stderr.split('\n').filter((l) => l.startsWith('error: '))).toHaveLength(1);
}

describe('queue deadletter discard', () => {
  it('discards the named dead letters: their files go, the ledger records the ids, who and why; the others stay', async () => {
    const ws = await withDeadLetters(['a', 'b', 'c']);
    const r = await cliIn(['queue', 'deadletter', 'discard', 'contract', '--workspace', ws, '--task-id', 'a', '--task-id', 'b', '--reason', 'bad input, fixed upstream', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { discarded: string[]; skipped: string[]; dry_run: boolean; ledger_seq: number; reason: string; by: string };
    expect(out).toMatchObject({ discarded: ['a', 'b'], skipped: [], dry_run: false, ledger_seq: 1, reason: 'bad input, fixed upstream' });
    expect(existsSync(deadFile(ws, 'a'))).toBe(false);
    expect(existsSync(deadFile(ws, 'b'))).toBe(false);
    expect(existsSync(deadFile(ws, 'c'))).toBe(true);
    const [entry, ...more] = ledger(ws);
    expect(more).toEqual([]);
    expect(entry).toMatchObject({ seq: 1, kind: 'deadletter_discard', detail: { worker: 'contract', ids: ['a', 'b'], reason: 'bad input, fixed upstream' } });
    // Who: the same `user@host: command line` a retry records.
    expect(entry!.detail.by).toMatch(/^\S+@\S+: metaspn queue deadletter discard contract /);
    expect(out.by).toBe(entry!.detail.by);
    expect(await stats(ws, 'contract')).toMatchObject({ dead: 1, cancelled: 2, ready: 0 });
    const list = await cliIn(['queue', 'deadletter', 'list', 'contract', '--workspace', ws, '--json']);
    expect((JSON.parse(list.stdout) as { dead_letters: { task: { id: string } }[] }).dead_letters.map((d) => d.task.id)).toEqual(['c']);
    // A discarded task is gone from the dead letters for good: a retry does not find it.
    const retry = await cliIn(['queue', 'retry', 'contract', '--workspace', ws, '--task-id', 'a']);
    expect(retry.code).toBe(64);
    expect(retry.stderr).toContain('not in the dead letters of contract: a');
  });

  it('--dry-run lists what would go and changes nothing (no reason needed)', async () => {
    const ws = await withDeadLetters(['a', 'b']);
    const r = await cliIn(['queue', 'deadletter', 'discard', 'contract', '--workspace', ws, '--all', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('dry run: would discard 2 dead letter(s) of contract:\n  a\n  b\n');
    const one = await cliIn(['queue', 'deadletter', 'discard', 'contract', '--workspace', ws, '--task-id', 'b', '--reason', 'x', '--dry-run', '--json']);
    expect(one.code, one.stderr).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ dry_run: true, discarded: ['b'], ledger_seq: null });
    expect(existsSync(deadFile(ws, 'a')) && existsSync(deadFile(ws, 'b'))).toBe(true);
    expect(ledger(ws)).toEqual([]);
    expect(await stats(ws, 'contract')).toMatchObject({ dead: 2, cancelled: 0 });
  });

  it('an id that is not a dead letter: one line naming it, exit 64, nothing discarded', async () => {
    const ws = await withDeadLetters(['a', 'b']);
    const r = await cliIn(['queue', 'deadletter', 'discard', 'contract', '--workspace', ws, '--task-id', 'a', '--task-id', 'nope', '--reason', 'x']);
    expect(r.code).toBe(64);
    oneLineError(r.stderr, /^error: not in the dead letters of contract: nope; nothing was discarded\nhint: list them: metaspn queue deadletter list contract\n$/);
    expect(r.stdout).toBe('');
    expect(existsSync(deadFile(ws, 'a'))).toBe(true);
    expect(ledger(ws)).toEqual([]);
  });

  it('bad invocations are 64 with one line: neither or both of --task-id and --all, no reason, a bad id', async () => {
    const ws = await withDeadLetters(['a']);
    const cases: [string[], RegExp][] = [
      [['--reason', 'x'], /give --task-id ID \(repeatable\) or --all, one of the two/],
      [['--all', '--task-id', 'a', '--reason', 'x'], /give --task-id ID \(repeatable\) or --all, one of the two/],
      [['--all'], /--reason TEXT is required/],
      [['--all', '--reason', '   '], /--reason TEXT is required/],
      [['--task-id', '../etc', '--reason', 'x'], /--task-id: task id "\.\.\/etc" must match/],
    ];
    for (const [args, re] of cases) {
      const r = await cliIn(['queue', 'deadletter', 'discard', 'contract', '--workspace', ws, ...args]);
      expect(r.code, args.join(' ')).toBe(64);
      oneLineError(r.stderr, re);
    }
    expect(existsSync(deadFile(ws, 'a'))).toBe(true);
    expect(ledger(ws)).toEqual([]);
  });

  it('--all discards every dead letter; once none are left it says so, writes no ledger entry, and the dead-letter alert resolves', async () => {
    const ws = await withDeadLetters(['a', 'b']);
    const before = await cliIn(['alerts', 'check', '--workspace', ws, '--json']);
    expect(before.code, before.stderr).toBe(60);
    expect((JSON.parse(before.stdout) as { open: { fingerprint: string }[] }).open.map((a) => a.fingerprint)).toEqual(['dead_letters_grew:contract']);
    const r = await cliIn(['queue', 'deadletter', 'discard', 'contract', '--workspace', ws, '--all', '--reason', 'obsolete tasks']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('discarded 2 dead letter(s) of contract:\n  a\n  b\nrecorded in the ledger (seq 1): obsolete tasks\n');
    for (const id of ['a', 'b']) expect(existsSync(deadFile(ws, id))).toBe(false);
    const again = await cliIn(['queue', 'deadletter', 'discard', 'contract', '--workspace', ws, '--all', '--reason', 'again']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe('no dead letters for contract: nothing discarded\n');
    expect(ledger(ws).map((e) => e.kind)).toEqual(['deadletter_discard']);
    const after = await cliIn(['alerts', 'check', '--workspace', ws, '--json']);
    expect(after.code, after.stderr).toBe(0);
    expect(JSON.parse(after.stdout)).toMatchObject({ open: [], resolved: ['dead_letters_grew:contract'] });
  });
});

describe("queue list and typo'd queue names", () => {
  it('queue list: every queue with its counts, as a table and as JSON', async () => {
    const ws = await withDeadLetters(['a']);
    const e = await cliIn(['queue', 'enqueue', 'ok', '--workspace', ws, '--payload', '{"n":1}']);
    expect(e.code, e.stderr).toBe(0);
    const p = await cliIn(['queue', 'pause', 'ok', '--workspace', ws]);
    expect(p.code, p.stderr).toBe(0);
    const r = await cliIn(['queue', 'list', '--workspace', ws]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^QUEUE\s+READY\s+SCHEDULED\s+LEASED\s+DEAD\s+COMPLETED\s+CANCELLED\s+PAUSED\s+OLDEST READY$/);
    const row = (q: string): string[] =>
      lines
        .find((l) => l.startsWith(`${q} `))!
        .trim()
        .split(/\s+/);
    expect(row('contract').slice(0, 8)).toEqual(['contract', '0', '0', '0', '1', '0', '0', 'no']);
    expect(row('ok').slice(0, 8)).toEqual(['ok', '1', '0', '0', '0', '0', '0', 'yes']);
    // The bundled workers' queues are listed before they have a task.
    expect(row('settle_season').slice(0, 8)).toEqual(['settle_season', '0', '0', '0', '0', '0', '0', 'no']);
    expect(lines.at(-1)).toBe('6 queue(s); dead letters in contract: metaspn queue deadletter list <worker>');
    const j = await cliIn(['queue', 'list', '--workspace', ws, '--json']);
    expect(j.code, j.stderr).toBe(0);
    const doc = JSON.parse(j.stdout) as { queues: { queue: string; ready: number; dead: number; paused: boolean }[] };
    expect(doc.queues.map((q) => q.queue)).toEqual(['contract', 'ok', 'project_rewards', 'publish_season_summary', 'settle_season', 'update_attention_scores']);
    expect(doc.queues.find((q) => q.queue === 'ok')).toMatchObject({ ready: 1, dead: 0, paused: true });
  });

  it("a typo'd queue name gets the nearest existing queue, wherever a queue name is taken (exit 64)", async () => {
    const ws = await withDeadLetters(['a']);
    const cases: string[][] = [
      ['queue', 'stats', 'settle_seasn'],
      ['queue', 'deadletter', 'list', 'contrct'],
      ['queue', 'deadletter', 'show', 'contrct', 'a'],
      ['queue', 'deadletter', 'discard', 'contrct', '--all', '--reason', 'x'],
      ['queue', 'retry', 'contrct'],
      ['queue', 'pause', 'contrct'],
    ];
    for (const args of cases) {
      const r = await cliIn([...args, '--workspace', ws]);
      expect(r.code, args.join(' ')).toBe(64);
      const want = args[1] === 'stats' ? 'settle_season' : 'contract';
      oneLineError(r.stderr, new RegExp(`^error: unknown queue "${args[1] === 'deadletter' ? args[3] : args[2]}" in \\S+: did you mean ${want}\\?\\nhint: queues here: contract, project_rewards`));
      expect(r.stderr).not.toContain('queue enqueue');
    }
    // Nothing near: the queues there are, still no hint to create the typo.
    const far = await cliIn(['queue', 'stats', 'zzzzzzzzzz', '--workspace', ws]);
    expect(far.code).toBe(64);
    oneLineError(
      far.stderr,
      /^error: unknown queue "zzzzzzzzzz" in \S+\nhint: queues here: contract, project_rewards, publish_season_summary, settle_season, update_attention_scores; `metaspn queue list --workspace \S+` shows their counts\n$/,
    );
    // worker run: a module or export name one typo away from a bundled one.
    const mod = await cliIn(['worker', 'run', 'metaspn_ops.worker.s1:ProjectRewardsWorker', '--workspace', ws, '--once']);
    expect(mod.code).toBe(64);
    oneLineError(mod.stderr, /^error: unknown worker module "metaspn_ops\.worker\.s1": did you mean metaspn_ops\.workers\.s1\?/);
    const exp = await cliIn(['worker', 'run', 'metaspn_ops.workers.s1:ProjectRewardWorker', '--workspace', ws, '--once']);
    expect(exp.code).toBe(64);
    oneLineError(exp.stderr, /^error: module metaspn_ops\.workers\.s1 has no export "ProjectRewardWorker": did you mean ProjectRewardsWorker\?/);
    // Enqueueing makes a new queue (allowed), but one a typo away from an existing queue is warned about.
    const enq = await cliIn(['queue', 'enqueue', 'contrct', '--workspace', ws, '--payload', '{"n":1}']);
    expect(enq.code, enq.stderr).toBe(0);
    expect(enq.stderr).toBe('warning: contrct is a new queue; did you mean contract? (its tasks wait there until a worker of contrct runs)\n');
    const again = await cliIn(['queue', 'enqueue', 'contrct', '--workspace', ws, '--payload', '{"n":2}']);
    expect([again.code, again.stderr]).toEqual([0, '']);
    // A worker whose module names a queue one typo away from an existing one drains nothing: said so.
    writeFileSync(join(ws, 'typo.mjs'), "export const W = { name: 'settle_seasn', handle() {} };\n");
    // A module path relative to the working directory: a process of its own, started in the workspace.
    const w = await run(['worker', 'run', './typo.mjs:W', '--workspace', ws, '--once'], { cwd: ws });
    expect(w.code, w.stderr).toBe(0);
    expect(w.stderr).toBe('warning: settle_seasn (the queue of ./typo.mjs:W) has no tasks and no folder yet; did you mean settle_season?\n');
  });
});
