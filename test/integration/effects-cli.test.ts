/**
 * `worker run` on the file backend with a handler that records effects (ctx.effects), which only
 * PostgreSQL can commit with the completion: the CLI refuses it (the backends' own effects tests
 * are test/queue/effects.test.ts and pg-effects.test.ts).
 */
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { tempDir } from '../temp.js';
import { run } from './cli.js';
import { cliIn } from './in-process.js';

it('worker run on files whose handler records effects: exit 64 with one line saying why, the task left ready with no attempt spent', async () => {
  const ws = tempDir('metaspn-fx-');
  const spec = `${join(import.meta.dirname, '..', 'chaos', 'pg-workers.mjs')}:Effects`;
  const env = { METASPN_DATABASE_URL: '' };
  expect((await cliIn(['queue', 'enqueue', 'pgchaos', '--workspace', ws, '--payload', '{"n":1}', '--id', 'a'], { env })).code).toBe(0);
  // The refusal end to end, in a process of its own: exit code and stderr as cron sees them.
  const r = await run(['worker', 'run', spec, '--workspace', ws, '--once', '--isolation', 'none'], { env });
  expect(r.code).toBe(64);
  expect(r.stderr).toMatch(/worker pgchaos recorded effects \(ctx\.effects\), and this queue backend cannot commit them with the completion/);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  const stats = await cliIn(['queue', 'stats', 'pgchaos', '--workspace', ws, '--json'], { env });
  expect(JSON.parse(stats.stdout)).toMatchObject({ ready: 1, leased: 0, completed: 0, totals: { failed: 0 } });
});
