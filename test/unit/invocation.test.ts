import { describe, expect, it } from 'vitest';
import { setExitCode, takeExitCode } from '../../src/cli/exit.js';
import { jsonPrinted, printJson } from '../../src/cli/format.js';
import { newInvocation, withInvocation } from '../../src/cli/invocation.js';

describe('CLI invocation state', () => {
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
