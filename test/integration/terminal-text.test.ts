// Untrusted text (a --reason, a handler's error, a task id) reaches the terminal escaped: no raw control
// characters, C1 controls or bidi overrides in the CLI's human output; --json stays valid JSON of the same text.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, spec, tempWorkspace } from './cli.js';

const REASON = '\x1b[2J\x1b]8;;http://x\x07link\r\nFAKE';

/** What must never be written raw: C0 other than the printer's own \n, DEL, C1, bidi overrides. */
// eslint-disable-next-line no-control-regex
const RAW = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

function clean(r: { stdout: string; stderr: string }): void {
  expect(RAW.test(r.stdout), JSON.stringify(r.stdout)).toBe(false);
  expect(RAW.test(r.stderr), JSON.stringify(r.stderr)).toBe(false);
}

/** A workspace whose `escapes` queue holds one dead letter whose error holds escape sequences. */
function withDeadLetter(): string {
  const ws = tempWorkspace({ demo: false });
  expect(cli(['queue', 'enqueue', 'escapes', '--workspace', ws, '--payload', '{"n":1}', '--id', 't1']).code).toBe(0);
  const w = cli(['worker', 'run', spec('Escapes'), '--workspace', ws, '--once']);
  expect(w.code, w.stderr).toBe(20);
  clean(w);
  expect(w.stderr).toContain('Evil\\x1b[31mError');
  expect(w.stderr).toContain('\\x1b[2J\\x1b]8;;http://x\\x07link');
  return ws;
}

describe('untrusted text on the terminal', () => {
  it('a handler error in dead-letter list and show is escaped; --json keeps it whole', () => {
    const ws = withDeadLetter();
    const list = cli(['queue', 'deadletter', 'list', 'escapes', '--workspace', ws]);
    expect(list.code, list.stderr).toBe(0);
    clean(list);
    expect(list.stdout).toContain('Evil\\x1b[31mError: bad row \\x1b[2J');
    const show = cli(['queue', 'deadletter', 'show', 'escapes', 't1', '--workspace', ws]);
    expect(show.code, show.stderr).toBe(0);
    clean(show);
    expect(show.stdout).toContain('\\x07link\\x1b]8;;\\x07\\r\\nFAKE \\u009b31m \\u202eevil');
    const json = cli(['queue', 'deadletter', 'show', 'escapes', 't1', '--workspace', ws, '--json']);
    expect(json.code).toBe(0);
    clean(json);
    const doc = JSON.parse(json.stdout) as { errors: { message: string; class: string }[] };
    expect(doc.errors[0]!.message).toBe('bad row \x1b[2J\x1b]8;;http://x\x07link\x1b]8;;\x07\r\nFAKE \u009b31m \u202eevil');
  });

  it('a --reason is escaped on the terminal and kept whole in the ledger', () => {
    const ws = withDeadLetter();
    const r = cli(['queue', 'deadletter', 'discard', 'escapes', '--task-id', 't1', '--reason', REASON, '--workspace', ws]);
    expect(r.code, r.stderr).toBe(0);
    clean(r);
    expect(r.stdout).toContain('\\x1b[2J\\x1b]8;;http://x\\x07link\\r\\nFAKE');
    const ledger = readFileSync(join(ws, 'ledger.jsonl'), 'utf8');
    expect(
      ledger
        .split('\n')
        .filter(Boolean)
        .some((l) => (JSON.parse(l) as { detail: { reason?: string } }).detail.reason === REASON),
    ).toBe(true);
  });

  it('a task id with a control character is refused, its echo escaped', () => {
    const ws = tempWorkspace({ demo: false });
    const r = cli(['queue', 'enqueue', 'escapes', '--workspace', ws, '--payload', '{"n":1}', '--id', 'a\x1b[31mb\u0085c']);
    expect(r.code).toBe(64);
    clean(r);
    expect(r.stderr).toContain('a\\x1b[31mb\\u0085c');
    const j = cli(['queue', 'enqueue', 'escapes', '--workspace', ws, '--payload', '{"n":1}', '--id', 'a\x1b[31mb\u0085c', '--json']);
    expect(j.code).toBe(64);
    clean(j);
    expect((JSON.parse(j.stdout) as { error: { message: string } }).error.message).toContain('a\x1b[31mb\u0085c');
  });

  it('every --help ends with exactly one newline', () => {
    for (const args of [['--help'], ['serve', '--help'], ['queue', '--help'], ['queue', 'deadletter', 'discard', '--help'], ['worker', 'run', '--help'], ['runs', '--help'], ['s1', '--help']]) {
      const r = cli(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout.endsWith('\n') && !r.stdout.endsWith('\n\n'), `${args.join(' ')}: ${JSON.stringify(r.stdout.slice(-80))}`).toBe(true);
    }
  });
});
