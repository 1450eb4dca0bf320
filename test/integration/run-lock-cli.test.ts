import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cli, ROOT, tempWorkspace, waitFor } from './cli.js';

let holder: ChildProcess | null = null;

/** A live process holding the workspace's s1 run lock. */
async function holdLock(ws: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(ROOT, 'test', 'fixtures', 'hold-run-lock.mjs'), ws], { stdio: ['ignore', 'pipe', 'inherit'] });
  holder = child;
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => out.includes('held'), 20_000, 'the fixture to take the lock');
  return child;
}

async function kill(child: ChildProcess, sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill(sig);
  await gone;
}

afterEach(async () => {
  if (holder) await kill(holder);
  holder = null;
});

describe('run lock through the CLI', () => {
  it('held by a live process: 11 by default, 40 with --on-lock-held fail, 40 after --lock-wait-sec', async () => {
    const ws = tempWorkspace();
    const h = await holdLock(ws);
    const r = cli(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15']);
    expect(r.code).toBe(11);
    expect(r.stderr).toContain(`pid ${h.pid}`);
    expect(r.stderr).toContain('--force-lock-break');
    expect(cli(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--on-lock-held', 'fail']).code).toBe(40);
    expect(cli(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--on-lock-held', 'wait', '--lock-wait-sec', '1']).code).toBe(40);
    const st = cli(['lock', 'status', '--workspace', ws]);
    expect(st.code).toBe(0);
    expect(st.stdout).toContain('lock s1: HELD');
    expect(st.stdout).toContain(`pid           ${h.pid} (running)`);
    const json = JSON.parse(cli(['lock', 'status', '--workspace', ws, '--json']).stdout);
    expect(json).toMatchObject({ held: true, holder_alive: true, payload: { active: 1, pid: h.pid, reason: 'fixture holding the lock' } });
  });

  it('a SIGKILLed holder\'s lock is broken by the next run, which logs it', async () => {
    const ws = tempWorkspace();
    const h = await holdLock(ws);
    const pid = h.pid;
    await kill(h);
    expect(cli(['lock', 'status', '--workspace', ws]).stdout).toContain('its process is gone');
    const r = cli(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15']);
    expect(r.code).toBe(0);
    const log = readFileSync(join(ws, 'logs', 'metaspn.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const broke = log.find((e) => e.level === 40 && JSON.stringify(e).includes(String(pid)));
    expect(broke).toBeDefined();
  });

  it('--force-lock-break needs --reason (64), and with one takes a live holder\'s lock', async () => {
    const ws = tempWorkspace();
    await holdLock(ws);
    expect(cli(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--force-lock-break']).code).toBe(64);
    const r = cli(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--force-lock-break', '--reason', 'holder hung']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('holder hung');
  });
});
