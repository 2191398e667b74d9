import { describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { silentLogger } from '../../engine/logger.js';
import { Metrics } from '../../engine/metrics/metrics.js';
import { TopologyRunner } from '../../engine/runtime/runner.js';
import { LevelBackend } from '../../engine/state/backend.js';
import keyedCount from '../../topologies/examples/keyed-count.js';
import { caughtUp, FAST_RUNNER_CONFIG, tempDir } from '../support/runtime.js';

/** The value of one sample of the exposition text, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('metrics', () => {
  it('given a topology that ran, then records, checkpoint latency and lag (records and seconds) are exposed by stable names', async () => {
    const dir = await tempDir('millrace-metrics-');
    const log = new EmbeddedLog({ path: dir.path });
    await log.open();
    const metrics = new Metrics({ defaultMetrics: false });
    const topology = keyedCount({ options: {}, registry: undefined as never, services: undefined as never }).build();
    await log.ensureTopic({ name: 'events', partitions: 2 });
    await log.ensureTopic({ name: 'event-counts', partitions: 2 });
    const runner = new TopologyRunner({
      log,
      topology,
      config: FAST_RUNNER_CONFIG,
      metrics,
      logger: silentLogger(),
      openBackend: (store, partition) => new LevelBackend(log.db, `${topology.applicationId}/${store.name}`, partition),
    });
    try {
      await runner.start();
      await log.append(Array.from({ length: 500 }, (_, i) => ({ topic: 'events', key: Buffer.from(`k${i % 7}`), value: Buffer.from('{}') })));
      await caughtUp(runner);
      const text = await metrics.text();
      const inTotal = [0, 1].map((p) => sample(text, 'millrace_records_in_total', { application: 'keyed-count', task: `0_${p}` }) ?? 0);
      expect(inTotal[0]! + inTotal[1]!).toBe(500);
      expect(sample(text, 'millrace_record_latency_seconds_count', { application: 'keyed-count' })).toBeGreaterThan(0);
      expect(sample(text, 'millrace_commit_duration_seconds_count', { application: 'keyed-count' })).toBeGreaterThan(0);
      expect(sample(text, 'millrace_consumer_lag_records', { application: 'keyed-count', partition: '0' })).toBe(0);
      expect(sample(text, 'millrace_consumer_lag_seconds', { application: 'keyed-count', partition: '0' })).toBe(0);
    } finally {
      await runner.stop();
      await log.close();
      await dir.remove();
    }
  });

  it('reports drift statistics, inference batches and traffic shares', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.observeDrift({ model: 'fraud', version: 'v1', statistics: [{ feature: 'amount', psi: 0.31, ks: 0.2 }, { feature: 'score', psi: Number.NaN, ks: 0.05 }] });
    metrics.observeDrift({ model: 'fraud', version: 'v1', statistics: [{ feature: 'amount', psi: 0.12, ks: 0.1 }] });
    metrics.observeInference('fraud', 64, 2.5);
    metrics.observeInference('fraud', 3, 0.5);
    metrics.addTrafficSource(async () => [
      { model: 'fraud', version: 'v1', route: 'stable', share: 0.9 },
      { model: 'fraud', version: 'v2', route: 'canary', share: 0.1 },
    ]);
    const text = await metrics.text();
    expect(sample(text, 'millrace_drift_psi', { model: 'fraud', version: 'v1', feature: 'amount' })).toBe(0.12);
    expect(sample(text, 'millrace_drift_ks', { feature: 'score' })).toBe(0.05);
    expect(sample(text, 'millrace_drift_psi', { feature: 'score' })).toBeUndefined();
    expect(sample(text, 'millrace_inference_batch_size_count', { model: 'fraud' })).toBe(2);
    expect(sample(text, 'millrace_inference_batch_size_sum', { model: 'fraud' })).toBe(67);
    expect(sample(text, 'millrace_inference_latency_seconds_sum', { model: 'fraud' })).toBeCloseTo(0.003);
    expect(sample(text, 'millrace_model_traffic_share', { version: 'v2', route: 'canary' })).toBe(0.1);
  });
});

describe('status', () => {
  it('given a task stuck on a record, then its input shows the position it waits at, for how long, and the lag in seconds', async () => {
    const { StreamsBuilder } = await import('../../engine/topology/builder.js');
    const { startRunner } = await import('../support/runtime.js');
    const dir = await tempDir('millrace-stall-');
    const log = new EmbeddedLog({ path: dir.path });
    await log.open();
    await log.ensureTopic({ name: 'in', partitions: 1 });
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const builder = new StreamsBuilder('stuck');
    builder
      .stream<string, string>('in', { name: 'in' })
      .process('wait', () => ({
        process: async (record: { value: string }) => {
          if (String(record.value).includes('stop')) await gate;
        },
      }));
    const runner = startRunner(log, builder.build());
    try {
      await runner.start();
      await log.append(['"a"', '"stop"', '"b"', '"c"'].map((v, i) => ({ topic: 'in', key: Buffer.from('k'), value: Buffer.from(v), timestamp: 1_000 + i })));
      let input;
      for (let i = 0; i < 2_000; i++) {
        input = runner.tasks[0]!.status().inputs[0]!;
        if (input.position === 1 && input.stalledForMs > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(input).toMatchObject({ topic: 'in', position: 1, lag: 3, stalled: false });
      expect(input!.stalledForMs).toBeGreaterThan(0);
      // The record it waits at has timestamp 1 001: far in the past, so the lag in seconds is large.
      expect(input!.lagSeconds).toBeGreaterThan(1_000_000);
      release();
      await caughtUp(runner);
      expect(runner.tasks[0]!.status().inputs[0]).toMatchObject({ position: 4, lag: 0, lagSeconds: null, stalledForMs: 0 });
    } finally {
      release();
      await runner.stop();
      await log.close();
      await dir.remove();
    }
  });
});
