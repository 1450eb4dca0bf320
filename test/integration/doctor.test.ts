import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';

describe('metaspn doctor', () => {
  it('is clean after a run, finds torn tails (30) without changing anything, and --repair fixes them', async () => {
    const ws = tempWorkspace();
    expect((await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15'])).code).toBe(0);
    const clean = await cliIn(['doctor', '--workspace', ws]);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toContain('clean: every file verifies');

    const store = join(ws, 'store', 's1_attention_scores.jsonl');
    appendFileSync(store, '{"id":"att_torn","date":"20');
    const log = join(
      ws,
      'queue',
      'project_rewards',
      readdirSync(join(ws, 'queue', 'project_rewards')).find((f) => f.startsWith('log.'))!,
    );
    appendFileSync(log, '{"c":"12345678","r":{"t":"enq"');
    const before = readFileSync(store);
    const found = await cliIn(['doctor', '--workspace', ws, '--json']);
    expect(found.code).toBe(30);
    const report = JSON.parse(found.stdout);
    expect(report.findings.map((x: { area: string; severity: string }) => `${x.area}:${x.severity}`).sort()).toEqual(['queue:error', 'store:error']);
    expect(readFileSync(store).equals(before)).toBe(true);

    const fixed = await cliIn(['doctor', '--workspace', ws, '--repair']);
    expect(fixed.code).toBe(0);
    expect(fixed.stdout).toMatch(/2 fixed/);
    expect(readdirSync(join(ws, 'quarantine'))).toContain('s1_attention_scores.jsonl.torn.jsonl');
    expect((await cliIn(['doctor', '--workspace', ws])).code).toBe(0);
    expect((await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15'])).code).toBe(0);
  });

  it('reports what it cannot repair: an edited row under a published run, a tampered ledger, a bad input line', async () => {
    const ws = tempWorkspace();
    expect((await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15'])).code).toBe(0);
    const store = join(ws, 'store', 's1_reward_projections.jsonl');
    const lines = readFileSync(store, 'utf8').split('\n');
    lines[0] = lines[0]!.replace(/"projected_units":\d+/, '"projected_units":1');
    writeFileSync(store, lines.join('\n'));
    const ledger = join(ws, 'ledger.jsonl');
    writeFileSync(ledger, readFileSync(ledger, 'utf8').replace('"kind":"publish"', '"kind":"rollback"'));
    appendFileSync(join(ws, 'inputs', 's1_signals.jsonl'), 'not json\n');
    const r = await cliIn(['doctor', '--workspace', ws, '--repair', '--json']);
    expect(r.code).toBe(30);
    const left = JSON.parse(r.stdout).findings.filter((x: { severity: string; repaired?: boolean }) => x.severity === 'error' && !x.repaired);
    expect(left.map((x: { area: string }) => x.area).sort()).toEqual(['input', 'ledger', 'manifest']);
  });
});
