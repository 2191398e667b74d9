import { ClassicLevel } from 'classic-level';
import { MillraceError, errorMessage } from '../../errors.js';
import {
  DEFAULT_DELETE_RETENTION_MS,
  MAX_OFFSET_METADATA_BYTES,
  TOPIC_NAME_PATTERN,
  offset as toOffset,
  type AppendRecord,
  type AppendResult,
  type CleanupPolicy,
  type Log,
  type LogCapabilities,
  type LocalWrite,
  type LogRecord,
  type LogTransaction,
  type MaintenanceReport,
  type Offset,
  type PartitionOffsets,
  type ReadBatch,
  type ReadOptions,
  type SubscribeOptions,
  type Subscription,
  type TopicInfo,
  type TopicPartitionOffset,
  type TopicSpec,
  type TransactionOptions,
} from '../log.js';
import { Partitioner } from '../partitioner.js';
import {
  PREFIX_GROUP,
  PREFIX_KEY_INDEX,
  PREFIX_LOCAL,
  PREFIX_PARTITION,
  PREFIX_RECORD,
  PREFIX_SEQUENCE,
  PREFIX_TIME_INDEX,
  PREFIX_TOPIC,
  decodeKeyIndex,
  decodePartitionState,
  decodeRecord,
  encodeKeyIndex,
  encodePartitionState,
  encodeRecord,
  groupKey,
  keyIndexKey,
  offsetOfRecordKey,
  parseGroupKey,
  partitionKey,
  partitionPrefix,
  peekRecord,
  prefixRange,
  readU64,
  recordKey,
  timeIndexKey,
  topicKey,
  topicPrefix,
  u64Value,
} from './format.js';

export interface EmbeddedLogOptions {
  /** Directory of the LevelDB database. Locked by one process at a time. */
  readonly path: string;
  /**
   * fsync every write batch. Off by default: a write that returned survives a crash of the process (the OS holds
   * it), as Kafka's default does; turn it on to survive power loss too, at a large cost in throughput.
   */
  readonly fsync?: boolean;
  /** Most write requests merged into one LevelDB batch (group commit). */
  readonly maxRequestsPerBatch?: number;
  /** Run retention and compaction this often; 0 disables the timer (call `runMaintenance`). */
  readonly maintenanceIntervalMs?: number;
  /** Compaction of a partition starts once this share of its records were written since the last pass. */
  readonly minCleanableDirtyRatio?: number;
  /** Injected clock, for retention and default timestamps. */
  readonly clock?: () => number;
}

interface PartitionLog {
  readonly index: number;
  /** Authoritative state, advanced while a batch is prepared (so later requests in the same batch see it). */
  start: number;
  end: number;
  sizeBytes: number;
  maxTimestamp: number;
  dirty: number;
  /** What readers may see: advanced only after the batch holding it is durable. */
  visibleStart: number;
  highWatermark: number;
  readonly waiters: Set<() => void>;
}

interface CommittedOffset {
  readonly offset: number;
  readonly metadata: string | null;
}

/** A committed offset on disk: the offset (8 bytes), then the metadata's UTF-8 bytes if there is any. */
function encodeCommitted(committed: CommittedOffset): Buffer {
  const offsetBytes = u64Value(committed.offset);
  return committed.metadata === null ? offsetBytes : Buffer.concat([offsetBytes, Buffer.from(committed.metadata, 'utf8')]);
}

function decodeCommitted(value: Buffer): CommittedOffset {
  return { offset: readU64(value, 0), metadata: value.length > 8 ? value.toString('utf8', 8) : null };
}

interface TopicLog {
  readonly id: number;
  readonly info: TopicInfo;
  readonly partitions: PartitionLog[];
}

interface StoredTopic {
  id: number;
  name: string;
  partitions: number;
  cleanupPolicy: CleanupPolicy;
  retentionMs: number | null;
  retentionBytes: number | null;
  deleteRetentionMs: number;
}

/** Operations of one group commit, and of one synchronous slice of it (see `#drain`). */
const OPS_PER_WRITE = 8_192;
const OPS_PER_SLICE = 1_024;

type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

interface WriteRequest {
  /** Runs in write order; pushes its ops and returns what to do once they are durable. May throw to refuse. */
  prepare(ops: BatchOp[]): () => unknown;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

const DEFAULT_MAX_RECORDS = 500;
const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;
const MAINTENANCE_CHUNK = 10_000;

/**
 * A durable, partitioned log on LevelDB for one machine. Every mutation goes through one ordered write queue that
 * merges concurrent requests into a single LevelDB batch (group commit); readers only see a batch once it is durable.
 */
export class EmbeddedLog implements Log {
  readonly kind = 'embedded' as const;
  readonly capabilities: LogCapabilities = { atomicLocalState: true, localMaintenance: true };

