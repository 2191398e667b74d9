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
