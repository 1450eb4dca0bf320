import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MetaspnError } from '../../src/guard/errors.js';
import { thrownMetaspnError as thrown } from '../thrown.js';
import { ALLOW_NETWORK_FS_ENV, assertLocalFilesystem, FileLock, networkFsName, probeLock } from '../../src/storage/file-lock.js';

const dirs: string[] = [];
const locks: FileLock[] = [];
afterEach(() => {
  for (const l of locks.splice(0)) l.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  delete process.env[ALLOW_NETWORK_FS_ENV];
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'metaspn-flock-'));
  dirs.push(d);
  return d;
}
function lockAt(path: string): FileLock {
  const l = new FileLock(path);
  locks.push(l);
  return l;
}

describe('FileLock (kernel OFD lock)', () => {
  it('excludes a second holder even in the same process; free again once released or closed', () => {
    const path = join(tmp(), 'sub', '.mutex');
    expect(probeLock(path)).toBe('missing');
    const a = lockAt(path);
    const b = lockAt(path);
    expect(a.tryAcquire()).toBe(true);
    expect(probeLock(path)).toBe('held');
    expect(b.tryAcquire()).toBe(false);
    a.release();
    expect(probeLock(path)).toBe('free');
    expect(b.tryAcquire()).toBe(true);
    expect(a.tryAcquire()).toBe(false);
    b.close();
    expect(a.tryAcquire()).toBe(true);
  });

  it('acquire waits for the holder and times out with LOCK_TIMEOUT naming what it waited for', async () => {
    const path = join(tmp(), '.mutex');
    const a = lockAt(path);
    expect(a.tryAcquire()).toBe(true);
    const b = lockAt(path);
    const err = await b.acquire(50, 'queue ok').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MetaspnError);
    expect((err as MetaspnError).code).toBe('LOCK_TIMEOUT');
    expect((err as MetaspnError).message).toContain('queue ok');
    const got = b.acquire(5_000, 'queue ok');
    a.release();
    await got;
    expect(b.locked).toBe(true);
  });

  it('the fence: assertHeld refuses once the lock file was replaced, and when not held at all', () => {
    const path = join(tmp(), '.mutex');
    const a = lockAt(path);
    expect(thrown(() => a.assertHeld()).code).toBe('STATE_CORRUPT');
    expect(a.tryAcquire()).toBe(true);
    a.assertHeld();
    rmSync(path);
    writeFileSync(path, '');
    const err = thrown(() => a.assertHeld());
    expect(err.code).toBe('STATE_CORRUPT');
    expect(err.message).toContain('write refused');
    // The replaced file is a fresh lock: a new holder takes it, and the old one re-locks the new file only after.
    const b = lockAt(path);
    expect(b.tryAcquire()).toBe(true);
    a.release();
    expect(a.tryAcquire()).toBe(false);
    b.release();
    expect(a.tryAcquire()).toBe(true);
    a.assertHeld();
  });

  it('taking a lock twice through one object is a bug, reported as such', () => {
    const a = lockAt(join(tmp(), '.mutex'));
    a.tryAcquire();
    expect(thrown(() => a.tryAcquire()).code).toBe('INTERNAL_ERROR');
  });
});

describe('assertLocalFilesystem', () => {
  it('names network file systems by their statfs magic and refuses them with exit 20 and the override', () => {
    expect(networkFsName(0x6969)).toBe('nfs');
    expect(networkFsName(0xff534d42)).toBe('cifs');
    expect(networkFsName(0xef53)).toBeNull(); // ext4
    expect(networkFsName(0x01021994)).toBeNull(); // tmpfs
    const dir = tmp();
    const err = thrown(() => assertLocalFilesystem(join(dir, 'nfs'), () => ({ type: 0x6969 })));
    expect(err.code).toBe('DATA_INVALID');
    expect(err.exitCode).toBe(20);
    expect(err.message).toContain(join(dir, 'nfs'));
    expect(err.message).toContain('network file system (nfs)');
    expect(err.hint).toContain(`${ALLOW_NETWORK_FS_ENV}=1`);
    process.env[ALLOW_NETWORK_FS_ENV] = '1';
    assertLocalFilesystem(join(dir, 'nfs-allowed'), () => ({ type: 0x6969 }));
    delete process.env[ALLOW_NETWORK_FS_ENV];
    assertLocalFilesystem(join(dir, 'ext4'), () => ({ type: 0xef53 }));
    assertLocalFilesystem(dir); // the real one: this machine's temp folder is local
  });
});
