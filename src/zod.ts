/**
 * The parts of zod (https://zod.dev, a dependency) that metaspn's own schemas use, imported as
 * `import * as z from '…/zod.js'` instead of from `zod` itself.
 *
 * Why: `import('zod')` loads all of zod's ES modules, its 55 locale modules among them (every
 * entry point, `zod/mini` and `zod/v4/core` too, re-exports `locales`), about 80 ms of a CLI
 * start that is 200–300 ms in all. The build (`npm run build`, scripts/test.mjs) replaces the
 * JavaScript that TypeScript emits for this file (dist/src/zod.js, a re-export) with one module that
 * holds only what these exports reach (scripts/bundle-zod.mjs, rolldown): the same library code,
 * tree-shaken, loaded in a fraction of that. Under vitest the source is loaded as written (the whole
 * library), with the same behaviour.
 *
 * Add an export here before using another part of zod; the types below cost nothing at run time.
 * A user's own schemas (a worker's `payload`) come from the user's zod and are only called through
 * their methods (`safeParse`), never mixed into these.
 */
export { array, boolean, enum, literal, number, object, record, strictObject, string, union, unknown } from 'zod';
export type { infer, output, ZodNumber, ZodType } from 'zod';
export type * as core from 'zod/v4/core';
