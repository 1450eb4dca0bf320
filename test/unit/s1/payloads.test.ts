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

  it("stage 1's check without zod's copy: the same verdict, data and messages as the schema for any payload", () => {
    const p = new UpdateAttentionScoresWorker().payload;
    // The schema behind it: what every payload must be judged by.
    const schema = Object.getPrototypeOf(p) as typeof p;
    const plain = { ...good, subject_ref: 'creator:c000001' };
    const reordered = { subject_ref: 's', ...good };
    const { inputs: _inputs, ...missing } = plain;
    class Payload {
      date = good.date;
      as_of = good.as_of;
      config_hash = good.config_hash;
      inputs = good.inputs;
      subject_ref = 's';
    }
    const cases: unknown[] = [
      plain,
      reordered,
      missing,
      { ...plain, extra: 1 },
      { ...plain, subject_ref: '' },
      { ...plain, subject_ref: 7 },
      { ...plain, config_hash: '3BBF9E591339F3A2' },
      { ...plain, inputs: '417dba18a67fc70' },
      { ...plain, inputs: '417dba18a67fc7033' },
      { ...plain, date: '2026-02-30' },
      { ...plain, date: '2026-01-28' },
      { ...plain, as_of: 'later' },
      { ...plain, as_of: '2026-01-29T00:00:00Z' },
      { ...plain, subject_ref: undefined },
      Object.assign(Object.create(null) as object, plain),
      new Payload(),
      [plain],
      null,
      'payload',
    ];
    for (const x of cases) {
      const fast = p.safeParse(x);
      const slow = schema.safeParse(x);
      expect(fast.success).toBe(slow.success);
      if (slow.success) {
        expect(fast.data).toEqual(slow.data);
        expect(Object.keys(fast.data as object)).toEqual(Object.keys(slow.data as object));
      } else expect(fast.error?.issues).toEqual(slow.error?.issues);
    }
    // The plan's payload is taken as it is (no copy); any other goes through the schema.
    expect(p.safeParse(plain).data).toBe(plain);
    expect(p.safeParse(reordered).data).not.toBe(reordered);
  });
});
