import kafkajs from 'kafkajs';
import type { Admin, Kafka, Producer, RetryOptions } from 'kafkajs';
import { MillraceError, errorMessage } from '../../errors.js';
import type { Logger } from '../../logger.js';
import {
  DEFAULT_DELETE_RETENTION_MS,
  MAX_OFFSET_METADATA_BYTES,
  type AppendRecord,
  type AppendResult,
  type CleanupPolicy,
  type Log,
  type LogCapabilities,
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
import { TopicDirectory } from './directory.js';
import { checkOffset, isValidTopicName, normalisePolicy, nullableLimit, topicInfo, validateSpec, type ValidSpec } from './topics.js';
import { fenced, fromKafkaError, hasKafkaType, isRetriableKafkaError, partitionUnknown, topicUnknown } from './errors.js';
import {
  COORDINATOR_TYPE_GROUP,
  ISOLATION_READ_COMMITTED,
  LATEST_OFFSET,
  createCluster,
  createLogger,
  createProducer,
  type Broker,
  type Cluster,
  type KafkaInternalLogger,
  type MetadataResponse,
} from './kafkajs-internals.js';
import { kafkaClientLevel, pinoLogCreator, type KafkaClientLogLevel } from './logging.js';
import { PartitionReader } from './reader.js';
import { KafkaSubscription, type RebalanceEvent } from './subscription.js';
import { TransactionalWriters, planAppend, recordSize, sendPlan, type AppendPlan, type GroupOffsets, type PlacedRecord } from './writer.js';

export type { RebalanceEvent } from './subscription.js';
export type { KafkaClientLogLevel } from './logging.js';

export interface KafkaLogOptions {
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: readonly string[];
  readonly clientId?: string;
  /** Where the log and kafkajs write their logs; without one, both are silent. */
  readonly logger?: Logger;
  /** The most detailed kafkajs log entries forwarded to `logger` (default `warn`). */
  readonly logLevel?: KafkaClientLogLevel;
  readonly connectionTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  /**
   * How long a transaction may stay open before the coordinator aborts it (Kafka's `transaction.timeout.ms`; 10 s as in
   * Kafka Streams): the longest a crashed writer can hold back `read_committed` readers before its successor fences it.
   */
  readonly transactionTimeoutMs?: number;
  /** A member that sends no heartbeat for this long leaves the group (Kafka's `session.timeout.ms`). */
  readonly sessionTimeoutMs?: number;
  /** About a third of `sessionTimeoutMs`. */
  readonly heartbeatIntervalMs?: number;
  /** How long the coordinator waits for members to rejoin during a rebalance. */
  readonly rebalanceTimeoutMs?: number;
  /** How long `subscribe` waits for the first assignment. */
  readonly joinTimeoutMs?: number;
  /** Longest broker-side wait of a group member's fetch; a member notices a rebalance within about this. */
  readonly consumerMaxWaitMs?: number;
  /** Longest broker-side wait of one long poll of `read` (a waiting read is answered within about this of its end). */
  readonly longPollSliceMs?: number;
  /** A subscription pauses fetching a partition once this many records wait in its buffer. */
  readonly maxBufferedRecordsPerPartition?: number;
  /** … or once this many bytes of keys and values wait in it (a fetch brings at most a quarter of this per partition). */
  readonly maxBufferedBytesPerPartition?: number;
  /** Most bytes of one partition in one produce request (below the broker's `message.max.bytes`). */
  readonly maxRequestBytes?: number;
  /** Most bytes one `read` asks the broker for. */
  readonly maxFetchBytes?: number;
  /** Replicas of topics this log creates; by default the broker's `default.replication.factor`. */
  readonly replicationFactor?: number;
  /** Extra broker configs for every topic this log creates (e.g. `segment.ms`); the spec's own settings win. */
  readonly topicConfig?: Readonly<Record<string, string>>;
  /** Attempts of a retriable request before it fails (connection loss, leader moves). */
  readonly retries?: number;
  /** Told about each rebalance of a subscription, once its new assignment is handed out. */
  readonly onRebalance?: (event: RebalanceEvent) => void;
}

type ResolvedOptions = Required<Omit<KafkaLogOptions, 'logger' | 'replicationFactor' | 'onRebalance'>> &
  Pick<KafkaLogOptions, 'logger' | 'replicationFactor' | 'onRebalance'>;

const TOPIC_RESOURCE = 2;
const TOPIC_CONFIGS = ['cleanup.policy', 'retention.ms', 'retention.bytes', 'delete.retention.ms'];
const TOPIC_CONFIG_ERRORS = ['INVALID_PARTITIONS', 'INVALID_CONFIG', 'INVALID_REPLICATION_FACTOR', 'POLICY_VIOLATION', 'INVALID_REQUEST'];
const GROUP_MEMBER_ERRORS = ['UNKNOWN_MEMBER_ID', 'ILLEGAL_GENERATION', 'REBALANCE_IN_PROGRESS'];
const COORDINATOR_ERRORS = ['NOT_COORDINATOR', 'NOT_COORDINATOR_FOR_GROUP', 'COORDINATOR_LOAD_IN_PROGRESS', 'GROUP_LOAD_IN_PROGRESS', 'COORDINATOR_NOT_AVAILABLE', 'GROUP_COORDINATOR_NOT_AVAILABLE'];
/** How long `deleteTopic` waits for the deletion to show in metadata. */
const DELETE_VISIBLE_TIMEOUT_MS = 30_000;
const METADATA_MAX_AGE_MS = 300_000;
/** Longest wait for a committed transaction's markers (normally milliseconds). */
const VISIBILITY_TIMEOUT_MS = 10_000;

/**
 * `Log` on Apache Kafka through kafkajs. Topics, offsets and transactions are the broker's; retention and compaction
 * run on the broker's schedule. Reads are `read_committed` random access; group members read through a
 * `KafkaSubscription`. See `kafkajs-internals.ts` for what this needs beyond kafkajs's public API.
 *
 * Where Kafka differs from the embedded log:
 * - retention and compaction act on closed segments only, when the broker gets to them (`runMaintenance` reports 0);
 * - a partition's end (`partitionOffsets`, `highWatermark`) is its last stable offset: records of an open
 *   transaction are not counted until it commits;
 * - a transaction is buffered until `commit`; its `commit` resolves once the commit markers are written, so its
 *   records and offsets can be read at once;
 * - `commitOffsets` outside a transaction is refused (`MILLRACE_OFFSET_INVALID`) while the group has members;
 * - offset metadata committed as `''` reads back as absent (Kafka stores "no metadata" as the empty string).
 */
export class KafkaLog implements Log {
  readonly kind = 'kafka' as const;
  readonly capabilities: LogCapabilities = { atomicLocalState: false, localMaintenance: false };

  readonly #options: ResolvedOptions;
  readonly #logger: Logger | undefined;
  readonly #kafkaLogger: KafkaInternalLogger;
  readonly #retry: RetryOptions;
  readonly #partitioner = new Partitioner();
  readonly #client: Kafka;
  readonly #admin: Admin;
  /** Reads, metadata, offsets. */
  readonly #dataCluster: Cluster;
  /** Long polls only (a broker serves one request per connection at a time). */
  readonly #pollCluster: Cluster;
  /** Every producer of this log: the idempotent one and one transactional producer per transactional id. */
  readonly #writeCluster: Cluster;
  readonly #directory: TopicDirectory;
  readonly #reader: PartitionReader;
  readonly #transactions: TransactionalWriters;
  #producer: Producer | undefined;
  readonly #policies = new Map<string, CleanupPolicy>();
  readonly #subscriptions = new Set<KafkaSubscription>();
  #replicationFactor: number | undefined;
  #state: 'new' | 'opening' | 'open' | 'closed' = 'new';

  constructor(options: KafkaLogOptions) {
    this.#options = resolveOptions(options);
    this.#logger = options.logger?.child({ component: 'kafka-log' });
    const logCreator = pinoLogCreator(options.logger);
    const level = options.logger === undefined ? 0 : kafkaClientLevel(this.#options.logLevel);
    this.#kafkaLogger = createLogger(level, logCreator);
    this.#retry = { retries: this.#options.retries, initialRetryTime: 100, maxRetryTime: 5_000, factor: 0.2, multiplier: 2 };
    const clusterOptions = {
      brokers: this.#options.brokers,
      clientId: this.#options.clientId,
      logger: this.#kafkaLogger,
      retry: this.#retry,
      connectionTimeoutMs: this.#options.connectionTimeoutMs,
      requestTimeoutMs: this.#options.requestTimeoutMs,
      metadataMaxAgeMs: METADATA_MAX_AGE_MS,
    };
    this.#dataCluster = createCluster(clusterOptions);
    this.#pollCluster = createCluster(clusterOptions);
    this.#writeCluster = createCluster(clusterOptions);
    this.#directory = new TopicDirectory(this.#dataCluster);
    this.#reader = new PartitionReader({
      directory: this.#directory,
      pollCluster: this.#pollCluster,
      pollSliceMs: this.#options.longPollSliceMs,
      maxFetchBytes: this.#options.maxFetchBytes,
    });
    this.#client = new kafkajs.Kafka({
      brokers: [...this.#options.brokers],
      clientId: this.#options.clientId,
      connectionTimeout: this.#options.connectionTimeoutMs,
      requestTimeout: this.#options.requestTimeoutMs,
      retry: this.#retry,
      logLevel: level,
      logCreator,
    });
    this.#admin = this.#client.admin({ retry: this.#retry });
    this.#transactions = new TransactionalWriters({
      requestTimeoutMs: this.#options.requestTimeoutMs,
      create: async (transactionalId) => {
        const producer = this.#newProducer(transactionalId);
        await producer.connect();
        return producer;
      },
    });
  }

  get brokers(): readonly string[] {
    return this.#options.brokers;
  }

  async open(): Promise<void> {
    if (this.#state === 'open') return;
    if (this.#state !== 'new') {
      throw new MillraceError('MILLRACE_LOG_CLOSED', `the Kafka log at ${this.#options.brokers.join(',')} is ${this.#state}`);
    }
    this.#state = 'opening';
    try {
      await Promise.all(
        [this.#dataCluster, this.#pollCluster, this.#writeCluster].map(async (cluster) => {
          await cluster.connect();
          await cluster.refreshMetadata();
        }),
      );
      await this.#admin.connect();
      const producer = this.#newProducer(undefined);
      await producer.connect();
      this.#producer = producer;
      this.#state = 'open';
    } catch (err) {
      this.#state = 'new';
      await this.#disconnectAll();
      throw new MillraceError(
        'MILLRACE_LOG_UNAVAILABLE',
        `could not reach Kafka at ${this.#options.brokers.join(',')}: ${errorMessage(err)}; check that the brokers run and the addresses are right`,
        { cause: err, retriable: true },
      );
    }
    this.#logger?.info({ brokers: this.#options.brokers }, 'connected to Kafka');
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    const wasOpen = this.#state === 'open';
    this.#state = 'closed';
    if (!wasOpen) return;
    await Promise.allSettled([...this.#subscriptions].map((s) => s.close()));
    await this.#transactions.idle();
    this.#reader.close();
    await this.#disconnectAll();
  }

  async #disconnectAll(): Promise<void> {
    await Promise.allSettled([
      this.#admin.disconnect(),
      this.#dataCluster.disconnect(),
      this.#pollCluster.disconnect(),
      this.#writeCluster.disconnect(),
    ]);
  }

  #newProducer(transactionalId: string | undefined): Producer {
    return createProducer({
      cluster: this.#writeCluster,
      logger: this.#kafkaLogger,
      retry: this.#retry,
      ...(transactionalId === undefined ? {} : { transactionalId }),
      transactionTimeoutMs: this.#options.transactionTimeoutMs,
    });
  }

  // ---------------------------------------------------------------- topics

  async createTopic(spec: TopicSpec): Promise<TopicInfo> {
    this.#checkOpen();
    const valid = validateSpec(spec);
    await this.#create(valid);
    return this.describeTopic(valid.name);
  }

  async ensureTopic(spec: TopicSpec): Promise<TopicInfo> {
    this.#checkOpen();
    const valid = validateSpec(spec);
    if ((await this.#topicMetadata(valid.name)) === undefined) {
      try {
        await this.#create(valid);
      } catch (err) {
        // Created by someone else meanwhile: compare with theirs.
        if (!(err instanceof MillraceError) || err.code !== 'MILLRACE_TOPIC_EXISTS') throw err;
      }
    }
    const existing = await this.describeTopic(valid.name);
    if (existing.partitions !== valid.partitions) {
      throw new MillraceError(
        'MILLRACE_TOPIC_CONFIG_INVALID',
        `topic ${valid.name} exists with ${existing.partitions} partitions, not ${valid.partitions}`,
        { details: { topic: valid.name } },
      );
    }
    return existing;
  }

  async #create(spec: ValidSpec): Promise<void> {
    const configEntries = new Map(Object.entries(this.#options.topicConfig));
    configEntries.set('cleanup.policy', spec.cleanupPolicy);
    configEntries.set('retention.ms', String(spec.retentionMs ?? -1));
    configEntries.set('retention.bytes', String(spec.retentionBytes ?? -1));
    configEntries.set('delete.retention.ms', String(spec.deleteRetentionMs));
    let created: boolean;
    try {
      created = await this.#admin.createTopics({
        waitForLeaders: true,
        timeout: this.#options.requestTimeoutMs,
        topics: [
          {
            topic: spec.name,
            numPartitions: spec.partitions,
            replicationFactor: await this.#replication(),
            configEntries: [...configEntries].map(([name, value]) => ({ name, value })),
          },
        ],
      });
    } catch (err) {
      if (hasKafkaType(err, 'TOPIC_ALREADY_EXISTS')) created = false;
      else if (hasKafkaType(err, 'INVALID_TOPIC_EXCEPTION')) {
        throw new MillraceError('MILLRACE_TOPIC_NAME_INVALID', `the broker refused topic name ${JSON.stringify(spec.name)}: ${errorMessage(err)}`, {
          cause: err,
        });
      } else if (hasKafkaType(err, ...TOPIC_CONFIG_ERRORS)) {
        throw new MillraceError('MILLRACE_TOPIC_CONFIG_INVALID', `the broker refused topic ${spec.name}: ${errorMessage(err)}`, {
          cause: err,
          details: { topic: spec.name },
        });
      } else throw fromKafkaError(err, `creating topic ${spec.name}`, 'MILLRACE_INTERNAL');
    }
    if (!created) {
      throw new MillraceError('MILLRACE_TOPIC_EXISTS', `topic ${spec.name} already exists`, { details: { topic: spec.name } });
    }
    this.#policies.set(spec.name, spec.cleanupPolicy);
    await this.#directory.refresh();
  }

  /** The broker's `default.replication.factor`, read once, unless the options name one. */
  async #replication(): Promise<number> {
    if (this.#options.replicationFactor !== undefined) return this.#options.replicationFactor;
    if (this.#replicationFactor !== undefined) return this.#replicationFactor;
    const { brokers } = await this.#admin.describeCluster();
    const node = brokers[0];
    let factor = 1;
    if (node !== undefined) {
      const described = await this.#admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: 4, name: String(node.nodeId), configNames: ['default.replication.factor'] }],
      });
      const value = described.resources[0]?.configEntries.find((e) => e.configName === 'default.replication.factor')?.configValue;
      if (value !== undefined && Number.parseInt(value, 10) > 0) factor = Math.min(Number.parseInt(value, 10), brokers.length);
    }
    this.#replicationFactor = factor;
    return factor;
  }

  async deleteTopic(name: string): Promise<void> {
    this.#checkOpen();
    if (!isValidTopicName(name)) throw topicUnknown(name);
    try {
      await this.#admin.deleteTopics({ topics: [name], timeout: this.#options.requestTimeoutMs });
    } catch (err) {
      if (hasKafkaType(err, 'UNKNOWN_TOPIC_OR_PARTITION')) throw topicUnknown(name, err);
      throw fromKafkaError(err, `deleting topic ${name}`, 'MILLRACE_INTERNAL');
    }
    this.#policies.delete(name);
    // Deletion is asynchronous on the broker: answer once metadata no longer shows the topic.
    const deadline = Date.now() + DELETE_VISIBLE_TIMEOUT_MS;
    while ((await this.#topicMetadata(name)) !== undefined && Date.now() < deadline) await sleep(50);
    await this.#directory.refresh();
  }

  async describeTopic(name: string): Promise<TopicInfo> {
    this.#checkOpen();
    if (!isValidTopicName(name)) throw topicUnknown(name);
    const metadata = await this.#topicMetadata(name);
    if (metadata === undefined) throw topicUnknown(name);
    const [info] = await this.#describe([{ name, partitions: metadata.partitionMetadata.length }]);
    if (info === undefined) throw topicUnknown(name);
    return info;
  }

  async listTopics(): Promise<TopicInfo[]> {
    this.#checkOpen();
    const metadata = await this.#allMetadata();
    const topics = metadata.topicMetadata
      .filter((t) => !t.topic.startsWith('__'))
      .map((t) => ({ name: t.topic, partitions: t.partitionMetadata.length }));
    const infos = await this.#describe(topics);
    return infos.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Topic configs read back from the broker; topics deleted meanwhile are left out. */
  async #describe(topics: ReadonlyArray<{ name: string; partitions: number }>): Promise<TopicInfo[]> {
    if (topics.length === 0) return [];
    let resources: Awaited<ReturnType<Admin['describeConfigs']>>['resources'];
    try {
      ({ resources } = await this.#admin.describeConfigs({
        includeSynonyms: false,
        resources: topics.map((t) => ({ type: TOPIC_RESOURCE, name: t.name, configNames: TOPIC_CONFIGS })),
      }));
    } catch (err) {
      if (topics.length === 1 && hasKafkaType(err, 'UNKNOWN_TOPIC_OR_PARTITION')) return [];
      if (topics.length > 1 && hasKafkaType(err, 'UNKNOWN_TOPIC_OR_PARTITION')) {
        const one = await Promise.all(topics.map((t) => this.#describe([t])));
        return one.flat();
      }
      throw fromKafkaError(err, 'reading topic configs', 'MILLRACE_INTERNAL');
    }
    const out: TopicInfo[] = [];
    for (const topic of topics) {
      const resource = resources.find((r) => r.resourceName === topic.name);
      if (resource === undefined || resource.errorCode !== 0) continue;
      const config = new Map(resource.configEntries.map((e) => [e.configName, e.configValue]));
      const policy = normalisePolicy(config.get('cleanup.policy'));
      this.#policies.set(topic.name, policy);
      out.push(
        topicInfo({
          name: topic.name,
          partitions: topic.partitions,
          cleanupPolicy: policy,
          retentionMs: nullableLimit(config.get('retention.ms')),
          retentionBytes: nullableLimit(config.get('retention.bytes')),
          deleteRetentionMs: Number(config.get('delete.retention.ms') ?? DEFAULT_DELETE_RETENTION_MS),
        }),
      );
    }
    return out;
  }

  /** Fresh metadata of one topic, straight from a broker; `undefined` if it does not exist. */
  async #topicMetadata(name: string): Promise<MetadataResponse['topicMetadata'][number] | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        const broker = await this.#dataCluster.brokerPool.findConnectedBroker();
        const response = await broker.metadata([name]);
        return response.topicMetadata.find((t) => t.topic === name);
      } catch (err) {
        if (hasKafkaType(err, 'UNKNOWN_TOPIC_OR_PARTITION', 'INVALID_TOPIC_EXCEPTION')) return undefined;
        if (attempt < this.#options.retries && (hasKafkaType(err, 'LEADER_NOT_AVAILABLE') || isRetriableKafkaError(err))) {
          await sleep(100 * attempt);
          continue;
        }
        throw fromKafkaError(err, `reading metadata of ${name}`, 'MILLRACE_INTERNAL');
      }
    }
  }

  async #allMetadata(): Promise<MetadataResponse> {
    for (let attempt = 1; ; attempt++) {
      try {
        const broker = await this.#dataCluster.brokerPool.findConnectedBroker();
        return await broker.metadata([]);
      } catch (err) {
        if (attempt < this.#options.retries && (hasKafkaType(err, 'LEADER_NOT_AVAILABLE') || isRetriableKafkaError(err))) {
          await sleep(100 * attempt);
          continue;
        }
        throw fromKafkaError(err, 'listing topics', 'MILLRACE_INTERNAL');
      }
    }
  }

  /** A topic's cleanup policy (cached: it decides whether records need keys). */
  async #policy(topic: string): Promise<CleanupPolicy> {
    const known = this.#policies.get(topic);
    if (known !== undefined) return known;
    const partitions = await this.#directory.partitions(topic);
    const [info] = await this.#describe([{ name: topic, partitions }]);
    if (info === undefined) throw topicUnknown(topic);
    return info.cleanupPolicy;
  }

  // ---------------------------------------------------------------- append and read

  async append(records: readonly AppendRecord[]): Promise<AppendResult[]> {
    this.#checkOpen();
    if (records.length === 0) return [];
    const plan = await this.#plan(records);
    try {
      return await sendPlan(this.#producer!, plan, this.#options.requestTimeoutMs);
    } catch (err) {
      throw await this.#appendError(err, plan);
    }
  }

  /** Places, stamps and checks every record before anything is sent: a refused request leaves no trace. */
  async #plan(records: readonly AppendRecord[]): Promise<AppendPlan> {
    const now = Date.now();
    const topics = new Map<string, { partitions: number; policy: CleanupPolicy }>();
    for (const record of records) {
      if (topics.has(record.topic)) continue;
      if (typeof record.topic !== 'string' || !isValidTopicName(record.topic)) throw topicUnknown(String(record.topic));
      const partitions = await this.#directory.partitions(record.topic);
      topics.set(record.topic, { partitions, policy: await this.#policy(record.topic) });
    }
    const placed: PlacedRecord[] = records.map((record) => {
      const topic = topics.get(record.topic)!;
      const key = record.key ?? null;
      const partition = record.partition ?? this.#partitioner.partition(record.topic, topic.partitions, key);
      if (!Number.isInteger(partition) || partition < 0 || partition >= topic.partitions) {
        throw partitionUnknown(record.topic, partition, topic.partitions);
      }
      const timestamp = record.timestamp ?? now;
      if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
        throw new MillraceError('MILLRACE_RECORD_INVALID', `timestamp must be a non-negative integer of ms, got ${timestamp}`);
      }
      if (topic.policy !== 'delete' && key === null) {
        throw new MillraceError('MILLRACE_RECORD_INVALID', `topic ${record.topic} is compacted: every record needs a key`, {
          details: { topic: record.topic },
        });
      }
      const headers = record.headers ?? {};
      return {
        topic: record.topic,
        partition,
        timestamp,
        sizeBytes: recordSize(key, record.value, headers),
        message: { key, value: record.value, partition, timestamp: String(timestamp), headers: { ...headers } },
      };
    });
    return planAppend(placed, this.#options.maxRequestBytes);
  }

  /** A failed send: a topic deleted meanwhile is reported as such; anything else as a failed write. */
  async #appendError(err: unknown, plan: AppendPlan): Promise<MillraceError> {
    if (hasKafkaType(err, 'UNKNOWN_TOPIC_OR_PARTITION') || hasName(err, 'KafkaJSMetadataNotLoaded')) {
      await this.#directory.refresh().catch(() => undefined);
      for (const topic of new Set(plan.records.map((r) => r.topic))) {
        if ((await this.#directory.find(topic).catch(() => undefined)) === undefined) {
          this.#policies.delete(topic);
          return topicUnknown(topic, err);
        }
      }
    }
    return fromKafkaError(err, 'appending records', 'MILLRACE_LOG_WRITE_FAILED');
  }

  async read(topic: string, partition: number, from: Offset, options: ReadOptions = {}): Promise<ReadBatch> {
    this.#checkOpen();
    checkOffset(from);
    if (!isValidTopicName(topic)) throw topicUnknown(topic);
    return this.#reader.read(topic, partition, from, options);
  }

  async offsetForTimestamp(topic: string, partition: number, timestampMs: number): Promise<Offset | null> {
    this.#checkOpen();
    if (!isValidTopicName(topic)) throw topicUnknown(topic);
    if (!Number.isFinite(timestampMs)) throw new RangeError(`timestampMs must be a number of ms, got ${timestampMs}`);
    const found = await this.#listOffsets(topic, [partition], Math.max(0, Math.floor(timestampMs)), ISOLATION_READ_COMMITTED);
    const at = found.get(partition);
    return at === undefined || at < 0 ? null : (at as Offset);
  }

  async partitionOffsets(topic: string): Promise<PartitionOffsets[]> {
    this.#checkOpen();
    if (!isValidTopicName(topic)) throw topicUnknown(topic);
    const partitions = Array.from({ length: await this.#directory.partitions(topic) }, (_, p) => p);
    const bounds = await this.#withTopic(topic, () => this.#reader.bounds(topic, partitions));
    return partitions.map((partition) => {
      const b = bounds.get(partition)!;
      return { partition, start: b.start as Offset, end: Math.max(b.start, b.lastStable) as Offset };
    });
  }

  async #listOffsets(topic: string, partitions: number[], timestamp: number, isolationLevel: number): Promise<Map<number, number>> {
    return this.#withTopic(topic, () => this.#reader.listOffsets(topic, partitions, timestamp, isolationLevel));
  }

  /** Runs a request about a topic; if the broker no longer knows the topic, says so with our code. */
  async #withTopic<T>(topic: string, request: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await request();
      } catch (err) {
        if (err instanceof MillraceError) throw err;
        if (hasKafkaType(err, 'UNKNOWN_TOPIC_OR_PARTITION', 'NOT_LEADER_FOR_PARTITION', 'LEADER_NOT_AVAILABLE') || isRetriableKafkaError(err)) {
          await this.#directory.refresh().catch(() => undefined);
          if ((await this.#directory.find(topic)) === undefined) throw topicUnknown(topic, err);
          if (attempt < this.#options.retries) {
            await sleep(100 * attempt);
            continue;
          }
        }
        throw fromKafkaError(err, `asking about ${topic}`, 'MILLRACE_INTERNAL');
      }
    }
  }

  // ---------------------------------------------------------------- consumer groups

  async commitOffsets(group: string, offsets: readonly TopicPartitionOffset[]): Promise<void> {
    this.#checkOpen();
    const topics = await this.#groupOffsets(group, offsets);
    if (topics.length === 0) return;
    await this.#withCoordinator(group, `committing offsets of group ${group}`, async (coordinator) => {
      try {
        await coordinator.offsetCommit({ groupId: group, groupGenerationId: -1, memberId: '', retentionTime: -1, topics });
      } catch (err) {
        if (hasKafkaType(err, ...GROUP_MEMBER_ERRORS)) {
          throw new MillraceError(
            'MILLRACE_OFFSET_INVALID',
            `group ${group} has active members: its offsets are committed by its members, in their transactions`,
            { cause: err, details: { group } },
          );
        }
        throw err;
      }
    });
  }

  async committedOffsets(group: string, topic: string): Promise<Map<number, Offset>> {
    const committed = await this.#fetchCommitted(group, topic);
    return new Map([...committed].map(([p, c]) => [p, c.offset as Offset]));
  }

  async committedMetadata(group: string, topic: string): Promise<Map<number, string>> {
    const committed = await this.#fetchCommitted(group, topic);
    const out = new Map<number, string>();
    for (const [p, c] of committed) if (c.metadata !== null && c.metadata !== '') out.set(p, c.metadata);
    return out;
  }

  async #fetchCommitted(group: string, topic: string): Promise<Map<number, { offset: number; metadata: string | null }>> {
    this.#checkOpen();
    if (!isValidTopicName(topic)) throw topicUnknown(topic);
    const partitions = await this.#directory.partitions(topic);
    const out = new Map<number, { offset: number; metadata: string | null }>();
    if (group.length === 0) return out;
    const response = await this.#withCoordinator(group, `reading committed offsets of group ${group}`, (coordinator) =>
      coordinator.offsetFetch({
        groupId: group,
        topics: [{ topic, partitions: Array.from({ length: partitions }, (_, partition) => ({ partition })) }],
      }),
    );
    for (const r of response.responses) {
      if (r.topic !== topic) continue;
      for (const p of r.partitions) {
        const at = Number(p.offset);
        if (p.errorCode === 0 && at >= 0) out.set(p.partition, { offset: at, metadata: p.metadata });
      }
    }
    return out;
  }

  /** Validates offsets to commit and groups them by topic, as OffsetCommit and TxnOffsetCommit take them. */
  async #groupOffsets(group: string, offsets: readonly TopicPartitionOffset[]): Promise<GroupOffsets['topics']> {
    if (typeof group !== 'string' || group.length === 0) throw new MillraceError('MILLRACE_RECORD_INVALID', 'a consumer group needs a name');
    const byTopic = new Map<string, Map<number, { partition: number; offset: string; metadata: string | null }>>();
    for (const { topic, partition, offset: at, metadata } of offsets) {
      if (!isValidTopicName(topic)) throw topicUnknown(topic);
      const partitions = await this.#directory.partitions(topic);
      if (!Number.isInteger(partition) || partition < 0 || partition >= partitions) throw partitionUnknown(topic, partition, partitions);
      checkOffset(at, 'committed offset');
      if (metadata !== undefined && Buffer.byteLength(metadata) > MAX_OFFSET_METADATA_BYTES) {
        throw new MillraceError('MILLRACE_RECORD_INVALID', `offset metadata may hold at most ${MAX_OFFSET_METADATA_BYTES} bytes`);
      }
      let entry = byTopic.get(topic);
      if (entry === undefined) byTopic.set(topic, (entry = new Map()));
      // The last offset given for a partition wins, as with sequential commits.
      entry.set(partition, { partition, offset: String(at), metadata: metadata ?? null });
    }
    return [...byTopic].map(([topic, partitions]) => ({ topic, partitions: [...partitions.values()] }));
  }

  async #withCoordinator<T>(group: string, doing: string, request: (coordinator: Broker) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        const coordinator = await this.#dataCluster.findGroupCoordinator({ groupId: group, coordinatorType: COORDINATOR_TYPE_GROUP });
        return await request(coordinator);
      } catch (err) {
        if (err instanceof MillraceError) throw err;
        if (attempt < this.#options.retries && (hasKafkaType(err, ...COORDINATOR_ERRORS) || isRetriableKafkaError(err))) {
          await sleep(100 * attempt);
          continue;
        }
        throw fromKafkaError(err, doing, 'MILLRACE_INTERNAL');
      }
    }
  }

  // ---------------------------------------------------------------- transactions

  async beginTransaction(options: TransactionOptions): Promise<LogTransaction> {
    this.#checkOpen();
    const id = options.transactionalId;
    if (typeof id !== 'string' || id.length === 0) throw new TypeError('a transaction needs a transactionalId');
    const generation = this.#transactions.begin(id);
    const appends: AppendRecord[] = [];
    const offsets: Array<{ group: string; offsets: readonly TopicPartitionOffset[] }> = [];
    let state: 'open' | 'committed' | 'aborted' = 'open';
    const requireOpen = (): void => {
      if (state !== 'open') throw new MillraceError('MILLRACE_TRANSACTION_STATE', `transaction ${id} is ${state}`);
    };
    return {
      append: (records) => {
        requireOpen();
        for (const record of records) appends.push(record);
      },
      commitOffsets: (group, groupOffsets) => {
        requireOpen();
        offsets.push({ group, offsets: [...groupOffsets] });
      },
      commit: async () => {
        requireOpen();
        state = 'committed';
        this.#checkOpen();
        // Refused at once if a newer writer claimed the id: nothing is sent.
        if (!this.#transactions.isCurrent(id, generation)) throw fenced(id);
        const plan = await this.#plan(appends);
        const byGroup = new Map<string, TopicPartitionOffset[]>();
        for (const o of offsets) byGroup.set(o.group, [...(byGroup.get(o.group) ?? []), ...o.offsets]);
        const groups: GroupOffsets[] = [];
        for (const [group, list] of byGroup) groups.push({ group, topics: await this.#groupOffsets(group, list) });
        try {
          return await this.#transactions.commit(id, generation, plan, groups, (results) =>
            // The transaction is committed whatever happens here: a failure to watch it land is only logged.
            this.#awaitVisible(id, results, groups).catch((err: unknown) =>
              this.#logger?.warn({ transactionalId: id, err }, 'could not confirm that a committed transaction is visible'),
            ),
          );
        } catch (err) {
          if (err instanceof MillraceError && err.code !== 'MILLRACE_LOG_WRITE_FAILED') throw err;
          throw await this.#appendError(err, plan);
        }
      },
      abort: async () => {
        if (state === 'open') state = 'aborted';
      },
    };
  }

  /**
   * EndTxn returns once the coordinator has decided; it writes the commit markers just after. Waits until they are
   * written (the last stable offset is past the records, the group coordinator shows the offsets), so that what
   * `commit` returned can be read at once, as the `Log` contract says, and the id's next transaction does not meet
   * CONCURRENT_TRANSACTIONS. Gives up with a warning after a while: the transaction did commit.
   */
  async #awaitVisible(transactionalId: string, results: readonly AppendResult[], groups: readonly GroupOffsets[]): Promise<void> {
    const records = new Map<string, Map<number, number>>();
    for (const r of results) {
      let partitions = records.get(r.topic);
      if (partitions === undefined) records.set(r.topic, (partitions = new Map()));
      partitions.set(r.partition, Math.max(partitions.get(r.partition) ?? 0, r.offset + 1));
    }
    const offsets = await Promise.all(
      groups.map(async (g) => ({
        group: g.group,
        topics: g.topics,
        coordinator: await this.#dataCluster.findGroupCoordinator({ groupId: g.group, coordinatorType: COORDINATOR_TYPE_GROUP }),
      })),
    );
    const deadline = Date.now() + Math.min(this.#options.requestTimeoutMs, VISIBILITY_TIMEOUT_MS);
    for (let delayMs = 2; ; delayMs = Math.min(delayMs * 2, 50)) {
      for (const [topic, partitions] of records) {
        const stable = await this.#reader.listOffsets(topic, [...partitions.keys()], LATEST_OFFSET, ISOLATION_READ_COMMITTED);
        for (const [partition, end] of partitions) if ((stable.get(partition) ?? -1) >= end) partitions.delete(partition);
        if (partitions.size === 0) records.delete(topic);
      }
      for (let i = offsets.length - 1; i >= 0; i--) {
        const { group, topics, coordinator } = offsets[i]!;
        const fetched = await coordinator.offsetFetch({
          groupId: group,
          topics: topics.map((t) => ({ topic: t.topic, partitions: t.partitions.map((p) => ({ partition: p.partition })) })),
        });
        const visible = topics.every((t) =>
          t.partitions.every((p) => {
            const got = fetched.responses.find((r) => r.topic === t.topic)?.partitions.find((q) => q.partition === p.partition);
            // A later commit (the task's next owner's) may already have replaced ours: that counts as landed too.
            return got !== undefined && Number(got.offset) >= Number(p.offset);
          }),
        );
        if (visible) offsets.splice(i, 1);
      }
      if (records.size === 0 && offsets.length === 0) return;
      if (Date.now() >= deadline) {
        this.#logger?.warn({ transactionalId, waitedMs: VISIBILITY_TIMEOUT_MS }, 'committed transaction still not visible to readers');
        return;
      }
      await sleep(delayMs);
    }
  }

  async fenceWriters(transactionalId: string): Promise<void> {
    this.#checkOpen();
    if (typeof transactionalId !== 'string' || transactionalId.length === 0) throw new TypeError('fenceWriters needs a transactionalId');
    await this.#transactions.fence(transactionalId);
  }

  // ---------------------------------------------------------------- groups

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    this.#checkOpen();
    for (const topic of options.topics) {
      if (!isValidTopicName(topic) || (await this.#directory.find(topic)) === undefined) throw topicUnknown(topic);
    }
    const subscription = new KafkaSubscription({
      client: this.#client,
      subscribe: options,
      read: (topic, partition, from, readOptions) => this.#reader.read(topic, partition, from, readOptions),
      bounds: (topic, partitions) => this.#reader.bounds(topic, partitions),
      sessionTimeoutMs: this.#options.sessionTimeoutMs,
      heartbeatIntervalMs: this.#options.heartbeatIntervalMs,
      rebalanceTimeoutMs: this.#options.rebalanceTimeoutMs,
      joinTimeoutMs: this.#options.joinTimeoutMs,
      maxWaitMs: this.#options.consumerMaxWaitMs,
      maxBufferedRecords: this.#options.maxBufferedRecordsPerPartition,
      maxBufferedBytes: this.#options.maxBufferedBytesPerPartition,
      retry: this.#retry,
      ...(this.#logger === undefined ? {} : { logger: this.#logger }),
      ...(this.#options.onRebalance === undefined ? {} : { onRebalance: this.#options.onRebalance }),
      onClose: () => this.#subscriptions.delete(subscription),
    });
    this.#subscriptions.add(subscription);
    try {
      await subscription.start();
    } catch (err) {
      this.#subscriptions.delete(subscription);
      throw err;
    }
    return subscription;
  }

  // ---------------------------------------------------------------- retention

  async deleteRecords(topic: string, partition: number, before: Offset): Promise<void> {
    this.#checkOpen();
    if (!isValidTopicName(topic)) throw topicUnknown(topic);
    checkOffset(before);
    const { broker } = await this.#directory.leader(topic, partition);
    const bounds = (await this.#withTopic(topic, () => this.#reader.bounds(topic, [partition]))).get(partition)!;
    const until = Math.min(before, bounds.highWatermark);
    if (until <= bounds.start) return;
    await this.#withTopic(topic, () =>
      broker.deleteRecords({
        topics: [{ topic, partitions: [{ partition, offset: String(until) }] }],
        timeout: this.#options.requestTimeoutMs,
      }),
    );
  }

  /** The broker applies retention and compaction on its own schedule (`log.retention.check.interval.ms`, the cleaner). */
  async runMaintenance(): Promise<MaintenanceReport> {
    this.#checkOpen();
    return { deletedByRetention: 0, deletedByCompaction: 0 };
  }

  // ---------------------------------------------------------------- helpers

  #checkOpen(): void {
    if (this.#state === 'open') return;
    throw new MillraceError(
      this.#state === 'closed' ? 'MILLRACE_LOG_CLOSED' : 'MILLRACE_LOG_NOT_OPEN',
      `the Kafka log at ${this.#options.brokers.join(',')} is ${this.#state === 'closed' ? 'closed' : 'not open'}`,
    );
  }
}

function hasName(err: unknown, name: string): boolean {
  return err !== null && typeof err === 'object' && (err as { name?: unknown }).name === name;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function resolveOptions(options: KafkaLogOptions): ResolvedOptions {
  const fail = (message: string): never => {
    throw new MillraceError('MILLRACE_CONFIG_INVALID', message);
  };
  if (!Array.isArray(options.brokers) || options.brokers.length === 0 || options.brokers.some((b) => typeof b !== 'string' || !/^(\[[^\]\s]+\]|[^\s:]+):\d+$/.test(b))) {
    fail(`brokers must be a non-empty list of host:port, got ${JSON.stringify(options.brokers)}`);
  }
  const sessionTimeoutMs = options.sessionTimeoutMs ?? 30_000;
  const resolved: ResolvedOptions = {
    brokers: Object.freeze([...options.brokers]),
    clientId: options.clientId ?? 'millrace',
    logLevel: options.logLevel ?? 'warn',
    connectionTimeoutMs: options.connectionTimeoutMs ?? 3_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    transactionTimeoutMs: options.transactionTimeoutMs ?? 10_000,
    sessionTimeoutMs,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? Math.max(100, Math.floor(sessionTimeoutMs / 10)),
    rebalanceTimeoutMs: options.rebalanceTimeoutMs ?? 60_000,
    joinTimeoutMs: options.joinTimeoutMs ?? 120_000,
    consumerMaxWaitMs: options.consumerMaxWaitMs ?? 500,
    longPollSliceMs: options.longPollSliceMs ?? 200,
    maxBufferedRecordsPerPartition: options.maxBufferedRecordsPerPartition ?? 5_000,
    maxBufferedBytesPerPartition: options.maxBufferedBytesPerPartition ?? 8 * 1024 * 1024,
    maxRequestBytes: options.maxRequestBytes ?? 512 * 1024,
    maxFetchBytes: options.maxFetchBytes ?? 8 * 1024 * 1024,
    topicConfig: Object.freeze({ ...(options.topicConfig ?? {}) }),
    retries: options.retries ?? 8,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.replicationFactor === undefined ? {} : { replicationFactor: options.replicationFactor }),
    ...(options.onRebalance === undefined ? {} : { onRebalance: options.onRebalance }),
  };
  const positive: Array<keyof ResolvedOptions> = [
    'connectionTimeoutMs',
    'requestTimeoutMs',
    'transactionTimeoutMs',
    'sessionTimeoutMs',
    'heartbeatIntervalMs',
    'rebalanceTimeoutMs',
    'joinTimeoutMs',
    'consumerMaxWaitMs',
    'longPollSliceMs',
    'maxBufferedRecordsPerPartition',
    'maxBufferedBytesPerPartition',
    'maxRequestBytes',
    'maxFetchBytes',
    'retries',
  ];
  for (const key of positive) {
    const value = resolved[key];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) fail(`${key} must be a positive integer, got ${String(value)}`);
  }
  if (resolved.heartbeatIntervalMs >= resolved.sessionTimeoutMs) {
    fail(`heartbeatIntervalMs (${resolved.heartbeatIntervalMs}) must be below sessionTimeoutMs (${resolved.sessionTimeoutMs}); set it to about a third of it`);
  }
  if (resolved.replicationFactor !== undefined && (!Number.isInteger(resolved.replicationFactor) || resolved.replicationFactor < 1)) {
    fail(`replicationFactor must be a positive integer, got ${resolved.replicationFactor}`);
  }
  for (const [key, value] of Object.entries(resolved.topicConfig)) {
    if (typeof value !== 'string') fail(`topicConfig.${key} must be a string`);
  }
  return Object.freeze(resolved);
}
