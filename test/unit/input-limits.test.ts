// The config file, the METASPN_QUEUE_* variables and signal lines, held to their limits at the door.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { resolvePolicy } from '../../src/config/policy.js';
import { DataInvalidError } from '../../src/guard/errors.js';
import { workspacePaths } from '../../src/storage/paths.js';
import { parseSignalLine } from '../../workers/s1/signals.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The message of the DataInvalidError that loading `config` (text or value) throws, without the file name. */
function configError(config: unknown, env: NodeJS.ProcessEnv = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'metaspn-cfg-'));
  dirs.push(dir);
  if (config !== undefined) writeFileSync(join(dir, 'metaspn.config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  try {
    loadConfig(workspacePaths(dir), env);
  } catch (err) {
    expect(err).toBeInstanceOf(DataInvalidError);
    expect((err as DataInvalidError).exitCode).toBe(20);
    return (err as Error).message.replace(join(dir, 'metaspn.config.json'), 'CFG');
  }
  return 'loaded';
}

describe('metaspn.config.json at the door', () => {
  it('refuses an unknown key anywhere, naming it and the nearest known key', () => {
    expect(configError({ queues: { project_rewards: { max_attempt: 3 } } })).toMatch(
      /^CFG: queues\.project_rewards: unknown key "max_attempt" \(did you mean "max_attempts"\?\); known keys here: max_attempts, /,
    );
    expect(configError({ queues: { defaults: { backof_cap_ms: 3 } } })).toMatch(/queues\.defaults: unknown key "backof_cap_ms" \(did you mean "backoff_cap_ms"\?\)/);
    expect(configError({ queus: {} })).toMatch(/^CFG: unknown key "queus" \(did you mean "queues"\?\)/);
    expect(configError({ attention: { half_life_dayz: 3 } })).toMatch(/attention: unknown key "half_life_dayz" \(did you mean "half_life_days"\?\)/);
    expect(configError({ guardrails: { total_score_ratio: { windw: 3 } } })).toMatch(/guardrails\.total_score_ratio: unknown key "windw" \(did you mean "window"\?\)/);
    expect(configError({ alerts: { cooldown_minute: 3 } })).toMatch(/alerts: unknown key "cooldown_minute" \(did you mean "cooldown_minutes"\?\)/);
  });

  it('refuses numbers out of their range, naming the key, the range and the value', () => {
    expect(configError({ queues: { defaults: { poll_ms: 3_000_000_000 } } })).toBe('CFG: queues.defaults.poll_ms: must be a whole number from 1 to 86400000 ms (1 day), got 3000000000');
    expect(configError({ queues: { q: { backoff_cap_ms: 2_592_000_001 } } })).toMatch(/queues\.q\.backoff_cap_ms: must be a whole number from 0 to 2592000000 ms \(30 days\)/);
    expect(configError({ queues: { q: { backoff_cap_ms: 2_592_000_000, backoff_base_ms: 2_592_000_000 } } })).toBe('loaded');
    expect(configError({ alerts: { cooldown_minutes: 1e300 } })).toMatch(/alerts\.cooldown_minutes: must be a number from 0 to 525600 minutes \(1 year\), got 1e\+300/);
    expect(configError({ reports: { baseline_runs: 0 } })).toMatch(/reports\.baseline_runs: must be a whole number from 1 to 100000 runs, got 0/);
    expect(configError({ guardrails: { subjects_scored_drop: { window: 5000 } } })).toMatch(/guardrails\.subjects_scored_drop\.window: must be a whole number from 1 to 1000/);
    expect(configError({ attention: { window_days: 100_000 } })).toMatch(/attention\.window_days: must be a whole number from 1 to 3660 days/);
    expect(configError({ attention: { weights: { view: 1e300 } } })).toMatch(/attention\.weights\.view: must be a number from 0 to 1000000/);
  });

  it('refuses JSON it cannot read exactly, and a file too big, or a folder', () => {
    expect(configError('{"queues":{"q":{"lease_ms":1e400}}}')).toMatch(/^CFG: number 1e400 is beyond/);
    expect(configError('{"season":{"daily_pool_units":12345678901234567890}}')).toMatch(/integer 12345678901234567890 is beyond 2\^53-1/);
    expect(configError(`{"x":${'['.repeat(70)}${']'.repeat(70)}}`)).toMatch(/nested deeper than 64/);
    expect(configError(`{"season":{"id":"${'x'.repeat(1_100_000)}"}}`)).toMatch(/more than 1048576 \(limit config_bytes\)/);
    expect(configError('{"queues":{}\n"x":1}')).toMatch(/^CFG:2: not valid JSON/);
    const dir = mkdtempSync(join(tmpdir(), 'metaspn-cfg-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'metaspn.config.json'));
    expect(() => loadConfig(workspacePaths(dir), {})).toThrow(/metaspn\.config\.json: is a directory, not a file/);
  });

  it('refuses METASPN_QUEUE_* out of range or unknown (naming the nearest)', () => {
    expect(configError(undefined, { METASPN_QUEUE_BACKOFF_CAP_MS: '3000000000' })).toBe(
      'environment METASPN_QUEUE_BACKOFF_CAP_MS: must be a whole number from 0 to 2592000000 ms (30 days), got "3000000000"',
    );
    expect(configError(undefined, { METASPN_QUEUE_POLL_MS: 'Infinity' })).toMatch(/METASPN_QUEUE_POLL_MS: must be .*got "Infinity"/);
    expect(configError(undefined, { METASPN_QUEUE_MAX_ATTEMPTS: '0x10' })).toMatch(/METASPN_QUEUE_MAX_ATTEMPTS/);
    expect(configError(undefined, { METASPN_QUEUE_MAX_ATTEMPT: '3' })).toMatch(/METASPN_QUEUE_MAX_ATTEMPT: unknown variable \(did you mean METASPN_QUEUE_MAX_ATTEMPTS\?\)/);
    expect(configError(undefined, { METASPN_QUEUE_BACKOFF_JITTER: '0.5', METASPN_QUEUE_LEASE_MS: '1e3' })).toBe('loaded');
  });

  it("a worker module's defaults out of range are refused by name, not an internal error", () => {
    expect(() => resolvePolicy({ poll_ms: 3_000_000_000 })).toThrow(/queue policy: poll_ms must be a whole number from 1 to 86400000/);
  });
});

describe('signal lines at the door', () => {
  const KINDS: ReadonlySet<string> = new Set(['like']);
  const line = (extra: string): string => `{"signal_id":"s","ts":"2026-01-15T00:00:00Z","subject_ref":"c:a","kind":"like"${extra}}`;
  const err = (text: string): string => {
    try {
      parseSignalLine(text, 7, 'in.jsonl', KINDS);
    } catch (e) {
      return (e as Error).message;
    }
    return 'parsed';
  };

  it('refuses numbers JSON cannot carry exactly, deep nesting and over-long lines, naming the line', () => {
    expect(err(line(',"value":1e400'))).toMatch(/^in\.jsonl:7: number 1e400 is beyond/);
    expect(err(line(',"value":12345678901234567890'))).toMatch(/^in\.jsonl:7: integer 12345678901234567890 is beyond 2\^53-1/);
    expect(err(line(`,"meta":${'['.repeat(65)}${']'.repeat(65)}`))).toMatch(/^in\.jsonl:7: nested deeper than 64/);
    expect(err(line(`,"meta":"${'x'.repeat(2_100_000)}"`))).toMatch(/^in\.jsonl:7: line is \d+ characters long, more than 2097152/);
    expect(err(line(',"value":1e20'))).toBe('parsed');
    expect(err(line(',"value":2.5,"meta":{"n":[1,2]}'))).toBe('parsed');
  });
});
