import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import type { StaleReason } from '../../storage/run-lock.js';
import { backendFor, databaseUrlOption, runLocksFor } from '../backend.js';
import { printJson, printOut, visible } from '../format.js';
import { openWorkspace } from '../options.js';

const STALE_TEXT: Record<StaleReason, string> = {
  pid_dead: 'its process is gone',
  holder_gone: 'its holder no longer holds its liveness file',
  ttl_expired: 'its TTL has passed',
};

export function registerLock(program: Command): void {
  program
    .command('lock')
    .description('run locks')
    .command('status')
    .description('who holds the run lock, since when, and whether it is stale')
    .option('--workspace <dir>', 'workspace folder', '.')
    .option('--name <name>', 'lock name', 's1')
    .option('--json', 'print JSON')
    .addOption(databaseUrlOption())
    .action(async (o: { workspace: string; name: string; json?: boolean; databaseUrl?: string }) => {
      const ws = openWorkspace(o.workspace);
      const cfg = loadConfig(ws);
      // The backend's locks: the database's run_lock table on PostgreSQL, locks/ on files.
      const st = await runLocksFor(ws, cfg, o.databaseUrl).status(o.name);
      const onPg = backendFor(cfg, o.databaseUrl) !== null;
      if (o.json) return printJson(st);
      const p = st.payload;
      const lines = [`lock ${o.name}: ${st.held ? 'HELD' : 'free'}  (${st.path})`];
      if (p) {
        lines.push(
          `  active        ${p.active}`,
          `  pid           ${p.pid}${st.holder_alive ? ' (running)' : st.holder_alive === false ? (st.stale_reason === 'pid_dead' ? ' (not running)' : ' (no longer holding the lock)') : ''}`,
          `  host          ${p.host}`,
          `  start_ts_utc  ${p.start_ts_utc}`,
          `  ttl_sec       ${p.ttl_sec}`,
          `  reason        ${visible(p.reason)}`,
          `  cmd           ${p.cmd}`,
        );
      } else if (!st.exists) lines.push('  no run has taken it yet');
      if (st.stale_reason) lines.push(`  stale: ${st.stale_reason === 'holder_gone' && onPg ? 'its lock session ended' : STALE_TEXT[st.stale_reason]}; the next run takes it over`);
      printOut(`${lines.join('\n')}\n`);
    });
}
