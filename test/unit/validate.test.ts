import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonLimitBroken, parseJsonWithin } from '../../src/config/json-limits.js';
import { LIMITS } from '../../src/config/limits.js';
import { nearest } from '../../src/config/nearest.js';
import { derivedTaskId } from '../../src/queue/record.js';
import { checkNewTask, parseEnqueueBody, parseTask, parseTaskLines, taskFromPayloadText } from '../../src/queue/validate.js';

const rule = (r: { ok: boolean; rule?: string }): string | undefined => (r.ok ? undefined : r.rule);

describe('JSON limits of every reader of outside data', () => {
  it('refuses numbers JSON.parse would not carry exactly, and only those', () => {
    expect(jsonLimitBroken('{"a":1e400}')).toMatch(/number 1e400 is beyond the largest number/);
    expect(jsonLimitBroken('[-1E+999]')).toMatch(/number -1E\+999/);
    expect(jsonLimitBroken('{"a":12345678901234567890}')).toMatch(/integer 12345678901234567890 is beyond 2\^53-1/);
    expect(jsonLimitBroken('{"a":-9007199254740993}')).toBe(
      'integer -9007199254740993 is beyond 2^53-1 (9007199254740991) and would be read as -9007199254740992 (limit json_integer); send it as a string',
    );
    // What JSON.stringify writes for a large double reads back as itself: carried exactly.
    expect(jsonLimitBroken(`[${JSON.stringify(1e20)},${JSON.stringify(1.2345678901234567e20)},9007199254740992]`)).toBeNull();
    expect(jsonLimitBroken('{"a":9007199254740991,"b":-9007199254740991}')).toBeNull();
    expect(jsonLimitBroken('{"a":1e20,"b":1.5e300,"c":0.1,"d":1e-400}')).toBeNull();
    expect(jsonLimitBroken('{"s":"1e400 12345678901234567890 [[[[[\\"]]]"}')).toBeNull();
  });

  it('refuses nesting deeper than the limit', () => {
    const deep = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;
    expect(jsonLimitBroken(deep(LIMITS.json_depth.max))).toBeNull();
    expect(jsonLimitBroken(deep(LIMITS.json_depth.max + 1))).toMatch(/nested deeper than 64 levels/);
    expect(rule(parseJsonWithin(deep(100_000)))).toMatch(/nested deeper/);
  });

  it('refuses a line longer than the limit before parsing it', () => {
    expect(rule(parseJsonWithin(`"${'x'.repeat(LIMITS.json_line_chars.max)}"`))).toMatch(/characters long, more than 2097152 \(limit json_line_chars\)/);
  });

  it('agrees with the full scan on flat texts, where it skips the scan (property)', () => {
    const literal = fc.oneof(
      fc.double().map((d) => JSON.stringify(d) ?? 'null'),
      fc.integer().map(String),
      fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String),
      fc.constantFrom('1e400', '-1e999', '12345678901234567890', '9007199254740993', '1e20', '0.5'),
    );
    const value = fc.oneof(
      literal,
      fc.string().map((x) => JSON.stringify(x)),
      fc.constantFrom('true', 'null'),
    );
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 5 }), value), (o) => {
        const text = `{${Object.entries(o)
          .map(([k, v]) => `${JSON.stringify(k)}:${v}`)
          .join(',')}}`;
        const r = parseJsonWithin(text);
        expect(r.ok ? null : r.rule).toBe(jsonLimitBroken(text));
      }),
      { numRuns: 500 },
    );
  });

  it('names the nearest key', () => {
    expect(nearest('max_attempt', ['id', 'payload', 'max_attempts'])).toBe('max_attempts');
    expect(nearest('paylaod', ['id', 'payload', 'max_attempts'])).toBe('payload');
    expect(nearest('zzzzzzzz', ['id', 'payload'])).toBeNull();
  });
});

