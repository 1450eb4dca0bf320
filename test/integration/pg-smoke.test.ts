import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, pgAvailable, type TestDatabase } from '../queue/pg-db.js';
import { tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';

/**
 * `smoke` on PostgreSQL: the whole Season 1 pipeline on the demo inputs in a schema of its own in
 * the workspace's database (the workspace's schema and store untouched), read back through the
 * database, the schema dropped after a pass and after a failure.
 */
const up = await pgAvailable();
let db: TestDatabase;

const schemas = async (): Promise<string[]> => (await db.query<{ nspname: string }>(`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'metaspn%' ORDER BY 1`)).map((r) => r.nspname);

describe.skipIf(!up)('smoke on PostgreSQL', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('passes in a schema of its own, names it, drops it, and writes nothing into the workspace or its schema', async () => {
    const ws = tempWorkspace({ demo: false });
    const r = await cliIn(['smoke', '--workspace', ws], { env: { METASPN_DATABASE_URL: db.url } });
    expect(r.code).toBe(0);
    const out = r.stdout.trim().split('\n');
    expect(out[0]).toMatch(/^ok {2}backend: PostgreSQL \(METASPN_DATABASE_URL\), schema metaspn_smoke_[0-9a-f]{8} of its own$/);
    expect(out).toContain('ok  store: four artifact stores, no duplicate id');
    expect(out).toContain('ok  replay: store byte-identical');
    expect(out.at(-1)).toBe('STATUS=PASS');
    // The smoke schema is gone; the workspace's own schema was never created; no store on disk.
    expect(await schemas()).toEqual([]);
    expect(existsSync(join(ws, 'store'))).toBe(false);
  });

  it('a run that fails is STATUS=FAIL with its exit code; the schema is dropped, the temporary workspace kept and named', async () => {
    const ws = tempWorkspace({ demo: false, config: { attention: { weights: { view: 1 } } } });
    const r = await cliIn(['smoke', '--workspace', ws, '--database-url', db.url, '--json']);
    expect(r.code).toBe(20);
    const j = JSON.parse(r.stdout) as { status: string; reason: string; exit_code: number };
    expect(j).toMatchObject({ status: 'FAIL', exit_code: 20 });
    expect(j.reason).toMatch(/s1_signals\.jsonl:\d+: kind must be one of view/);
    const kept = /smoke workspace kept at (\S+?)\)/.exec(j.reason)?.[1];
    expect(kept && existsSync(join(kept, 'inputs', 's1_signals.jsonl'))).toBe(true);
    rmSync(kept!, { recursive: true, force: true });
    expect(await schemas()).toEqual([]);
  });

  it('an unreachable database is STATUS=FAIL, exit 11, naming the server', async () => {
    const ws = tempWorkspace({ demo: false });
    const r = await cliIn(['smoke', '--workspace', ws, '--database-url', 'postgres://postgres@127.0.0.1:1/nowhere']);
    expect(r.code).toBe(11);
    expect(r.stdout).toMatch(/^STATUS=FAIL reason=PostgreSQL at 127\.0\.0\.1:1\/nowhere is unavailable/m);
    const kept = /smoke workspace kept at (\S+?)[;)]/.exec(r.stdout)?.[1];
    expect(kept).toBeDefined();
    rmSync(kept!, { recursive: true, force: true });
    expect(readdirSync(ws)).not.toContain('store');
  });
});
