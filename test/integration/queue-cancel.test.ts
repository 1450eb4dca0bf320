// Task groups and the cancelled state, seen through the real CLI: task files, queue stats, doctor, worker run.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileQueue } from '../../src/queue/file/file-queue.js';
import { workspaceMetrics } from '../../src/ops/metrics.js';
import { workspacePaths } from '../../src/storage/paths.js';
import { cleanWorkspaces, spec, tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';

afterEach(() => cleanWorkspaces());

describe('task groups and cancelled tasks (CLI)', () => {
  it('a task file may carry groups; a bad one is exit 20 naming the line; cancelled tasks show in queue stats, /metrics and pass doctor; worker run skips them', async () => {
    const ws = tempWorkspace({ demo: false });
    const file = join(ws, 'tasks.jsonl');
    writeFileSync(file, '{"id":"a1","payload":1,"group":"p/2026-01-01"}\n{"id":"a2","payload":2,"group":"p/2026-01-01"}\n{"id":"b1","payload":3,"group":"p/2026-01-02"}\n');
    const bad = join(ws, 'bad.jsonl');
    writeFileSync(bad, '{"id":"x1","payload":1}\n{"id":"x2","payload":2,"group":"has space"}\n');
    const refused = await cliIn(['queue', 'enqueue', 'ok', '--workspace', ws, '--file', bad]);
    expect(refused.code).toBe(20);
    expect(refused.stderr).toMatch(/bad\.jsonl:2: group "has space" must match/);
    expect(refused.stderr).not.toMatch(/\n\s+at /);
    expect((await cliIn(['queue', 'enqueue', 'ok', '--workspace', ws, '--file', file])).code).toBe(0);

    const q = new FileQueue({ name: 'ok', workspace: ws });
    expect(await q.cancel({ group: 'p/2026-01-01', by: 'run r2', reason: 'superseded by run r2' })).toEqual(['a1', 'a2']);
    await q.close();

    const text = await cliIn(['queue', 'stats', 'ok', '--workspace', ws]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^ {2}cancelled +2 +superseded before they ran/m);
    const json = await cliIn(['queue', 'stats', 'ok', '--workspace', ws, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ ready: 1, cancelled: 2, completed: 0 });

    const metrics = await workspaceMetrics(workspacePaths(ws)).scrape();
    expect(metrics).toMatch(/# TYPE metaspn_queue_cancelled gauge/);
    expect(metrics).toMatch(/^metaspn_queue_cancelled\{worker="ok"\} 2$/m);

    const doctor = await cliIn(['doctor', '--workspace', ws]);
    expect(doctor.code, doctor.stdout + doctor.stderr).toBe(0);

    const r = await cliIn(['worker', 'run', spec('Succeed'), '--workspace', ws, '--once']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/claimed 1, completed 1/);
    expect(JSON.parse((await cliIn(['queue', 'stats', 'ok', '--workspace', ws, '--json'])).stdout)).toMatchObject({ ready: 0, completed: 1, cancelled: 2 });
  });
});