  readonly #options: Required<Omit<EmbeddedLogOptions, 'clock'>>;
  readonly #clock: () => number;
  readonly #db: ClassicLevel<Buffer, Buffer>;
  readonly #partitioner = new Partitioner();
  readonly #topics = new Map<string, TopicLog>();
  readonly #topicsById = new Map<number, TopicLog>();
  /** group → "tid:partition" → next offset to read, and its metadata. */
  readonly #groups = new Map<string, Map<string, CommittedOffset>>();
  readonly #transactionEpochs = new Map<string, number>();
  #nextTopicId = 1;
  #queue: WriteRequest[] = [];
  #writing = false;
  #state: 'new' | 'open' | 'failed' | 'closed' = 'new';
  #failure: unknown;
  #maintenanceTimer: NodeJS.Timeout | undefined;
  #maintenanceRunning: Promise<MaintenanceReport> | undefined;

  constructor(options: EmbeddedLogOptions) {
    this.#options = {
      path: options.path,
      fsync: options.fsync ?? false,
      maxRequestsPerBatch: options.maxRequestsPerBatch ?? 1024,
      maintenanceIntervalMs: options.maintenanceIntervalMs ?? 0,
      minCleanableDirtyRatio: options.minCleanableDirtyRatio ?? 0.5,
    };
    this.#clock = options.clock ?? Date.now;
    this.#db = new ClassicLevel<Buffer, Buffer>(options.path, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  }

  /** The LevelDB database, for state stores that commit with the log (see `LocalKeySpace`). */
  get db(): ClassicLevel<Buffer, Buffer> {
    return this.#db;
  }

  get path(): string {
    return this.#options.path;
  }

  async open(): Promise<void> {
    if (this.#state === 'open') return;
    try {
      await this.#db.open();
    } catch (err) {
      const locked = (err as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED';
      throw new MillraceError(
        locked ? 'MILLRACE_LOG_LOCKED' : 'MILLRACE_LOG_WRITE_FAILED',
        locked
          ? `the data directory ${this.#options.path} is in use by another process; stop it or choose another --data-dir`
          : `could not open the log at ${this.#options.path}: ${errorMessage(err)}`,
        { cause: err },
      );
    }
    const sequence = await this.#db.get(Buffer.of(PREFIX_SEQUENCE));
    if (sequence !== undefined) this.#nextTopicId = readU64(sequence, 0);
    for await (const [, value] of this.#db.iterator(prefixRange(Buffer.of(PREFIX_TOPIC)))) {
      const stored = JSON.parse(value.toString('utf8')) as StoredTopic;
      const partitions: PartitionLog[] = [];
      for (let p = 0; p < stored.partitions; p++) {
        const raw = await this.#db.get(partitionKey(stored.id, p));
        const state = raw === undefined
          ? { start: 0, end: 0, sizeBytes: 0, maxTimestamp: -1, dirty: 0 }
          : decodePartitionState(raw);
        partitions.push({
          index: p,
          ...state,
          visibleStart: state.start,
          highWatermark: state.end,
          waiters: new Set(),
        });
      }
      this.#addTopic({ id: stored.id, info: toInfo(stored), partitions });
    }
    for await (const [key, value] of this.#db.iterator(prefixRange(Buffer.of(PREFIX_GROUP)))) {
      const { group, tid, partition } = parseGroupKey(key);
      this.#groupMap(group).set(`${tid}:${partition}`, decodeCommitted(value));
    }
    this.#state = 'open';
    if (this.#options.maintenanceIntervalMs > 0) {
      this.#maintenanceTimer = setInterval(() => {
        this.#maintain(this.#clock(), this.#options.minCleanableDirtyRatio).catch(() => {
          // A failed pass is retried on the next tick; a failed write poisons the log and surfaces on every call.
        });
      }, this.#options.maintenanceIntervalMs);
      this.#maintenanceTimer.unref();
    }
  }

