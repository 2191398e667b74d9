/**
 * The parts of kafkajs 2.2.4 that its public API does not expose, typed, in one place. kafkajs is unmaintained, so
 * these internals will not move; the rest of `engine/log/kafka` reaches them only through this module.
 *
 * Why each is needed:
 * - `Cluster` (src/cluster): a connection set whose metadata this module controls. The public clients each track a
 *   set of "target topics" and refresh metadata for exactly those, so one topic deleted elsewhere makes every later
 *   refresh fail. Clusters made here never track topics: their metadata covers every topic, and a topic missing from
 *   it triggers one refresh (see `createCluster`).
 * - `createProducer` (src/producer): producers on such a cluster, so every transactional id of a process shares one
 *   set of connections, and re-initialising a transactional id (fencing) is one InitProducerId, not a new client.
 * - Fetch v11 (src/protocol/requests/fetch/v11) with a response decoder of our own: kafkajs flattens record batches
 *   into messages, losing empty batches (left by compaction) and batch boundaries, which a random-access reader needs
 *   to step over aborted records and transaction markers. Batches themselves are decoded by kafkajs's decoder.
 * - Broker requests kafkajs only uses inside its consumer and admin (ListOffsets, OffsetCommit, OffsetFetch,
 *   DeleteRecords, Metadata), sent to the right broker without the admin client's topic tracking and retries.
 */
import { createRequire } from 'node:module';
import type { Logger as KafkaLogger, Producer, RetryOptions, logCreator as LogCreator } from 'kafkajs';

const require = createRequire(import.meta.url);

export const ISOLATION_READ_UNCOMMITTED = 0;
export const ISOLATION_READ_COMMITTED = 1;
/** ListOffsets timestamps that mean "the log start" and "the end". */
export const EARLIEST_OFFSET = -2;
export const LATEST_OFFSET = -1;
const FETCH_API_KEY = 1;
const FETCH_VERSION = 11;
const COORDINATOR_TYPE_GROUP = 0;

export interface PartitionMetadataEntry {
  readonly partitionId: number;
  readonly leader: number;
  readonly partitionErrorCode: number;
}

export interface TopicMetadataEntry {
  readonly topic: string;
  readonly topicErrorCode: number;
  readonly partitionMetadata: readonly PartitionMetadataEntry[];
}

export interface MetadataResponse {
  readonly topicMetadata: readonly TopicMetadataEntry[];
}

export interface ListOffsetsResponse {
  readonly responses: ReadonlyArray<{
    readonly topic: string;
    readonly partitions: ReadonlyArray<{ readonly partition: number; readonly offset: string; readonly errorCode: number }>;
  }>;
}

export interface OffsetFetchResponse {
  readonly responses: ReadonlyArray<{
    readonly topic: string;
    readonly partitions: ReadonlyArray<{
      readonly partition: number;
      readonly offset: string;
      readonly metadata: string | null;
      readonly errorCode: number;
    }>;
  }>;
}

export interface OffsetCommitPartition {
  readonly partition: number;
  readonly offset: string;
  readonly metadata: string | null;
}

interface ProtocolRequest {
  readonly request: { readonly apiKey: number; readonly apiVersion: number; readonly apiName: string };
  readonly response: { decode(raw: Buffer): Promise<unknown>; parse(data: unknown): Promise<unknown> };
  readonly requestTimeout: number;
}

export interface Broker {
  readonly nodeId: number | string | null;
  readonly versions: Record<string, { readonly minVersion: number; readonly maxVersion: number }> | null;
  readonly connectionPool: { send(request: ProtocolRequest): Promise<unknown> };
  disconnect(): Promise<void>;
  metadata(topics: string[]): Promise<MetadataResponse>;
  listOffsets(request: {
    isolationLevel: number;
    topics: Array<{ topic: string; partitions: Array<{ partition: number; timestamp: number }> }>;
  }): Promise<ListOffsetsResponse>;
  offsetCommit(request: {
    groupId: string;
    groupGenerationId: number;
    memberId: string;
    retentionTime?: number;
    topics: Array<{ topic: string; partitions: OffsetCommitPartition[] }>;
  }): Promise<unknown>;
  offsetFetch(request: { groupId: string; topics: Array<{ topic: string; partitions: Array<{ partition: number }> }> }): Promise<OffsetFetchResponse>;
  deleteRecords(request: {
    topics: Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }>;
    timeout?: number;
  }): Promise<unknown>;
}

export interface Cluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  refreshMetadata(): Promise<void>;
  findBroker(node: { nodeId: string }): Promise<Broker>;
  findGroupCoordinator(group: { groupId: string; coordinatorType?: number }): Promise<Broker>;
  addMultipleTargetTopics(topics: string[]): Promise<void>;
  readonly brokerPool: {
    readonly metadata: MetadataResponse | null;
    findConnectedBroker(): Promise<Broker>;
  };
}

export type KafkaInternalLogger = KafkaLogger;

