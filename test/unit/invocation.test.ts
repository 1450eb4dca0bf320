import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { setExitCode, takeExitCode } from '../../src/cli/exit.js';
import { jsonPrinted, printJson } from '../../src/cli/format.js';
import { newInvocation, withInvocation } from '../../src/cli/invocation.js';

/** The repository (the test runs the compiled module: npm run build). */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('CLI invocation state', () => {
  it('a command line running alone costs its promises nothing; one started meanwhile, or after, still keeps its own state', async () => {
    const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
    // In a process of its own (this one's files share their worker, where the storage may be on):
    // a promise made inside a command line running alone carries no store.
    const script = `import { invocation, newInvocation, withInvocation } from ${JSON.stringify(join(ROOT, 'dist', 'src', 'cli', 'invocation.js'))};
const inv = newInvocation(['x']);
const r = await withInvocation(inv, async () => {
  await new Promise((r) => setImmediate(r));
  const p = Promise.resolve();
  await p;
  return { symbols: Object.getOwnPropertySymbols(p).length, same: invocation() === inv };
});
process.stdout.write(JSON.stringify(r));`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(child.stderr).toBe('');
    expect(child.status).toBe(0);
    expect(JSON.parse(child.stdout)).toEqual({ symbols: 0, same: true });
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
