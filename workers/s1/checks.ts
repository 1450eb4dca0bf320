import { createHash } from 'node:crypto';
import stringify from 'fast-json-stable-stringify';
import type { ManifestCheck } from '../../src/storage/manifest.js';
import type { S1Context, StageName } from './context.js';
import type { RunPlan } from './plan.js';

type Row = Record<string, unknown>;

/** sha256 over rows in id order: a step's output, stable however the store file grows. */
export function rowsHash(rows: readonly Row[]): string {
  const h = createHash('sha256');
  for (const r of [...rows].sort((a, b) => (String(a.id) < String(b.id) ? -1 : 1))) h.update(`${stringify(r)}\n`);
  return h.digest('hex');
}

function check(name: string, observed: unknown, expected: unknown): ManifestCheck {
  return { name, status: observed === expected ? 'pass' : 'fail', observed, expected };
}

const sum = (rows: readonly Row[], key: string): number => rows.reduce((a, r) => a + (r[key] as number), 0);

/** What each stage promises about its rows, checked against the store after it ran. */
export async function stageChecks(stage: StageName, s1: S1Context, plan: RunPlan, subjects: number, rows: readonly Row[]): Promise<ManifestCheck[]> {
  switch (stage) {
    case 'update_attention_scores':
      return [check('row_for_every_subject', rows.length, subjects)];
    case 'project_rewards': {
      const scores = await s1.rows('update_attention_scores', plan.date, plan.params);
      const positive = scores.filter((r) => (r.score as number) > 0).length;
      return [
        check('row_for_every_positive_score', rows.length, positive),
        check('pool_allocated', sum(rows, 'projected_units'), positive > 0 ? s1.cfg.season.daily_pool_units : 0),
      ];
    }
    case 'settle_season': {
      const counted = await s1.projectionsToSettle(plan.date, plan.params);
      const projected = [...counted.values()].reduce((a, list) => a + list.reduce((b, p) => b + p.projected_units, 0), 0);
      return [check('conservation', sum(rows, 'settled_units'), projected)];
    }
    case 'publish_season_summary': {
      const summary = rows[0];
      const scores = await s1.rows('update_attention_scores', plan.date, plan.params);
      const projections = await s1.rows('project_rewards', plan.date, plan.params);
      return [
        check('summary_row', rows.length, 1),
        check('summary_subjects_scored', summary?.subjects_scored, scores.length),
        check('summary_allocated_units', summary?.allocated_units, sum(projections, 'projected_units')),
      ];
    }
  }
}
