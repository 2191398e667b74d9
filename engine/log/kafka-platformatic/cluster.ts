import { Admin, ConnectionPool, type Broker, type ClusterMetadata, type Connection } from '@platformatic/kafka';
import { MillraceError } from '../../errors.js';
import { partitionUnknown, topicUnknown } from '../kafka/errors.js';
import { fromClientError, hasApiError, isRetriableClientError } from './errors.js';

export interface TopicEntry {
  readonly name: string;
  /** The topic id: Fetch v13+ names topics by id. */
  readonly id: string;
  readonly partitions: number;
  /** Leader node id per partition (-1: none right now). */
  readonly leaders: readonly number[];
}

/**
 * Where topics and brokers are, from the admin client's metadata, cached per topic until a caller meets a stale entry
 * (unknown topic, not the leader) and calls `forget`. One `ConnectionPool` per use keeps requests that wait at the
 * broker (long polls) off the connections of quick ones: a broker answers one connection's requests in order.
 */
export class ClusterDirectory {
  readonly #admin: Admin;
  readonly #lookups: Admin;
  readonly #retries: number;
  readonly #topics = new Map<string, TopicEntry>();
  #brokers = new Map<number, Broker>();

  /**
   * `lookups` is an admin client that does not retry: the client retries "unknown topic" like any retriable error,
   * with its back-off, which would make every look for a topic that does not exist (yet) take seconds. Retriable
   * failures are retried here instead, up to `retries` times.
   */
  constructor(admin: Admin, lookups: Admin, retries: number) {
    this.#admin = admin;
    this.#lookups = lookups;
    this.#retries = retries;
  }

  /** The topic, asking the brokers unless known; `undefined` when it does not exist. */
  async find(topic: string, fresh = false): Promise<TopicEntry | undefined> {
    if (!fresh) {
      const known = this.#topics.get(topic);
      if (known !== undefined) return known;
    }
    for (let attempt = 1; ; attempt++) {
      let metadata: ClusterMetadata;
      try {
        metadata = await this.#lookups.metadata({ topics: [topic], forceUpdate: true, autocreateTopics: false });
      } catch (err) {
        if (isUnknownTopic(err)) {
          this.#topics.delete(topic);
          return undefined;
        }
        if (attempt < this.#retries && isRetriableClientError(err)) {
          await sleep(Math.min(50 * 2 ** attempt, 1_000));
          continue;
        }
        throw fromClientError(err, `reading metadata of ${topic}`, 'MILLRACE_INTERNAL');
      }
      this.#remember(metadata);
      return this.#topics.get(topic);
    }
  }

  async partitions(topic: string): Promise<number> {
    const entry = await this.find(topic);
    if (entry === undefined) throw topicUnknown(topic);
    return entry.partitions;
  }

  /** The leader of a partition. */
  async leader(topic: string, partition: number): Promise<{ nodeId: number; broker: Broker; topicId: string }> {
    let entry = await this.find(topic);
    if (entry === undefined) throw topicUnknown(topic);
    if (Number.isInteger(partition) && partition >= entry.partitions) {
      // Partitions may have been added since the metadata was read.
      entry = await this.find(topic, true);
      if (entry === undefined) throw topicUnknown(topic);
    }
    if (!Number.isInteger(partition) || partition < 0 || partition >= entry.partitions) throw partitionUnknown(topic, partition, entry.partitions);
    let nodeId = entry.leaders[partition]!;
    if (nodeId < 0 || !this.#brokers.has(nodeId)) {
      entry = await this.find(topic, true);
      if (entry === undefined) throw topicUnknown(topic);
      nodeId = entry.leaders[partition] ?? -1;
    }
    const broker = this.#brokers.get(nodeId);
    if (broker === undefined) {
      throw new MillraceError('MILLRACE_LOG_UNAVAILABLE', `${topic}/${partition} has no leader now`, { retriable: true, details: { topic, partition } });
    }
    return { nodeId, broker, topicId: entry.id };
  }

  async broker(nodeId: number): Promise<Broker> {
    let broker = this.#brokers.get(nodeId);
    if (broker === undefined) {
      this.#remember(await this.#admin.metadata({ topics: [], forceUpdate: true }));
      broker = this.#brokers.get(nodeId);
    }
    if (broker === undefined) throw new MillraceError('MILLRACE_LOG_UNAVAILABLE', `broker ${nodeId} is not in the cluster metadata`, { retriable: true });
    return broker;
  }

  forget(topic?: string): void {
    if (topic === undefined) this.#topics.clear();
    else this.#topics.delete(topic);
  }

  #remember(metadata: ClusterMetadata): void {
    this.#brokers = new Map([...metadata.brokers].map(([id, b]) => [id, { host: b.host, port: b.port }]));
    for (const [name, t] of metadata.topics) {
      this.#topics.set(name, { name, id: t.id, partitions: t.partitionsCount, leaders: t.partitions.map((p) => p.leader) });
    }
  }
}

/** Connections of one pool to a broker, turned into Millrace errors when the broker cannot be reached. */
export async function connect(pool: ConnectionPool, broker: Broker): Promise<Connection> {
  try {
    return await pool.get(broker);
  } catch (err) {
    throw fromClientError(err, `connecting to ${broker.host}:${broker.port}`, 'MILLRACE_LOG_UNAVAILABLE');
  }
}

/**
 * The client reports a topic missing from metadata as a `UserError` "Unknown topic <name>." (code `PLT_KFK_USER`),
 * without the broker's error; both forms are recognised.
 */
function isUnknownTopic(err: unknown): boolean {
  if (hasApiError(err, 'UNKNOWN_TOPIC_OR_PARTITION', 'INVALID_TOPIC_EXCEPTION', 'UNKNOWN_TOPIC_ID')) return true;
  const e = err as { code?: unknown; message?: unknown } | null;
  return e !== null && typeof e === 'object' && e.code === 'PLT_KFK_USER' && typeof e.message === 'string' && e.message.startsWith('Unknown topic ');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The pool listens for a connection's first `error` only; a second one (a socket error after a failed write, say)
 * would be an unhandled `error` event, which ends the process. Requests in flight fail with the error anyway (the
 * connection fails them when it closes), so a listener that does nothing else is enough.
 */
export function guardConnections(pool: ConnectionPool): ConnectionPool {
  pool.on('connect', ({ connection }) => {
    connection.on('error', ignore);
  });
  return pool;
}

function ignore(): void {}
