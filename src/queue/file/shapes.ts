import { LineBuffer } from './codec.js';
import { LoadedLog } from './loader.js';
import { RoundWriter } from './round.js';
import { FreshBatch } from './slots.js';

/** The objects that keep the shapes, made once a process; see keepShapes. */
let kept: readonly object[] | null = null;

/**
 * Keeps, for the life of the process, one small instance of each class on a queue's hot paths: a
 * loaded log (its index, slot table, id index, ready queue), a round on it, a line buffer, a fresh
 * batch, and the queue `makeQueue` makes (never used: its constructor does no I/O; it holds a
 * lock, a log file, a round engine, a stats writer and start marks, none opened). ~100 KB.
 *
 * Why: V8 finds the hidden class of a class's instances through transitions it holds weakly, so
 * once every instance is collected the class is dropped, and with it the optimized code that
 * checks for it. A process that closes a queue and opens another (the bench's runs, a test file, a
 * command doing several passes) then ran the next one on unoptimized code and compiled the hot
 * paths again: for a 20k bulk enqueue after a drain, ~45 ms of compiler CPU on V8's threads, twice
 * the enqueue's own work. Instances kept here hold the classes, so the code stays.
 */
export function keepShapes(makeQueue: () => object): void {
  if (kept !== null) return;
  // Set first: the queue made below calls this again from its constructor.
  kept = [];
  const log = new LoadedLog(() => -1);
  const round = new RoundWriter(log, { mono: 0, wall: 0, boot: null }, 'shapes', new LineBuffer());
  round.finish();
  kept = [log, round, new FreshBatch(1), makeQueue()];
}
