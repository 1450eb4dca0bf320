import type { Logger } from 'pino';

/**
 * Two-stage stop: the first SIGINT/SIGTERM stops claiming and lets running tasks finish (or give
 * their lease back); a second one forces the stop.
 */
export function stopSignals(log: Logger): { stop: AbortSignal; force: AbortSignal; dispose(): void } {
  const stop = new AbortController();
  const force = new AbortController();
  const on = (sig: NodeJS.Signals): void => {
    if (!stop.signal.aborted) {
      log.warn({ event: 'stop_requested', signal: sig }, `${sig}: finishing running tasks; send it again to force`);
      stop.abort();
    } else if (!force.signal.aborted) {
      log.warn({ event: 'stop_forced', signal: sig }, `${sig} again: stopping now`);
      force.abort();
    }
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return {
    stop: stop.signal,
    force: force.signal,
    dispose: () => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}
