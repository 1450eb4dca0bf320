import { outagesOf, startAheadOf, type ClaimedTask, type Queue } from '../queue/types.js';

/** Most buffered tasks a worker marks started ahead of their turn. */
export const START_AHEAD_MAX = 4096;

/**
 * Start marks asked for ahead of their turn, for one worker's buffer of claimed tasks (the worker
 * loop's; PostgreSQL's `start_ahead`). The marked tasks are always the first `count` of the buffer:
 * marks go in buffer order, tasks leave it from the front. A batch is asked for when fewer than half
 * of `ahead` remain marked beyond the free slots, so the marks of many tasks share one commit and
 * are written before their turn. A handler still runs only once its own mark is written; a worker
 * that dies charges at most `ahead` never-run tasks an attempt, besides those in its slots.
 *
 * It also remembers, for each mark written ahead (or by the claim), the queue's count of lost
 * databases ({@link outagesOf}) at that moment: a count grown since means the database went away
 * between the mark and the handler (a server restart), and the handler's failure may be just that.
 */
export class StartMarksAhead {
  /** How many tasks beyond the free slots may be marked ahead (0–4096; 0: none, each task is marked as it starts). */
  readonly ahead: number;
  #count = 0;
  readonly #marks = new WeakMap<ClaimedTask, Promise<boolean>>();
  readonly #markedAt = new WeakMap<ClaimedTask, number>();

  /**
   * @param queue the worker's queue (its `start` writes a mark).
   * @param buffer the worker's buffer of claimed tasks, in the order they will run (read, never changed here).
   * @param startAhead the worker's setting, else what the queue asks for ({@link startAheadOf}), else 0;
   *   clamped to 0–{@link START_AHEAD_MAX}.
   */
  constructor(
    private readonly queue: Pick<Queue, 'start'>,
    private readonly buffer: readonly ClaimedTask[],
    startAhead: number | undefined,
  ) {
    this.ahead = Math.min(START_AHEAD_MAX, Math.max(0, Math.floor(startAhead ?? startAheadOf(queue))));
  }

  /** Asks for the marks of the buffered tasks that run next, when `free` slots are free (none when `ahead` is 0). */
  markAhead(free: number): void {
    if (this.ahead === 0) return;
    if (this.#count >= free + Math.ceil(this.ahead / 2)) return;
    const upTo = Math.min(this.buffer.length, free + this.ahead);
    for (; this.#count < upTo; this.#count++) {
      const c = this.buffer[this.#count]!;
      if (c.started === true) continue;
      const mark = this.queue.start(c.task.id, c.lease).then((ok) => {
        this.#markedAt.set(c, outagesOf(this.queue));
        return ok;
      });
      // Awaited by the task's attempt; one released unrun is never awaited.
      mark.catch(() => undefined);
      this.#marks.set(c, mark);
    }
  }

  /** How many of a claim of up to `want` tasks the claim itself should mark started (`start_first`), with `free` slots free. */
  firstOfClaim(want: number, free: number): number {
    return this.ahead > 0 && this.#count === this.buffer.length ? Math.min(want, Math.max(0, free + this.ahead - this.#count)) : 0;
  }

  /** A claim's tasks were appended to the buffer: those it marked started count as marked. */
  claimed(got: readonly ClaimedTask[]): void {
    const outages = outagesOf(this.queue);
    for (const c of got) if (c.started === true) this.#markedAt.set(c, outages);
    while (this.#count < this.buffer.length && this.buffer[this.#count]!.started === true) this.#count++;
  }

  /** The first buffered task is leaving the buffer to run. */
  shifted(): void {
    if (this.#count > 0) this.#count--;
  }

  /** The buffered task at index `at` left the buffer (its lease was lost). */
  removedAt(at: number): void {
    if (at < this.#count) this.#count--;
  }

  /** The whole buffer is being given back. */
  cleared(): void {
    this.#count = 0;
  }

  /** `c`'s start mark: written by its claim, asked for ahead, or undefined (the attempt writes it). */
  markOf(c: ClaimedTask): Promise<boolean> | undefined {
    return c.started === true ? Promise.resolve(true) : this.#marks.get(c);
  }

  /** Has the queue lost its database since `c`'s mark ahead was written? */
  lostSinceMark(c: ClaimedTask): boolean {
    return outagesOf(this.queue) !== this.#markedAt.get(c);
  }
}
