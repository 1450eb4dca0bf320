import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * A full garbage collection at a safe point, when the heap has grown by 192 MiB since the last
 * one. A long stage keeps every task in flight for a while (prefetched, running, acknowledging),
 * so its garbage is promoted to the old generation, which V8 collects only lazily while memory
 * is plentiful: a million-signal run reached 1.2 GB of RSS over 300 MB of live data. Collecting
 * at safe points keeps it near what is live. Only once the process chose it
 * ({@link enableSafePointCollections}, the CLI does); otherwise, and when the runtime cannot expose
 * `gc`, it does nothing.
 */
let gc: (() => void) | null = null;
let baseline = 0;
/** Garbage allowed to pile up between two collections. */
const GROWTH = 192 * 2 ** 20;

/**
 * Lets `collectIfGrown` collect: exposes V8's `gc` (a V8 flag set for the whole process). Library
 * code never calls this: it changes the process for its embedder. The CLI does, once, at start
 * (src/cli/main.ts), since a metaspn process is its own. Returns whether `gc` is available.
 */
export function enableSafePointCollections(): boolean {
  if (gc) return true;
  try {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as () => void;
  } catch {
    gc = null;
  }
  return gc !== null;
}

/** Heap in use below which no safe point collects, unless its caller says otherwise. */
const FLOOR = 256 * 2 ** 20;

/**
 * Collects when the heap grew by `growth` bytes (default 192 MiB) since the last time and is past
 * `floor` (default 256 MiB), if the process enabled it; else nothing. A caller that knows its
 * garbage is many small short-lived objects kept in flight (Season 1's scoring) may ask for a
 * smaller growth and floor; one that just dropped what it held (Season 1's signals, once scored)
 * may ask for 0 and 0: a collection now.
 */
export function collectIfGrown(growth: number = GROWTH, floor: number = FLOOR): void {
  if (!gc) return;
  const used = process.memoryUsage().heapUsed;
  if (used < floor || used < baseline + growth) return;
  gc();
  baseline = process.memoryUsage().heapUsed;
}

/** Memory now, for the log lines of a step, a run or a backfill: operators see what a run of their size costs. */
export function memory(): { rss_mb: number; heap_mb: number } {
  const m = process.memoryUsage();
  return { rss_mb: Math.round(m.rss / 2 ** 20), heap_mb: Math.round(m.heapUsed / 2 ** 20) };
}
