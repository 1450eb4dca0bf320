import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';

const STORE = ['s1_attention_scores.jsonl', 's1_reward_projections.jsonl', 's1_settlements.jsonl', 's1_summaries.jsonl'];
const store = (ws: string): string[] => STORE.map((f) => readFileSync(join(ws, 'store', f), 'utf8'));
const pointer = (ws: string, date: string): { run_id: string; summary_id: string; params: Record<string, string> } =>
  JSON.parse(readFileSync(join(ws, 'manifests', 'current', 's1', `date=${date}.json`), 'utf8'));

describe('pipeline run|backfill|rollback s1: the same code path as metaspn s1 …', () => {
  it('pipeline run s1 and s1 run-local write the same store bytes and the same pointer; backfill and rollback go through too', async () => {
    const a = tempWorkspace();
    const b = tempWorkspace();
    const viaPipeline = await cliIn(['pipeline', 'run', 's1', '--workspace', a, '--date', '2026-01-15', '--run-id', 'same', '--json']);
    const viaS1 = await cliIn(['s1', 'run-local', '--workspace', b, '--date', '2026-01-15', '--run-id', 'same', '--json']);
    expect(viaPipeline.code, viaPipeline.stderr).toBe(0);
    expect(viaS1.code, viaS1.stderr).toBe(0);
    // The same report shape (s1's), the same rows byte for byte, the same summary and params.
    expect(JSON.parse(viaPipeline.stdout)).toMatchObject({
      pipeline: 's1',
      status: 'published',
      stages: [{ step: 'update_attention_scores' }, { step: 'project_rewards' }, { step: 'settle_season' }, { step: 'publish_season_summary' }],
    });
    expect(store(a)).toEqual(store(b));
    const [pa, pb] = [pointer(a, '2026-01-15'), pointer(b, '2026-01-15')];
    expect(pa.summary_id).toBe(pb.summary_id);
    expect(pa.params).toEqual(pb.params);

    const bf = await cliIn(['pipeline', 'backfill', 's1', '--workspace', a, '--start', '2026-01-13', '--end', '2026-01-14', '--max-parallel', '2', '--json']);
    expect(bf.code, bf.stderr).toBe(0);
    expect(Object.values(JSON.parse(bf.stdout).dates as Record<string, { status: string }>).map((d) => d.status)).toEqual(['published', 'published']);
    const dry = await cliIn(['pipeline', 'rollback', 's1', '--workspace', a, '--steps', '1', '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.stringify(JSON.parse(dry.stdout))).toContain('2026-01-14');
    // --database-url reaches Season 1 too (test/integration/pg-s1.test.ts runs it): a server that is not there is 11, nothing written.
    const pg = await cliIn(['pipeline', 'run', 's1', '--workspace', a, '--date', '2026-01-12', '--database-url', 'postgres://127.0.0.1:1/none']);
    expect([pg.code, pg.stdout, pg.stderr.split('\n')[0]]).toEqual([11, '', 'error: PostgreSQL at 127.0.0.1:1/none is unavailable while migrating schema metaspn (ECONNREFUSED)']);
    expect(existsSync(join(a, 'manifests', 'update_attention_scores', 'date=2026-01-12'))).toBe(false);
  }, 120_000);
});
