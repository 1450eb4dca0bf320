import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { toMetaspnError } from '../guard/errors.js';
import { bundledPipelines } from '../pipeline/bundled.js';
import { jsonDoc, jsonPrinted, printErr } from './format.js';
import { closeLogs, commandLog, newInvocation, withInvocation } from './invocation.js';
import { enableSafePointCollections } from '../runtime/memory.js';
import { EXIT } from '../guard/exit-codes.js';
import { takeExitCode } from './exit.js';
import { addExamples } from './help.js';
import { clipWords, jsonText, visible } from '../strings.js';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return '0.0.0';
  }
}

type Register = (program: Command) => void;

/**
 * The core's top-level commands, each loaded only when asked for: a command's module pulls in what
 * it needs (the HTTP server, the metrics registry, the database driver), and loading everything
 * made every invocation, `--version` included, cost most of a second.
 */
const COMMANDS: Readonly<Record<string, () => Promise<Register>>> = {
  pipeline: async () => (await import('./commands/pipeline.js')).registerPipeline,
  queue: async () => (await import('./commands/queue.js')).registerQueue,
  worker: async () => (await import('./commands/worker.js')).registerWorker,
  lock: async () => (await import('./commands/lock.js')).registerLock,
  runs: async () => (await import('./commands/runs.js')).registerRuns,
  doctor: async () => (await import('./commands/doctor.js')).registerDoctor,
  serve: async () => (await import('./commands/serve.js')).registerServe,
  alerts: async () => (await import('./commands/alerts.js')).registerAlerts,
  report: async () => (await import('./commands/report.js')).registerReport,
  // registerReport adds `baseline` too.
  baseline: async () => (await import('./commands/report.js')).registerReport,
  verify: async () => (await import('./commands/verify.js')).registerVerify,
  db: async () => (await import('./commands/db.js')).registerDb,
  store: async () => (await import('./commands/store.js')).registerStore,
  completion: async () => (await import('./commands/completion.js')).registerCompletion,
};

/** The command a command line names: its first argument that is not an option (`metaspn --json queue …` has none before it). */
function commandOf(argv: readonly string[]): string | undefined {
  const first = argv.slice(2)[0];
  return first !== undefined && !first.startsWith('-') ? first : undefined;
}

/**
 * The CLI with the commands `argv` needs: the one it names (a core command or a bundled
 * pipeline's), or every command when it names none or one that does not exist (help, `--version`
 * and commander's "did you mean" list them all). Without `argv`: every command.
 */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const program = new Command('metaspn')
    .description('CLI-first job orchestrator with durable file-backed queues (Season 1 pipeline bundled)')
    .version(version())
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({ outputError: (str, write) => write(visible(clipWords(str.trimEnd()), true) + '\n') });
  const name = argv ? commandOf(argv) : undefined;
  // `metaspn --version` needs no command at all.
  const args = argv?.slice(2) ?? [];
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) return program;
  const bundled = bundledPipelines();
  const owner = name === undefined ? undefined : bundled.find((p) => p.commandNames?.includes(name));
  const core = name !== undefined && Object.hasOwn(COMMANDS, name) ? name : undefined;
  const all = owner === undefined && core === undefined;
  // Bundled pipelines' own commands (Season 1: `s1 …`, `smoke`), registered by the entry point.
  for (const p of bundled) if (all || p === owner) await p.commands?.(program);
  const registers = new Set<Register>();
  for (const [n, load] of Object.entries(COMMANDS)) if (all || n === core) registers.add(await load());
  for (const register of registers) register(program);
  // A description and examples in every command's help.
  addExamples(program);
  // Every subcommand reports usage errors through the same exit code (64).
  const walk = (c: Command): void => {
    c.exitOverride();
    c.commands.forEach(walk);
  };
  walk(program);
  return program;
}

/** Runs the CLI; returns the exit code. Only this layer decides process exit codes. */
export function main(argv: string[]): Promise<number> {
  // A metaspn process is its own: it may collect garbage at safe points of long stages (a V8 flag,
  // set here by the CLI, never by library code).
  enableSafePointCollections();
  // Each command line has its own exit code, logs and output state (src/cli/invocation.ts).
  return withInvocation(newInvocation(argv.slice(2)), () => runMain(argv));
}

async function runMain(argv: string[]): Promise<number> {
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
    return takeExitCode();
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.SUCCESS;
      // `metaspn`, `metaspn s1`, `metaspn queue` with no subcommand: commander printed the help to
      // stderr. A broken cron line must not look like success. (`metaspn help` exits 0.)
      if (err.code === 'commander.help') return err.exitCode === 0 ? EXIT.SUCCESS : EXIT.USAGE;
      if (err.code === 'commander.executeSubCommandAsync') return EXIT.SUCCESS;
      // Commander already printed its one-line message.
      process.stderr.write('hint: see `metaspn --help` or `metaspn <command> --help`\n');
      if (wantsJson(argv) && !jsonPrinted()) printJsonError('USAGE', EXIT.USAGE, clipWords(err.message.replace(/^error: /, '')));
      return EXIT.USAGE;
    }
    const e = toMetaspnError(err);
    commandLog()?.logger.error({ event: 'command_failed', rc: e.exitCode, code: e.code, error: e.message, ...(e.code === 'INTERNAL_ERROR' ? { stack: (err as Error)?.stack } : {}) }, e.message);
    // A value echoed from the command line is cut (clipWords) and its control characters shown
    // escaped (visible: the message is one line); the log keeps the message whole.
    printErr(`error: ${clipWords(visible(e.message))}\n`);
    if (e.hint) printErr(`hint: ${clipWords(e.hint)}\n`);
    if (e.code === 'INTERNAL_ERROR' && !e.hint) process.stderr.write('hint: an unexpected failure; set METASPN_DEBUG=1 for the stack, and see logs/metaspn.jsonl\n');
    if (process.env.METASPN_DEBUG) printErr(`${(err as Error)?.stack ?? String(err)}\n`);
    // A command that printed its JSON and then failed (runs list naming a damaged file) printed its document.
    if (wantsJson(argv) && !jsonPrinted()) printJsonError(e.code, e.exitCode, clipWords(e.message), e.hint && clipWords(e.hint));
    return e.exitCode;
  } finally {
    await closeLogs();
  }
}

/** Whether the command line asks for JSON (before any `--`). */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

/**
 * With `--json`, a failure is JSON on stdout too (`{"schema_version": 1, "error": {code, exit_code, message, hint?}}`),
 * so a script parsing stdout never meets an empty string; the one-line error stays on stderr.
 */
function printJsonError(code: string, exitCode: number, message: string, hint?: string): void {
  process.stdout.write(`${jsonText(jsonDoc({ error: { code, exit_code: exitCode, message, ...(hint ? { hint } : {}) } }))}\n`);
}
