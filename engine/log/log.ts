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
}

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

  beginTransaction(options: TransactionOptions): Promise<LogTransaction>;

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
