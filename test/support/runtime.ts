import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { offset, type Log, type LogRecord } from '../../engine/log/log.js';
import { silentLogger } from '../../engine/logger.js';
import { Metrics } from '../../engine/metrics/metrics.js';
import { TopologyRunner, type RunnerConfig } from '../../engine/runtime/runner.js';
import { LevelBackend } from '../../engine/state/backend.js';
import type { Topology } from '../../engine/topology/topology.js';

export const FAST_RUNNER_CONFIG: RunnerConfig = {
  commitIntervalMs: 20,
  commitMaxRecords: 1_000,
  pollMaxRecords: 500,
  pollMaxWaitMs: 50,
  purgeRepartitionRecords: 100,
  cacheMaxBytesPerStore: 1024 * 1024,
  errorPolicy: 'dead-letter',
};

export async function tempDir(prefix = 'millrace-test-'): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export function startRunner(log: EmbeddedLog, topology: Topology, config: Partial<RunnerConfig> = {}): TopologyRunner {
  return new TopologyRunner({
    log,
    topology,
    config: { ...FAST_RUNNER_CONFIG, ...config },
    metrics: new Metrics({ defaultMetrics: false }),
    logger: silentLogger(),
    openBackend: (store, partition) => new LevelBackend(log.db, `${topology.applicationId}/${store.name}`, partition),
  });
}

export async function readTopic(log: Log, topic: string): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for (const { partition, start, end } of await log.partitionOffsets(topic)) {
    let at = start;
    while (at < end) {
      const batch = await log.read(topic, partition, offset(at), { maxRecords: 5_000 });
      out.push(...batch.records);
      if (batch.nextOffset <= at) break;
      at = batch.nextOffset;
    }
  }
  return out;
}

/** Waits until every task of the runner has processed its inputs to the end. */
export async function caughtUp(runner: TopologyRunner, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lagging = runner.lagSamples().filter((s) => s.position < s.highWatermark);
    const uncommitted = runner.tasks.flatMap((t) => t.inputs()).filter((i) => i.committed < i.position);
    if (lagging.length === 0 && uncommitted.length === 0) return;
    if (Date.now() > deadline) throw new Error(`runner did not catch up: ${JSON.stringify(lagging.slice(0, 3))}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