const KafkaCluster = require('kafkajs/src/cluster') as new (options: Record<string, unknown>) => Cluster;
const createKafkaProducer = require('kafkajs/src/producer') as (options: Record<string, unknown>) => Producer;
const { createLogger: createKafkaLogger } = require('kafkajs/src/loggers') as {
  createLogger(options: { level: number; logCreator: LogCreator }): KafkaInternalLogger;
};
const defaultSocketFactory = require('kafkajs/src/network/socketFactory') as () => unknown;
const fetchRequestV11 = require('kafkajs/src/protocol/requests/fetch/v11/request') as (request: Record<string, unknown>) => ProtocolRequest['request'];
const KafkaDecoder = require('kafkajs/src/protocol/decoder') as new (buffer: Buffer) => Decoder;
const decodeRecordBatch = require('kafkajs/src/protocol/recordBatch/v0/decoder') as (decoder: Decoder) => Promise<DecodedBatch>;

interface Long {
  toString(): string;
}

interface Decoder {
  offset: number;
  readonly buffer: Buffer;
  readInt8(): number;
  readInt16(): number;
  readInt32(): number;
  readInt64(): Long;
  readString(): string;
  readBytes(length?: number): Buffer;
  canReadBytes(length: number): boolean;
  readArray<T>(reader: (decoder: Decoder) => T): T[];
  readArrayAsync<T>(reader: (decoder: Decoder) => Promise<T>): Promise<T[]>;
}

interface DecodedRecord {
  readonly offset: string;
  readonly timestamp: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Record<string, Buffer | Buffer[]>;
}

interface DecodedBatch {
  readonly firstOffset: string;
  readonly lastOffsetDelta: number;
  readonly producerId: string;
  readonly inTransaction: boolean;
  readonly isControlBatch: boolean;
  readonly records: readonly DecodedRecord[];
}

export function createLogger(level: number, logCreator: LogCreator): KafkaInternalLogger {
  return createKafkaLogger({ level, logCreator });
}

export interface ClusterOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly logger: KafkaInternalLogger;
  readonly retry: RetryOptions;
  readonly connectionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly metadataMaxAgeMs: number;
}

/**
 * A kafkajs cluster that never tracks target topics: each metadata refresh covers every topic, so a topic deleted
 * by anyone just disappears from it. Producers on it ask for topics through `addMultipleTargetTopics`; here that
 * refreshes once when one of them is not in the metadata yet, instead of adding it to a set that is refreshed forever.
 */
export function createCluster(options: ClusterOptions): Cluster {
  const cluster = new KafkaCluster({
    logger: options.logger,
    retry: options.retry,
    offsets: new Map(),
    socketFactory: defaultSocketFactory(),
    brokers: [...options.brokers],
    clientId: options.clientId,
    connectionTimeout: options.connectionTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
    enforceRequestTimeout: true,
    metadataMaxAge: options.metadataMaxAgeMs,
    allowAutoTopicCreation: false,
    maxInFlightRequests: null,
    instrumentationEmitter: null,
  });
  cluster.addMultipleTargetTopics = async (topics: string[]): Promise<void> => {
    const known = cluster.brokerPool.metadata?.topicMetadata;
    if (known !== undefined && topics.every((topic) => known.some((t) => t.topic === topic))) return;
    await cluster.refreshMetadata();
  };
  return cluster;
}

/** A producer on a cluster of ours (idempotent; transactional when given an id). */
export function createProducer(options: {
  readonly cluster: Cluster;
  readonly logger: KafkaInternalLogger;
  readonly retry: RetryOptions;
  readonly transactionalId?: string;
  readonly transactionTimeoutMs: number;
}): Producer {
  return createKafkaProducer({
    cluster: options.cluster,
    logger: options.logger,
    retry: options.retry,
    idempotent: true,
    transactionalId: options.transactionalId,
    transactionTimeout: options.transactionTimeoutMs,
  });
}

// ---------------------------------------------------------------- fetch

export interface FetchedBatch {
  readonly baseOffset: number;
  readonly lastOffset: number;
  readonly producerId: string;
  readonly inTransaction: boolean;
  readonly isControl: boolean;
  readonly records: readonly DecodedRecord[];
}

export interface FetchedPartition {
  readonly topic: string;
  readonly partition: number;
  readonly errorCode: number;
  readonly highWatermark: number;
  readonly lastStableOffset: number;
  readonly logStartOffset: number;
  readonly abortedTransactions: ReadonlyArray<{ readonly producerId: string; readonly firstOffset: number }>;
  readonly batches: readonly FetchedBatch[];
}

export interface FetchRequest {
  readonly isolationLevel: number;
  readonly maxWaitTimeMs: number;
  readonly minBytes: number;
  readonly maxBytes: number;
  readonly partitions: ReadonlyArray<{ readonly topic: string; readonly partition: number; readonly fetchOffset: number; readonly maxBytes: number }>;
}

