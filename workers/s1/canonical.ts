/** The core's stable stringification of rows (src/pipeline/canonical.ts), by its Season 1 name. */
export { canonicalText as canonicalJson } from '../../src/pipeline/canonical.js';
