import { MemoryQueue } from '../../src/queue/memory.js';
import { describeQueueBackend } from './conformance.js';

describeQueueBackend('memory', async (opts) => new MemoryQueue(opts));
