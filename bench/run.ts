/**
 * `npm run bench`: runs the benchmarks, prints their tables and writes the raw results as JSON
 * to bench-results/<name>-<timestamp>.json.
 *
 *   npm run bench                      queue at 20k and 100k with its peers, Season 1 at 100k and 1M signals, isolation
 *   npm run bench -- --quick           one run, small sizes
 *   npm run bench -- --full            queue at 20k, 100k and 1M, peers at every size (about an hour)
 *   npm run bench -- --only queue --sizes 20k,100k,1M --peer-max 100k
 *   npm run bench -- --only s1 --s1-sizes 100k,1M
 *   npm run bench -- --only pipeline         the example pipeline at 150 and 1,500 players (--full: and 100,000)
 *   npm run bench -- --only isolation
 *   npm run bench -- --only pg               the PostgreSQL backend at 10k and 100k beside graphile-worker (--full: 1M too),
 *                                            when 127.0.0.1:5432 or METASPN_BENCH_DATABASE_URL answers
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fmtSize, gitState, parseArgs, progress, timestamp, type BenchArgs } from './lib.js';
import { formatIsolationReport, runIsolationBench } from './isolation.js';
import { formatQueueReport, runQueueBench } from './queue.js';
import { formatS1Report, runS1Bench } from './s1.js';
import { DEFAULT_PLAYERS, formatPipelineReport, FULL_PLAYERS, runPipelineBench } from './pipeline.js';
import { benchAdminUrl, formatPgReport, pgReachable, runPgBench } from './pg.js';

interface Bench {
  name: string;
  run(args: BenchArgs): Promise<{ result: unknown; report: string }>;
}

const BENCHES: Bench[] = [
  {
    name: 'queue',
    async run(args) {
      const result = await runQueueBench({ sizes: args.sizes, runs: args.runs, warmup: args.warmup, peers: args.peers, peerMax: args.peerMax, bullAlwaysMax: args.bullAlwaysMax });
      return { result, report: formatQueueReport(result) };
    },
  },
  {
    name: 's1',
    async run(args) {
      // Sizes are signals here: 10 per subject, so 1M signals is 100k subjects (scoring tasks).
      const result = await runS1Bench({ sizes: args.s1Sizes, runs: args.runs });
      return { result, report: formatS1Report(result) };
    },
  },
  {
    name: 'pipeline',
    async run(args) {
      // The example pipeline's sizes are players (entities, one sim task each).
      const result = await runPipelineBench({ players: args.quick ? [DEFAULT_PLAYERS[0]!] : args.full ? FULL_PLAYERS : DEFAULT_PLAYERS, runs: args.runs });
      return { result, report: formatPipelineReport(result) };
    },
  },
  {
    name: 'isolation',
    async run(args) {
      // Per-task cost of each handler isolation; task counts of its own (a process per slot is slow to start).
      const result = await runIsolationBench({ runs: args.runs, tasks: args.quick ? 2000 : 10_000, storeTasks: args.quick ? 300 : 1000 });
      return { result, report: formatIsolationReport(result) };
    },
  },
  {
    name: 'pg',
    async run(args) {
      // Only when a server answers: the bench needs one, and says so when it has none.
      if (!(await pgReachable())) {
        const where = new URL(benchAdminUrl()).host;
        return { result: { skipped: `no PostgreSQL server answers at ${where}` }, report: `PostgreSQL bench skipped: no server answers at ${where} (set METASPN_BENCH_DATABASE_URL)` };
      }
      const result = await runPgBench({ sizes: args.pgSizes, runs: args.runs, statsSize: args.pgStatsSize, peers: args.peers });
      return { result, report: formatPgReport(result) };
    },
  },
];

function environment(): Record<string, unknown> {
  const cpu = cpus();
  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpus: cpu.length,
    cpu_model: cpu[0]?.model ?? 'unknown',
    total_mem_mb: Math.round(totalmem() / 2 ** 20),
    tmpdir: tmpdir(),
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const unknown = args.only.filter((n) => !BENCHES.some((b) => b.name === n));
  if (unknown.length) throw new Error(`unknown benchmark(s): ${unknown.join(', ')} (have: ${BENCHES.map((b) => b.name).join(', ')})`);
  const selected = BENCHES.filter((b) => args.only.length === 0 || args.only.includes(b.name));
  const env = environment();
  progress(
    `queue sizes ${args.sizes.join(',')} (peers up to ${args.peers ? fmtSize(args.peerMax) : 'none'}), s1 sizes ${args.s1Sizes.join(',')}, ${args.runs} run(s); node ${process.version}, ${String(env.cpus)} cpus, tmp ${tmpdir()}`,
  );

  const outDir = resolve(args.outDir);
  for (const b of selected) {
    const started = new Date();
    const git = gitState();
    const { result, report } = await b.run(args);
    const finished = new Date();
    const code = `code: HEAD ${git.head?.slice(0, 12) ?? 'unknown'}${git.dirty_files.length ? `, ${git.dirty_files.length} uncommitted file(s) in src/workers/bench, src diff sha1 ${git.diff_sha1?.slice(0, 12) ?? '?'}` : ', clean'}`;
    console.log(`${report}\n\n${code}; node ${process.version}, ${String(env.cpus)} cpus (${String(env.cpu_model)}), tmp ${tmpdir()}`);
    mkdirSync(outDir, { recursive: true });
    const file = join(outDir, `${b.name}-${timestamp(started)}.json`);
    const doc = {
      bench: b.name,
      started_at: started.toISOString(),
      finished_at: finished.toISOString(),
      duration_s: (finished.getTime() - started.getTime()) / 1000,
      args: { runs: args.runs, sizes: args.sizes, s1_sizes: args.s1Sizes, peers: args.peers, peer_max: args.peerMax, quick: args.quick, warmup: args.warmup },
      environment: env,
      git,
      result,
    };
    writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
    console.log(`\nraw results: ${file}`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
