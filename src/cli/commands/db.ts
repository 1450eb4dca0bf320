import type { Command } from 'commander';
import { sharedPool } from '../../backend/pg/connection.js';
import { migrate } from '../../backend/pg/migrations.js';
import { targetOf } from '../../backend/pg/setting.js';
import { loadConfig } from '../../config/load.js';
import { UsageError } from '../../guard/errors.js';
import { backendFor, databaseUrlOption } from '../backend.js';
import { printJson, printOut } from '../format.js';
import { openWorkspace } from '../options.js';

/**
 * `metaspn db migrate`: brings the PostgreSQL schema up to this version of metaspn (every command
 * does it by itself on first use; this one does it on purpose, e.g. before a deploy, and says what
 * it did). Exit 0 done or already up to date; 11 the database is unreachable; 20 the login was
 * refused; 30 the schema is newer than this metaspn; 64 no database was named.
 */
export function registerDb(program: Command): void {
  const db = program.command('db').description('the PostgreSQL backend: schema migrations');
  db.command('migrate')
    .description('create or upgrade the schema (versioned, idempotent, safe to run from several hosts at once)')
    .option('--workspace <dir>', 'workspace folder (for backend settings in metaspn.config.json)', '.')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON')
    .action(async (o: { workspace: string; databaseUrl?: string; json?: boolean }) => {
      const ws = openWorkspace(o.workspace);
      const cfg = loadConfig(ws);
      const setting = backendFor(cfg, o.databaseUrl);
      if (!setting) {
        throw new UsageError('no database to migrate: the workspace uses the file backend', {
          hint: 'give --database-url postgres://USER@HOST:5432/DB, or set METASPN_DATABASE_URL, or backend.url in metaspn.config.json',
        });
      }
      const lease = sharedPool(setting);
      try {
        const r = await migrate(lease.pool, setting);
        const target = targetOf(setting.url);
        if (o.json) return printJson({ target, ...r });
        printOut(
          r.applied.length === 0
            ? `schema ${r.schema} at ${target}: up to date (version ${r.to})\n`
            : `schema ${r.schema} at ${target}: migrated from version ${r.from} to ${r.to} (applied ${r.applied.join(', ')})\n`,
        );
      } finally {
        await lease.release();
      }
    });
}
