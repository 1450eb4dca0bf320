// Shared by the tests of handlers that misbehave (worker-isolation, worker-misbehaving): the fixture
// workers of test/fixtures/misbehaving-workers.mjs write <workspace>/activity.log, one line per event.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ROOT, run, type Run } from './cli.js';
import { cliIn } from './in-process.js';

export const FIXTURES = join(ROOT, 'test', 'fixtures', 'misbehaving-workers.mjs');
export const spec = (name: string): string => `${FIXTURES}:${name}`;
export type Mode = 'none' | 'thread' | 'process';

export interface Activity {
  at: number;
  event: 'start' | 'tick' | 'end';
  /** `<task id>#<attempt>` */
  attempt: string;
  pid: number;
  thread: number;
}

export function activity(ws: string): Activity[] {
  const f = join(ws, 'activity.log');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [at, event, attempt, pid, thread] = l.split(' ');
      return { at: Number(at), event: event as Activity['event'], attempt: attempt!, pid: Number(pid), thread: Number(thread) };
    });
}

/** Each attempt's first and last sign of life, in the order they started. */
export function spans(ws: string): { attempt: string; from: number; to: number; ended: boolean; pid: number }[] {
  const by = new Map<string, { attempt: string; from: number; to: number; ended: boolean; pid: number }>();
  for (const a of activity(ws)) {
    const s = by.get(a.attempt) ?? { attempt: a.attempt, from: a.at, to: a.at, ended: false, pid: a.pid };
    s.from = Math.min(s.from, a.at);
    s.to = Math.max(s.to, a.at);
    s.ended ||= a.event === 'end';
    by.set(a.attempt, s);
  }
  return [...by.values()].sort((x, y) => x.from - y.from);
}

/** With one slot, no attempt shows a sign of life once the next one started. */
export function expectOneAtATime(ws: string): void {
  const s = spans(ws);
  for (let i = 1; i < s.length; i++) expect(s[i]!.from, `${s[i]!.attempt} started while ${s[i - 1]!.attempt} still ran`).toBeGreaterThanOrEqual(s[i - 1]!.to);
}

/** No process that ran a handler outlives the worker (a child process per slot is killed or closed). */
export function expectNoHandlerProcessLeft(ws: string, worker: number | undefined): void {
  for (const pid of new Set(activity(ws).map((a) => a.pid))) {
    if (pid === worker) continue;
    expect(() => process.kill(pid, 0), `handler process ${pid} still alive after the worker exited`).toThrow();
  }
}

export async function enqueue(ws: string, queue: string, tasks: { id: string; payload: unknown; max_attempts?: number }[]): Promise<void> {
  const f = join(ws, `${queue}-tasks.jsonl`);
  writeFileSync(f, tasks.map((t) => JSON.stringify(t)).join('\n') + '\n');
  const r = await cliIn(['queue', 'enqueue', queue, '--workspace', ws, '--file', f]);
  expect(r.code, r.stderr).toBe(0);
}

export interface Stats {
  ready: number;
  scheduled: number;
  leased: number;
  completed: number;
  dead: number;
  paused: boolean;
}

export async function stats(ws: string, queue: string): Promise<Stats> {
  const r = await cliIn(['queue', 'stats', queue, '--workspace', ws, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Stats;
}

export interface TaskError {
  attempt: number;
  kind: string;
  class: string;
  message: string;
}

export async function deadLetters(ws: string, queue: string): Promise<{ task: { id: string }; errors: TaskError[]; reason: TaskError }[]> {
  const r = await cliIn(['queue', 'deadletter', 'list', queue, '--workspace', ws, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { dead_letters: { task: { id: string }; errors: TaskError[]; reason: TaskError }[] }).dead_letters;
}

/** A task's error history from its newest record in the queue log (one checksummed record a line). */
export function errorHistory(ws: string, queue: string, id: string): TaskError[] {
  const dir = join(ws, 'queue', queue);
  let errors: TaskError[] = [];
  for (const log of readdirSync(dir)
    .filter((f) => /^log\.\d+\.jsonl$/.test(f))
    .sort()) {
    for (const line of readFileSync(join(dir, log), 'utf8').split('\n')) {
      if (!line) continue;
      const rec = (JSON.parse(line) as { r: { t: string; task?: { id: string; errors: TaskError[] }; id?: string; a?: number; e?: Omit<TaskError, 'attempt'> } }).r;
      if (rec.task?.id === id) errors = rec.task.errors;
      // A short fail (docs/QUEUE-FORMAT.md): the failure's error after the task's record before it.
      else if (rec.t === 'fail' && rec.id === id && rec.e) errors = [...(errors ?? []), { ...rec.e, attempt: rec.a! }];
    }
  }
  return errors;
}

export function worker(ws: string, name: string, flags: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return run(['worker', 'run', spec(name), '--workspace', ws, ...flags], { cwd: ws, env, ms: 60_000 });
}

export const NO_STACK = /\n\s+at \S+/;