  async close(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'new') {
      this.#state = 'closed';
      return;
    }
    clearInterval(this.#maintenanceTimer);
    await this.#maintenanceRunning?.catch(() => undefined);
    await this.#whenIdle();
    this.#state = 'closed';
    for (const topic of this.#topics.values()) for (const p of topic.partitions) wake(p);
    await this.#db.close();
  }

  // ---------------------------------------------------------------- topics

  async createTopic(spec: TopicSpec): Promise<TopicInfo> {
    this.#checkOpen();
    const stored = validateSpec(spec);
    return this.#write((ops) => {
      if (this.#topics.has(stored.name)) {
        throw new MillraceError('MILLRACE_TOPIC_EXISTS', `topic ${stored.name} already exists`, {
          details: { topic: stored.name },
        });
      }
      return this.#prepareCreate(stored, ops);
    });
  }

  async ensureTopic(spec: TopicSpec): Promise<TopicInfo> {
    this.#checkOpen();
    const stored = validateSpec(spec);
    return this.#write((ops) => {
      const existing = this.#topics.get(stored.name);
      if (existing !== undefined) {
        if (existing.info.partitions !== stored.partitions) {
          throw new MillraceError(
            'MILLRACE_TOPIC_CONFIG_INVALID',
            `topic ${stored.name} exists with ${existing.info.partitions} partitions, not ${stored.partitions}`,
            { details: { topic: stored.name } },
          );
        }
        return () => existing.info;
      }
      return this.#prepareCreate(stored, ops);
    });
  }

  #prepareCreate(spec: Omit<StoredTopic, 'id'>, ops: BatchOp[]): () => TopicInfo {
    const id = this.#nextTopicId++;
    const stored: StoredTopic = { id, ...spec };
    ops.push({ type: 'put', key: topicKey(stored.name), value: Buffer.from(JSON.stringify(stored)) });
    ops.push({ type: 'put', key: Buffer.of(PREFIX_SEQUENCE), value: u64Value(this.#nextTopicId) });
    const partitions: PartitionLog[] = [];
    for (let p = 0; p < stored.partitions; p++) {
      const state = { start: 0, end: 0, sizeBytes: 0, maxTimestamp: -1, dirty: 0 };
      ops.push({ type: 'put', key: partitionKey(id, p), value: encodePartitionState(state) });
      partitions.push({ index: p, ...state, visibleStart: 0, highWatermark: 0, waiters: new Set() });
    }
    const topic: TopicLog = { id, info: toInfo(stored), partitions };
    this.#addTopic(topic);
    return () => topic.info;
  }

  #addTopic(topic: TopicLog): void {
    this.#topics.set(topic.info.name, topic);
    this.#topicsById.set(topic.id, topic);
  }

  async deleteTopic(name: string): Promise<void> {
    this.#checkOpen();
    const topic = await this.#write((ops) => {
      const topic = this.#requireTopic(name);
      ops.push({ type: 'del', key: topicKey(name) });
      this.#topics.delete(name);
      this.#topicsById.delete(topic.id);
      return () => topic;
    });
    for (const p of topic.partitions) wake(p);
    // The topic id is never reused, so its remaining keys are unreachable; clearing them is housekeeping.
    for (const kind of [PREFIX_PARTITION, PREFIX_RECORD, PREFIX_TIME_INDEX, PREFIX_KEY_INDEX]) {
      await this.#db.clear(prefixRange(topicPrefix(kind, topic.id)));
    }
    for (const [group, offsets] of this.#groups) {
      for (let p = 0; p < topic.partitions.length; p++) {
        if (offsets.delete(`${topic.id}:${p}`)) await this.#db.del(groupKey(group, topic.id, p));
      }
    }
  }

  async describeTopic(name: string): Promise<TopicInfo> {
    this.#checkOpen();
    return this.#requireTopic(name).info;
  }

  async listTopics(): Promise<TopicInfo[]> {
    this.#checkOpen();
    return [...this.#topics.values()].map((t) => t.info).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Synchronous lookup for callers on a hot path; `undefined` when the topic does not exist. */
  topicInfo(name: string): TopicInfo | undefined {
    return this.#topics.get(name)?.info;
  }

  // ---------------------------------------------------------------- append and read

  async append(records: readonly AppendRecord[]): Promise<AppendResult[]> {
    this.#checkOpen();
    if (records.length === 0) return [];
    return this.#write((ops) => this.#prepareAppend(records, ops));
  }

  #prepareAppend(records: readonly AppendRecord[], ops: BatchOp[]): () => AppendResult[] {
    // Validate everything first: a refused request must leave no trace in memory or on disk.
    const targets: Array<{ topic: TopicLog; partition: PartitionLog; timestamp: number }> = [];
    const now = this.#clock();
    for (const record of records) {
      const topic = this.#requireTopic(record.topic);
      const partitionIndex = record.partition ?? this.#partitioner.partition(
        record.topic,
        topic.partitions.length,
        record.key ?? null,
      );
      const partition = topic.partitions[partitionIndex];
      if (partition === undefined || !Number.isInteger(partitionIndex)) {
        throw new MillraceError(
          'MILLRACE_PARTITION_UNKNOWN',
          `topic ${record.topic} has ${topic.partitions.length} partitions; partition ${partitionIndex} does not exist`,
          { details: { topic: record.topic, partition: partitionIndex } },
        );
      }
      const timestamp = record.timestamp ?? now;
      if (!Number.isFinite(timestamp) || timestamp < 0 || !Number.isInteger(timestamp)) {
        throw new MillraceError('MILLRACE_RECORD_INVALID', `timestamp must be a non-negative integer of ms, got ${timestamp}`);
      }
      if (topic.info.cleanupPolicy !== 'delete' && (record.key === null || record.key === undefined)) {
        throw new MillraceError(
          'MILLRACE_RECORD_INVALID',
          `topic ${record.topic} is compacted: every record needs a key`,
          { details: { topic: record.topic } },
        );
      }
      targets.push({ topic, partition, timestamp });
    }
    const results: AppendResult[] = new Array(records.length);
    const touched = new Map<PartitionLog, TopicLog>();
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      const { topic, partition, timestamp } = targets[i]!;
      const at = partition.end++;
      const key = record.key ?? null;
      const encoded = encodeRecord(timestamp, key, record.value, record.headers ?? {});
      ops.push({ type: 'put', key: recordKey(topic.id, partition.index, at), value: encoded });
      if (timestamp > partition.maxTimestamp) {
        partition.maxTimestamp = timestamp;
        ops.push({ type: 'put', key: timeIndexKey(topic.id, partition.index, timestamp), value: u64Value(at) });
      }
      if (topic.info.cleanupPolicy !== 'delete') {
        ops.push({
          type: 'put',
          key: keyIndexKey(topic.id, partition.index, key!),
          value: encodeKeyIndex(at, timestamp, record.value === null),
        });
        partition.dirty++;
      }
      partition.sizeBytes += encoded.length;
      touched.set(partition, topic);
      results[i] = { topic: topic.info.name, partition: partition.index, offset: at as Offset, timestamp };
    }
    for (const [partition, topic] of touched) ops.push(this.#partitionStateOp(topic, partition));
    return () => {
      for (const partition of touched.keys()) publish(partition);
      return results;
    };
  }

  #partitionStateOp(topic: TopicLog, p: PartitionLog): BatchOp {
    return {
      type: 'put',
      key: partitionKey(topic.id, p.index),
      value: encodePartitionState({
        start: p.start,
        end: p.end,
        sizeBytes: p.sizeBytes,
        maxTimestamp: p.maxTimestamp,
        dirty: p.dirty,
      }),
    };
  }

  async read(topicName: string, partitionIndex: number, from: Offset, options: ReadOptions = {}): Promise<ReadBatch> {
    this.#checkOpen();
    let { topic, partition } = this.#requirePartition(topicName, partitionIndex);
    if (!Number.isSafeInteger(from) || from < 0) {
      throw new MillraceError('MILLRACE_OFFSET_INVALID', `offset must be a non-negative integer, got ${from}`);
    }
    const maxRecords = options.maxRecords ?? DEFAULT_MAX_RECORDS;
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    let start = Math.max(from, partition.visibleStart);
    if (start >= partition.highWatermark && (options.maxWaitMs ?? 0) > 0) {
      await waitForData(partition, start, options.maxWaitMs!, options.signal);
      this.#checkOpen();
      ({ topic, partition } = this.#requirePartition(topicName, partitionIndex));
      start = Math.max(from, partition.visibleStart);
    }
    const highWatermark = partition.highWatermark;
    const logStartOffset = partition.visibleStart;
    if (start >= highWatermark) {
      return { records: [], nextOffset: toOffset(start), highWatermark: highWatermark as Offset, logStartOffset: logStartOffset as Offset };
    }
    const records: LogRecord[] = [];
    let bytes = 0;
    let next = highWatermark;
    const iterator = this.#db.iterator({
      gte: recordKey(topic.id, partitionIndex, start),
      lt: recordKey(topic.id, partitionIndex, highWatermark),
      limit: maxRecords,
    });
    try {
      outer: while (records.length < maxRecords) {
        const entries = await iterator.nextv(Math.min(maxRecords - records.length, 1000));
        if (entries.length === 0) break;
        for (const [key, value] of entries) {
          const at = offsetOfRecordKey(key);
          const decoded = decodeRecord(value);
          records.push({
            topic: topicName,
            partition: partitionIndex,
            offset: at as Offset,
            timestamp: decoded.timestamp,
            key: decoded.key,
            value: decoded.value,
            headers: decoded.headers,
          });
          bytes += (decoded.key?.length ?? 0) + (decoded.value?.length ?? 0);
          if (bytes >= maxBytes) break outer;
        }
      }
    } finally {
      await iterator.close();
    }
    const last = records[records.length - 1];
    // Gaps (compaction) are skipped: when the range was read to its end, continue at the high watermark.
    if (last !== undefined && (records.length >= maxRecords || bytes >= maxBytes)) next = last.offset + 1;
    return {
      records,
      nextOffset: next as Offset,
      highWatermark: highWatermark as Offset,
      logStartOffset: logStartOffset as Offset,
    };
  }

  async offsetForTimestamp(topicName: string, partitionIndex: number, timestampMs: number): Promise<Offset | null> {
    this.#checkOpen();
    const { topic, partition } = this.#requirePartition(topicName, partitionIndex);
    const start = partition.visibleStart;
    const highWatermark = partition.highWatermark;
    // The time index holds an entry at each record that raised the maximum timestamp, so the first entry at or
    // after `timestampMs` is exactly the first record with such a timestamp, unless retention deleted it.
    let candidate: number | null = null;
    let firstBelowStart = false;
    const indexRange = prefixRange(partitionPrefix(PREFIX_TIME_INDEX, topic.id, partitionIndex));
    for await (const value of this.#db.values({ gte: timeIndexKey(topic.id, partitionIndex, timestampMs), lt: indexRange.lt })) {
      const at = readU64(value, 0);
      if (at >= highWatermark) break;
      if (at >= start) {
        candidate = at;
        break;
      }
      firstBelowStart = true;
    }
    if (!firstBelowStart) return candidate === null ? null : toOffset(candidate);
    // The indexed record is gone; a retained record before the next index entry may still qualify.
    const scanEnd = candidate ?? highWatermark;
    for await (const [key, value] of this.#db.iterator({
      gte: recordKey(topic.id, partitionIndex, start),
      lt: recordKey(topic.id, partitionIndex, scanEnd),
    })) {
      if (peekRecord(value).timestamp >= timestampMs) return toOffset(offsetOfRecordKey(key));
    }
    return candidate === null ? null : toOffset(candidate);
  }

  async partitionOffsets(topicName: string): Promise<PartitionOffsets[]> {
    this.#checkOpen();
    return this.#requireTopic(topicName).partitions.map((p) => ({
      partition: p.index,
      start: p.visibleStart as Offset,
      end: p.highWatermark as Offset,
    }));
  }

  /** Synchronous high watermark, for metrics and lag on a hot path. */
  highWatermark(topicName: string, partitionIndex: number): Offset | undefined {
    return this.#topics.get(topicName)?.partitions[partitionIndex]?.highWatermark as Offset | undefined;
  }

  // ---------------------------------------------------------------- consumer groups

  async commitOffsets(group: string, offsets: readonly TopicPartitionOffset[]): Promise<void> {
    this.#checkOpen();
    await this.#write((ops) => this.#prepareOffsets(group, offsets, ops));
  }

  #prepareOffsets(group: string, offsets: readonly TopicPartitionOffset[], ops: BatchOp[]): () => void {
    if (group.length === 0) throw new MillraceError('MILLRACE_RECORD_INVALID', 'a consumer group needs a name');
    const writes: Array<[string, CommittedOffset]> = [];
    for (const { topic: name, partition, offset: at, metadata } of offsets) {
      const { topic } = this.#requirePartition(name, partition);
      if (!Number.isSafeInteger(at) || at < 0) {
        throw new MillraceError('MILLRACE_OFFSET_INVALID', `committed offset must be a non-negative integer, got ${at}`);
      }
      if (metadata !== undefined && Buffer.byteLength(metadata) > MAX_OFFSET_METADATA_BYTES) {
        throw new MillraceError('MILLRACE_RECORD_INVALID', `offset metadata may hold at most ${MAX_OFFSET_METADATA_BYTES} bytes`);
      }
      const committed: CommittedOffset = { offset: at, metadata: metadata ?? null };
      ops.push({ type: 'put', key: groupKey(group, topic.id, partition), value: encodeCommitted(committed) });
      writes.push([`${topic.id}:${partition}`, committed]);
    }
    return () => {
      const map = this.#groupMap(group);
      for (const [key, committed] of writes) map.set(key, committed);
    };
  }

  async committedOffsets(group: string, topicName: string): Promise<Map<number, Offset>> {
    this.#checkOpen();
    const topic = this.#requireTopic(topicName);
    const result = new Map<number, Offset>();
    const offsets = this.#groups.get(group);
    if (offsets === undefined) return result;
    for (let p = 0; p < topic.partitions.length; p++) {
      const committed = offsets.get(`${topic.id}:${p}`);
      if (committed !== undefined) result.set(p, committed.offset as Offset);
    }
    return result;
  }

  async committedMetadata(group: string, topicName: string): Promise<Map<number, string>> {
    this.#checkOpen();
    const topic = this.#requireTopic(topicName);
    const result = new Map<number, string>();
    const offsets = this.#groups.get(group);
    if (offsets === undefined) return result;
    for (let p = 0; p < topic.partitions.length; p++) {
      const metadata = offsets.get(`${topic.id}:${p}`)?.metadata;
      if (metadata !== undefined && metadata !== null) result.set(p, metadata);
    }
    return result;
  }

  /** Every group with committed offsets, for lag reporting. */
  groups(): string[] {
    return [...this.#groups.keys()].sort();
  }

  #groupMap(group: string): Map<string, CommittedOffset> {
    let map = this.#groups.get(group);
    if (map === undefined) {
      map = new Map();
      this.#groups.set(group, map);
    }
    return map;
  }

  // ---------------------------------------------------------------- transactions

  /**
   * One process owns the embedded log (LevelDB locks its directory), so a group has one member: it owns every task
   * at once, and keeps them.
   */
  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    this.#checkOpen();
    for (const topic of options.topics) this.#requireTopic(topic);
    const owned = [...options.taskGroups.tasks.keys()];
    await options.onAssignment(owned, []);
    let closed = false;
    return {
      read: (topic, partition, from, readOptions) => {
        if (closed) throw new MillraceError('MILLRACE_LOG_CLOSED', `the subscription of group ${options.group} is closed`);
        return this.read(topic, partition, from, readOptions);
      },
      owned: () => (closed ? [] : owned),
      close: async () => {
        closed = true;
      },
    };
  }

  async fenceWriters(transactionalId: string): Promise<void> {
    this.#checkOpen();
    this.#transactionEpochs.set(transactionalId, (this.#transactionEpochs.get(transactionalId) ?? 0) + 1);
  }

  async beginTransaction(options: TransactionOptions): Promise<LogTransaction> {
    this.#checkOpen();
    const epoch = (this.#transactionEpochs.get(options.transactionalId) ?? 0) + 1;
    this.#transactionEpochs.set(options.transactionalId, epoch);
    const appends: AppendRecord[] = [];
    const offsets: Array<{ group: string; offsets: readonly TopicPartitionOffset[] }> = [];
    const local: LocalWrite[] = [];
    let state: 'open' | 'committed' | 'aborted' = 'open';
    const requireOpen = (): void => {
      if (state !== 'open') {
        throw new MillraceError('MILLRACE_TRANSACTION_STATE', `transaction ${options.transactionalId} is ${state}`);
      }
    };
    return {
      append: (records) => {
        requireOpen();
        for (const record of records) appends.push(record);
      },
      commitOffsets: (group, groupOffsets) => {
        requireOpen();
        offsets.push({ group, offsets: groupOffsets });
      },
      addLocalWrites: (writes) => {
        requireOpen();
        for (const write of writes) {
          if (write.key[0] !== PREFIX_LOCAL) throw new RangeError('local writes must use keys of a LocalKeySpace');
          local.push(write);
        }
      },
      commit: async () => {
        requireOpen();
        state = 'committed';
        this.#checkOpen();
        return this.#write((ops) => {
          if (this.#transactionEpochs.get(options.transactionalId) !== epoch) {
            throw new MillraceError(
              'MILLRACE_TRANSACTION_FENCED',
              `transaction ${options.transactionalId} was fenced by a newer writer with the same id`,
            );
          }
          const published = appends.length > 0 ? this.#prepareAppend(appends, ops) : () => [];
          const committed = offsets.map((o) => this.#prepareOffsets(o.group, o.offsets, ops));
          for (const write of local) ops.push(write);
          return () => {
            for (const apply of committed) apply();
            return published();
          };
        });
      },
      abort: async () => {
        if (state === 'open') state = 'aborted';
      },
    };
  }

  async deleteRecords(topicName: string, partitionIndex: number, before: Offset): Promise<void> {
    this.#checkOpen();
    const { topic, partition } = this.#requirePartition(topicName, partitionIndex);
    if (!Number.isSafeInteger(before) || before < 0) {
      throw new MillraceError('MILLRACE_OFFSET_INVALID', `offset must be a non-negative integer, got ${before}`);
    }
    await this.#deletePrefix(topic, partition, () => Math.min(before, partition.end));
  }

  // ---------------------------------------------------------------- retention and compaction

  async runMaintenance(nowMs: number = this.#clock()): Promise<MaintenanceReport> {
    this.#checkOpen();
    return this.#maintain(nowMs, 0);
  }

  async #maintain(nowMs: number, minDirtyRatio: number): Promise<MaintenanceReport> {
    while (this.#maintenanceRunning !== undefined) await this.#maintenanceRunning.catch(() => undefined);
    const run = this.#maintainNow(nowMs, minDirtyRatio);
    this.#maintenanceRunning = run;
    try {
      return await run;
    } finally {
      this.#maintenanceRunning = undefined;
    }
  }

  async #maintainNow(nowMs: number, minDirtyRatio: number): Promise<MaintenanceReport> {
    let deletedByRetention = 0;
    let deletedByCompaction = 0;
    for (const topic of [...this.#topics.values()]) {
      const policy = topic.info.cleanupPolicy;
      for (const partition of topic.partitions) {
        if (this.#state !== 'open' || this.#topicsById.get(topic.id) !== topic) break;
        if (policy !== 'compact') deletedByRetention += await this.#applyRetention(topic, partition, nowMs);
        if (policy !== 'delete') deletedByCompaction += await this.#compact(topic, partition, nowMs, minDirtyRatio);
      }
    }
    return { deletedByRetention, deletedByCompaction };
  }

  async #applyRetention(topic: TopicLog, partition: PartitionLog, nowMs: number): Promise<number> {
    const { retentionMs, retentionBytes } = topic.info;
    if (retentionMs === null && retentionBytes === null) return 0;
    const cutoff = retentionMs === null ? -Infinity : nowMs - retentionMs;
    let size = partition.sizeBytes;
    return this.#deletePrefix(topic, partition, undefined, (timestamp, bytes) => {
      const expired = timestamp < cutoff || (retentionBytes !== null && size > retentionBytes);
      if (expired) size -= bytes;
      return expired;
    });
  }

  /**
   * Deletes records from the start of a partition, in chunks, while they are below `until()` or `expired` says so.
   * Only ever moves the start forward; the time index entries of deleted records go with them.
   */
  async #deletePrefix(
    topic: TopicLog,
    partition: PartitionLog,
    until?: () => number,
    expired?: (timestamp: number, bytes: number) => boolean,
  ): Promise<number> {
    let deleted = 0;
    for (;;) {
      const deletes: Buffer[] = [];
      let freed = 0;
      let newStart = partition.start;
      const end = until?.() ?? partition.end;
      for await (const [key, value] of this.#db.iterator({
        gte: recordKey(topic.id, partition.index, partition.start),
        lt: recordKey(topic.id, partition.index, end),
        limit: MAINTENANCE_CHUNK,
      })) {
        if (expired !== undefined && !expired(peekRecord(value).timestamp, value.length)) break;
        deletes.push(key);
        freed += value.length;
        newStart = offsetOfRecordKey(key) + 1;
      }
      const chunkFull = deletes.length === MAINTENANCE_CHUNK;
      // Without a predicate everything below `until` goes, including gaps left by compaction.
      if (expired === undefined && !chunkFull) newStart = Math.max(newStart, end);
      if (newStart <= partition.start) return deleted;
      const indexDeletes: Buffer[] = [];
      const indexRange = prefixRange(partitionPrefix(PREFIX_TIME_INDEX, topic.id, partition.index));
      for await (const [key, value] of this.#db.iterator(indexRange)) {
        if (readU64(value, 0) >= newStart) break;
        indexDeletes.push(key);
      }
      await this.#write((ops) => {
        if (this.#topicsById.get(topic.id) !== topic) return () => undefined;
        for (const key of deletes) ops.push({ type: 'del', key });
        for (const key of indexDeletes) ops.push({ type: 'del', key });
        partition.start = Math.max(partition.start, newStart);
        partition.sizeBytes = Math.max(0, partition.sizeBytes - freed);
        ops.push(this.#partitionStateOp(topic, partition));
        return () => {
          partition.visibleStart = partition.start;
        };
      });
      deleted += deletes.length;
      if (!chunkFull) return deleted;
    }
  }

  async #compact(topic: TopicLog, partition: PartitionLog, nowMs: number, minDirtyRatio: number): Promise<number> {
    if (partition.dirty === 0) return 0;
    const live = Math.max(1, partition.end - partition.start);
    if (partition.dirty / live < minDirtyRatio) return 0;
    const dirtyAtStart = partition.dirty;
    const end = partition.end;
    const tombstoneCutoff = nowMs - topic.info.deleteRetentionMs;
    let deleted = 0;
    let from = partition.start;
    for (;;) {
      const deletes: Array<{ key: Buffer; size: number; indexKey?: Buffer }> = [];
      let scanned = 0;
      let last = from;
      for await (const [key, value] of this.#db.iterator({
        gte: recordKey(topic.id, partition.index, from),
        lt: recordKey(topic.id, partition.index, end),
        limit: MAINTENANCE_CHUNK,
      })) {
        scanned++;
        const at = offsetOfRecordKey(key);
        last = at;
        const { key: recordKeyBytes, timestamp, isTombstone } = peekRecord(value);
        if (recordKeyBytes === null) continue;
        const indexKey = keyIndexKey(topic.id, partition.index, recordKeyBytes);
        const latestRaw = this.#db.getSync(indexKey);
        const latest = latestRaw === undefined ? undefined : decodeKeyIndex(latestRaw);
        if (latest !== undefined && latest.offset > at) {
          deletes.push({ key, size: value.length });
        } else if (isTombstone && timestamp < tombstoneCutoff && latest?.offset === at) {
          deletes.push({ key, size: value.length, indexKey });
        }
      }
      if (deletes.length > 0) {
        await this.#write((ops) => {
          if (this.#topicsById.get(topic.id) !== topic) return () => undefined;
          let freed = 0;
          for (const d of deletes) {
            ops.push({ type: 'del', key: d.key });
            if (d.indexKey !== undefined) {
              // A newer record for the key may have arrived since the scan; only drop the index if it still points here.
              const current = this.#db.getSync(d.indexKey);
              if (current !== undefined && decodeKeyIndex(current).offset === offsetOfRecordKey(d.key)) {
                ops.push({ type: 'del', key: d.indexKey });
              }
            }
            freed += d.size;
          }
          partition.sizeBytes = Math.max(0, partition.sizeBytes - freed);
          ops.push(this.#partitionStateOp(topic, partition));
          return () => undefined;
        });
        deleted += deletes.length;
      }
      if (scanned < MAINTENANCE_CHUNK) break;
      from = last + 1;
    }
    await this.#write((ops) => {
      if (this.#topicsById.get(topic.id) !== topic) return () => undefined;
      partition.dirty = Math.max(0, partition.dirty - dirtyAtStart);
      ops.push(this.#partitionStateOp(topic, partition));
      return () => undefined;
    });
    return deleted;
  }

  // ---------------------------------------------------------------- the write queue

  #write<T>(prepare: (ops: BatchOp[]) => () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.#state === 'failed') {
        reject(this.#failedError());
        return;
      }
      this.#queue.push({ prepare, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#writing) void this.#drain();
    });
  }

  /**
   * Group commit: merges queued requests into one LevelDB batch, then resolves them in order. The synchronous work
   * is bounded so a large checkpoint does not stall the event loop (inference replies, HTTP, timers wait behind it):
   * requests are taken until their operations reach `OPS_PER_WRITE` (a single larger request still goes whole), and
   * operations enter a chained batch `OPS_PER_SLICE` at a time with a turn of the event loop between slices. The
   * batch is still written atomically, at the end.
   */
  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0) {
        const ops: BatchOp[] = [];
        const prepared: Array<{ request: WriteRequest; after: () => unknown }> = [];
        let taken = 0;
        while (taken < this.#queue.length && taken < this.#options.maxRequestsPerBatch && (taken === 0 || ops.length < OPS_PER_WRITE)) {
          const request = this.#queue[taken++]!;
          const own: BatchOp[] = [];
          try {
            const after = request.prepare(own);
            for (const op of own) ops.push(op);
            prepared.push({ request, after });
          } catch (err) {
            request.reject(err);
          }
        }
        this.#queue.splice(0, taken);
        if (ops.length > 0) {
          try {
            await this.#writeBatch(ops);
          } catch (err) {
            // In-memory offsets are now ahead of the disk: nothing more may be written.
            this.#state = 'failed';
            this.#failure = err;
            const failed = this.#failedError();
            for (const { request } of prepared) request.reject(failed);
            for (const request of this.#queue.splice(0)) request.reject(failed);
            return;
          }
        }
        for (const { request, after } of prepared) {
          try {
            request.resolve(after());
          } catch (err) {
            request.reject(err);
          }
        }
      }
    } finally {
      this.#writing = false;
    }
  }

  async #writeBatch(ops: readonly BatchOp[]): Promise<void> {
    const batch = this.#db.batch();
    try {
      for (let i = 0; i < ops.length; i++) {
        const op = ops[i]!;
        if (op.type === 'put') batch.put(op.key, op.value);
        else batch.del(op.key);
        if ((i + 1) % OPS_PER_SLICE === 0 && i + 1 < ops.length) await new Promise((resolve) => setImmediate(resolve));
      }
      await batch.write({ sync: this.#options.fsync });
    } catch (err) {
      await batch.close().catch(() => undefined);
      throw err;
    }
  }

  async #whenIdle(): Promise<void> {
    while (this.#writing || this.#queue.length > 0) await new Promise((resolve) => setImmediate(resolve));
  }

  #failedError(): MillraceError {
    return new MillraceError('MILLRACE_LOG_WRITE_FAILED', `a write to the log failed: ${errorMessage(this.#failure)}`, {
      cause: this.#failure,
    });
  }

  // ---------------------------------------------------------------- helpers

  #checkOpen(): void {
    if (this.#state === 'open') return;
    if (this.#state === 'failed') throw this.#failedError();
    throw new MillraceError(
      this.#state === 'closed' ? 'MILLRACE_LOG_CLOSED' : 'MILLRACE_LOG_NOT_OPEN',
      `the log at ${this.#options.path} is ${this.#state === 'closed' ? 'closed' : 'not open'}`,
    );
  }

  #requireTopic(name: string): TopicLog {
    const topic = this.#topics.get(name);
    if (topic === undefined) {
      throw new MillraceError('MILLRACE_TOPIC_UNKNOWN', `topic ${name} does not exist`, { details: { topic: name } });
    }
    return topic;
  }

  #requirePartition(name: string, partition: number): { topic: TopicLog; partition: PartitionLog } {
    const topic = this.#requireTopic(name);
    const p = topic.partitions[partition];
    if (p === undefined || !Number.isInteger(partition)) {
      throw new MillraceError(
        'MILLRACE_PARTITION_UNKNOWN',
        `topic ${name} has ${topic.partitions.length} partitions; partition ${partition} does not exist`,
        { details: { topic: name, partition } },
      );
    }
    return { topic, partition: p };
  }
}

