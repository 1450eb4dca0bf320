import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileQueue } from '../../src/queue/file/file-queue.js';
import { describeQueueBackend } from './conformance.js';

describeQueueBackend('file', async (opts) => new FileQueue({ ...opts, workspace: mkdtempSync(join(tmpdir(), 'metaspn-q-')) }));
