import { bootAlive } from '../clock.js';
import { reclaimError } from '../lease.js';
import { HOST } from '../owner.js';
import { recordAfterFailure } from '../record.js';
import type { Owner } from '../types.js';
import type { Pair } from './records.js';
import type { Round } from './round.js';
import { S_READY } from './slots.js';

/**
 * Reclaims leases that expired or whose owner process is gone; returns the ids given back. Costs
 * nothing per task while no lease has expired and every owner holding one is alive (`alive`: an
 * owner on this host whose pid is gone is not).
 */
export function reclaimIn(r: Round, alive: (o: Owner) => boolean): string[] {
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
  // behalf with no attempt charged: one `rel` per owner, written now so this round can claim them.
  const unstarted = new Map<string, Pair[]>();
  for (const n of slots) {
    const owner = idx.ownerOf(n);
    if (owner && idx.slots.started[n] !== 1) {
      const l = unstarted.get(owner.id) ?? unstarted.set(owner.id, []).get(owner.id)!;
      l.push([n, idx.slots.fence[n]!]);
      continue;
    }
    const dead = owner !== null && gone.has(idx.slots.owner[n]!);
    const task = recordAfterFailure(r.taskAt(n), reclaimError(dead, owner ?? undefined, r.at), r.at);
    if (r.emit({ t: 'reclaim', at: r.at, n, f: idx.slots.fence[n]!, task })) out.push(task.id);
  }
  for (const [o, l] of unstarted) {
    r.emit({ t: 'rel', at: r.at, o, l });
    for (const [n] of l) if (idx.slots.state[n] === S_READY) out.push(r.taskAt(n).id);
  }
  return out;
}