describe('enqueue validation (one function for the CLI and the API)', () => {
  it('accepts {payload}, {id, payload, max_attempts}; derives the id from the payload', () => {
    expect(checkNewTask({ payload: { a: 1 } })).toEqual({ ok: true, task: { id: derivedTaskId({ a: 1 }), payload: { a: 1 } } });
    expect(checkNewTask({ id: 't1', payload: null, max_attempts: 1000 })).toEqual({ ok: true, task: { id: 't1', payload: null, max_attempts: 1000 } });
  });

  it('refuses a missing payload, an unknown key (naming the nearest), a bad id, max_attempts out of range, a payload too big', () => {
    expect(rule(checkNewTask({ id: 'x' }))).toMatch(/must be an object with a "payload"/);
    expect(rule(checkNewTask([1]))).toMatch(/must be an object/);
    expect(rule(checkNewTask({ payload: 1, max_atempts: 3 }))).toBe('unknown key "max_atempts" (did you mean "max_attempts"?); a task has "id", "payload", "max_attempts", "group"');
    expect(rule(checkNewTask({ payload: 1, id: '../x' }))).toMatch(/task id "..\/x" must match/);
    expect(rule(checkNewTask({ payload: 1, max_attempts: 0 }))).toBe('max_attempts must be a whole number from 1 to 1000 tries, got 0');
    expect(rule(checkNewTask({ payload: 1, max_attempts: 1001 }))).toMatch(/from 1 to 1000/);
    expect(rule(checkNewTask({ payload: 1, max_attempts: 2.5 }))).toMatch(/whole number/);
    expect(rule(checkNewTask({ payload: 'x'.repeat(LIMITS.payload_bytes.max) }))).toMatch(/payload is 1048578 bytes as JSON, more than 1048576 \(limit payload_bytes\)/);
    expect(rule(checkNewTask({ payload: 'é'.repeat(LIMITS.payload_bytes.max / 2) }))).toMatch(/limit payload_bytes/);
  });

  it('a group: 1 to 200 characters of letters, digits and . _ : / -; anything else is refused naming the rule, with its line in a task file', () => {
    expect(checkNewTask({ id: 't', payload: 1, group: 's1/2026-01-02' })).toEqual({ ok: true, task: { id: 't', payload: 1, group: 's1/2026-01-02' } });
    expect(checkNewTask({ id: 't', payload: 1, group: 'A.b_c:d/e-f'.padEnd(200, 'x') })).toMatchObject({ ok: true });
    expect(rule(checkNewTask({ payload: 1, group: '' }))).toBe('group must be 1 to 200 characters, got 0');
    expect(rule(checkNewTask({ payload: 1, group: 'x'.repeat(201) }))).toBe('group must be 1 to 200 characters, got 201');
    expect(rule(checkNewTask({ payload: 1, group: 'a b' }))).toMatch(/^group "a b" must match/);
    expect(rule(checkNewTask({ payload: 1, group: 7 }))).toBe('group must be a string, got number');
    expect(rule(checkNewTask({ payload: 1, group: null }))).toBe('group must be a string, got null');
    expect(rule(checkNewTask({ payload: 1, grop: 'a' }))).toMatch(/unknown key "grop" \(did you mean "group"\?\)/);
    expect(() => parseTaskLines('{"payload":1,"group":"ok"}\n{"payload":2,"group":"no way"}\n', 'tasks.jsonl')).toThrow(/^tasks\.jsonl:2: group "no way" must match/);
  });

  it('parses a task from its text, holding it to the JSON limits', () => {
    expect(parseTask('{"id":"a","payload":{"n":1e20}}')).toEqual({ ok: true, task: { id: 'a', payload: { n: 1e20 } } });
    expect(rule(parseTask('{"id":"a","payload":{"n":1e400}}'))).toMatch(/1e400/);
    expect(rule(parseTask('{"id":"a","payload":{"n":12345678901234567890}}'))).toMatch(/2\^53-1/);
    expect(rule(parseTask('{"id":"a","payload":'))).toMatch(/^not valid JSON/);
  });

  it('--payload: not JSON is marked as syntax; limits are rules', () => {
    expect(taskFromPayloadText('{', 'x')).toMatchObject({ ok: false, syntax: true });
    expect(taskFromPayloadText('1e400')).toMatchObject({ ok: false, rule: expect.stringMatching(/1e400/) });
    expect(taskFromPayloadText('{"a":1}', 'x')).toEqual({ ok: true, task: { id: 'x', payload: { a: 1 } } });
  });

  it('task files: every line checked first, named by its number; blank lines only at the end; BOM and CRLF accepted', () => {
    expect(parseTaskLines('\uFEFF{"id":"a","payload":1}\r\n{"payload":2}\n\n', 'f.jsonl')).toEqual([
      { id: 'a', payload: 1 },
      { id: derivedTaskId(2), payload: 2 },
    ]);
    expect(() => parseTaskLines('{"payload":1}\n{"payload":1e999}\n', 'f.jsonl')).toThrow(/^f\.jsonl:2: number 1e999/);
    expect(() => parseTaskLines('{"payload":1}\n\n{"payload":2}\n', 'f.jsonl')).toThrow('f.jsonl:2: blank line between tasks');
  });

  it('API bodies: {tasks:[…]} or one task, with an optional string event_id', () => {
    expect(parseEnqueueBody('{"payload":{"a":1},"id":"t","event_id":"e1"}')).toEqual({ ok: true, tasks: [{ id: 't', payload: { a: 1 } }], event_id: 'e1' });
    expect(parseEnqueueBody('{"tasks":[{"id":"t","payload":1},{"payload":2,"max_attempts":3}]}')).toEqual({
      ok: true,
      tasks: [
        { id: 't', payload: 1 },
        { id: derivedTaskId(2), payload: 2, max_attempts: 3 },
      ],
    });
    expect(rule(parseEnqueueBody('{"tasks":[]}'))).toBe('tasks must be a non-empty array');
    expect(rule(parseEnqueueBody('{"tasks":[{"payload":1},{"payload":1e400}]}'))).toMatch(/1e400/);
    expect(rule(parseEnqueueBody('{"tasks":[{"payload":1},{"id":"x"}]}'))).toMatch(/^tasks\[1\]: each task must be an object/);
    expect(rule(parseEnqueueBody('{"event_id":5,"payload":1}'))).toBe('"event_id" must be a non-empty string of at most 200 characters');
    expect(rule(parseEnqueueBody('{"tasks":[{"payload":1}],"payload":2}'))).toBe('give either "tasks" or one "payload", not both');
    expect(rule(parseEnqueueBody('[1]'))).toMatch(/the body must be/);
  });
});
