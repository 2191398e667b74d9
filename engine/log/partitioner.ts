import kafkajs from 'kafkajs';
import type { PartitionMetadata } from 'kafkajs';

/**
 * Chooses partitions exactly as Kafka's producer does, by reusing the default partitioner that kafkajs exports
 * (Java-compatible since kafkajs 2): a keyed record goes to `(murmur2(keyBytes) & 0x7fffffff) % partitions`, so a
 * key lands in the same partition on the embedded log and on Kafka; records without a key are spread round-robin.
 */
export class Partitioner {
  readonly #choose = kafkajs.Partitioners.DefaultPartitioner();
  /** kafkajs wants broker metadata; one frozen array per partition count keeps the hot path allocation-free. */
  readonly #metadata = new Map<number, PartitionMetadata[]>();

  partition(topic: string, partitions: number, key: Buffer | null | undefined): number {
    let metadata = this.#metadata.get(partitions);
    if (metadata === undefined) {
      metadata = Array.from({ length: partitions }, (_, partitionId) => ({
        partitionErrorCode: 0,
        partitionId,
        leader: 0,
        replicas: [0],
        isr: [0],
        offlineReplicas: [],
      }));
      this.#metadata.set(partitions, metadata);
    }
    return this.#choose({ topic, partitionMetadata: metadata, message: { key: key ?? null, value: null } });
  }
}

/** The partition a key maps to among `partitions`, as Kafka computes it. */
export function partitionForKey(key: Buffer, partitions: number): number {
  return sharedPartitioner.partition('', partitions, key);
}

const sharedPartitioner = new Partitioner();
