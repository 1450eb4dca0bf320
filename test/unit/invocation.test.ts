import { describe, expect, it } from 'vitest';
import { setExitCode, takeExitCode } from '../../src/cli/exit.js';
import { jsonPrinted, printJson } from '../../src/cli/format.js';
import { newInvocation, withInvocation } from '../../src/cli/invocation.js';

describe('CLI invocation state', () => {
  it('a command line running alone costs its promises nothing; one started meanwhile, or after, still keeps its own state', async () => {
    const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
    // Run first in this file: nothing has entered the storage yet, so no promise hook runs.
    const hooked = await withInvocation(newInvocation(), async () => {
      setExitCode(10);
      await tick();
      const p = Promise.resolve();
      await p;
      return Object.getOwnPropertySymbols(p).length > 0 || takeExitCode() !== 10;
    });
    expect(hooked).toBe(false);
    // A alone; B starts while A runs; A ends; C starts while B runs; then D alone.
    let endA!: () => void;
    const aEnded = new Promise<void>((r) => (endA = r));
    const a = withInvocation(newInvocation(), async () => {
      setExitCode(11);
      await tick();
      await tick();
      const code = takeExitCode();
      endA();
      return code;
    });
    const b = withInvocation(newInvocation(), async () => {
      setExitCode(60);
      await aEnded;
      const c = withInvocation(newInvocation(), async () => {
        await tick();
        setExitCode(30);
        return takeExitCode();
      });
      await tick();
      return [takeExitCode(), await c];
    });
    expect(await a).toBe(11);
    expect(await b).toEqual([60, 30]);
    expect(await withInvocation(newInvocation(), async () => (await tick(), takeExitCode()))).toBe(0);
  });

  it('two command lines running at once in one process keep their own exit code and output state', async () => {
    const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = (() => true) as typeof process.stdout.write;
    try {
      const [a, b] = await Promise.all([
        withInvocation(newInvocation(), async () => {
          setExitCode(11);
          await tick();
          printJson({ a: 1 });
          await tick();
          return { code: takeExitCode(), json: jsonPrinted() };
        }),
        withInvocation(newInvocation(), async () => {
          await tick();
          setExitCode(60);
          await tick();
          return { code: takeExitCode(), json: jsonPrinted() };
        }),
      ]);
      expect(a).toEqual({ code: 11, json: true });
      expect(b).toEqual({ code: 60, json: false });
    } finally {
      process.stdout.write = write;
    }
  });

  it('the most severe code wins, and taking it resets it', async () => {
    await withInvocation(newInvocation(), async () => {
      setExitCode(11);
      setExitCode(30);
      setExitCode(10);
      expect(takeExitCode()).toBe(30);
      expect(takeExitCode()).toBe(0);
    });
  });
});
