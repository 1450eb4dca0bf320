import { createHash } from 'node:crypto';
import pino from 'pino';
import { resolvePolicy } from '../../src/config/policy.js';
import { MemoryQueue } from '../../src/queue/memory.js';
import type { Queue } from '../../src/queue/types.js';
import type { RunnerDeps } from '../../src/pipeline/runner.js';
import { MemoryStores } from '../../src/pipeline/stores.js';
import { workspacePaths } from '../../src/storage/paths.js';

/** A runner's surroundings in memory: stores, queues kept across runs, inputs set by the test. */
export function memoryDeps(
  now = () => Date.UTC(2026, 5, 1),
): RunnerDeps & { stores: MemoryStores; inputs: Map<string, string>; queues: Map<string, Queue>; incidents: { kind: string; subject: string }[] } {
  const queues = new Map<string, Queue>();
  const inputs = new Map<string, string>();
  const incidents: { kind: string; subject: string }[] = [];
  return {
    ws: workspacePaths('/nonexistent-metaspn-workspace'),
    stores: new MemoryStores(),
    inputs,
    queues,
    incidents,
    queue: (name, defaults) => {
      let q = queues.get(name);
      if (!q) {
        q = new MemoryQueue({ name });
        queues.set(name, q);
      }
      const kept = q;
      // The runner closes what it opened; the memory queue must outlive one run.
      return { queue: Object.assign(Object.create(kept) as Queue, { close: () => Promise.resolve() }), policy: resolvePolicy({ poll_ms: 10, backoff_base_ms: 1, backoff_cap_ms: 5, ...defaults }) };
    },
    readInput: (name) => {
      const text = inputs.get(name) ?? '';
      return { name, path: `inputs/${name}`, sha256: createHash('sha256').update(text).digest('hex'), text, exists: inputs.has(name) };
    },
    incident: (kind, subject) => {
      incidents.push({ kind, subject });
      return `reports/incidents/${kind}-${subject}.json`;
    },
    log: pino({ level: 'silent' }),
    owner: { id: 'test-owner', pid: process.pid, host: 'test' },
    now,
  };
}
