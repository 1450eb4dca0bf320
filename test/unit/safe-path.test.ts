import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MetaspnError } from '../../src/guard/errors.js';
import { workspacePaths } from '../../src/storage/paths.js';
import { DIR_MODE, FILE_MODE, safeAppendFile, safeMkdir, safeOpen, safeReadFile, safeRename, safeRm } from '../../src/storage/safe-path.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup(): { ws: string; out: string } {
  const base = mkdtempSync(join(tmpdir(), 'metaspn-safe-'));
  dirs.push(base);
  const ws = join(base, 'ws');
  const out = join(base, 'out');
  mkdirSync(ws);
  mkdirSync(out);
  workspacePaths(ws);
  return { ws, out };
}

const refused = (f: () => unknown, path: string): void => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(MetaspnError);
    expect((err as MetaspnError).exitCode).toBe(30);
    expect((err as Error).message).toBe(`${path}: is a symbolic link inside the workspace; metaspn does not follow links`);
    return;
  }
  throw new Error('not refused');
};

describe('safe-path: no link below the workspace root is followed', () => {
  it('refuses a linked file and a linked folder on the way, for every operation, leaving the outside alone', () => {
    const { ws, out } = setup();
    writeFileSync(join(out, 'f'), 'outside\n');
    symlinkSync(join(out, 'f'), join(ws, 'file.jsonl'));
    symlinkSync(out, join(ws, 'dir'));
    refused(() => safeOpen(join(ws, 'file.jsonl'), 'a+'), join(ws, 'file.jsonl'));
    refused(() => safeAppendFile(join(ws, 'file.jsonl'), 'x\n'), join(ws, 'file.jsonl'));
    refused(() => safeReadFile(join(ws, 'file.jsonl')), join(ws, 'file.jsonl'));
    refused(() => safeAppendFile(join(ws, 'dir', 'new.jsonl'), 'x\n'), join(ws, 'dir'));
    refused(() => safeMkdir(join(ws, 'dir', 'a', 'b')), join(ws, 'dir'));
    refused(() => safeRename(join(ws, 'x'), join(ws, 'dir', 'f')), join(ws, 'dir'));
    refused(() => safeRm(join(ws, 'dir', 'f'), { force: true }), join(ws, 'dir'));
    expect(readFileSync(join(out, 'f'), 'utf8')).toBe('outside\n');
  });

  it('creates folders and files with explicit modes, whatever the umask', () => {
    const { ws } = setup();
    const old = process.umask(0);
    try {
      safeMkdir(join(ws, 'a', 'b'));
      safeAppendFile(join(ws, 'a', 'b', 'f.jsonl'), 'x\n');
    } finally {
      process.umask(old);
    }
    expect(statSync(join(ws, 'a')).mode & 0o777).toBe(DIR_MODE);
    expect(statSync(join(ws, 'a', 'b')).mode & 0o777).toBe(DIR_MODE);
    expect(statSync(join(ws, 'a', 'b', 'f.jsonl')).mode & 0o777).toBe(FILE_MODE);
  });

  it('the workspace root itself may be a link', () => {
    const { ws, out } = setup();
    const alias = join(out, 'alias');
    symlinkSync(ws, alias);
    workspacePaths(alias);
    safeMkdir(join(alias, 'queue', 'q'));
    safeAppendFile(join(alias, 'queue', 'q', 'log.000001.jsonl'), 'x\n');
    expect(readFileSync(join(ws, 'queue', 'q', 'log.000001.jsonl'), 'utf8')).toBe('x\n');
  });
});
