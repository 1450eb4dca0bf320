import type { Command } from 'commander';

/**
 * An example for every command's help (`metaspn <command> --help` ends with them), by command path.
 * Run from a workspace root, as the runbooks do. A test checks that every command has one.
 */
export const EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  '': ['metaspn s1 run-local --workspace . --date 2026-01-15', 'metaspn queue list --workspace .', 'metaspn <command> --help'],
  s1: ['metaspn s1 run-local --workspace . --date 2026-01-15'],
  's1 run-local': ['metaspn s1 run-local --workspace . --date 2026-01-15', 'metaspn s1 run-local --workspace . --date 2026-01-15 --on-lock-held wait --lock-wait-sec 600'],
  's1 rollback': ['metaspn s1 rollback --workspace . --steps 1 --reason "bad inputs on 2026-01-15" --dry-run'],
  's1 backfill': ['metaspn s1 backfill --workspace . --start 2026-01-01 --end 2026-01-31 --max-parallel 4 --resume'],
  smoke: ['metaspn smoke --workspace .'],
  pipeline: ['metaspn pipeline list --workspace .'],
  'pipeline list': ['metaspn pipeline list --workspace . --json'],
  'pipeline show': ['metaspn pipeline show daily-projections --workspace .'],
  'pipeline run': ['metaspn pipeline run daily-projections --workspace . --date 2026-01-15'],
  'pipeline backfill': ['metaspn pipeline backfill daily-projections --workspace . --start 2026-01-01 --end 2026-01-07 --resume'],
  'pipeline rollback': ['metaspn pipeline rollback daily-projections --workspace . --steps 1 --reason "restated upstream" --dry-run'],
  queue: ['metaspn queue list --workspace .'],
  'queue list': ['metaspn queue list --workspace .', "metaspn queue list --workspace . --json | jq '.queues[] | select(.dead > 0)'"],
  'queue stats': ['metaspn queue stats project_rewards --workspace .'],
  'queue deadletter': ['metaspn queue deadletter list project_rewards --workspace .'],
  'queue deadletter list': ['metaspn queue deadletter list project_rewards --workspace .'],
  'queue deadletter show': ['metaspn queue deadletter show project_rewards <task_id> --workspace .'],
  'queue deadletter discard': [
    'metaspn queue deadletter discard project_rewards --workspace . --all --dry-run',
    'metaspn queue deadletter discard project_rewards --workspace . --task-id <task_id> --reason "obsolete: replaced by a new run"',
  ],
  'queue retry': ['metaspn queue retry project_rewards --workspace . --dry-run', 'metaspn queue retry project_rewards --workspace . --task-id <task_id>'],
  'queue enqueue': ['metaspn queue enqueue emails --workspace . --payload \'{"to":"ada@example.com"}\'', 'metaspn queue enqueue emails --workspace . --file tasks.jsonl'],
  'queue pause': ['metaspn queue pause project_rewards --workspace .'],
  'queue resume': ['metaspn queue resume project_rewards --workspace .'],
  worker: ['metaspn worker run ./worker.mjs:SendReceipt --workspace . --once'],
  'worker run': ['metaspn worker run metaspn_ops.workers.s1:ProjectRewardsWorker --workspace . --once --max-tasks 1', 'metaspn worker run ./worker.mjs:SendReceipt --workspace . --concurrency 4'],
  lock: ['metaspn lock status --workspace .'],
  'lock status': ['metaspn lock status --workspace .'],
  runs: ['metaspn runs list --workspace .'],
  'runs list': ['metaspn runs list --workspace . --json'],
  'runs show': ['metaspn runs show <run_id> --workspace .'],
  'runs retry': ['metaspn runs retry <run_id> --workspace .'],
  doctor: ['metaspn doctor --workspace .', 'metaspn doctor --workspace . --repair'],
  serve: ['METASPN_ADMIN_TOKEN=$(openssl rand -hex 24) metaspn serve --workspace . --port 4001'],
  alerts: ['metaspn alerts check --workspace .'],
  'alerts check': ['*/5 * * * * METASPN_ALERT_WEBHOOK_URL=https://hooks.example/x metaspn alerts check --workspace /srv/metaspn   # crontab'],
  'alerts list': ['metaspn alerts list --workspace .'],
  report: ['metaspn report weekly --workspace .'],
  'report weekly': ['metaspn report weekly --workspace . --anchor-date 2026-01-31'],
  baseline: ['metaspn baseline capture --workspace .'],
  'baseline capture': ['metaspn baseline capture --workspace .'],
  verify: ['metaspn verify --url http://127.0.0.1:4001'],
  db: ['metaspn db migrate --workspace . --database-url postgres://metaspn@db:5432/metaspn'],
  'db migrate': ['metaspn db migrate --workspace . --database-url postgres://metaspn@db:5432/metaspn'],
  completion: ['eval "$(metaspn completion bash)"'],
  store: ['metaspn store export --workspace . --out /tmp/export --pipeline daily-projections'],
  'store export': ['metaspn store export --workspace . --out /tmp/export --pipeline daily-projections --date 2026-03-04'],
};

/** Descriptions for commands registered without one. */
const DESCRIPTIONS: Readonly<Record<string, string>> = {
  'queue deadletter list': 'the dead letters of a worker, oldest first, with their last error',
  'queue deadletter show': 'one dead letter: payload, every attempt with its error, and its history',
  'runs show': 'one run: its steps, their status, duration, exit code and manifest',
};

/**
 * Gives every command of the program a description (when it has none) and its examples at the
 * end of its help. Commands that add their own examples (`addHelpText`) keep theirs.
 */
export function addExamples(program: Command): void {
  const walk = (c: Command, path: string[]): void => {
    const key = path.join(' ');
    if (key !== '' && !c.description() && DESCRIPTIONS[key]) c.description(DESCRIPTIONS[key]);
    const ex = EXAMPLES[key];
    const own = (c as unknown as { listenerCount(event: string): number }).listenerCount('afterHelp') > 0;
    if (ex && !own) c.addHelpText('after', `\nExample${ex.length > 1 ? 's' : ''}:\n${ex.map((e) => `  $ ${e}`).join('\n')}`);
    for (const s of c.commands) walk(s, [...path, s.name()]);
  };
  walk(program, []);
}
