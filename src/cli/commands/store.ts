import { realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { PgStores } from '../../backend/pg/stores.js';
import { loadConfig } from '../../config/load.js';
import { UsageError } from '../../guard/errors.js';
import { namedStoreFiles, storeFileOf } from '../../pipeline/bundled.js';
import { parseDate } from '../../pipeline/dates.js';
import { writeAtomicSync } from '../../storage/atomic.js';
import { safeReadFile, safeReaddir } from '../../storage/safe-path.js';
import { backendFor, databaseUrlOption } from '../backend.js';
import { printJson, printOut } from '../format.js';
import { openWorkspace } from '../options.js';

/** What `store export` wrote for one store. */
export interface ExportedStore {
  /** `<pipeline>.<step>` (Season 1: `s1_<name>`). */
  store: string;
  /** The file written, under `--out`. */
  path: string;
  rows: number;
}

/**
 * A store name a pipeline owns: `<pipeline>.<step>`, or a file a bundled pipeline names for its
 * steps (Season 1's `s1_<name>`). Not any `<pipeline>_…`: pipeline `a` does not own `a_b.step`.
 */
function ownedBy(store: string, pipeline: string | undefined): boolean {
  return pipeline === undefined || store.startsWith(`${pipeline}.`) || namedStoreFiles(pipeline).includes(store);
}

/**
 * `metaspn store export`: the rows of a workspace's steps as the JSONL files the file backend
 * keeps (`store/<pipeline>.<step>.jsonl`: each row's exact text and a newline, in the order they
 * were written), under `--out`, from either backend: the view downstream tools and tests compare.
 * Each file is replaced atomically. Exit 0 done (also when there is nothing to export); 64 bad
 * flags, or `--out` naming the workspace itself; 11/20/30/50 from the database (docs/POSTGRES.md).
 */
export function registerStore(program: Command): void {
  const store = program.command('store').description("the rows the workspace's pipelines wrote");
  store
    .command('export')
    .description('write the rows as the JSONL files the file backend keeps (store/<pipeline>.<step>.jsonl), in write order, from either backend')
    .option('--workspace <dir>', 'workspace folder', '.')
    .requiredOption('--out <dir>', 'folder to write store/<pipeline>.<step>.jsonl into (created when missing; files there are replaced)')
    .option('--pipeline <name>', 'only the stores of this pipeline (default: every store)')
    .option('--date <YYYY-MM-DD>', 'only the rows of this partition')
    .addOption(databaseUrlOption())
    .option('--json', 'print JSON')
    .action(async (o: { workspace: string; out: string; pipeline?: string; date?: string; databaseUrl?: string; json?: boolean }) => {
      const date = o.date === undefined ? undefined : parseDate(o.date);
      if (o.pipeline !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(o.pipeline))
        throw new UsageError(`--pipeline must be a pipeline name (letters, digits, ., _ and -), got ${JSON.stringify(o.pipeline.slice(0, 80))}`);
      const ws = openWorkspace(o.workspace);
      const out = resolve(o.out);
      // Links resolved: an --out that is a link to the workspace (or whose store/ is a link to the
      // workspace's store/) would replace the workspace's own store files with the export.
      if (out === resolve(ws.root) || realAsFarAsExists(join(out, 'store')) === realAsFarAsExists(ws.store))
        throw new UsageError(`--out ${o.out} is the workspace itself: exporting there would replace its store`, { hint: 'give another folder' });
      const cfg = loadConfig(ws);
      const pg = backendFor(cfg, o.databaseUrl);
      const written: ExportedStore[] = [];
      const write = (name: string, text: string, rows: number): void => {
        const path = join(out, 'store', `${name}.jsonl`);
        writeAtomicSync(path, text);
        written.push({ store: name, path, rows });
      };
      if (pg) {
        const stores = new PgStores({ setting: pg });
        try {
          // Named and listed as the file backend names its files (Season 1: s1_attention_scores, …).
          const named = (await stores.storeNames())
            .filter((n) => ownedBy(n, o.pipeline))
            .map((n) => {
              const [pipeline, step] = [n.slice(0, n.indexOf('.')), n.slice(n.indexOf('.') + 1)];
              return { pipeline, step, file: storeFileOf(pipeline, step).replace(/\.jsonl$/, '') };
            })
            .sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
          for (const { pipeline, step, file } of named) {
            const chunks: string[] = [];
            const rows = await stores.exportRows(pipeline, step, (l) => void chunks.push(l), date);
            if (rows > 0 || date === undefined) write(file, chunks.join(''), rows);
          }
        } finally {
          await stores.close();
        }
      } else {
        for (const f of safeReaddir(ws.store)
          .filter((n) => n.endsWith('.jsonl'))
          .sort()) {
          const name = f.slice(0, -'.jsonl'.length);
          if (!ownedBy(name, o.pipeline)) continue;
          const text = safeReadFile(join(ws.store, f));
          // Whole lines only: a torn last line (a crash mid-append) is not a row.
          const lines = text
            .slice(0, text.lastIndexOf('\n') + 1)
            .split('\n')
            .slice(0, -1);
          const kept = date === undefined ? lines : lines.filter((l) => dateOf(l) === date);
          if (kept.length > 0 || date === undefined) write(name, kept.map((l) => `${l}\n`).join(''), kept.length);
        }
      }
      if (o.json) return printJson({ backend: pg ? 'postgres' : 'files', out, stores: written });
      const rows = written.reduce((n, s) => n + s.rows, 0);
      printOut(`${written.map((s) => `${s.path}  ${s.rows} rows\n`).join('')}exported ${rows} rows of ${written.length} store(s) to ${join(out, 'store')}\n`);
    });
}

/** `path` with its links resolved: the real path of its deepest existing folder, and the rest as written. */
function realAsFarAsExists(path: string): string {
  let dir = resolve(path);
  const rest: string[] = [];
  for (;;) {
    try {
      return join(realpathSync(dir), ...rest);
    } catch {
      const up = dirname(dir);
      if (up === dir) return join(dir, ...rest);
      rest.unshift(basename(dir));
      dir = up;
    }
  }
}

/** The `date` of a stored row's line, or null. */
function dateOf(line: string): string | null {
  try {
    const v = JSON.parse(line) as { date?: unknown };
    return typeof v.date === 'string' ? v.date : null;
  } catch {
    return null;
  }
}
