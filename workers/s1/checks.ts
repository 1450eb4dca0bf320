import type { ManifestCheck } from '../../src/storage/manifest.js';
import type { S1Context, StageName } from './context.js';
import type { CountedParams, StageParams } from './ids.js';

function check(name: string, observed: unknown, expected: unknown): ManifestCheck {
  return { name, status: observed === expected ? 'pass' : 'fail', observed, expected };
}

/**
 * What each stage promises about its rows, checked against the store after it ran.
 * @param params the stage's params (stages 3–4: with the counted digest).
 */
export async function stageChecks(stage: StageName, s1: S1Context, date: string, params: StageParams, subjects: number, rowCount: number): Promise<ManifestCheck[]> {
  switch (stage) {
    case 'update_attention_scores':
      return [check('row_for_every_subject', rowCount, subjects)];
    case 'project_rewards': {
      // Whether the pool was used whole is the pool_conserved guardrail's (exit 60), checked before publishing.
      const positive = (await s1.scores(date, params)).filter((s) => s.score > 0).length;
      return [check('row_for_every_positive_score', rowCount, positive)];
    }
    case 'settle_season': {
      const settlement = await s1.settlement(date, params as CountedParams);
      const settled = settlement.rows.reduce((a, r) => a + r.settled_units, 0);
      return [check('row_for_every_settled_subject', rowCount, settlement.rows.length), check('conservation', settled, settlement.total_units)];
    }
    case 'publish_season_summary': {
      const summary = (await s1.rows('publish_season_summary', date, params))[0];
      const scores = await s1.scores(date, params);
      const units = (await s1.projections(date, params)).reduce((a, p) => a + p.projected_units, 0);
      return [check('summary_row', rowCount, 1), check('summary_subjects_scored', summary?.subjects_scored, scores.length), check('summary_allocated_units', summary?.allocated_units, units)];
    }
  }
}
