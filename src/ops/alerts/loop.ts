import type { Logger } from 'pino';
import type { WorkspaceConfig } from '../../config/load.js';
import type { WorkspacePaths } from '../../storage/paths.js';
import { setLongTimeout } from '../../runtime/timers.js';
import { checkAlerts } from './check.js';
import { alertSettings } from '../../config/alerts.js';
import type { PgSetting } from '../../backend/pg/setting.js';
import { opsSource } from '../source.js';

export interface AlertLoop {
  /** Stops the timer and waits for a check under way to finish. */
  stop(): Promise<void>;
}

/**
 * `serve`'s periodic alert check: one at start, then every `intervalMs` after the previous one
 * ended (checks never overlap). A failed check is logged and the next one runs as planned.
 * intervalMs 0: no checks.
 */
export function startAlertLoop(o: { ws: WorkspacePaths; cfg: WorkspaceConfig; intervalMs: number; log: Logger; env?: NodeJS.ProcessEnv; backend?: PgSetting | null }): AlertLoop {
  if (o.intervalMs <= 0) return { stop: async () => undefined };
  const settings = alertSettings(o.cfg.alerts, o.env ?? process.env);
  // The rules read the backend the server reads: the database when one is set, else the files.
  const source = opsSource(o.ws, o.backend ?? null);
  let stopped = false;
  let cancel: (() => void) | null = null;
  let running: Promise<void> | null = null;
  const tick = (): void => {
    cancel = null;
    if (stopped) return;
    running = checkAlerts(o.ws, settings, { log: o.log, source })
      .then(() => undefined)
      .catch((err: unknown) => o.log.error({ event: 'alerts_check_failed', error: (err as Error).message }, 'alert check failed'))
      .finally(() => {
        running = null;
        if (!stopped) cancel = setLongTimeout(tick, o.intervalMs);
      });
  };
  cancel = setLongTimeout(tick, 0);
  o.log.info({ event: 'alerts_loop_start', interval_ms: o.intervalMs, webhook: settings.webhookUrl !== null }, 'periodic alert checks');
  return {
    stop: async () => {
      stopped = true;
      cancel?.();
      cancel = null;
      if (running) await running;
      await source.close();
      o.log.info({ event: 'alerts_loop_stop' }, 'periodic alert checks stopped');
    },
  };
}
