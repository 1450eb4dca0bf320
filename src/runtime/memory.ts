import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * A full garbage collection at a safe point, when the heap has grown by 192 MiB since the last
 * one. A long stage keeps every task in flight for a while (prefetched, running, acknowledging),
 * so its garbage is promoted to the old generation, which V8 collects only lazily while memory
 * is plentiful: a million-signal run reached 1.2 GB of RSS over 300 MB of live data. Collecting
 * at safe points keeps it near what is live. When the runtime cannot expose `gc`, it does nothing.
 */
let gc: (() => void) | null | undefined;
let baseline = 0;
/** Garbage allowed to pile up between two collections. */
const GROWTH = 192 * 2 ** 20;

function gcFunction(): (() => void) | null {
  if (gc !== undefined) return gc;
  try {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as () => void;
  } catch {
    gc = null;
  }
  return gc;
}

export function collectIfGrown(): void {
  const used = process.memoryUsage().heapUsed;
  if (used < 256 * 2 ** 20 || used < baseline + GROWTH) return;
  const f = gcFunction();
  if (!f) return;
  f();
  baseline = process.memoryUsage().heapUsed;
}
