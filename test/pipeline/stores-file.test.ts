import { tempDir } from '../temp.js';
import { FileStores } from '../../src/pipeline/stores.js';
import { workspacePaths, type WorkspacePaths } from '../../src/storage/paths.js';
import { describeStoresBackend } from './stores-conformance.js';

const roots = new WeakMap<object, WorkspacePaths>();

describeStoresBackend('file', {
  open: () => {
    const ws = workspacePaths(tempDir('metaspn-stores-'));
    const s = new FileStores(ws);
    roots.set(s, ws);
    return Promise.resolve(s);
  },
  reopen: async (s) => {
    const ws = roots.get(s)!;
    await s.close();
    const again = new FileStores(ws);
    roots.set(again, ws);
    return again;
  },
});
