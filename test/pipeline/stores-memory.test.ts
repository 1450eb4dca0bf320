import { MemoryStores } from '../../src/pipeline/stores.js';
import { describeStoresBackend } from './stores-conformance.js';

describeStoresBackend('memory', { open: () => Promise.resolve(new MemoryStores()) });
