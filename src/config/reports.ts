import * as z from '../zod.js';

/** The `reports` section of metaspn.config.json: the evidence a weekly report needs, the runs a baseline averages. */
export const reportsConfigSchema = z
  .object({
    /** Fewer runs started in the week: `status=insufficient_evidence`, exit 10. Default 5. */
    weekly_min_runs: z.number().int().min(0).default(5),
    /** Fewer tasks completed by the week's runs: the same. Default 25. */
    weekly_min_tasks: z.number().int().min(0).default(25),
    /** `baseline capture` computes rates over this many of the latest runs. Default 20. */
    baseline_runs: z.number().int().min(1).default(20),
  })
  .strict();

export type ReportsConfig = z.output<typeof reportsConfigSchema>;

export const REPORTS_DEFAULTS: ReportsConfig = reportsConfigSchema.parse({});
