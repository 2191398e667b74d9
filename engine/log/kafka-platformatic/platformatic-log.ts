import { Admin, ConfigResourceTypes, ConnectionPool, FetchIsolationLevels, Producer, offsetCommitV9, type MessageToProduce } from '@platformatic/kafka';
import { MillraceError } from '../../errors.js';
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
import { fenced, partitionUnknown, topicUnknown } from '../kafka/errors.js';
import { checkOffset, isValidTopicName, normalisePolicy, nullableLimit, topicInfo, validateSpec, type ValidSpec } from '../kafka/topics.js';
import type { RebalanceEvent } from '../kafka/subscription.js';
import { planAppend, recordSize, type AppendPlan, type GroupOffsets, type PlacedRecord } from '../kafka/writer.js';
import { ClusterDirectory, guardConnections } from './cluster.js';
import { describe, fromClientError, hasApiError, isRetriableClientError } from './errors.js';
import { PartitionReader, chooseFetchApi } from './reader.js';
import { PlatformaticSubscription, retryDelay } from './subscription.js';
import { GroupCoordinators, TransactionalWriters, sendPlan, type PlannedMessages } from './transactions.js';

export interface PlatformaticKafkaLogOptions {
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: readonly string[];
  readonly clientId?: string;
  /** Where the log writes its warnings; without one it is silent (the client itself has no logger to plug). */
  readonly logger?: Logger;
  readonly connectionTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  /** Kafka's `transaction.timeout.ms` (10 s as in Kafka Streams). */
  readonly transactionTimeoutMs?: number;
  readonly sessionTimeoutMs?: number;
  readonly heartbeatIntervalMs?: number;
  readonly rebalanceTimeoutMs?: number;
  /** How long `subscribe` waits for the first assignment. */
  readonly joinTimeoutMs?: number;
  /** Longest broker-side wait of one fetch of a waiting `read`. */
  readonly longPollSliceMs?: number;
  /** Connections for waiting reads (each waits at the broker in turn; partitions are spread over them). */
  readonly pollConnections?: number;
  /** Most bytes of one partition in one produce request (below the broker's `message.max.bytes`). */
  readonly maxRequestBytes?: number;
  /** Most bytes one `read` asks the broker for. */
  readonly maxFetchBytes?: number;
  /** Replicas of topics this log creates; by default the broker's `default.replication.factor`. */
  readonly replicationFactor?: number;
  /** Extra broker configs for every topic this log creates (e.g. `segment.ms`); the spec's own settings win. */
  readonly topicConfig?: Readonly<Record<string, string>>;
  /** Attempts of a retriable request before it fails. */
  readonly retries?: number;
  readonly onRebalance?: (event: RebalanceEvent) => void;
}

type ResolvedOptions = Required<Omit<PlatformaticKafkaLogOptions, 'logger' | 'replicationFactor' | 'onRebalance'>> &
  Pick<PlatformaticKafkaLogOptions, 'logger' | 'replicationFactor' | 'onRebalance'>;

const TOPIC_CONFIGS = ['cleanup.policy', 'retention.ms', 'retention.bytes', 'delete.retention.ms'];
const TOPIC_CONFIG_ERRORS = ['INVALID_PARTITIONS', 'INVALID_CONFIG', 'INVALID_REPLICATION_FACTOR', 'POLICY_VIOLATION', 'INVALID_REQUEST'];
const GROUP_MEMBER_ERRORS = ['UNKNOWN_MEMBER_ID', 'ILLEGAL_GENERATION', 'REBALANCE_IN_PROGRESS'];
const DELETE_VISIBLE_TIMEOUT_MS = 30_000;
const CREATE_VISIBLE_TIMEOUT_MS = 30_000;
const VISIBILITY_TIMEOUT_MS = 10_000;

