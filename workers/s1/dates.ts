/** Moved to the core: dates are every pipeline's partitions. */
export * from '../../src/pipeline/dates.js';
