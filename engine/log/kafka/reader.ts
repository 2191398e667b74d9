import { performance } from 'node:perf_hooks';
import { MillraceError } from '../../errors.js';
import type { Headers, LogRecord, Offset, ReadBatch, ReadOptions } from '../log.js';
import type { TopicDirectory } from './directory.js';
import { KAFKA_ERROR, fromKafkaError, isRetriableKafkaError } from './errors.js';
import {
  EARLIEST_OFFSET,
  ISOLATION_READ_COMMITTED,
  ISOLATION_READ_UNCOMMITTED,
  LATEST_OFFSET,
  fetchPartitions,
  type Broker,
  type Cluster,
  type FetchedPartition,
} from './kafkajs-internals.js';

export const DEFAULT_MAX_RECORDS = 500;
export const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;
export const MIN_FETCH_BYTES = 64 * 1024;
export const FETCH_BYTES_PER_RECORD = 1024;
/** Attempts of one fetch when the broker answers "not the leader" or the connection drops. */
export const FETCH_ATTEMPTS = 4;
export const RETRY_BACKOFF_MS = 100;
/** A control record's key: version (int16), then type (int16): 0 abort, 1 commit. */
export const ABORT_MARKER_TYPE = 0;

export interface ReaderOptions {
  readonly directory: TopicDirectory;
  /** A cluster of its own for long polls: a broker answers one request per connection at a time. */
  readonly pollCluster: Cluster;
  readonly pollSliceMs: number;
  readonly maxFetchBytes: number;
}

/** Log start, high watermark and last stable offset of a partition. */
export interface PartitionBounds {
  readonly start: number;
  readonly highWatermark: number;
  readonly lastStable: number;
}

/**
 * Random access to partitions, as a `read_committed` consumer sees them: fetches at any offset, skips aborted records
 * and transaction markers (the next offset always moves past them), and waits for new records with broker-side long
 * polls shared by every waiting read (see `LongPoller`).
 */
export class PartitionReader {
  readonly #options: ReaderOptions;
  readonly #poller: LongPoller;

  constructor(options: ReaderOptions) {
    this.#options = options;
    this.#poller = new LongPoller(options.pollCluster, options.pollSliceMs);
  }

  close(): void {
    this.#poller.close();
  }

