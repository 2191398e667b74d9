import type { ModelService } from '../ml/model-service.js';
import type { Log } from '../log/log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ProjectionManager } from '../projections/manager.js';
import type { SchemaRegistry } from '../serde/registry.js';
import type { TopologyDescription } from '../topology/topology.js';

export interface InputStatus {
  readonly topic: string;
  readonly partition: number;
  /** Next offset the task will process. */
  readonly position: number;
  /** Next offset committed by the last checkpoint. */
  readonly committed: number;
  readonly highWatermark: number;
  readonly lag: number;
  /** Now minus the timestamp of the next record to process, when the task has it in hand and is behind; else null. */
  readonly lagSeconds: number | null;
  /**
   * How long the position has not moved while behind (ms, as seen by status reads), and the record it waits at:
   * a partition stuck on one record shows here with the task's error, if any.
   */
  readonly stalledForMs: number;
  readonly stalled: boolean;
  /** Lag in records sampled every 5 s, oldest first (up to ten minutes): is it growing or draining? */
  readonly lagTrend?: readonly number[];
}

/** One node of a task's graph. */
export interface NodeStatus {
  readonly node: string;
  /** Records it received since the task started. */
  readonly records: number;
  /** Windowed operators: store entries with windows waiting to close, and when the next may close. */
  readonly openWindows?: number;
  readonly nextWindowCloseAt?: string | null;
}

/** Percentiles of a task's recent checkpoints: from taking a batch's first record to its durable checkpoint. */
export interface LatencyPercentiles {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  /** Checkpoints they were taken over (the most recent, at most a few hundred). */
  readonly samples: number;
}

export interface TaskStatus {
  readonly taskId: string;
  readonly subtopology: number;
  readonly partition: number;
  readonly state: 'created' | 'restoring' | 'running' | 'stopped' | 'failed';
  readonly inputs: readonly InputStatus[];
  readonly processed: number;
  readonly deadLettered: number;
  readonly commits: number;
  /** Changelog records replayed into local state when the task started (0 when its state was current). */
  readonly restoredRecords: number;
  readonly lastCommitAt: string | null;
  readonly streamTime: string | null;
  /** Event time up to which windows may close (stream time minus the topology's grace). */
  readonly watermark: string | null;
  readonly error: string | null;
  /** Records processed per second over the last few seconds of checkpoints (0 when idle). */
  readonly recordsPerSecond: number;
  /** Milliseconds; null before the first checkpoint that carried records. */
  readonly latencyMs: LatencyPercentiles | null;
  readonly nodes: readonly NodeStatus[];
}

export interface ApplicationStatus {
  readonly applicationId: string;
  readonly state: 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';
  readonly tasks: readonly TaskStatus[];
  readonly error: string | null;
}

export interface EngineStatus {
  readonly state: 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';
  readonly startedAt: string;
  readonly version: string;
  readonly log: { readonly kind: Log['kind']; readonly location: string };
  readonly applications: readonly ApplicationStatus[];
}

/** What the HTTP API and the console need from a running engine. */
export interface EngineApi {
  readonly log: Log;
  readonly registry: SchemaRegistry;
  readonly metrics: Metrics;
  /** Folder of Avro schemas (`schemas/<name>/v<N>.avsc`) that `POST /topics` may name. */
  readonly schemasDir: string;
  topologies(): TopologyDescription[];
  status(): Promise<EngineStatus>;
  /** The model registry's read side and online prediction (absent: `GET /models` lists none). */
  readonly models?: ModelService;
  /** Projections, their queries, rebuilds and replays (absent: `GET /projections` lists none). */
  readonly projections?: ProjectionManager;
}