/**
 * `Log` on Apache Kafka through @platformatic/kafka, a maintained client, as an alternative to `KafkaLog` (kafkajs).
 * The same contract and the same Kafka differences as `KafkaLog` (see there): retention and compaction are the
 * broker's (`runMaintenance` reports 0); a partition's end is its last stable offset; a transaction is buffered until
 * `commit`, which resolves once its records and offsets can be read; `commitOffsets` outside a transaction is refused
 * while the group has members; metadata committed as `''` reads back as absent.
 *
 * What is the client's and what is done here:
 * - topics, configs, offsets, deleteRecords, group offsets: the client's `Admin`;
 * - appends: one idempotent `Producer`, records placed by Kafka's partitioner (`../partitioner.ts`: the client's own
 *   default partitioner is not Kafka's) and sent one request at a time (the idempotent producer numbers a request
 *   when it is written, so concurrent sends could reuse a sequence number);
 * - transactions: one transactional `Producer` per transactional id; offsets with metadata through the protocol APIs
 *   (see `transactions.ts`);
 * - reads: the Fetch API on connections of this log, `read_committed`, aborted records filtered here (`reader.ts`);
 * - groups: the client's classic-protocol member with the task assigner (`subscription.ts`).
 */
export class PlatformaticKafkaLog implements Log {
  readonly kind = 'kafka' as const;
  readonly capabilities: LogCapabilities = { atomicLocalState: false, localMaintenance: false };

  readonly #options: ResolvedOptions;
  readonly #logger: Logger | undefined;
  readonly #partitioner = new Partitioner();
  readonly #admin: Admin;
  readonly #lookups: Admin;
  readonly #producer: Producer;
  readonly #dataPool: ConnectionPool;
  readonly #controlPool: ConnectionPool;
  readonly #pollPools: ConnectionPool[];
  readonly #directory: ClusterDirectory;
  readonly #coordinators: GroupCoordinators;
  readonly #transactions: TransactionalWriters;
  #reader: PartitionReader | undefined;
  /** Appends one request at a time (see the class comment). */
  #sending: Promise<unknown> = Promise.resolve();
  readonly #policies = new Map<string, CleanupPolicy>();
  readonly #subscriptions = new Set<PlatformaticSubscription>();
  #state: 'new' | 'opening' | 'open' | 'closed' = 'new';