  async read(topic: string, partition: number, from: Offset, options: ReadOptions = {}): Promise<ReadBatch> {
    const maxRecords = options.maxRecords ?? DEFAULT_MAX_RECORDS;
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    const maxWaitMs = options.maxWaitMs ?? 0;
    if (!Number.isInteger(maxRecords) || maxRecords < 1) throw new RangeError(`maxRecords must be a positive integer, got ${maxRecords}`);
    const deadline = performance.now() + maxWaitMs;
    // Ask for about what will be returned: every fetched batch is decoded, and what is past maxRecords fetched again.
    const fetchBytes = Math.max(MIN_FETCH_BYTES, Math.min(maxBytes, maxRecords * FETCH_BYTES_PER_RECORD, this.#options.maxFetchBytes));
    let at: number = from;
    for (;;) {
      const fetched = await this.#fetch(topic, partition, at, fetchBytes);
      at = fetched.position;
      const data = fetched.data;
      const lastStable = data.lastStableOffset >= 0 ? data.lastStableOffset : data.highWatermark;
      const logStart = Math.max(0, data.logStartOffset);
      const { records, next } = visibleRecords(data, at);
      if (records.length > 0) {
        const taken: LogRecord[] = [];
        let bytes = 0;
        for (const record of records) {
          taken.push(record);
          bytes += (record.key?.length ?? 0) + (record.value?.length ?? 0);
          if (taken.length >= maxRecords || bytes >= maxBytes) break;
        }
        const trimmed = taken.length < records.length;
        const nextOffset = trimmed ? taken[taken.length - 1]!.offset + 1 : Math.max(next, at);
        return batch(taken, nextOffset, Math.max(lastStable, nextOffset), logStart);
      }
      if (next > at) {
        // Only aborted records and markers: step over them, and look again at once if there is more below the end.
        at = next;
        if (at < lastStable) continue;
      }
      const remaining = deadline - performance.now();
      if (remaining <= 0 || options.signal?.aborted === true || at < lastStable) {
        return batch([], at, lastStable, logStart);
      }
      const leader = await this.#options.directory.leader(topic, partition);
      await this.#poller.wait({
        nodeId: leader.nodeId,
        topic,
        partition,
        fetchOffset: Math.min(at, Math.max(data.highWatermark, 0)),
        wakeAbove: at,
        timeoutMs: remaining,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    }
  }

  /** Start, high watermark and last stable offset of every partition of a topic. */
  async bounds(topic: string, partitions: readonly number[]): Promise<Map<number, PartitionBounds>> {
    const [start, end, stable] = await Promise.all([
      this.listOffsets(topic, partitions, EARLIEST_OFFSET, ISOLATION_READ_UNCOMMITTED),
      this.listOffsets(topic, partitions, LATEST_OFFSET, ISOLATION_READ_UNCOMMITTED),
      this.listOffsets(topic, partitions, LATEST_OFFSET, ISOLATION_READ_COMMITTED),
    ]);
    const out = new Map<number, PartitionBounds>();
    for (const p of partitions) out.set(p, { start: start.get(p) ?? 0, highWatermark: end.get(p) ?? 0, lastStable: stable.get(p) ?? 0 });
    return out;
  }

  /** ListOffsets for some partitions of a topic, each asked of its leader; -1 (none) stays -1. */
  async listOffsets(topic: string, partitions: readonly number[], timestamp: number, isolationLevel: number): Promise<Map<number, number>> {
    const byLeader = new Map<string, { broker: Broker; partitions: number[] }>();
    for (const p of partitions) {
      const { broker, nodeId } = await this.#options.directory.leader(topic, p);
      let entry = byLeader.get(nodeId);
      if (entry === undefined) byLeader.set(nodeId, (entry = { broker, partitions: [] }));
      entry.partitions.push(p);
    }
    const out = new Map<number, number>();
    await Promise.all(
      [...byLeader.values()].map(async ({ broker, partitions: ps }) => {
        const response = await broker.listOffsets({
          isolationLevel,
          topics: [{ topic, partitions: ps.map((partition) => ({ partition, timestamp })) }],
        });
        for (const r of response.responses) for (const p of r.partitions) out.set(p.partition, Number(p.offset));
      }),
    );
    return out;
  }

  /**
   * One immediate fetch at `at`, retried across leader changes. Below the log start it fetches from the start;
   * past the high watermark it answers with nothing (and the bounds), as the broker would refuse the offset.
   */
  async #fetch(topic: string, partition: number, at: number, bytes: number): Promise<{ data: FetchedPartition; position: number }> {
    let position = at;
    for (let attempt = 1; ; attempt++) {
      let data: FetchedPartition | undefined;
      try {
        const { broker } = await this.#options.directory.leader(topic, partition);
        [data] = await fetchPartitions(broker, {
          isolationLevel: ISOLATION_READ_COMMITTED,
          maxWaitTimeMs: 0,
          minBytes: 1,
          maxBytes: bytes,
          partitions: [{ topic, partition, fetchOffset: position, maxBytes: bytes }],
        });
      } catch (err) {
        if (err instanceof MillraceError && !err.retriable) throw err;
        if (attempt < FETCH_ATTEMPTS && (err instanceof MillraceError || isRetriableKafkaError(err))) {
          await retryPause(this.#options.directory);
          continue;
        }
        throw fromKafkaError(err, `reading ${topic}/${partition} at ${position}`, 'MILLRACE_INTERNAL');
      }
      if (data === undefined) throw new MillraceError('MILLRACE_INTERNAL', `the broker sent no data for ${topic}/${partition}`);
      switch (data.errorCode) {
        case 0:
          return { data, position };
        case KAFKA_ERROR.OFFSET_OUT_OF_RANGE: {
          const bounds = (await this.bounds(topic, [partition])).get(partition)!;
          if (position < bounds.start) {
            position = bounds.start;
            continue;
          }
          if (position > bounds.highWatermark) {
            return {
              data: { ...data, errorCode: 0, highWatermark: bounds.highWatermark, lastStableOffset: bounds.lastStable, logStartOffset: bounds.start, batches: [] },
              position,
            };
          }
          break;
        }
        case KAFKA_ERROR.UNKNOWN_TOPIC_OR_PARTITION:
        case KAFKA_ERROR.UNKNOWN_TOPIC_ID:
        case KAFKA_ERROR.NOT_LEADER_OR_FOLLOWER:
        case KAFKA_ERROR.FENCED_LEADER_EPOCH:
        case KAFKA_ERROR.UNKNOWN_LEADER_EPOCH:
          // Stale metadata: the next lookup says whether the topic is gone or moved.
          await this.#options.directory.refresh();
          break;
        default:
          throw new MillraceError('MILLRACE_INTERNAL', `reading ${topic}/${partition} failed with Kafka error code ${data.errorCode}`, {
            details: { topic, partition, kafkaErrorCode: data.errorCode },
          });
      }
      if (attempt >= FETCH_ATTEMPTS) {
        throw new MillraceError('MILLRACE_INTERNAL', `reading ${topic}/${partition} kept failing with Kafka error code ${data.errorCode}`, {
          retriable: true,
          details: { topic, partition, kafkaErrorCode: data.errorCode },
        });
      }
      await sleep(RETRY_BACKOFF_MS * attempt);
    }
  }
}

async function retryPause(directory: TopicDirectory): Promise<void> {
  await sleep(RETRY_BACKOFF_MS);
  await directory.refresh().catch(() => undefined);
}

function batch(records: LogRecord[], nextOffset: number, highWatermark: number, logStartOffset: number): ReadBatch {
  return {
    records,
    nextOffset: nextOffset as Offset,
    highWatermark: highWatermark as Offset,
    logStartOffset: logStartOffset as Offset,
  };
}

/**
 * The records a `read_committed` reader sees in a fetched partition, at or after `from`, and the offset after the
 * last batch (visible or not): aborted transactions are dropped batch by batch as Kafka's own consumer does (a batch
 * of a producer whose transaction the broker listed as aborted, up to that producer's abort marker), and control
 * batches (commit and abort markers) are never records.
 */
export function visibleRecords(data: FetchedPartition, from: number): { records: LogRecord[]; next: number } {
  const aborted = [...data.abortedTransactions].sort((a, b) => a.firstOffset - b.firstOffset);
  let nextAborted = 0;
  const abortedProducers = new Set<string>();
  const records: LogRecord[] = [];
  let next = from;
  for (const b of data.batches) {
    next = Math.max(next, b.lastOffset + 1);
    if (b.inTransaction || b.isControl) {
      while (nextAborted < aborted.length && aborted[nextAborted]!.firstOffset <= b.lastOffset) {
        abortedProducers.add(aborted[nextAborted++]!.producerId);
      }
    }
    if (b.isControl) {
      const key = b.records[0]?.key;
      if (key !== null && key !== undefined && key.length >= 4 && key.readInt16BE(2) === ABORT_MARKER_TYPE) abortedProducers.delete(b.producerId);
      continue;
    }
    if (b.inTransaction && abortedProducers.has(b.producerId)) continue;
    for (const r of b.records) {
      const offset = Number(r.offset);
      if (offset < from) continue;
      records.push({
        topic: data.topic,
        partition: data.partition,
        offset: offset as Offset,
        timestamp: Number(r.timestamp),
        key: r.key,
        value: r.value,
        headers: toHeaders(r.headers),
      });
    }
  }
  return { records, next };
}

/** kafkajs gives repeated header keys as arrays: the last value wins, as in a map. */
export function toHeaders(raw: Readonly<Record<string, Buffer | string | ReadonlyArray<Buffer | string> | null | undefined>> | undefined): Headers {
  if (raw === undefined) return {};
  const out: Record<string, Buffer> = {};
  for (const [key, value] of Object.entries(raw)) {
    const last = Array.isArray(value) ? value[value.length - 1] : value;
    out[key] = last === null || last === undefined ? Buffer.alloc(0) : Buffer.isBuffer(last) ? last : Buffer.from(last);
  }
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface Waiter {
  readonly topic: string;
  readonly partition: number;
  readonly fetchOffset: number;
  /** Wake once the last stable offset is past this. */
  readonly wakeAbove: number;
  readonly deadline: number;
  readonly wake: () => void;
}

/**
 * Broker-side long polls shared by every waiting read: per broker, one Fetch at a time carries every partition
 * someone waits on (at most `sliceMs` per round, so new waiters join soon and nobody waits past its deadline), and
 * wakes the readers whose partition moved. Readers then fetch the records themselves; the poll asks for one byte.
 */
export class LongPoller {
  readonly #cluster: Cluster;
  readonly #sliceMs: number;
  readonly #waiting = new Map<string, Set<Waiter>>();
  readonly #running = new Set<string>();
  #closed = false;

  constructor(cluster: Cluster, sliceMs: number) {
    this.#cluster = cluster;
    this.#sliceMs = sliceMs;
  }

  close(): void {
    this.#closed = true;
    for (const waiters of this.#waiting.values()) for (const w of waiters) w.wake();
    this.#waiting.clear();
  }

  wait(request: {
    nodeId: string;
    topic: string;
    partition: number;
    fetchOffset: number;
    wakeAbove: number;
    timeoutMs: number;
    signal?: AbortSignal;
  }): Promise<void> {
    if (this.#closed || request.signal?.aborted === true || request.timeoutMs <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.#waiting.get(request.nodeId);
      if (set === undefined) this.#waiting.set(request.nodeId, (set = new Set()));
      const waiters = set;
      const timer = setTimeout(() => waiter.wake(), request.timeoutMs);
      const onAbort = (): void => waiter.wake();
      const waiter: Waiter = {
        topic: request.topic,
        partition: request.partition,
        fetchOffset: request.fetchOffset,
        wakeAbove: request.wakeAbove,
        deadline: performance.now() + request.timeoutMs,
        wake: () => {
          clearTimeout(timer);
          request.signal?.removeEventListener('abort', onAbort);
          waiters.delete(waiter);
          resolve();
        },
      };
      request.signal?.addEventListener('abort', onAbort, { once: true });
      waiters.add(waiter);
      if (!this.#running.has(request.nodeId)) {
        this.#running.add(request.nodeId);
        void this.#poll(request.nodeId).finally(() => this.#running.delete(request.nodeId));
      }
    });
  }

  async #poll(nodeId: string): Promise<void> {
    for (;;) {
      const waiters = this.#waiting.get(nodeId);
      if (this.#closed || waiters === undefined || waiters.size === 0) return;
      const round = [...waiters];
      const now = performance.now();
      const soonest = Math.min(...round.map((w) => w.deadline));
      const maxWaitTimeMs = Math.max(0, Math.min(this.#sliceMs, Math.ceil(soonest - now)));
      const partitions = new Map<string, { topic: string; partition: number; fetchOffset: number; maxBytes: number }>();
      for (const w of round) {
        const key = `${w.topic}\u0000${w.partition}`;
        const existing = partitions.get(key);
        if (existing === undefined || w.fetchOffset < existing.fetchOffset) {
          partitions.set(key, { topic: w.topic, partition: w.partition, fetchOffset: w.fetchOffset, maxBytes: 1 });
        }
      }
      try {
        const broker = await this.#cluster.findBroker({ nodeId }).catch(async (err: unknown) => {
          await this.#cluster.refreshMetadata();
          throw err;
        });
        const response = await fetchPartitions(broker, {
          isolationLevel: ISOLATION_READ_COMMITTED,
          maxWaitTimeMs,
          minBytes: 1,
          maxBytes: 1,
          partitions: [...partitions.values()],
        });
        for (const w of round) {
          const p = response.find((r) => r.topic === w.topic && r.partition === w.partition);
          // Errors wake the reader too: its own fetch reports them, or finds the partition moved.
          if (p === undefined || p.errorCode !== 0 || p.lastStableOffset > w.wakeAbove) w.wake();
        }
      } catch {
        // The readers' own fetches report what is wrong; wake them, and do not spin on a broker that is down.
        for (const w of round) w.wake();
        await sleep(RETRY_BACKOFF_MS);
      }
    }
  }
}
