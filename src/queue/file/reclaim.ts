import { bootAlive } from '../clock.js';
import { reclaimError } from '../lease.js';
import { HOST } from '../owner.js';
import { recordAfterFailure } from '../record.js';
import type { Owner } from '../types.js';
import type { MarkReader } from './local-starts.js';
import type { Pair } from './records.js';
import type { Round } from './round.js';
import { S_READY } from './slots.js';

/**
 * Reclaims leases that expired or whose owner process is gone; returns the ids given back. Costs
 * nothing per task while no lease has expired and every owner holding one is alive (`alive`: an
 * owner on this host whose pid is gone is not). A lease began when the log says so (a `start`
 * record, a claim that started it) or its owner's start marks do (`marks`, read only for owners
 * with a lease to reclaim that the log does not say began); a gone owner left holding nothing has
 * its start-mark file dropped.
 */
export function reclaimIn(r: Round, alive: (o: Owner) => boolean, marks: MarkReader): string[] {
  const idx = r.idx;
  const slots = new Set(idx.expiredLeases(r.now));
  const gone = new Set<number>();
  idx.leasesOf.forEach((count, o) => {
    const owner = idx.owners[o]!;
    // A holder that claimed on an earlier boot of this host is gone, whatever its pid is now.
    if (count > 0 && (!alive(owner) || (owner.host === HOST && !bootAlive(idx.ownerBoots[o] ?? null, r.reading)))) gone.add(o);
  });
  if (gone.size) for (const n of idx.leased) if (gone.has(idx.slots.owner[n]!)) slots.add(n);
  const out: string[] = [];
  // Leases whose handler never started (prefetched tasks) go back to ready on their owner's
  // behalf with no attempt charged: one `rel` per run of one owner's slots, written now so this
  // round can claim them.
  let runOwner = '';
  let run: Pair[] = [];
  const giveBack = (): void => {
    if (run.length === 0) return;
    r.emit({ t: 'rel', at: r.at, o: runOwner, l: run });
    for (const [n] of run) if (idx.slots.state[n] === S_READY) out.push(r.taskAt(n).id);
    run = [];
  };
  const marked = new Map<number, Set<number>>();
  const began = (n: number, owner: Owner): boolean => {
    if (idx.slots.started[n] === 1) return true;
    const o = idx.slots.owner[n]!;
    let set = marked.get(o);
    if (!set) marked.set(o, (set = marks.startedSlots(idx, owner)));
    return set.has(n);
  };
  // In slot order (the order the tasks were first enqueued): the tasks become ready in that order,
  // whether they were charged an attempt or not, as every backend orders them (the model test).
  for (const n of [...slots].sort((a, b) => a - b)) {
    const owner = idx.ownerOf(n);
    if (owner && !began(n, owner)) {
      if (runOwner !== owner.id) giveBack();
      runOwner = owner.id;
      run.push([n, idx.slots.fence[n]!]);
      continue;
    }
    giveBack();
    const dead = owner !== null && gone.has(idx.slots.owner[n]!);
    const task = recordAfterFailure(r.taskAt(n), reclaimError(dead, owner ?? undefined, r.at), r.at);
    if (r.emit({ t: 'reclaim', at: r.at, n, f: idx.slots.fence[n]!, task })) out.push(task.id);
  }
  giveBack();
  for (const o of gone) if ((idx.leasesOf[o] ?? 0) === 0) marks.drop(idx.owners[o]!);
  return out;
}