  constructor(options: PlatformaticKafkaLogOptions) {
    this.#options = resolveOptions(options);
    this.#logger = options.logger?.child({ component: 'platformatic-kafka-log' });
    const o = this.#options;
    const base = {
      clientId: o.clientId,
      bootstrapBrokers: [...o.brokers],
      connectTimeout: o.connectionTimeoutMs,
      timeout: o.requestTimeoutMs,
      retries: o.retries,
      retryDelay,
    };
    this.#admin = new Admin(base);
    this.#lookups = new Admin({ ...base, retries: 0 });
    guardConnections(this.#admin.connections);
    guardConnections(this.#lookups.connections);
    // -1/-1: "a new producer" in InitProducerId. The client sends 0/0 by default, which the broker takes as an
    // attempt to bump producer 0's epoch: a transactional id that another producer used is then refused (PRODUCER_FENCED).
    const fresh = { idempotent: true, acks: -1, producerId: -1n, producerEpoch: -1 };
    this.#producer = new Producer({ ...base, ...fresh });
    guardConnections(this.#producer.connections);
    const pool = (): ConnectionPool => guardConnections(new ConnectionPool(o.clientId, { connectTimeout: o.connectionTimeoutMs, requestTimeout: o.requestTimeoutMs }));
    this.#dataPool = pool();
    this.#controlPool = pool();
    this.#pollPools = Array.from({ length: o.pollConnections }, pool);
    this.#directory = new ClusterDirectory(this.#admin, this.#lookups, o.retries);
    this.#coordinators = new GroupCoordinators(this.#admin, this.#controlPool);
    this.#transactions = new TransactionalWriters({
      directory: this.#directory,
      controlPool: this.#controlPool,
      coordinators: this.#coordinators,
      // `timeout` is also what the client sends as the transaction timeout in InitProducerId.
      create: (transactionalId) => {
        const producer = new Producer({ ...base, ...fresh, timeout: o.transactionTimeoutMs, transactionalId });
        guardConnections(producer.connections);
        return producer;
      },
    });
  }

  get brokers(): readonly string[] {
    return this.#options.brokers;
  }

  async open(): Promise<void> {
    if (this.#state === 'open') return;
    if (this.#state !== 'new') throw new MillraceError('MILLRACE_LOG_CLOSED', `the Kafka log at ${this.#options.brokers.join(',')} is ${this.#state}`);
    this.#state = 'opening';
    try {
      const fetchApi = await chooseFetchApi(this.#admin);
      await this.#admin.metadata({ topics: [] });
      this.#reader = new PartitionReader({
        admin: this.#admin,
        directory: this.#directory,
        fetchApi,
        dataPool: this.#dataPool,
        pollPools: this.#pollPools,
        pollSliceMs: this.#options.longPollSliceMs,
        maxFetchBytes: this.#options.maxFetchBytes,
      });
      this.#state = 'open';
    } catch (err) {
      this.#state = 'new';
      if (err instanceof MillraceError) throw err;
      throw new MillraceError(
        'MILLRACE_LOG_UNAVAILABLE',
        `could not reach Kafka at ${this.#options.brokers.join(',')}: ${describe(err)}; check that the brokers run and the addresses are right`,
        { cause: err, retriable: true },
      );
    }
    this.#logger?.info({ brokers: this.#options.brokers }, 'connected to Kafka (@platformatic/kafka)');
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    await Promise.allSettled([...this.#subscriptions].map((s) => s.close()));
    await this.#transactions.close();
    await this.#sending.catch(() => undefined);
    await Promise.allSettled([
      this.#producer.close(),
      this.#admin.close(),
      this.#lookups.close(),
      this.#dataPool.close(),
      this.#controlPool.close(),
      ...this.#pollPools.map((p) => p.close()),
    ]);
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
    if ((await this.#directory.find(valid.name, true)) === undefined) {
      try {
        await this.#create(valid);
      } catch (err) {
        if (!(err instanceof MillraceError) || err.code !== 'MILLRACE_TOPIC_EXISTS') throw err;
      }
    }
    const existing = await this.describeTopic(valid.name);
    if (existing.partitions !== valid.partitions) {
      throw new MillraceError('MILLRACE_TOPIC_CONFIG_INVALID', `topic ${valid.name} exists with ${existing.partitions} partitions, not ${valid.partitions}`, {
        details: { topic: valid.name },
      });
    }
    return existing;
  }

  async #create(spec: ValidSpec): Promise<void> {
    const configs = new Map(Object.entries(this.#options.topicConfig));
    configs.set('cleanup.policy', spec.cleanupPolicy);
    configs.set('retention.ms', String(spec.retentionMs ?? -1));
    configs.set('retention.bytes', String(spec.retentionBytes ?? -1));
    configs.set('delete.retention.ms', String(spec.deleteRetentionMs));
    try {
      await this.#admin.createTopics({
        topics: [spec.name],
        partitions: spec.partitions,
        replicas: this.#options.replicationFactor ?? -1,
        configs: [...configs].map(([name, value]) => ({ name, value })),
      });
    } catch (err) {
      if (hasApiError(err, 'TOPIC_ALREADY_EXISTS')) {
        throw new MillraceError('MILLRACE_TOPIC_EXISTS', `topic ${spec.name} already exists`, { cause: err, details: { topic: spec.name } });
      }
      if (hasApiError(err, 'INVALID_TOPIC_EXCEPTION')) {
        throw new MillraceError('MILLRACE_TOPIC_NAME_INVALID', `the broker refused topic name ${JSON.stringify(spec.name)}: ${describe(err)}`, { cause: err });
      }
      if (hasApiError(err, ...TOPIC_CONFIG_ERRORS)) {
        throw new MillraceError('MILLRACE_TOPIC_CONFIG_INVALID', `the broker refused topic ${spec.name}: ${describe(err)}`, { cause: err, details: { topic: spec.name } });
      }
      throw fromClientError(err, `creating topic ${spec.name}`, 'MILLRACE_INTERNAL');
    }
    this.#policies.set(spec.name, spec.cleanupPolicy);
    // Answer once every partition has a leader, as kafkajs's `waitForLeaders` does.
    const deadline = Date.now() + CREATE_VISIBLE_TIMEOUT_MS;
    for (;;) {
      const entry = await this.#directory.find(spec.name, true);
      if (entry !== undefined && entry.partitions === spec.partitions && entry.leaders.every((l) => l >= 0)) return;
      if (Date.now() > deadline) throw new MillraceError('MILLRACE_LOG_UNAVAILABLE', `topic ${spec.name} was created but has no leaders yet`, { retriable: true });
      await sleep(50);
    }
  }

  async deleteTopic(name: string): Promise<void> {
    this.#checkOpen();
    if (!isValidTopicName(name)) throw topicUnknown(name);
    try {
      await this.#admin.deleteTopics({ topics: [name] });
    } catch (err) {
      if (hasApiError(err, 'UNKNOWN_TOPIC_OR_PARTITION', 'UNKNOWN_TOPIC_ID')) throw topicUnknown(name, err);
      throw fromClientError(err, `deleting topic ${name}`, 'MILLRACE_INTERNAL');
    }
    this.#policies.delete(name);
    this.#reader!.forget(name);
    // Deletion is asynchronous on the broker: answer once metadata no longer shows the topic.
    const deadline = Date.now() + DELETE_VISIBLE_TIMEOUT_MS;
    while ((await this.#directory.find(name, true)) !== undefined && Date.now() < deadline) await sleep(50);
  }

  async describeTopic(name: string): Promise<TopicInfo> {
    this.#checkOpen();
    if (!isValidTopicName(name)) throw topicUnknown(name);
    const entry = await this.#directory.find(name, true);
    if (entry === undefined) throw topicUnknown(name);
    const [info] = await this.#describe([{ name, partitions: entry.partitions }]);
    if (info === undefined) throw topicUnknown(name);
    return info;
  }

  async listTopics(): Promise<TopicInfo[]> {
    this.#checkOpen();
    let names: string[];
    try {
      names = await this.#admin.listTopics({ includeInternals: false });
    } catch (err) {
      throw fromClientError(err, 'listing topics', 'MILLRACE_INTERNAL');
    }
    const topics: Array<{ name: string; partitions: number }> = [];
    for (const name of names.filter((n) => !n.startsWith('__'))) {
      const entry = await this.#directory.find(name, true);
      if (entry !== undefined) topics.push({ name, partitions: entry.partitions });
    }
    const infos = await this.#describe(topics);
    return infos.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Topic configs read back from the broker; topics deleted meanwhile are left out. */
  async #describe(topics: ReadonlyArray<{ name: string; partitions: number }>): Promise<TopicInfo[]> {
    if (topics.length === 0) return [];
    let described: Awaited<ReturnType<Admin['describeConfigs']>>;
    try {
      described = await this.#admin.describeConfigs({
        resources: topics.map((t) => ({ resourceType: ConfigResourceTypes.TOPIC, resourceName: t.name, configurationKeys: TOPIC_CONFIGS })),
      });
    } catch (err) {
      if (hasApiError(err, 'UNKNOWN_TOPIC_OR_PARTITION')) {
        if (topics.length === 1) return [];
        return (await Promise.all(topics.map((t) => this.#describe([t])))).flat();
      }
      throw fromClientError(err, 'reading topic configs', 'MILLRACE_INTERNAL');
    }
    const out: TopicInfo[] = [];
    for (const topic of topics) {
      const resource = described.find((r) => r.resourceName === topic.name);
      if (resource === undefined) continue;
      const config = new Map(resource.configs.map((c) => [c.name, c.value ?? undefined]));
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
    const { plan, messages } = await this.#plan(records);
    const send = this.#sending.then(() => sendPlan(this.#producer, plan, messages));
    this.#sending = send.catch(() => undefined);
    try {
      return await send;
    } catch (err) {
      throw await this.#appendError(err, plan);
    }
  }

  /** Places, stamps and checks every record before anything is sent: a refused request leaves no trace. */
  async #plan(records: readonly AppendRecord[]): Promise<{ plan: AppendPlan; messages: PlannedMessages }> {
    const now = Date.now();
    const topics = new Map<string, { partitions: number; policy: CleanupPolicy }>();
    for (const record of records) {
      if (topics.has(record.topic)) continue;
      if (typeof record.topic !== 'string' || !isValidTopicName(record.topic)) throw topicUnknown(String(record.topic));
      const partitions = await this.#directory.partitions(record.topic);
      topics.set(record.topic, { partitions, policy: await this.#policy(record.topic) });
    }
    const messages: MessageToProduce<Buffer, Buffer, Buffer, Buffer>[] = new Array(records.length);
    const placed: PlacedRecord[] = records.map((record, i) => {
      const topic = topics.get(record.topic)!;
      const key = record.key ?? null;
      const partition = record.partition ?? this.#partitioner.partition(record.topic, topic.partitions, key);
      if (!Number.isInteger(partition) || partition < 0 || partition >= topic.partitions) throw partitionUnknown(record.topic, partition, topic.partitions);
      const timestamp = record.timestamp ?? now;
      if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
        throw new MillraceError('MILLRACE_RECORD_INVALID', `timestamp must be a non-negative integer of ms, got ${timestamp}`);
      }
      if (topic.policy !== 'delete' && key === null) {
        throw new MillraceError('MILLRACE_RECORD_INVALID', `topic ${record.topic} is compacted: every record needs a key`, { details: { topic: record.topic } });
      }
      const headers = record.headers ?? {};
      const names = Object.keys(headers);
      messages[i] = {
        topic: record.topic,
        partition,
        // The client writes null as Kafka's null (length -1), distinct from an empty buffer.
        key: key as Buffer,
        value: record.value as Buffer,
        timestamp: BigInt(timestamp),
        ...(names.length === 0 ? {} : { headers: new Map(names.map((name) => [Buffer.from(name, 'utf8'), headers[name]!])) }),
      };
      // `message` is what the kafkajs writer sends; here only the placement and size are used (`messages` is sent).
      return { topic: record.topic, partition, timestamp, sizeBytes: recordSize(key, record.value, headers), message: { value: null } };
    });
    return { plan: planAppend(placed, this.#options.maxRequestBytes), messages };
  }

  async #appendError(err: unknown, plan: AppendPlan): Promise<MillraceError> {
    if (err instanceof MillraceError && err.code !== 'MILLRACE_LOG_WRITE_FAILED') return err;
    if (hasApiError(err, 'UNKNOWN_TOPIC_OR_PARTITION', 'UNKNOWN_TOPIC_ID')) {
      for (const topic of new Set(plan.records.map((r) => r.topic))) {
        if ((await this.#directory.find(topic, true).catch(() => undefined)) === undefined) {
          this.#policies.delete(topic);
          return topicUnknown(topic, err);
        }
      }
    }
    if (err instanceof MillraceError) return err;
    return fromClientError(err, 'appending records', 'MILLRACE_LOG_WRITE_FAILED');
  }

  async read(topic: string, partition: number, from: Offset, options: ReadOptions = {}): Promise<ReadBatch> {
    this.#checkOpen();
    checkOffset(from);
    if (!isValidTopicName(topic)) throw topicUnknown(topic);
    return this.#reader!.read(topic, partition, from, options);
  }

  async offsetForTimestamp(topic: string, partition: number, timestampMs: number): Promise<Offset | null> {
    this.#checkOpen();
    if (!isValidTopicName(topic)) throw topicUnknown(topic);
    if (!Number.isFinite(timestampMs)) throw new RangeError(`timestampMs must be a number of ms, got ${timestampMs}`);
    await this.#directory.leader(topic, partition);
    const found = await this.#withTopic(topic, () =>
      this.#reader!.listOffsets(topic, [partition], BigInt(Math.max(0, Math.floor(timestampMs))), FetchIsolationLevels.READ_COMMITTED),
    );
    const at = found.get(partition);
    return at === undefined || at < 0 ? null : (at as Offset);
  }

  async partitionOffsets(topic: string): Promise<PartitionOffsets[]> {
    this.#checkOpen();
    if (!isValidTopicName(topic)) throw topicUnknown(topic);
    const partitions = Array.from({ length: await this.#directory.partitions(topic) }, (_, p) => p);
    const bounds = await this.#withTopic(topic, () => this.#reader!.bounds(topic, partitions));
    return partitions.map((partition) => {
      const b = bounds.get(partition)!;
      return { partition, start: b.start as Offset, end: Math.max(b.start, b.lastStable) as Offset };
    });
  }

  /** Runs a request about a topic; if the broker no longer knows the topic, says so with our code. */
  async #withTopic<T>(topic: string, request: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await request();
      } catch (err) {
        if (err instanceof MillraceError) throw err;
        if (hasApiError(err, 'UNKNOWN_TOPIC_OR_PARTITION', 'NOT_LEADER_OR_FOLLOWER', 'LEADER_NOT_AVAILABLE', 'UNKNOWN_TOPIC_ID') || isRetriableClientError(err)) {
          this.#directory.forget(topic);
          if ((await this.#directory.find(topic, true)) === undefined) throw topicUnknown(topic, err);
          if (attempt < this.#options.retries) {
            await sleep(100 * attempt);
            continue;
          }
        }
        throw fromClientError(err, `asking about ${topic}`, 'MILLRACE_INTERNAL');
      }
    }
  }

  // ---------------------------------------------------------------- consumer groups

  async commitOffsets(group: string, offsets: readonly TopicPartitionOffset[]): Promise<void> {
    this.#checkOpen();
    const topics = await this.#groupOffsets(group, offsets);
    if (topics.length === 0) return;
    const request = topics.map((t) => ({
      name: t.topic,
      partitions: t.partitions.map((p) => ({ partitionIndex: p.partition, committedOffset: BigInt(p.offset), committedLeaderEpoch: -1, committedMetadata: p.metadata })),
    }));
    await this.#coordinators.run(group, `committing offsets of group ${group}`, async (connection) => {
      try {
        await offsetCommitV9.api.async(connection, group, -1, '', null, request);
      } catch (err) {
        if (hasApiError(err, ...GROUP_MEMBER_ERRORS)) {
          throw new MillraceError('MILLRACE_OFFSET_INVALID', `group ${group} has active members: its offsets are committed by its members, in their transactions`, {
            cause: err,
            details: { group },
          });
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
    let listed: Awaited<ReturnType<Admin['listConsumerGroupOffsets']>>;
    try {
      listed = await this.#admin.listConsumerGroupOffsets({
        groups: [{ groupId: group, topics: [{ name: topic, partitionIndexes: Array.from({ length: partitions }, (_, p) => p) }] }],
      });
    } catch (err) {
      throw fromClientError(err, `reading committed offsets of group ${group}`, 'MILLRACE_INTERNAL');
    }
    for (const g of listed) {
      if (g.groupId !== group) continue;
      for (const t of g.topics) {
        if (t.name !== topic) continue;
        for (const p of t.partitions) {
          const at = Number(p.committedOffset);
          if (at >= 0) out.set(p.partitionIndex, { offset: at, metadata: p.metadata ?? null });
        }
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
      entry.set(partition, { partition, offset: String(at), metadata: metadata ?? null });
    }
    return [...byTopic].map(([topic, partitions]) => ({ topic, partitions: [...partitions.values()] }));
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
        if (!this.#transactions.isCurrent(id, generation)) throw fenced(id);
        const { plan, messages } = await this.#plan(appends);
        const byGroup = new Map<string, TopicPartitionOffset[]>();
        for (const o of offsets) byGroup.set(o.group, [...(byGroup.get(o.group) ?? []), ...o.offsets]);
        const groups: GroupOffsets[] = [];
        for (const [group, list] of byGroup) groups.push({ group, topics: await this.#groupOffsets(group, list) });
        try {
          return await this.#transactions.commit(id, generation, plan, messages, groups, (results) =>
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
   * written (the last stable offset is past the records, the group shows the offsets), so that what `commit` returned
   * can be read at once and the id's next transaction does not meet CONCURRENT_TRANSACTIONS.
   */
  async #awaitVisible(transactionalId: string, results: readonly AppendResult[], groups: readonly GroupOffsets[]): Promise<void> {
    const records = new Map<string, Map<number, number>>();
    for (const r of results) {
      let partitions = records.get(r.topic);
      if (partitions === undefined) records.set(r.topic, (partitions = new Map()));
      partitions.set(r.partition, Math.max(partitions.get(r.partition) ?? 0, r.offset + 1));
    }
    const pending = [...groups];
    const deadline = Date.now() + Math.min(this.#options.requestTimeoutMs, VISIBILITY_TIMEOUT_MS);
    for (let delayMs = 2; ; delayMs = Math.min(delayMs * 2, 50)) {
      for (const [topic, partitions] of records) {
        const stable = await this.#reader!.listOffsets(topic, [...partitions.keys()], -1n, FetchIsolationLevels.READ_COMMITTED);
        for (const [partition, end] of partitions) if ((stable.get(partition) ?? -1) >= end) partitions.delete(partition);
        if (partitions.size === 0) records.delete(topic);
      }
      for (let i = pending.length - 1; i >= 0; i--) {
        const { group, topics } = pending[i]!;
        const listed = await this.#admin.listConsumerGroupOffsets({
          groups: [{ groupId: group, topics: topics.map((t) => ({ name: t.topic, partitionIndexes: t.partitions.map((p) => p.partition) })) }],
        });
        const visible = topics.every((t) =>
          t.partitions.every((p) => {
            const got = listed.find((g) => g.groupId === group)?.topics.find((x) => x.name === t.topic)?.partitions.find((q) => q.partitionIndex === p.partition);
            // A later commit (the task's next owner's) may already have replaced ours: that counts as landed too.
            return got !== undefined && Number(got.committedOffset) >= Number(p.offset);
          }),
        );
        if (visible) pending.splice(i, 1);
      }
      if (records.size === 0 && pending.length === 0) return;
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
    const o = this.#options;
    const subscription = new PlatformaticSubscription({
      brokers: o.brokers,
      clientId: o.clientId,
      subscribe: options,
      read: (topic, partition, from, readOptions) => this.#reader!.read(topic, partition, from, readOptions),
      sessionTimeoutMs: o.sessionTimeoutMs,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      rebalanceTimeoutMs: o.rebalanceTimeoutMs,
      joinTimeoutMs: o.joinTimeoutMs,
      connectionTimeoutMs: o.connectionTimeoutMs,
      requestTimeoutMs: o.requestTimeoutMs,
      retries: o.retries,
      ...(this.#logger === undefined ? {} : { logger: this.#logger }),
      ...(o.onRebalance === undefined ? {} : { onRebalance: o.onRebalance }),
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
    await this.#directory.leader(topic, partition);
    const bounds = (await this.#withTopic(topic, () => this.#reader!.bounds(topic, [partition]))).get(partition)!;
    const until = Math.min(before, bounds.highWatermark);
    if (until <= bounds.start) return;
    await this.#withTopic(topic, () => this.#admin.deleteRecords({ topics: [{ name: topic, partitions: [{ partition, offset: BigInt(until) }] }] }));
    this.#reader!.forget(topic, partition);
  }

  async runMaintenance(): Promise<MaintenanceReport> {
    this.#checkOpen();
    return { deletedByRetention: 0, deletedByCompaction: 0 };
  }

  #checkOpen(): void {
    if (this.#state === 'open') return;
    throw new MillraceError(
      this.#state === 'closed' ? 'MILLRACE_LOG_CLOSED' : 'MILLRACE_LOG_NOT_OPEN',
      `the Kafka log at ${this.#options.brokers.join(',')} is ${this.#state === 'closed' ? 'closed' : 'not open'}`,
    );
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function resolveOptions(options: PlatformaticKafkaLogOptions): ResolvedOptions {
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
    connectionTimeoutMs: options.connectionTimeoutMs ?? 3_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    transactionTimeoutMs: options.transactionTimeoutMs ?? 10_000,
    sessionTimeoutMs,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? Math.max(100, Math.floor(sessionTimeoutMs / 10)),
    rebalanceTimeoutMs: options.rebalanceTimeoutMs ?? 60_000,
    joinTimeoutMs: options.joinTimeoutMs ?? 120_000,
    longPollSliceMs: options.longPollSliceMs ?? 200,
    pollConnections: options.pollConnections ?? 4,
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
    'longPollSliceMs',
    'pollConnections',
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
  for (const [key, value] of Object.entries(resolved.topicConfig)) if (typeof value !== 'string') fail(`topicConfig.${key} must be a string`);
  return Object.freeze(resolved);
}
