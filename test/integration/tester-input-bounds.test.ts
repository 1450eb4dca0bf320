// Input from outside at its limits, through the real CLI: bytes that are not UTF-8 (refused,
// never replaced by U+FFFD), numbers in METASPN_* variables written in another base or blank,
// the PostgreSQL pool size of the config, and values echoed back in an error line.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_INPUTS, run, tempWorkspace, type Run } from './cli.js';

const STACK = /\n\s+at /;

/** stderr holds exactly one `error:` line, no stack trace; returns it. */
function oneError(r: Run): string {
  expect(r.stderr).not.toMatch(STACK);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('error:'));
  expect(errors, r.stderr).toHaveLength(1);
  return errors[0]!;
}

describe('bytes that are not UTF-8 are refused, naming the file and line (never replaced by U+FFFD)', () => {
  it('a signals line: s1 run-local exits 20 and writes nothing to the store', async () => {
    const lines = readFileSync(DEMO_INPUTS).toString('latin1').split('\n');
    // Two different invalid sequences would both have become "\uFFFD\uFFFD": another subject.
    lines[3] = lines[3]!.replace('creator:c', 'creator:\xff\xfec');
    const ws = tempWorkspace({ demo: false });
    const file = join(ws, 'inputs', 's1_signals.jsonl');
    writeFileSync(file, Buffer.from(lines.join('\n'), 'latin1'));
    const r = await run(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15']);
    expect(r.code, r.stderr).toBe(20);
    expect(oneError(r)).toMatch(new RegExp(`^error: ${file}:4: not UTF-8: byte 0xff at byte \\d+ of the line`));
    const store = join(ws, 'store');
    expect(existsSync(store) ? readdirSync(store).filter((f) => readFileSync(join(store, f), 'utf8') !== '') : []).toEqual([]);
  });

  it('a task file line: queue enqueue exits 20 and enqueues nothing', async () => {
    const ws = tempWorkspace({ demo: false });
    const file = join(ws, 'tasks.jsonl');
    writeFileSync(file, Buffer.concat([Buffer.from('{"id":"a1","payload":{"n":1}}\n{"id":"a2","payload":{"s":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}}\n')]));
    const r = await run(['queue', 'enqueue', 'bytes_q', '--workspace', ws, '--file', file]);
    expect(r.code, r.stderr).toBe(20);
    expect(oneError(r)).toBe(`error: ${file}:2: not UTF-8: byte 0xc3 at byte 28 of the line; save the file as UTF-8`);
    const stats = await run(['queue', 'list', '--workspace', ws, '--json']);
    expect(stats.stdout).not.toContain('bytes_q');
  });

  it("a task file that ends in the middle of a character: exit 20 naming the character's first byte", async () => {
    const ws = tempWorkspace({ demo: false });
    const file = join(ws, 'tasks.jsonl');
    // EF and EF BF begin U+FFFD's own encoding: the check took them for good bytes and failed (exit 50) or named the next byte.
    writeFileSync(file, Buffer.concat([Buffer.from('{"id":"a1","payload":{"n":1}}\n{"id":"a2","payload":{"s":"x'), Buffer.from([0xef, 0xbf])]));
    const r = await run(['queue', 'enqueue', 'bytes_q', '--workspace', ws, '--file', file]);
    expect(r.code, r.stderr).toBe(20);
    expect(oneError(r)).toBe(`error: ${file}:2: not UTF-8: byte 0xef at byte 29 of the line; save the file as UTF-8`);
    writeFileSync(file, Buffer.concat([Buffer.from('{"id":"a1","payload":{"s":"'), Buffer.from([0xef]), Buffer.from('A"}}\n')]));
    const r2 = await run(['queue', 'enqueue', 'bytes_q', '--workspace', ws, '--file', file]);
    expect(r2.code, r2.stderr).toBe(20);
    expect(oneError(r2)).toBe(`error: ${file}:1: not UTF-8: byte 0xef at byte 28 of the line; save the file as UTF-8`);
  });

  it('the config file: exit 20 naming it', async () => {
    const ws = tempWorkspace({ demo: false });
    const file = join(ws, 'metaspn.config.json');
    writeFileSync(file, Buffer.concat([Buffer.from('{\n  "queues": {"defaults": {}},\n  "x\xff": 1\n}\n', 'latin1')]));
    const r = await run(['queue', 'list', '--workspace', ws]);
    expect(r.code, r.stderr).toBe(20);
    expect(oneError(r)).toBe(`error: ${file}:3: not UTF-8: byte 0xff at byte 5 of the line; save the file as UTF-8`);
  });
});

describe('numbers in METASPN_* variables are decimal, as METASPN_QUEUE_* are (exit 20 naming the variable and its range)', () => {
  it('hex, binary and blank values are refused, not read as 16, 3 or 0', async () => {
    const ws = tempWorkspace({ demo: false });
    const cases: [Record<string, string>, string][] = [
      [{ METASPN_ALERT_TIMEOUT_MS: '0x10' }, 'error: environment METASPN_ALERT_TIMEOUT_MS: must be a whole number from 1 to 600000 ms (10 min), got "0x10"'],
      [{ METASPN_ALERT_COOLDOWN_MINUTES: '0b11' }, 'error: environment METASPN_ALERT_COOLDOWN_MINUTES: must be a number from 0 to 525600 minutes (1 year), got "0b11"'],
      // A blank cooldown was read as 0: every open alert sent again at every check.
      [{ METASPN_ALERT_COOLDOWN_MINUTES: ' ' }, 'error: environment METASPN_ALERT_COOLDOWN_MINUTES: must be a number from 0 to 525600 minutes (1 year), got " "'],
      [{ METASPN_SIGNATURE_TOLERANCE_SEC: '0x1F' }, 'error: environment METASPN_SIGNATURE_TOLERANCE_SEC: must be a number above 0 and up to 86400 s (1 day), got "0x1F"'],
    ];
    for (const [env, line] of cases) {
      const args = 'METASPN_SIGNATURE_TOLERANCE_SEC' in env ? ['serve', '--workspace', ws, '--host', 'not_a_host', '--alert-interval-sec', '0'] : ['alerts', 'check', '--workspace', ws];
      const r = await run(args, { env });
      expect({ env, code: r.code }).toEqual({ env, code: 20 });
      expect(oneError(r)).toBe(line);
    }
  });

  it('decimal values in range still work, as before', async () => {
    const ws = tempWorkspace({ demo: false });
    const r = await run(['alerts', 'check', '--workspace', ws], { env: { METASPN_ALERT_TIMEOUT_MS: ' 2500 ', METASPN_ALERT_COOLDOWN_MINUTES: '1.5' } });
    expect(r.code, r.stderr).toBe(0);
  });
});

describe('backend.pool_max is refused like every other number of the config', () => {
  it('exit 20 naming the key and its range (docs/LIMITS.md), not the schema library', async () => {
    for (const v of [0, 1.5, 65, '4']) {
      const ws = tempWorkspace({ demo: false, config: { backend: { url: 'postgres://nobody@127.0.0.1:1/none', pool_max: v } } });
      const r = await run(['queue', 'list', '--workspace', ws]);
      expect({ v, code: r.code }).toEqual({ v, code: 20 });
      expect(oneError(r)).toBe(`error: ${join(ws, 'metaspn.config.json')}: backend.pool_max: must be a whole number from 1 to 64 connections, got ${JSON.stringify(v)}`);
    }
  });
});

describe('a value echoed in an error line is cut, however long it was given', () => {
  it('one short error line for flags, dates, hashes and names of any length', async () => {
    const ws = tempWorkspace({ demo: false });
    const long = 'z'.repeat(20_000);
    const hex = 'a'.repeat(20_000);
    const argvs = [
      ['s1', 'rollback', '--workspace', ws, '--to-hash', hex, '--reason', 'x'],
      ['runs', 'list', '--workspace', ws, '--date', long],
      ['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--as-of', long],
      ['worker', 'run', 'metaspn_ops.workers.s1:ProjectRewardsWorker', '--workspace', ws, '--poll-ms', long],
      ['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--on-lock-held', long],
      ['queue', 'deadletter', 'show', 'project_rewards', long, '--workspace', ws],
      ['report', 'weekly', '--workspace', ws, '--anchor-date', long],
      ['serve', '--workspace', ws, '--allowed-host', long],
    ];
    for (const argv of argvs) {
      const r = await run(argv);
      expect({ argv: argv.slice(0, 2), code: r.code }).toEqual({ argv: argv.slice(0, 2), code: 64 });
      const line = oneError(r);
      expect(line.length, line.slice(0, 200)).toBeLessThanOrEqual(400);
      expect(r.stderr.split('\n').every((l) => l.length <= 400)).toBe(true);
    }
  });
});
