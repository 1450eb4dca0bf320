import { describe, expect, it } from 'vitest';
import { eventIdFor } from '../../src/ops/alerts/check.js';

describe('alert event ids', () => {
  it('two deliveries of one alert in the same millisecond are two events (receivers drop repeated ids)', () => {
    const at = Date.UTC(2026, 10, 30, 7, 0, 0, 123);
    const a = eventIdFor('oldest_ready_age:jobs', at);
    const b = eventIdFor('oldest_ready_age:jobs', at);
    expect(a).toMatch(/^alert-20261130T070000Z-[0-9a-f]{12}-[0-9a-f]{8}$/);
    expect(b).not.toBe(a);
    // The fingerprint part names the alert: the same for both, another for another alert.
    expect(a.split('-')[2]).toBe(b.split('-')[2]);
    expect(eventIdFor('dead_letters_grew:jobs', at).split('-')[2]).not.toBe(a.split('-')[2]);
  });
});
