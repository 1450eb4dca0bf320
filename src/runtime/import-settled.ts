/**
 * Importing a user's module (a pipeline, a worker) so that a top-level await that can never
 * settle is an error of ours, with a message, where Node would exit 13 without a word.
 */
import { pathToFileURL } from 'node:url';

/** The import was still pending when the event loop emptied (told apart from what the module throws). */
export class ImportNeverSettled extends Error {
  constructor(readonly error: Error) {
    super(error.message);
  }
}

/**
 * Imports the module at `path`. When the event loop empties while the import is pending (its
 * top-level await waits on nothing that is left), rejects with an `ImportNeverSettled` carrying
 * `never(path)`; whatever the module throws is rethrown as it is.
 */
export async function importSettled(path: string, never: (path: string) => Error): Promise<Record<string, unknown>> {
  let stuck: ((err: ImportNeverSettled) => void) | undefined;
  const pending = new Promise<never>((_, reject) => (stuck = reject));
  const onEmpty = (): void => stuck?.(new ImportNeverSettled(never(path)));
  process.on('beforeExit', onEmpty);
  try {
    return (await Promise.race([import(pathToFileURL(path).href), pending])) as Record<string, unknown>;
  } finally {
    process.off('beforeExit', onEmpty);
  }
}
