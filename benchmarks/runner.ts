import type { ClassicLevel } from 'classic-level';
import type { Log } from '../engine/log/log.js';
import { silentLogger } from '../engine/logger.js';
import { Metrics } from '../engine/metrics/metrics.js';
import { TopologyRunner, type RunnerOptions } from '../engine/runtime/runner.js';
import { LevelBackend } from '../engine/state/backend.js';
import type { Topology } from '../engine/topology/topology.js';

/** The runner settings every benchmark scenario uses: the engine's defaults, with a shorter idle poll. */
export const BENCH_RUNNER_CONFIG = {
  commitIntervalMs: 100,
  commitMaxRecords: 10_000,
  pollMaxRecords: 1_000,
  pollMaxWaitMs: 100,
  purgeRepartitionRecords: 10_000,
  cacheMaxBytesPerStore: 16 * 1024 * 1024,
  errorPolicy: 'dead-letter',
} as const;

/** A runner of `topology` on `log`, with its stores in `state` (no metrics export, no logs). */
export function benchRunner(log: Log, topology: Topology, state: ClassicLevel<Buffer, Buffer>, extra: Partial<RunnerOptions> = {}): TopologyRunner {
  return new TopologyRunner({
    log,
    topology,
    config: BENCH_RUNNER_CONFIG,
    metrics: new Metrics({ defaultMetrics: false }),
    logger: silentLogger(),
    openBackend: (store, partition) => new LevelBackend(state, `${topology.applicationId}/${store.name}`, partition),
    ...extra,
  });
}
