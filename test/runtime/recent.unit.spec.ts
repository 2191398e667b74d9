import { describe, expect, it } from 'vitest';
import { RecentCheckpoints } from '../../engine/runtime/recent.js';

describe('RecentCheckpoints', () => {
  it('has no latency before a checkpoint carried records, and no rate before any checkpoint', () => {
    const recent = new RecentCheckpoints();
    expect(recent.latency()).toBeNull();
    expect(recent.recordsPerSecond(1_000, 0)).toBe(0);
  });

  it('answers nearest-rank percentiles over the checkpoints it keeps', () => {
    const recent = new RecentCheckpoints();
    for (let i = 1; i <= 100; i++) recent.record(i, i, i);
    expect(recent.latency()).toEqual({ p50: 50, p95: 95, p99: 99, samples: 100 });
  });

  it('keeps only the most recent 256 latencies', () => {
    const recent = new RecentCheckpoints();
    for (let i = 0; i < 1_000; i++) recent.record(i, i, i < 744 ? 1_000 : 1);
    expect(recent.latency()).toEqual({ p50: 1, p95: 1, p99: 1, samples: 256 });
  });

  it('reports records per second over the last ten seconds, and 0 once idle for longer', () => {
    const recent = new RecentCheckpoints();
    recent.record(0, 0, 1);
    recent.record(5_000, 500, 1);
    recent.record(10_000, 1_000, 1);
    expect(recent.recordsPerSecond(10_000, 1_000)).toBe(100);
    // Only the checkpoints of the last ten seconds count: 1,000 records from 10 s to 20 s.
    recent.record(20_000, 2_000, 1);
    expect(recent.recordsPerSecond(20_000, 2_000)).toBe(100);
    expect(recent.recordsPerSecond(40_000, 2_000)).toBe(0);
  });
});