function publish(partition: PartitionLog): void {
  partition.highWatermark = partition.end;
  partition.visibleStart = partition.start;
  wake(partition);
}

function wake(partition: PartitionLog): void {
  if (partition.waiters.size === 0) return;
  const waiters = [...partition.waiters];
  partition.waiters.clear();
  for (const waiter of waiters) waiter();
}

function waitForData(partition: PartitionLog, from: number, maxWaitMs: number, signal?: AbortSignal): Promise<void> {
  if (partition.highWatermark > from || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      partition.waiters.delete(done);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, maxWaitMs);
    partition.waiters.add(done);
    signal?.addEventListener('abort', done, { once: true });
  });
}

function validateSpec(spec: TopicSpec): Omit<StoredTopic, 'id'> {
  if (typeof spec.name !== 'string' || !TOPIC_NAME_PATTERN.test(spec.name) || spec.name === '.' || spec.name === '..') {
    throw new MillraceError(
      'MILLRACE_TOPIC_NAME_INVALID',
      `topic name ${JSON.stringify(spec.name)} is invalid: use 1 to 249 of a-z A-Z 0-9 . _ -`,
    );
  }
  if (!Number.isInteger(spec.partitions) || spec.partitions < 1 || spec.partitions > 10_000) {
    throw new MillraceError('MILLRACE_TOPIC_CONFIG_INVALID', `partitions must be an integer from 1 to 10000, got ${spec.partitions}`);
  }
  const cleanupPolicy = spec.cleanupPolicy ?? 'delete';
  if (!['delete', 'compact', 'compact,delete'].includes(cleanupPolicy)) {
    throw new MillraceError('MILLRACE_TOPIC_CONFIG_INVALID', `cleanupPolicy must be delete, compact or compact,delete`);
  }
  for (const [name, value] of [['retentionMs', spec.retentionMs], ['retentionBytes', spec.retentionBytes], ['deleteRetentionMs', spec.deleteRetentionMs]] as const) {
    if (value !== undefined && value !== null && (!Number.isSafeInteger(value) || value < 0)) {
      throw new MillraceError('MILLRACE_TOPIC_CONFIG_INVALID', `${name} must be a non-negative integer or null, got ${value}`);
    }
  }
  return {
    name: spec.name,
    partitions: spec.partitions,
    cleanupPolicy,
    retentionMs: spec.retentionMs ?? null,
    retentionBytes: spec.retentionBytes ?? null,
    deleteRetentionMs: spec.deleteRetentionMs ?? DEFAULT_DELETE_RETENTION_MS,
  };
}

function toInfo(stored: Omit<StoredTopic, 'id'>): TopicInfo {
  return Object.freeze({
    name: stored.name,
    partitions: stored.partitions,
    cleanupPolicy: stored.cleanupPolicy,
    retentionMs: stored.retentionMs,
    retentionBytes: stored.retentionBytes,
    deleteRetentionMs: stored.deleteRetentionMs,
    internal: stored.name.startsWith('_') || stored.name.endsWith('-changelog') || stored.name.endsWith('-repartition'),
  });
}
