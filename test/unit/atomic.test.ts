import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { tempDir } from '../temp.js';

// write(2) on a nearly full disk: at most `room` bytes a call, then ENOSPC once `budget` is spent.
const disk = vi.hoisted(() => ({ room: Infinity, budget: Infinity }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const writeSync = (fd: number, buf: Buffer, off: number, len: number): number => {
    const n = Math.min(len, disk.room, disk.budget);
    if (n === 0 && len > 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    disk.budget -= n;
    return fs.writeSync(fd, buf, off, n);
  };
  return { ...fs, default: { ...fs, writeSync }, writeSync };
});

// The setup file (Season 1 registered) has loaded atomic.js with the real fs already: load it afresh.
vi.resetModules();
const { writeAtomicSync } = await import('../../src/storage/atomic.js');

describe('writeAtomicSync', () => {
  afterEach(() => {
    disk.room = Infinity;
    disk.budget = Infinity;
  });

  it('writes every byte when write(2) takes fewer than asked', () => {
    const dir = tempDir('metaspn-atomic-');
    const path = join(dir, 'm.json');
    disk.room = 7;
    const text = `${JSON.stringify({ rows: Array.from({ length: 50 }, (_, i) => i) })}\n`;
    writeAtomicSync(path, text);
    expect(readFileSync(path, 'utf8')).toBe(text);
    expect(readdirSync(dir)).toEqual(['m.json']);
  });

  it('on ENOSPC part way the old content stays and no temp file is left', () => {
    const dir = tempDir('metaspn-atomic-');
    const path = join(dir, 'm.json');
    writeFileSync(path, '{"old":true}\n');
    disk.budget = 10;
    expect(() => writeAtomicSync(path, `${JSON.stringify({ new: 'x'.repeat(100) })}\n`)).toThrow(/ENOSPC/);
    expect(readFileSync(path, 'utf8')).toBe('{"old":true}\n');
    expect(readdirSync(dir)).toEqual(['m.json']);
  });

  it('creates the folder of a new file', () => {
    const dir = tempDir('metaspn-atomic-');
    const path = join(dir, 'a', 'b', 'p.json');
    writeAtomicSync(path, '{}\n');
    expect(existsSync(path)).toBe(true);
  });
});
