/**
 * `Log` is the one seam between the engine and the transport: key-partitioned topics of immutable records.
 * `EmbeddedLog` (LevelDB, one machine) and `KafkaLog` (Apache Kafka) implement it, and both must pass the
 * conformance suite in `test/conformance/log.ts`, test for test.
 *
 * Offsets follow Kafka's rule: a record's offset is its position in its partition; an *end offset* (high watermark)
 * and a *committed offset* are the **next offset to read**, one past the last record.
 */

declare const offsetBrand: unique symbol;
/** A position in a partition. Committed and end offsets are "the next offset to read". */
export type Offset = number & { readonly [offsetBrand]: true };

export function offset(n: number): Offset {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`offset must be a non-negative safe integer, got ${n}`);
  return n as Offset;
}

export type Headers = Readonly<Record<string, Buffer>>;

/** A record as stored in a partition. */
export interface LogRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: Offset;
  /** Milliseconds since the epoch: the producer's event time, or the append time when none was given. */
  readonly timestamp: number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Headers;
}

/** A record to append. Without `partition`, the partition is chosen from the key exactly as Kafka's producer does. */
export interface AppendRecord {
  readonly topic: string;
  readonly partition?: number;
  readonly key?: Buffer | null;
  readonly value: Buffer | null;
  readonly timestamp?: number;
  readonly headers?: Headers;
}

export interface AppendResult {
  readonly topic: string;
  readonly partition: number;
  readonly offset: Offset;
  readonly timestamp: number;
}

export type CleanupPolicy = 'delete' | 'compact' | 'compact,delete';

export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
  /** `compact` keeps the latest record per key; `delete` applies time/size retention; both may be combined. */
  readonly cleanupPolicy?: CleanupPolicy;
  /** Records older than this are deleted (policy `delete`). `null`: keep forever. */
  readonly retentionMs?: number | null;
  /** Oldest records are deleted while a partition holds more than this many bytes (policy `delete`). */
  readonly retentionBytes?: number | null;
  /** How long a tombstone (null value) survives compaction, so consumers can see the delete. */
  readonly deleteRetentionMs?: number;
}

export interface TopicInfo {
  readonly name: string;
  readonly partitions: number;
  readonly cleanupPolicy: CleanupPolicy;
  readonly retentionMs: number | null;
  readonly retentionBytes: number | null;
  readonly deleteRetentionMs: number;
  /** Topics whose name starts with `_` or that the runtime created (changelog, repartition) are internal. */
  readonly internal: boolean;
}

export interface PartitionOffsets {
  readonly partition: number;
  /** The first offset still held (after retention). */
  readonly start: Offset;
  /** The high watermark: the offset the next record will get. */
  readonly end: Offset;
}

export interface ReadOptions {
  /** At most this many records (default 500). */
  readonly maxRecords?: number;
  /** Stop after this many bytes of keys and values, but always return at least one record (default 4 MiB). */
  readonly maxBytes?: number;
  /** When nothing is there to read, wait up to this long for new records (default 0: answer at once). */
  readonly maxWaitMs?: number;
  /** Abort a waiting read early. */
  readonly signal?: AbortSignal;
}

export interface ReadBatch {
  readonly records: LogRecord[];
  /** Where the next read should start: one past the last record returned, or the start offset if `from` was below it. */
  readonly nextOffset: Offset;
  readonly highWatermark: Offset;
  readonly logStartOffset: Offset;
}

export interface TopicPartitionOffset {
  readonly topic: string;
  readonly partition: number;
  /** The next offset to read. */
  readonly offset: Offset;
  /** Committed with the offset (Kafka's `OffsetAndMetadata.metadata`, at most 4096 bytes): e.g. a task's stream time. */
  readonly metadata?: string;
}

export const MAX_OFFSET_METADATA_BYTES = 4096;

/** A raw write to the log's own key-value space, committed atomically with a transaction (EmbeddedLog only). */
export type LocalWrite =
  | { readonly type: 'put'; readonly key: Buffer; readonly value: Buffer }
  | { readonly type: 'del'; readonly key: Buffer };

/**
 * A unit of output: appended records and consumer-group offsets become visible together or not at all.
 * On Kafka this is a producer transaction with `sendOffsets`; on the embedded log it is one LevelDB batch.
 */
export interface LogTransaction {
  append(records: readonly AppendRecord[]): void;
  commitOffsets(group: string, offsets: readonly TopicPartitionOffset[]): void;
  /** Present when the log can commit local state in the same atomic unit (EmbeddedLog). */
  readonly addLocalWrites?: (writes: readonly LocalWrite[]) => void;
  commit(): Promise<AppendResult[]>;
  abort(): Promise<void>;
}

export interface TransactionOptions {
  /** Identifies the writer, so a stale writer with the same id can be fenced (Kafka: `transactional.id`). */
  readonly transactionalId: string;
}

