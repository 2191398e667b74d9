import type { Broker, Cluster, MetadataResponse, TopicMetadataEntry } from './kafkajs-internals.js';
import { fromKafkaError, partitionUnknown, topicUnknown } from './errors.js';

/**
 * Where each topic's partitions live, from a cluster's metadata (which covers every topic, see `createCluster`). A
 * topic missing from it triggers one refresh before it is reported unknown; callers that meet a stale entry (the
 * broker says "unknown topic or partition", "not the leader") call `refresh` and ask again.
 */
export class TopicDirectory {
  readonly #cluster: Cluster;
  #indexed: MetadataResponse | null = null;
  #index = new Map<string, TopicMetadataEntry>();

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
  }

  get cluster(): Cluster {
    return this.#cluster;
  }

  async refresh(): Promise<void> {
    try {
      await this.#cluster.refreshMetadata();
    } catch (err) {
      throw fromKafkaError(err, 'reading cluster metadata', 'MILLRACE_INTERNAL');
    }
  }

  /** The topic's metadata; refreshes once if it is not known yet. `undefined` when the topic does not exist. */
  async find(topic: string): Promise<TopicMetadataEntry | undefined> {
    let entry = this.#lookup(topic);
    if (entry === undefined) {
      await this.refresh();
      entry = this.#lookup(topic);
    }
    return entry;
  }

  async partitions(topic: string): Promise<number> {
    const entry = await this.find(topic);
    if (entry === undefined) throw topicUnknown(topic);
    return entry.partitionMetadata.length;
  }

  /** The leader of a partition, connected. */
  async leader(topic: string, partition: number): Promise<{ broker: Broker; nodeId: string }> {
    let entry = await this.find(topic);
    if (entry === undefined) throw topicUnknown(topic);
    let meta = entry.partitionMetadata.find((p) => p.partitionId === partition);
    if (meta === undefined && Number.isInteger(partition) && partition >= entry.partitionMetadata.length) {
      // Partitions may have been added since the metadata was read.
      await this.refresh();
      entry = this.#lookup(topic);
      if (entry === undefined) throw topicUnknown(topic);
      meta = entry.partitionMetadata.find((p) => p.partitionId === partition);
    }
    if (meta === undefined || !Number.isInteger(partition)) throw partitionUnknown(topic, partition, entry.partitionMetadata.length);
    if (meta.leader < 0) {
      await this.refresh();
      const fresh = this.#lookup(topic)?.partitionMetadata.find((p) => p.partitionId === partition);
      if (fresh !== undefined) meta = fresh;
    }
    const nodeId = String(meta.leader);
    try {
      return { broker: await this.#cluster.findBroker({ nodeId }), nodeId };
    } catch (err) {
      throw fromKafkaError(err, `connecting to the leader of ${topic}/${partition}`, 'MILLRACE_INTERNAL');
    }
  }

  /** Synchronous partition count from what is known now (no refresh). */
  knownPartitions(topic: string): number | undefined {
    return this.#lookup(topic)?.partitionMetadata.length;
  }

  #lookup(topic: string): TopicMetadataEntry | undefined {
    const metadata = this.#cluster.brokerPool.metadata;
    if (metadata !== this.#indexed) {
      this.#index = new Map((metadata?.topicMetadata ?? []).map((t) => [t.topic, t]));
      this.#indexed = metadata;
    }
    return this.#index.get(topic);
  }
}
