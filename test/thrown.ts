import { MetaspnError } from '../src/guard/errors.js';

/** The MetaspnError `fn` throws; fails the test if it throws nothing or something else. */
export function thrownMetaspnError(fn: () => unknown): MetaspnError {
  try {
    fn();
  } catch (err) {
    if (err instanceof MetaspnError) return err;
    throw err;
  }
  throw new Error('did not throw');
}