export interface MaintenanceReport {
  readonly deletedByRetention: number;
  readonly deletedByCompaction: number;
}

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

/**
 * Chooses which member of a group owns which partitions. Partitions are grouped into tasks: a task is a set of
 * topic-partitions that must be owned together (the same partition number of co-partitioned topics).
 */
export interface TaskGroups {
  /** Task id → the topic-partitions it reads. Every subscribed partition belongs to exactly one task. */
  readonly tasks: ReadonlyMap<string, readonly TopicPartition[]>;
}

export interface SubscribeOptions {
  /** The consumer group: members of one application share its partitions. */
  readonly group: string;
  readonly topics: readonly string[];
  /** How partitions group into tasks that move together between members. */
  readonly taskGroups: TaskGroups;
  /**
   * Called with the tasks this member owns after each (re)assignment, and those it owned before. The member reads
   * only its tasks' partitions; a task that is gone must stop (its uncommitted work is lost and redone by its new
   * owner). Awaited before new records are handed out.
   */
  readonly onAssignment: (owned: readonly string[], previous: readonly string[]) => Promise<void>;
}

/** Membership in a consumer group: reads of the partitions this member currently owns. */
export interface Subscription {
  /** As `Log.read`, for a partition of a task this member owns; committed records only. */
  read(topic: string, partition: number, from: Offset, options?: ReadOptions): Promise<ReadBatch>;
  /** The tasks this member owns now. */
  owned(): readonly string[];
  close(): Promise<void>;
}

export interface LogCapabilities {
  /** Appends, offsets and local writes commit in one atomic unit (`LogTransaction.addLocalWrites`). */
  readonly atomicLocalState: boolean;
  /** The engine runs retention and compaction itself (`runMaintenance`), rather than a broker on its schedule. */
  readonly localMaintenance: boolean;
}

export interface Log {
  readonly kind: 'embedded' | 'kafka';
  readonly capabilities: LogCapabilities;

  open(): Promise<void>;
  close(): Promise<void>;

  /** Fails with `MILLRACE_TOPIC_EXISTS` if the topic exists. */
  createTopic(spec: TopicSpec): Promise<TopicInfo>;
  /** Creates the topic unless it exists; an existing topic with another partition count is an error. */
  ensureTopic(spec: TopicSpec): Promise<TopicInfo>;
  deleteTopic(name: string): Promise<void>;
  /** Fails with `MILLRACE_TOPIC_UNKNOWN`. */
  describeTopic(name: string): Promise<TopicInfo>;
  listTopics(): Promise<TopicInfo[]>;

  /** Appends records; each gets the next offset of its partition, in the order given per partition. */
  append(records: readonly AppendRecord[]): Promise<AppendResult[]>;
  /**
   * Reads a partition from `from`. Reading below the start offset reads from the start offset (the records there
   * were deleted by retention); reading at or past the end returns no records, after waiting up to `maxWaitMs`.
   */
  read(topic: string, partition: number, from: Offset, options?: ReadOptions): Promise<ReadBatch>;
  /** The earliest offset whose record timestamp is at or after `timestampMs`; `null` if there is none yet. */
  offsetForTimestamp(topic: string, partition: number, timestampMs: number): Promise<Offset | null>;
  partitionOffsets(topic: string): Promise<PartitionOffsets[]>;

  commitOffsets(group: string, offsets: readonly TopicPartitionOffset[]): Promise<void>;
  /** Committed offsets of a group for one topic, by partition; partitions never committed are absent. */
  committedOffsets(group: string, topic: string): Promise<Map<number, Offset>>;
  /** The metadata committed with those offsets, by partition; absent where none was given. */
  committedMetadata(group: string, topic: string): Promise<Map<number, string>>;

  beginTransaction(options: TransactionOptions): Promise<LogTransaction>;
  /**
   * Claims a transactional id before its owner reads where to resume: any older writer with the same id is fenced
   * (its open transaction aborted, its later commits refused), so what the new owner reads next is final.
   */
  fenceWriters(transactionalId: string): Promise<void>;

  /** Joins a consumer group and gets a share of the partitions of `topics`, task by task (see `Subscription`). */
  subscribe(options: SubscribeOptions): Promise<Subscription>;

  /**
   * Deletes the records of a partition below `before` (Kafka's `deleteRecords`): the start offset moves there.
   * Used to purge repartition topics once their records are consumed and committed.
   */
  deleteRecords(topic: string, partition: number, before: Offset): Promise<void>;

  /** Applies retention and compaction now (on Kafka, the broker does this on its own schedule). */
  runMaintenance(nowMs?: number): Promise<MaintenanceReport>;
}

export const TOPIC_NAME_PATTERN = /^[a-zA-Z0-9._-]{1,249}$/;

export const DEFAULT_DELETE_RETENTION_MS = 24 * 60 * 60 * 1000;