/** A v2 record batch header: base offset (8) + length (4) + leader epoch (4) + magic (1) … 61 bytes in all. */
const BATCH_LENGTH_PREFIX = 12;
const MAGIC_OFFSET = 16;
const RECORD_BATCH_MAGIC = 2;

/**
 * Sends one Fetch v11 to `broker` and decodes every complete record batch of every partition, keeping batch
 * boundaries, empty batches and control batches. Partition errors come back as `errorCode`, not as exceptions.
 */
export async function fetchPartitions(broker: Broker, request: FetchRequest): Promise<FetchedPartition[]> {
  const supported = broker.versions?.[String(FETCH_API_KEY)];
  if (supported !== undefined && (supported.maxVersion < FETCH_VERSION || supported.minVersion > FETCH_VERSION)) {
    throw new TypeError(
      `the broker speaks Fetch v${supported.minVersion}–v${supported.maxVersion}; KafkaLog needs Fetch v${FETCH_VERSION} (Kafka 2.3 or newer)`,
    );
  }
  const byTopic = new Map<string, Array<{ partition: number; fetchOffset: string; logStartOffset: number; maxBytes: number }>>();
  for (const p of request.partitions) {
    let list = byTopic.get(p.topic);
    if (list === undefined) byTopic.set(p.topic, (list = []));
    list.push({ partition: p.partition, fetchOffset: String(p.fetchOffset), logStartOffset: -1, maxBytes: p.maxBytes });
  }
  const protocolRequest: ProtocolRequest = {
    request: fetchRequestV11({
      replicaId: -1,
      maxWaitTime: request.maxWaitTimeMs,
      minBytes: request.minBytes,
      maxBytes: request.maxBytes,
      isolationLevel: request.isolationLevel,
      topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })),
      rackId: '',
    }),
    response: { decode: decodeFetchResponse, parse: async (data) => data },
    // The broker may hold the request for maxWaitTime before answering.
    requestTimeout: request.maxWaitTimeMs + 30_000,
  };
  try {
    return (await broker.connectionPool.send(protocolRequest)) as FetchedPartition[];
  } catch (err) {
    // As kafkajs's broker does: a closed connection is dropped, to be re-opened by the next request.
    if ((err as { name?: string }).name === 'KafkaJSConnectionClosedError') await broker.disconnect().catch(() => undefined);
    throw err;
  }
}

async function decodeFetchResponse(raw: Buffer): Promise<FetchedPartition[]> {
  const decoder = new KafkaDecoder(raw);
  decoder.readInt32(); // throttle_time_ms
  const errorCode = decoder.readInt16();
  decoder.readInt32(); // session_id
  if (errorCode !== 0) {
    throw Object.assign(new Error(`fetch failed with error code ${errorCode}`), { name: 'KafkaFetchError', errorCode });
  }
  const topics = await decoder.readArrayAsync(async (d) => {
    const topic = d.readString();
    return d.readArrayAsync(async (p): Promise<FetchedPartition> => {
      const partition = p.readInt32();
      const partitionError = p.readInt16();
      const highWatermark = Number(p.readInt64().toString());
      const lastStableOffset = Number(p.readInt64().toString());
      const logStartOffset = Number(p.readInt64().toString());
      const abortedTransactions = p.readArray((a) => ({
        producerId: a.readInt64().toString(),
        firstOffset: Number(a.readInt64().toString()),
      }));
      p.readInt32(); // preferred_read_replica
      const size = p.readInt32();
      const batches = size > 0 ? await decodeBatches(p.readBytes(size)) : [];
      return { topic, partition, errorCode: partitionError, highWatermark, lastStableOffset, logStartOffset, abortedTransactions, batches };
    });
  });
  return topics.flat();
}

async function decodeBatches(records: Buffer): Promise<FetchedBatch[]> {
  const decoder = new KafkaDecoder(records);
  const batches: FetchedBatch[] = [];
  while (decoder.canReadBytes(BATCH_LENGTH_PREFIX)) {
    const start = decoder.offset;
    const length = records.readInt32BE(start + 8);
    // The last batch may be cut off by the fetch size limit: it is sent again by the next fetch.
    if (!decoder.canReadBytes(BATCH_LENGTH_PREFIX + length) || length < MAGIC_OFFSET - 8) break;
    const magic = records.readInt8(start + MAGIC_OFFSET);
    if (magic !== RECORD_BATCH_MAGIC) {
      throw new TypeError(`record batch at offset ${records.readBigInt64BE(start)} has message format v${magic}; only v2 is supported`);
    }
    const batch = await decodeRecordBatch(decoder);
    const baseOffset = Number(batch.firstOffset);
    batches.push({
      baseOffset,
      lastOffset: baseOffset + batch.lastOffsetDelta,
      producerId: batch.producerId,
      inTransaction: batch.inTransaction,
      isControl: batch.isControlBatch,
      records: batch.records,
    });
  }
  return batches;
}

export { COORDINATOR_TYPE_GROUP };
