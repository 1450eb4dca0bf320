import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openLog } from '../../src/log.js';
import { workspacePaths } from '../../src/storage/paths.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function workspace(): string {
  const d = mkdtempSync(join(tmpdir(), 'metaspn-log-'));
  dirs.push(d);
  return d;
}

function linesOf(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('the log file', () => {
  it('keeps every line, in order, with its fields, across batches and multibyte text', async () => {
    const ws = workspacePaths(workspace());
    const h = openLog(ws, { run_id: 'r1', cmd: 'metaspn s1 run-local' }, { quiet: true });
    const before = Date.now();
    for (let i = 0; i < 3000; i++)
      h.logger.info({ event: 'task_end', task_id: `t${i}`, outcome: 'completed', duration_ms: i % 7, attempt: '1 of 5' }, i % 10 === 0 ? `task completed é ✓ ${i}` : 'task completed');
    await h.close();
    const after = Date.now();
    const lines = linesOf(h.file);
    expect(lines).toHaveLength(3001);
    expect(lines[0]).toMatchObject({ event: 'command_start', cmd: 'metaspn s1 run-local', run_id: 'r1' });
    for (let i = 0; i < 3000; i++) {
      const o = lines[i + 1]!;
      expect(Object.keys(o)).toEqual(['level', 'time', 'pid', 'hostname', 'run_id', 'event', 'task_id', 'outcome', 'duration_ms', 'attempt', 'msg']);
      expect(o).toMatchObject({ level: 30, pid: process.pid, task_id: `t${i}`, duration_ms: i % 7, msg: i % 10 === 0 ? `task completed é ✓ ${i}` : 'task completed' });
      // pino's isoTime: an ISO date of the moment it was logged.
      const t = Date.parse(String(o.time));
      expect(String(o.time)).toBe(new Date(t).toISOString());
      expect(t).toBeGreaterThanOrEqual(before);
      expect(t).toBeLessThanOrEqual(after);
    }
  });

  it('writes a short batch on flush, before the command ends', async () => {
    const ws = workspacePaths(workspace());
    const h = openLog(ws, {}, { quiet: true });
    h.logger.info({ event: 'one' }, 'one line');
    await h.flush();
    expect(linesOf(h.file).map((o) => o.event)).toEqual(['one']);
    h.logger.warn({ event: 'two' }, 'another');
    await h.close();
    expect(linesOf(h.file).map((o) => o.event)).toEqual(['one', 'two']);
    // Closed: a late line is dropped, not an error.
    h.logger.info({ event: 'late' }, 'late');
    expect(linesOf(h.file).map((o) => o.event)).toEqual(['one', 'two']);
  });
});
