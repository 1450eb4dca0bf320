import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { writeAtomicSync } from '../storage/atomic.js';
import { safeMkdir, safeReaddir, safeReaddirEntries, SECRET_FILE_MODE } from '../storage/safe-path.js';
import { Mutex } from '../storage/mutex.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { readStateJson, shape } from '../storage/state-file.js';

/**
 * What a signed task submission signs (docs/OPS.md section 5), version 2: the timestamp, the
 * method, the path and the body, one per line. The path binds a signature to its queue: the same
 * bytes sent to another queue do not verify.
 */
export function signedString(timestamp: string, method: string, path: string, body: string): string {
  return `${timestamp}\n${method.toUpperCase()}\n${path}\n${body}`;
}

/** HMAC-SHA256, hex, over signedString(...): what x-metaspn-signature carries. */
export function signRequest(secret: string, timestamp: string, method: string, path: string, body: string): string {
  return createHmac('sha256', secret).update(signedString(timestamp, method, path, body)).digest('hex');
}

/**
 * HMAC-SHA256 over `<timestamp>.<body>`, hex: how alert deliveries are signed, and how task
 * submissions were signed before version 2 (accepted only with METASPN_SIGNATURE_ACCEPT_LEGACY).
 */
export function sign(secret: string, timestamp: string, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

export interface SignedRequest {
  timestamp: string | undefined;
  signature: string | undefined;
  method: string;
  /** The request path as received, without the query string. */
  path: string;
  body: string;
}

/** Why a signature is refused, or null when it verifies; `legacy` when it verified in the old format. */
export function verifySignature(
  secret: string,
  r: SignedRequest,
  o: { toleranceSec: number; acceptLegacy?: boolean; nowMs?: number },
): { refused: string } | { refused: null; legacy: boolean } {
  if (!r.timestamp || !r.signature) return { refused: 'missing x-metaspn-timestamp or x-metaspn-signature' };
  if (!/^\d{1,12}$/.test(r.timestamp)) return { refused: 'x-metaspn-timestamp must be unix seconds (digits only)' };
  const t = Number(r.timestamp);
  if (Math.abs((o.nowMs ?? Date.now()) / 1000 - t) > o.toleranceSec) return { refused: `timestamp outside the tolerance window of ${o.toleranceSec}s` };
  const m = /^(?:sha256=)?([0-9a-f]{64})$/.exec(r.signature);
  if (!m) return { refused: 'x-metaspn-signature must be 64 lower-case hex digits (optionally after "sha256=")' };
  const got = Buffer.from(m[1]!, 'hex');
  const equal = (hex: string): boolean => timingSafeEqual(got, Buffer.from(hex, 'hex'));
  if (equal(signRequest(secret, r.timestamp, r.method, r.path, r.body))) return { refused: null, legacy: false };
  if (o.acceptLegacy && equal(sign(secret, r.timestamp, r.body))) return { refused: null, legacy: true };
  return { refused: 'signature does not match' };
}

/** A remembered answer to an event. */
export interface EventAnswer {
  status: number;
  body: unknown;
}

interface EventRecord extends EventAnswer {
  event_id: string;
  queue?: string;
  at: string;
}

const EVENT_HINT = 'event records are written atomically, so this one was changed outside metaspn: `metaspn doctor --repair` moves it to quarantine/ (the event can then be submitted again)';
const eventShape = shape({ event_id: 'string', at: 'string', status: 'number', body: 'object' });

export function eventsDir(ws: WorkspacePaths): string {
  return join(ws.root, 'ops', 'events');
}

function eventKey(eventId: string): string {
  return createHash('sha256').update(eventId).digest('hex').slice(0, 32);
}

/**
 * Event ids already answered, per queue: a request with an event id answered before gets the
 * first answer back and enqueues nothing, even when its body differs. One file per event under
 * ops/events/<queue>/, written atomically.
 *
 * One request per queue at a time goes from "answered before?" to "remembered": concurrent
 * deliveries of one event (a sender retrying on a timeout) enqueue once. Inside this process a
 * promise chain orders them; between processes (two servers on one workspace) a kernel lock on
 * ops/events/<queue>/.mutex does, which a process that dies releases at once.
 *
 * Records written before event ids were scoped (ops/events/<hash>.json) still answer for the queue
 * they name.
 */
export class EventMemory {
  private readonly dir: string;
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly mutexes = new Map<string, Mutex>();

  constructor(ws: WorkspacePaths) {
    this.dir = eventsDir(ws);
  }

  private path(queue: string, eventId: string): string {
    return join(this.dir, queue, `${eventKey(eventId)}.json`);
  }

  /** The first answer to this event on this queue, or null. A damaged record throws StateFileError (30). */
  recall(queue: string, eventId: string): EventAnswer | null {
    const rec = readStateJson<EventRecord>(this.path(queue, eventId), eventShape, EVENT_HINT);
    if (rec) return { status: rec.status, body: rec.body };
    const legacy = readStateJson<EventRecord>(join(this.dir, `${eventKey(eventId)}.json`), eventShape, EVENT_HINT);
    if (legacy && (legacy.body as { worker?: unknown }).worker === queue) return { status: legacy.status, body: legacy.body };
    return null;
  }

  private remember(queue: string, eventId: string, answer: EventAnswer): void {
    const rec: EventRecord = { event_id: eventId, queue, at: new Date().toISOString(), ...answer };
    writeAtomicSync(this.path(queue, eventId), JSON.stringify(rec), SECRET_FILE_MODE);
  }

  /**
   * Answers an event once: the remembered answer (replayed: true), or `produce`'s, remembered when
   * it succeeds (2xx). A failure (a full queue, a bad body) is not remembered: the sender may retry.
   */
  async once(queue: string, eventId: string, produce: () => Promise<EventAnswer>): Promise<{ answer: EventAnswer; replayed: boolean }> {
    const before = this.chains.get(queue) ?? Promise.resolve();
    const mine = before.catch(() => undefined).then(() => this.locked(queue, eventId, produce));
    const tail = mine.catch(() => undefined);
    this.chains.set(queue, tail);
    void tail.then(() => {
      if (this.chains.get(queue) === tail) this.chains.delete(queue);
    });
    return mine;
  }

  private async locked(queue: string, eventId: string, produce: () => Promise<EventAnswer>): Promise<{ answer: EventAnswer; replayed: boolean }> {
    safeMkdir(join(this.dir, queue));
    let mutex = this.mutexes.get(queue);
    if (!mutex) this.mutexes.set(queue, (mutex = new Mutex(join(this.dir, queue, '.mutex'), `event ids of queue ${queue}`)));
    await mutex.acquire(30_000);
    try {
      const first = this.recall(queue, eventId);
      if (first) return { answer: first, replayed: true };
      const answer = await produce();
      if (answer.status >= 200 && answer.status < 300) {
        mutex.assertHeld();
        this.remember(queue, eventId, answer);
      }
      return { answer, replayed: false };
    } finally {
      mutex.releaseLock();
    }
  }

  close(): void {
    for (const m of this.mutexes.values()) m.close();
    this.mutexes.clear();
  }
}

/** Every event record file of the workspace (for doctor), scoped and legacy ones. */
export function eventFiles(ws: WorkspacePaths): string[] {
  const dir = eventsDir(ws);
  const out: string[] = [];
  for (const e of safeReaddirEntries(dir)) {
    if (e.isFile() && e.name.endsWith('.json')) out.push(join(dir, e.name));
    else if (e.isDirectory()) {
      for (const f of safeReaddir(join(dir, e.name))) if (f.endsWith('.json')) out.push(join(dir, e.name, f));
    }
  }
  return out.sort();
}

/** Reads one event record as recall does: StateFileError (30) when it is damaged. */
export function readEventRecord(path: string): unknown {
  return readStateJson(path, eventShape, EVENT_HINT);
}
