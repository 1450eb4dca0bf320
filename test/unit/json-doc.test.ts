// The one shape of every JSON document metaspn prints (src/json-doc.ts).
import { describe, expect, it } from 'vitest';
import { isoTimes, jsonDoc, SCHEMA_VERSION } from '../../src/json-doc.js';

const T = Date.UTC(2026, 0, 16, 6, 0, 0, 250);
const ISO = '2026-01-16T06:00:00.250Z';

describe('jsonDoc', () => {
  it('puts "schema_version": 1 first, whatever the document', () => {
    expect(SCHEMA_VERSION).toBe(1);
    const d = jsonDoc({ worker: 'w', retried: ['a'] });
    expect(Object.keys(d)).toEqual(['schema_version', 'worker', 'retried']);
    expect(d).toEqual({ schema_version: 1, worker: 'w', retried: ['a'] });
    // A document that has its own (a report written to disk) keeps the key first.
    expect(Object.keys(jsonDoc({ kind: 'weekly', schema_version: 1 }))).toEqual(['schema_version', 'kind']);
  });

  it('refuses a bare list: a list goes under a name', () => {
    // @ts-expect-error a list is not a document
    expect(() => jsonDoc([1, 2])).toThrow(/put the list under a name/);
  });

  it('turns instants (now, at, every …_at) into ISO-8601 UTC at any depth, and nothing else', () => {
    const d = jsonDoc({
      now: T,
      queues: [{ queue: 'q', next_due_at: T, oldest_ready_at: null, oldest_ready_age_s: 2.5, ready: 3 }],
      lease: { owner: 'o', fence: 2, expires_at: T },
      errors: [{ at: T, attempt: 1 }],
      duration_ms: 446,
      started_at: ISO,
    });
    expect(d).toEqual({
      schema_version: 1,
      now: ISO,
      queues: [{ queue: 'q', next_due_at: ISO, oldest_ready_at: null, oldest_ready_age_s: 2.5, ready: 3 }],
      lease: { owner: 'o', fence: 2, expires_at: ISO },
      errors: [{ at: ISO, attempt: 1 }],
      duration_ms: 446,
      started_at: ISO,
    });
  });

  it("prints a payload as given (the user's data), and leaves the input untouched", () => {
    const input = { task: { id: 't', created_at: ISO, payload: { created_at: 1, nested: { now: 5 } } }, dead_at: T };
    const d = jsonDoc(input);
    expect(d).toEqual({ schema_version: 1, task: { id: 't', created_at: ISO, payload: { created_at: 1, nested: { now: 5 } } }, dead_at: ISO });
    expect(input.dead_at).toBe(T);
  });

  it('keeps numbers that are not finite instants as they are', () => {
    expect(isoTimes({ next_due_at: Number.NaN, now: Infinity })).toEqual({ next_due_at: Number.NaN, now: Infinity });
    expect(isoTimes(T)).toBe(T);
  });
});
