import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { intFlag, NUMBER_FLAGS } from '../../src/cli/options.js';
import { knownKeysAt } from '../../src/config/issues.js';
import { checkLimit, limitOfConfigPath, limitOfFlag, limitSchema, LIMITS, rangeText, type Limit, type LimitKey } from '../../src/config/limits.js';
import { POLICY_DEFAULTS, POLICY_KEYS } from '../../src/config/policy.js';
import { ALERTS_DEFAULTS, alertsConfigSchema } from '../../src/config/alerts.js';
import { REPORTS_DEFAULTS, reportsConfigSchema } from '../../src/config/reports.js';
import { resolveS1Config } from '../../workers/s1/config.js';
import { guardrailsSchema } from '../../workers/s1/guardrails.js';

const entries = Object.entries(LIMITS) as [LimitKey, Limit][];

describe('the table of limits', () => {
  it('has a range for every number flag of every command', async () => {
    await buildProgram();
    expect(NUMBER_FLAGS.size).toBeGreaterThan(10);
    const missing = [...NUMBER_FLAGS].filter((f) => limitOfFlag(f) === undefined);
    expect(missing).toEqual([]);
  });

  it('names every flag and config path once', () => {
    const seen = new Map<string, LimitKey>();
    for (const [key, l] of entries) {
      for (const w of l.where) {
        expect(seen.get(w), `${w} in ${key} and ${seen.get(w)}`).toBeUndefined();
        seen.set(w, key);
      }
    }
  });

  it('has sane rows: min <= max, integer rows with whole bounds, every bound finite', () => {
    for (const [key, l] of entries) {
      expect(l.min, key).toBeLessThanOrEqual(l.max);
      expect(Number.isFinite(l.max), key).toBe(true);
      if (l.integer) expect(Number.isSafeInteger(l.min) && Number.isSafeInteger(l.max), key).toBe(true);
    }
  });

  it('covers every queue policy key, each in the config and its METASPN_QUEUE_ variable, and holds the defaults', () => {
    for (const k of POLICY_KEYS) {
      const l: Limit = LIMITS[k];
      expect(l.where).toContain(`queues.<worker>.${k}`);
      expect(l.where).toContain(`METASPN_QUEUE_${k.toUpperCase()}`);
      expect(checkLimit(k, POLICY_DEFAULTS[k]), k).toBeNull();
    }
  });

  it('names only keys the config schemas know, and every default is within its range', () => {
    const schemas = { alerts: alertsConfigSchema, reports: reportsConfigSchema, guardrails: guardrailsSchema } as const;
    for (const [key, l] of entries) {
      for (const w of l.where) {
        const [section, ...rest] = w.split('.');
        const schema = schemas[section as keyof typeof schemas];
        if (!schema || rest.length === 0) continue;
        expect(knownKeysAt(schema, rest.slice(0, -1)), `${key}: ${w}`).toContain(rest[rest.length - 1]);
      }
    }
    const defaults = { alerts: ALERTS_DEFAULTS, reports: REPORTS_DEFAULTS, guardrails: guardrailsSchema.parse({}), ...resolveS1Config(undefined, 'x') };
    const walk = (v: unknown, path: string[]): void => {
      if (typeof v === 'number') {
        const key = limitOfConfigPath(path.join('.'));
        if (key) expect(checkLimit(key, v), path.join('.')).toBeNull();
      } else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
    };
    walk(defaults, []);
    expect(limitOfConfigPath('attention.weights.follow')).toBe('attention.weight');
    expect(limitOfConfigPath('queues.project_rewards.poll_ms')).toBe('poll_ms');
  });

  it('checks each bound: min and max in, one step beyond out, NaN and Infinity out, fractions out of whole-number rows', () => {
    expect(checkLimit('poll_ms', 1)).toBeNull();
    expect(checkLimit('poll_ms', 86_400_000)).toBeNull();
    expect(checkLimit('poll_ms', 86_400_001)).toBe('must be a whole number from 1 to 86400000 ms (1 day)');
    expect(checkLimit('poll_ms', 0)).not.toBeNull();
    expect(checkLimit('poll_ms', 1.5)).not.toBeNull();
    expect(checkLimit('poll_ms', Number.NaN)).not.toBeNull();
    expect(checkLimit('backoff_jitter', Infinity)).not.toBeNull();
    expect(checkLimit('backoff_jitter', 0.25)).toBeNull();
    expect(checkLimit('alerts.failure_ratio_max', 0)).toBe('must be a number above 0 and up to 1');
    expect(checkLimit('port', '80')).not.toBeNull();
    for (const [key, l] of entries) {
      const s = limitSchema(key);
      expect(s.safeParse(l.max).success, key).toBe(true);
      expect(s.safeParse(l.minExclusive ? l.min : l.min - 1).success, key).toBe(false);
      expect(s.safeParse(l.max + (l.integer ? 1 : Math.max(1, l.max * 1e-6))).success, key).toBe(false);
      expect(s.safeParse(Infinity).success, key).toBe(false);
    }
  });

  it('docs/LIMITS.md prints every row with its range and where it is set', () => {
    const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'LIMITS.md'), 'utf8');
    for (const [key, l] of entries) expect(doc, key).toContain(`| \`${key}\` | ${rangeText(key)} | ${l.where.map((w) => `\`${w}\``).join(', ')} |`);
  });

  it('flag parsers refuse values out of range, naming the flag and the range', () => {
    expect(() => intFlag('--poll-ms')('3000000000')).toThrow('--poll-ms must be a whole number from 1 to 86400000 ms (1 day), got "3000000000"');
    expect(() => intFlag('--port')('99999')).toThrow('--port must be a whole number from 1 to 65535, got "99999"');
    expect(() => intFlag('--max-parallel')('0')).toThrow(/--max-parallel must be a whole number from 1 to 64/);
    expect(() => intFlag('--lock-wait-sec')('1e3')).toThrow(/--lock-wait-sec/);
    expect(() => intFlag('--max-tasks')('99999999999999999999')).toThrow(/--max-tasks/);
    expect(intFlag('--alert-interval-sec')('0')).toBe(0);
    expect(rangeText('backoff_cap_ms')).toBe('a whole number from 0 to 2592000000 ms (30 days)');
  });
});
