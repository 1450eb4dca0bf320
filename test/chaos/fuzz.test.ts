// Fuzz suite: signal files fuzzed in-process (300 files here, iterations x 25 under npm run chaos),
// a handful of files through the real CLI, bad CLI values, malformed task payloads.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHAOS_WORKER } from '../../chaos/concurrency.js';
import { badPayload, fuzzParser } from '../../chaos/fuzz.js';
import { chaosWorkspace, report, run, runIn, scale, STACK } from '../../chaos/lib.js';
import { configHash, resolveS1Config } from '../../workers/s1/config.js';
import { inputsDigest } from '../../workers/s1/digests.js';
import { parseSignalText } from '../../workers/s1/signals.js';

const s = scale();
const good = (i: number, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ signal_id: `s${i}`, ts: `2026-01-0${1 + (i % 3)}T10:00:0${i % 10}Z`, subject_ref: `creator:c${i % 4}`, kind: 'like', ...extra });
const file = (lines: string[], nl = '\n'): string => lines.map((l) => `${l}${nl}`).join('');

describe(`chaos: fuzz (seed ${s.seed})`, () => {
  it('signal files, in-process: accepted exactly when every line is valid, else DataInvalidError naming file:line of the first bad line', () => {
    const f = fuzzParser(s.full ? s.iterations * 25 : 300, s.seed);
    report('fuzz-parser', { ...f });
    expect(f.failures).toEqual([]);
    expect(f.rejected_files).toBeGreaterThan(0);
    expect(f.accepted_files).toBeGreaterThan(0);
  }, 120_000);

  const cases: { name: string; text: string | Buffer; code: number; names?: string }[] = [
    { name: 'a 1 MB garbage line 3', text: file([good(1), good(2), `{"signal_id":"s3","x":"${'z'.repeat(1 << 20)}`, good(4)]), code: 20, names: ':3:' },
    { name: 'NaN value on line 2', text: file([good(1), good(2).replace('"kind":"like"', '"kind":"like","value":NaN')]), code: 20, names: ':2:' },
    { name: 'negative value on line 1', text: file([good(1, { value: -1 })]), code: 20, names: ':1:' },
    { name: 'unknown kind on line 2', text: file([good(1), good(2, { kind: 'poke' })]), code: 20, names: ':2:' },
    { name: 'invalid UTF-8 bytes on line 2', text: Buffer.concat([Buffer.from(`${good(1)}\n`), Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x0a]), Buffer.from(`${good(3)}\n`)]), code: 20, names: ':2:' },
    { name: 'a blank line between signals', text: file([good(1), '', good(2)]), code: 20, names: ':2:' },
    {
      name: 'BOM and CRLF, unicode and a 100 kB subject_ref (valid)',
      text: `\uFEFF${file([good(1, { subject_ref: 'creator:日本語😀' }), good(2, { subject_ref: `creator:${'y'.repeat(100_000)}` })], '\r\n')}`,
      code: 0,
    },
    { name: 'an empty file (valid input; the built-in check window_has_signals halts an empty window)', text: '', code: 60 },
  ];

  // The first case end to end through a process of its own (bin/metaspn.js, exit code, stderr);
  // the others in this process, where main() meets the same file.
  it.each(cases.map((c, i) => ({ ...c, where: i === 0 ? 'a process' : 'in process' })))(
    'CLI ($where): $name -> exit $code, no stack trace',
    async ({ text, code, names, where }) => {
      const ws = chaosWorkspace();
      writeFileSync(join(ws, 'inputs', 's1_signals.jsonl'), text);
      const r = await (where === 'a process' ? run : runIn)(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-03']);
      expect(r.stderr).not.toMatch(STACK);
      expect(r.code, r.stderr).toBe(code);
      if (names) expect(r.stderr.split('\n')[0]).toContain(`s1_signals.jsonl${names}`);
    },
    60_000,
  );

  // Found by this suite: the parser accepted any finite value >= 0, but the weighted sum of a huge
  // one overflowed in the attention math (a RangeError, retried 5 times, then exit 50 with no file
  // or line). The reader now bounds the weighted sum (checkMagnitudes) and names the line.
  it('CLI: a huge finite value (1e308, kind follow) is bad input: exit 20 naming the file, not 50 after retries', async () => {
    const ws = chaosWorkspace();
    writeFileSync(join(ws, 'inputs', 's1_signals.jsonl'), file([good(1), good(2, { kind: 'follow', value: 1e308 })]));
    const r = await runIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-03']);
    expect(r.stderr).not.toMatch(STACK);
    expect({ code: r.code, first: r.stderr.split('\n').find((l) => l.startsWith('error:')) ?? r.stdout.split('\n').find((l) => l.startsWith('failed:')) }).toMatchObject({
      code: 20,
      first: expect.stringContaining('s1_signals.jsonl'),
    });
  }, 60_000);

  it(
    'bad CLI values exit 64 with a one-line message and no stack trace',
    async () => {
      const ws = chaosWorkspace();
      const dates = fc.sample(
        fc.oneof(
          fc.constantFrom('2026-02-30', '2026-13-01', '2026-00-10', '2026-1-5', '20260105', '2026-01-05T00:00:00Z', '', ' 2026-01-05', '2025-02-29'),
          fc.string({ maxLength: 12 }).filter((x) => !/^\d{4}-\d\d-\d\d$/.test(x)),
        ),
        { numRuns: s.full ? 40 : 3, seed: s.seed },
      );
      const argv: string[][] = [
        ...dates.map((d) => ['s1', 'run-local', '--workspace', ws, `--date=${d}`]),
        ['worker', 'run', 'metaspn_ops.workers.s1:ProjectRewardsWorker', '--workspace', ws, '--max-tasks', '-1'],
        ['worker', 'run', 'metaspn_ops.workers.s1:ProjectRewardsWorker', '--workspace', ws, '--max-tasks', '1.5'],
        ['worker', 'run', 'metaspn_ops.workers.s1:ProjectRewardsWorker', '--workspace', ws, '--concurrency', '0'],
        ['worker', 'run', '../../etc:X', '--workspace', ws, '--once'],
        ['queue', 'stats', '../../etc', '--workspace', ws],
        ['queue', 'enqueue', '../../etc', '--workspace', ws, '--payload', '{}'],
        ['queue', 'retry', '../../etc', '--workspace', ws],
        ['queue', 'deadletter', 'list', '../../etc', '--workspace', ws],
        ['queue', 'deadletter', 'show', 'project_rewards', '../../etc', '--workspace', ws],
        ['queue', 'enqueue', 'chaos', '--workspace', ws, '--payload', '{"a":1}', '--id', '../../etc'],
        ['s1', 'backfill', '--workspace', ws, '--start', '2026-01-05', '--end', '2026-01-01'],
        ['s1', 'backfill', '--workspace', ws, '--start', '2026-01-01', '--end', '2026-01-05', '--max-parallel', '0'],
        ['s1', 'run-local', '--workspace', ws, '--date', '2026-01-05', '--lock-ttl-sec', 'soon'],
        ['s1', 'run-local', '--workspace', ws, '--date', '2026-01-05', '--run-id', '../../etc'],
        ['s1', 'run-local', '--workspace', join(ws, 'missing'), '--date', '2026-01-05'],
      ];
      const bad: string[] = [];
      // The first through a process of its own, the others in this process (the same main()).
      for (const [i, a] of argv.entries()) {
        const r = await (i === 0 ? run : runIn)(a);
        const first = r.stderr.split('\n')[0] ?? '';
        if (r.code !== 64 || STACK.test(r.stderr) || !first.startsWith('error: ')) bad.push(`${a.join(' ')} -> ${r.code}: ${r.stderr.trim().slice(0, 200)}`);
      }
      report('fuzz-cli-values', { seed: s.seed, commands: argv.length, bad });
      expect(bad).toEqual([]);
    },
    s.full ? 600_000 : 90_000,
  );

  it('malformed task payloads become contract errors in the dead letters, each tried once', async () => {
    const ws = chaosWorkspace({ signals: file([good(1), good(2)]) });
    const hash = configHash(resolveS1Config(undefined, 'defaults'));
    // A good task carries the inputs digest of its date (S1-SPEC "Digests").
    const inputs = inputsDigest(parseSignalText(file([good(1), good(2)]), 'inputs', new Set(['like'])), '2026-01-03', Date.parse('2026-01-04T00:00:00.000Z'), 28);
    const payloads = fc.sample(badPayload(hash), { numRuns: s.full ? 200 : 25, seed: s.seed });
    // Good tasks among them. The contract failures come first (they fail before running), so the
    // worker's stop guardrail (20 failures in a row: pause, exit 60) is turned off for this run.
    const lines = payloads.flatMap((p, i) => [
      JSON.stringify({ id: `bad${i}`, payload: p }),
      ...(i % 4 === 3 ? [JSON.stringify({ id: `good${i}`, payload: { date: '2026-01-03', as_of: '2026-01-04T00:00:00.000Z', config_hash: hash, inputs, subject_ref: `creator:c${i % 4}` } })] : []),
    ]);
    const tasks = join(ws, 'bad.jsonl');
    writeFileSync(tasks, file(lines));
    expect((await runIn(['queue', 'enqueue', 'update_attention_scores', '--workspace', ws, '--file', tasks])).code).toBe(0);
    const w = await run(['worker', 'run', 'metaspn_ops.workers.s1:UpdateAttentionScoresWorker', '--workspace', ws, '--once', '--json'], { env: { METASPN_QUEUE_STOP_FAILURE_RATIO: '0' } });
    expect(w.stderr).not.toMatch(STACK);
    expect(w.code, w.stderr).toBe(20);
    // From the files.
    const dir = join(ws, 'deadletter', 'update_attention_scores');
    const dead = readdirSync(dir).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as { task: { id: string }; attempt_count: number; reason: { kind: string } | null });
    const notContract = dead.filter((d) => d.reason?.kind !== 'contract' || d.attempt_count !== 1);
    report('fuzz-payloads', { seed: s.seed, payloads: payloads.length, dead: dead.length, not_contract: notContract.length });
    expect(dead.map((d) => d.task.id).sort()).toEqual(payloads.map((_, i) => `bad${i}`).sort());
    expect(notContract).toEqual([]);
  }, 60_000);

  // Found by the payload test at 200 payloads: bin/metaspn.js called process.exit() as soon as
  // main() returned, before stdout (a pipe) had drained, so a --json document over 64 KiB was cut
  // short with exit 0. It now lets stdout drain first (for at most 10 s).
  it('--json output larger than 64 KiB reaches a pipe whole (queue deadletter list of 150 dead letters)', async () => {
    const ws = chaosWorkspace();
    const tasks = join(ws, 'poison.jsonl');
    writeFileSync(tasks, file(Array.from({ length: 150 }, (_, i) => JSON.stringify({ id: `p${i}`, payload: { n: i, poison: true } }))));
    expect((await runIn(['queue', 'enqueue', 'chaos', '--workspace', ws, '--file', tasks])).code).toBe(0);
    expect((await runIn(['worker', 'run', CHAOS_WORKER, '--workspace', ws, '--once'], { env: { METASPN_QUEUE_STOP_FAILURE_RATIO: '0' } })).code).toBe(20);
    // The list through a real pipe: what bin/metaspn.js lets drain before it exits.
    const r = await run(['queue', 'deadletter', 'list', 'chaos', '--workspace', ws, '--json']);
    expect(r.code).toBe(0);
    expect(Buffer.byteLength(r.stdout)).toBeGreaterThan(65_536);
    expect(() => JSON.parse(r.stdout)).not.toThrow();
    expect((JSON.parse(r.stdout) as { dead_letters: unknown[] }).dead_letters.length).toBe(150);
  }, 60_000);
});
