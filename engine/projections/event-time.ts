import type { LogRecord } from '../log/log.js';

/**
 * Event-time order across partitions, as Kafka Streams picks among a task's partitions: always the partition whose
 * next record is the earliest. Only records up to the *horizon* are taken from a round of reads — the earliest last
 * time among partitions that have more records than were read — so that a record read later can never be earlier
 * than one already handled (when each partition's times do not go backwards).
 */

export interface PartitionChunk {
  readonly records: readonly LogRecord[];
  /** The partition has more records than were read. */
  readonly more: boolean;
}

export interface EventTimeQueue<C extends PartitionChunk> {
  readonly chunk: C;
  /** The chunk's records up to the horizon, in the partition's order. */
  records: readonly LogRecord[];
  next: number;
}

/** Each chunk's records up to the horizon. Never all empty when some chunk has records: progress cannot stop. */
export function eventTimeQueues<C extends PartitionChunk>(chunks: readonly C[]): Array<EventTimeQueue<C>> {
  let horizon = Number.POSITIVE_INFINITY;
  for (const chunk of chunks) {
    if (chunk.more && chunk.records.length > 0) horizon = Math.min(horizon, chunk.records[chunk.records.length - 1]!.timestamp);
  }
  const queues = chunks.map((chunk) => {
    let n = 0;
    while (n < chunk.records.length && chunk.records[n]!.timestamp <= horizon) n++;
    return { chunk, records: chunk.records.slice(0, n), next: 0 };
  });
  if (queues.every((q) => q.records.length === 0)) {
    // Times that go backwards within a partition can leave nothing under the horizon: take the partition that
    // starts earliest whole.
    const earliest = queues.filter((q) => q.chunk.records.length > 0).sort((a, b) => a.chunk.records[0]!.timestamp - b.chunk.records[0]!.timestamp)[0];
    if (earliest !== undefined) earliest.records = [...earliest.chunk.records];
  }
  return queues;
}

/** The queue whose next record is the earliest (ties: the first in order), or undefined when all are done. */
export function earliestQueue<Q extends { records: readonly LogRecord[]; next: number }>(queues: readonly Q[]): Q | undefined {
  let pick: Q | undefined;
  for (const q of queues) {
    if (q.next >= q.records.length) continue;
    if (pick === undefined || q.records[q.next]!.timestamp < pick.records[pick.next]!.timestamp) pick = q;
  }
  return pick;
}
