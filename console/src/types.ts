/** The shapes of the engine's HTTP answers the console reads (see the engine's OpenAPI document at /openapi.json). */

export interface InputStatus {
  readonly topic: string;
  readonly partition: number;
  readonly position: number;
  readonly committed: number;
  readonly highWatermark: number;
  readonly lag: number;
  readonly lagSeconds: number | null;
  readonly stalledForMs: number;
  readonly stalled: boolean;
  readonly lagTrend?: readonly number[];
}

export interface NodeStatus {
  readonly node: string;
  readonly records: number;
  readonly openWindows?: number;
  readonly nextWindowCloseAt?: string | null;
}

export interface TaskStatus {
  readonly taskId: string;
  readonly subtopology: number;
  readonly partition: number;
  readonly state: string;
  readonly inputs: readonly InputStatus[];
  readonly processed: number;
  readonly deadLettered: number;
  readonly commits: number;
  readonly restoredRecords: number;
  readonly lastCommitAt: string | null;
  readonly streamTime: string | null;
  readonly watermark: string | null;
  readonly error: string | null;
  readonly recordsPerSecond: number;
  readonly latencyMs: { p50: number; p95: number; p99: number; samples: number } | null;
  readonly nodes: readonly NodeStatus[];
}

export interface ApplicationStatus {
  readonly applicationId: string;
  readonly state: string;
  readonly tasks: readonly TaskStatus[];
  readonly error: string | null;
}

export interface EngineStatus {
  readonly state: string;
  readonly startedAt: string;
  readonly version: string;
  readonly log: { readonly kind: string; readonly location: string };
  readonly applications: readonly ApplicationStatus[];
}

export interface TopologyNode {
  readonly name: string;
  readonly kind: 'source' | 'processor' | 'sink';
  readonly operator: string;
  readonly topics?: readonly string[];
  readonly topic?: string;
  readonly stores: readonly string[];
  readonly parents: readonly string[];
  readonly children: readonly string[];
  readonly detail?: Readonly<Record<string, unknown>>;
}

export interface TopologyDescription {
  readonly applicationId: string;
  readonly allowedLatenessMs: number;
  readonly lateRecordsTopic: string;
  readonly subtopologies: ReadonlyArray<{ readonly id: number; readonly sourceTopics: readonly string[]; readonly sinkTopics: readonly string[]; readonly nodes: readonly TopologyNode[] }>;
  readonly stores: ReadonlyArray<{ readonly name: string; readonly kind: string; readonly changelogTopic: string | null }>;
  readonly internalTopics: ReadonlyArray<{ readonly name: string; readonly kind: string; readonly partitions: number | null }>;
  readonly globalStores: ReadonlyArray<{ readonly name: string; readonly topic: string }>;
}

/** `GET /topics/:topic/events` and lookups: one record, decoded when the engine can. */
export interface RecordView {
  readonly topic?: string;
  readonly partition: number;
  readonly offset: number;
  readonly timestamp: string;
  readonly key: unknown;
  readonly value: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  readonly [more: string]: unknown;
}
