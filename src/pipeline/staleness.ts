/**
 * Whether a partition's published run is still what a run would produce now: the identities its
 * steps would have (from the inputs, params, upstream identities and the previous partition's
 * published run, as they are now) against the ones its current pointer records. Computed
 * without running anything: an identity depends on what a step reads, not on what it writes.
 */
import { validatePipeline, type PartitionPlan } from './plan.js';
import type { RunnerDeps } from './runner.js';
import { contextFor, identityOf, newUserRunState } from './user-steps.js';
import type { PipelineDefinition } from './types.js';

export interface Staleness {
  /** unpublished: no pointer; current: the pointer's identities are today's; stale: an input or upstream changed since. */
  state: 'unpublished' | 'current' | 'stale';
  run_id: string | null;
  /** Steps whose identity would differ now (stale only). */
  changed: string[];
}

/**
 * @throws what reading the pointer or the inputs throws (a damaged pointer: 30).
 */
export async function staleness(def: PipelineDefinition, plan: PartitionPlan, d: Pick<RunnerDeps, 'stores' | 'readInput'> & Partial<RunnerDeps>): Promise<Staleness> {
  const ptr = (await d.stores.pointers.read(def.name, plan.partition)) as ({ steps?: Record<string, string>; params: { as_of: string } } & { run_id: string }) | null;
  if (!ptr) return { state: 'unpublished', run_id: null, changed: [] };
  // A published run is compared at its own as-of: a provisional run is stale once the day is over
  // only if what it read changed, which its identities tell.
  const o = { def, plan: { ...plan, as_of: ptr.params.as_of } };
  const st = newUserRunState();
  const changed: string[] = [];
  for (const s of validatePipeline(def)) {
    const { identity } = await identityOf(o, d, st, s, contextFor(o, d, st, s));
    st.identities.set(s.name, identity);
    if (ptr.steps?.[s.name] !== identity) changed.push(s.name);
  }
  return { state: changed.length ? 'stale' : 'current', run_id: ptr.run_id, changed };
}
