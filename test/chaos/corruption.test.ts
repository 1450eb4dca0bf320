// Corruption suite, short: each file kind damaged once, torn or with a garbage line at random
// (npm run chaos: both variants, several random offsets each).
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { corruptionCase, DATES, KINDS, prepareBase, removeBase, type CaseResult, type Kind, type Variant } from '../../chaos/corruption.js';
import { chaosWorkspace, duplicateIds, report, Rng, run, runIn, scale, STACK } from '../../chaos/lib.js';

const s = scale();
const pick = new Rng(s.seed);
const reps = s.full ? Math.max(1, Math.round(s.iterations / 40)) : 1;
const cases: { kind: Kind; variant: Variant; n: number }[] = KINDS.flatMap((kind) =>
  s.full ? (['torn', 'garbage'] as const).flatMap((variant) => Array.from({ length: reps }, (_, n) => ({ kind, variant, n }))) : [{ kind, variant: pick.pick(['torn', 'garbage'] as const), n: 0 }],
);

let base = '';
const results: CaseResult[] = [];

beforeAll(async () => {
  base = await prepareBase(s.seed);
}, 60_000);

afterAll(() => {
  if (base) removeBase(base);
  report('corruption', {
    seed: s.seed,
    cases: results.length,
    failed: results.filter((r) => r.failures.length).length,
    by_kind: Object.fromEntries(
      KINDS.map((k) => [
        k,
        results
          .filter((r) => r.kind === k)
          .map((r) => ({
            variant: r.variant,
            file: r.file,
            offset: `${r.offset}/${r.size}`,
            garbage: r.garbage,
            doctor: r.doctor_exit,
            repair: r.repair_exit,
            next: r.next.map((x) => x.code),
            final: r.final_doctor_exit,
            failures: r.failures,
            notes: r.notes,
          })),
      ]),
    ),
  });
});

describe(`chaos: corruption (seed ${s.seed})`, () => {
  it.each(cases)(
    '$kind $variant #$n: reported without a stack, found by doctor, repaired, next run succeeds',
    async ({ kind, variant, n }) => {
      const r = await corruptionCase(base, kind, variant, new Rng(s.seed + KINDS.indexOf(kind) * 1000 + (variant === 'torn' ? 0 : 500) + n));
      results.push(r);
      expect(r.failures, `${r.file} cut at ${r.offset}/${r.size}${r.garbage !== null ? ` + ${JSON.stringify(r.garbage)}` : ''}`).toEqual([]);
    },
    // A case runs about ten commands; on a loaded 2-core machine one took over 60 s.
    120_000,
  );
});

// Found by the cases above, pinned down deterministically.
describe('chaos: corruption, pinned findings', () => {
  it('a store index that lost its last entries: the next run-local must not write those ids a second time', async () => {
    const ws = chaosWorkspace();
    cpSync(base, ws, { recursive: true });
    // What a power loss can leave: the index is written without fsync, its `covered` count survives.
    const index = join(ws, 'store', '.index', 's1_attention_scores', `date=${DATES[1]}.jsonl`);
    const kept = readFileSync(index, 'utf8').split('\n').filter(Boolean);
    writeFileSync(index, `${kept.slice(0, kept.length - 3).join('\n')}\n`);
    const r = await run(['s1', 'run-local', '--workspace', ws, '--date', DATES[1]!]);
    expect(r.code, r.stderr).toBe(0);
    expect(duplicateIds(ws)['s1_attention_scores.jsonl']).toEqual([]);
  }, 60_000);

  it('s1 rollback on a damaged ledger names the damage, not only "nothing that far back"', async () => {
    const ws = chaosWorkspace();
    cpSync(base, ws, { recursive: true });
    // Cut inside its first entry and given a garbage line: no entry reads back.
    const ledger = join(ws, 'ledger.jsonl');
    writeFileSync(ledger, `${readFileSync(ledger, 'utf8').slice(0, 330)}   \t  #\n`);
    const r = await run(['s1', 'rollback', '--workspace', ws, '--steps', '1', '--dry-run', '--reason', 'chaos']);
    expect(r.stderr + r.stdout).not.toMatch(STACK);
    // It used to exit 10 "--steps 1: only 0 publish(es) in effect", the damage it found unsaid.
    expect(r.stderr + r.stdout).toMatch(/ledger/);
  }, 60_000);

  it('a run whose publish failed on a damaged ledger is not listed as a success with exit 0 (runs list)', async () => {
    const ws = chaosWorkspace();
    cpSync(base, ws, { recursive: true });
    const ledger = join(ws, 'ledger.jsonl');
    writeFileSync(ledger, `${readFileSync(ledger, 'utf8')}garbage{"x":\n`);
    const r = await run(['s1', 'run-local', '--workspace', ws, '--date', DATES[1]!, '--run-id', 'unpublished', '--json']);
    expect(r.code).toBe(30);
    const runs = (JSON.parse((await runIn(['runs', 'list', '--workspace', ws, '--json'])).stdout) as { runs: { run_id: string; status: string; exit_code: number }[] }).runs;
    // It used to show {status: "success", exit_code: 0}, from the step manifests alone.
    expect(runs.find((x) => x.run_id === 'unpublished')).toMatchObject({ exit_code: 30 });
  }, 60_000);
});
