import { describe, expect, it } from 'vitest';
import { ProjectRewardsWorker, UpdateAttentionScoresWorker } from '../../../workers/s1/workers.js';

const good = { date: '2026-01-28', as_of: '2026-01-29T00:00:00.000Z', config_hash: '3bbf9e591339f3a2', inputs: '417dba18a67fc703' };

describe('Season 1 task payloads', () => {
  it('check every payload by itself: a bad date or as-of after good ones (and good ones after bad) get their own verdict', () => {
    const p = new UpdateAttentionScoresWorker().payload;
    const d = new ProjectRewardsWorker().payload;
    const verdicts = [
      { ...good, subject_ref: 's1' },
      { ...good, subject_ref: 's2' },
      { ...good, subject_ref: 's3', date: '2026-02-30' },
      { ...good, subject_ref: 's4', as_of: '2026-01-29 noon' },
      { ...good, subject_ref: 's5', as_of: '2026-01-29 noon' },
      { ...good, subject_ref: 's6' },
      { ...good, subject_ref: 's7', date: '2026-01-2' },
      { ...good, subject_ref: 's8', date: '2026-01-29' },
    ].map((x) => p.safeParse(x).success);
    expect(verdicts).toEqual([true, true, false, false, false, true, false, true]);
    // Another stage's schema checks its own (the last text one checker saw is not another's).
    expect(d.safeParse({ ...good, date: '2026-13-01' }).success).toBe(false);
    expect(p.safeParse({ ...good, subject_ref: 's9' }).success).toBe(true);
    expect(d.safeParse(good).success).toBe(true);
    const bad = p.safeParse({ ...good, subject_ref: 's10', as_of: 'later' });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual(['as_of: must be an ISO-8601 instant']);
  });
});
