import { describe, expect, it } from 'vitest';
import { tempDir } from '../temp.js';
import { Findings } from '../../src/doctor/finding.js';
import { checkQueue } from '../../src/doctor/queues.js';
import { FileQueue } from '../../src/queue/file/file-queue.js';
import { HOST } from '../../src/queue/owner.js';
import { workspacePaths } from '../../src/storage/paths.js';
import { StepClock } from '../queue/conformance.js';

describe('doctor: leases of owners that are gone', () => {
  it('a lease held on this host before the last reboot is gone, even when its pid is alive again', async () => {
    const ws = workspacePaths(tempDir('metaspn-doctor-q-'));
    const clock = new StepClock();
    const q = new FileQueue({ workspace: ws.root, name: 'q', clock });
    await q.enqueue([{ id: 't1', payload: {} }]);
    // Our own pid: alive by the pid check. Only its boot tells that it is gone.
    await q.claim({ owner: { id: 'o1', pid: process.pid, host: HOST }, max: 1, lease_ms: 3_600_000 });
    await q.close();

    const sameBoot = new Findings();
    checkQueue(ws, 'q', sameBoot, clock);
    expect(sameBoot.list.filter((x) => x.area === 'queue' && /lease/.test(x.message))).toEqual([]);

    clock.reboot('boot-b');
    const afterReboot = new Findings();
    checkQueue(ws, 'q', afterReboot, clock);
    expect(afterReboot.list.find((x) => /lease/.test(x.message))?.message).toMatch(/^1 lease\(s\) held by a process that is gone, 0 past their expiry/);
  });
});
