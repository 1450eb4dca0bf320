/**
 * Waiting on conditions, the one way tests wait: poll `cond` every `everyMs` until it holds (or
 * yields a value), failing after `ms` with what was awaited. Never a fixed sleep.
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms = 20_000, what = 'condition', everyMs = 20): Promise<void> {
  await until(async () => (await cond()) || null, ms, what, everyMs);
}

/** Polls `f` until it yields a value (not null, undefined or false) and returns it; fails after `ms`. */
export async function until<T>(f: () => T | null | undefined | false | Promise<T | null | undefined | false>, ms = 20_000, what = 'condition', everyMs = 20): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== null && v !== undefined && v !== false) return v;
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
