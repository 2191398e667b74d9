import { performance } from 'node:perf_hooks';
import {
  FetchIsolationLevels,
  IS_CONTROL,
  IS_TRANSACTIONAL,
  ListOffsetTimestamps,
  fetchV13,
  fetchV14,
  fetchV15,
  fetchV16,
  fetchV17,
  type Admin,
  type ConnectionPool,
  type RecordsBatch,
} from '@platformatic/kafka';
import { MillraceError } from '../../errors.js';
import type { Headers, LogRecord, Offset, ReadBatch, ReadOptions } from '../log.js';
import { topicUnknown } from '../kafka/errors.js';
import {
  ABORT_MARKER_TYPE,
  DEFAULT_MAX_BYTES,
  DEFAULT_MAX_RECORDS,
  FETCH_ATTEMPTS,
  FETCH_BYTES_PER_RECORD,
  MIN_FETCH_BYTES,
  RETRY_BACKOFF_MS,
} from '../kafka/reader.js';
import { connect, type ClusterDirectory } from './cluster.js';
import { fromClientError, hasApiError, isRetriableClientError } from './errors.js';

/** The record batch format this reader decodes (Kafka ≥ 0.11). */
const RECORD_BATCH_MAGIC = 2;

/** The Fetch versions this client exports that name topics by id, newest first; they take the same arguments. */
const FETCH_APIS = [
  { version: 17, api: fetchV17.api },
  { version: 16, api: fetchV16.api },
  { version: 15, api: fetchV15.api },
  { version: 14, api: fetchV14.api },
  { version: 13, api: fetchV13.api },
] as const;
type FetchApi = (typeof FETCH_APIS)[number]['api'];
type FetchResponse = fetchV17.FetchResponse;
type FetchResponsePartition = fetchV17.FetchResponsePartition;

/** The newest Fetch version both this client and the broker speak; Kafka before 3.1 (Fetch v13) is refused. */
export async function chooseFetchApi(admin: Admin): Promise<FetchApi> {
  const apis = await admin.listApis();
  const fetch = apis.find((a) => a.apiKey === 1);
  const chosen = FETCH_APIS.find((f) => fetch !== undefined && f.version >= fetch.minVersion && f.version <= fetch.maxVersion);
  if (chosen === undefined) {
    throw new MillraceError('MILLRACE_LOG_UNAVAILABLE', `the broker speaks Fetch v${fetch?.minVersion}-v${fetch?.maxVersion}; the platformatic client needs v13 or later (Kafka 3.1+)`);
  }
  return chosen.api;
}

/** Log start, high watermark and last stable offset of a partition. */
export interface PartitionBounds {
  readonly start: number;
  readonly highWatermark: number;
  readonly lastStable: number;
}

export interface ReaderOptions {
  readonly admin: Admin;
  readonly directory: ClusterDirectory;
  readonly fetchApi: FetchApi;
  /** Immediate fetches. */
  readonly dataPool: ConnectionPool;
  /** Fetches that wait at the broker, spread over these so that one partition's wait does not hold up another's. */
  readonly pollPools: readonly ConnectionPool[];
  readonly pollSliceMs: number;
  readonly maxFetchBytes: number;
}

/** Records fetched past what a read returned, kept for the read that continues from there. */
interface ReadAhead {
  readonly topicId: string;
  /** The offset the continuing read asks for. */
  from: number;
  records: LogRecord[];
  bytes: number;
  /** Where reading goes on once `records` are taken (past trailing aborted records and markers). */
  readonly next: number;
  readonly lastStable: number;
  readonly logStart: number;
  readonly fetchedAt: number;
}

/** Read-ahead is served for this long after its fetch (committed records never change; retention may remove them). */
const READ_AHEAD_TTL_MS = 2_000;
/** At most this many bytes of keys and values are held in read-ahead over all partitions. */
const READ_AHEAD_MAX_BYTES = 64 * 1024 * 1024;

interface Fetched {
  readonly errorCode: number;
  readonly highWatermark: number;
  readonly lastStableOffset: number;
  readonly logStartOffset: number;
  readonly abortedTransactions: ReadonlyArray<{ producerId: bigint; firstOffset: number }>;
  readonly batches: readonly RecordsBatch[];
}

/**
 * Random access to partitions, as a `read_committed` consumer sees them, on the client's Fetch API (its consumer's
 * `fetch` drops aborted transactions per producer, not per transaction, so a producer's second aborted transaction
 * in one response would leak the first; records are filtered here instead). Waiting reads are fetches that wait at
 * the broker, in slices of at most `pollSliceMs`, on connections of their own.
 */
export class PartitionReader {
  readonly #options: ReaderOptions;
  /**
   * A fetch brings what fits in its byte budget, often far more records than the read asked for: the rest is kept
   * per partition, so that a reader going through a partition in order (a task) is not served by fetching and
   * decoding the same records again and again. Oldest entries go first once the bound is reached.
   */
  readonly #readAhead = new Map<string, ReadAhead>();
  #readAheadBytes = 0;

  constructor(options: ReaderOptions) {
    this.#options = options;
  }

  /** Drops what is held for a topic (deleted, or records deleted below an offset). */
  forget(topic: string, partition?: number): void {
    for (const [key, entry] of this.#readAhead) {
      if (key === readAheadKey(topic, partition ?? -1) || (partition === undefined && key.startsWith(`${topic}\u0000`))) this.#drop(key, entry);
    }
  }

  async read(topic: string, partition: number, from: Offset, options: ReadOptions = {}): Promise<ReadBatch> {
    const maxRecords = options.maxRecords ?? DEFAULT_MAX_RECORDS;
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    if (!Number.isInteger(maxRecords) || maxRecords < 1) throw new RangeError(`maxRecords must be a positive integer, got ${maxRecords}`);
    const ahead = await this.#takeAhead(topic, partition, from, maxRecords, maxBytes);
    if (ahead !== undefined) return ahead;
    const deadline = performance.now() + (options.maxWaitMs ?? 0);
    const fetchBytes = Math.max(MIN_FETCH_BYTES, Math.min(maxBytes, maxRecords * FETCH_BYTES_PER_RECORD, this.#options.maxFetchBytes));
    let at: number = from;
    let waitMs = 0;
    for (;;) {
      const fetched = await this.#fetch(topic, partition, at, fetchBytes, waitMs, options.signal);
      if (fetched === undefined) return batch([], at, at, 0); // aborted while waiting
      at = fetched.position;
      const data = fetched.data;
      const lastStable = data.lastStableOffset >= 0 ? data.lastStableOffset : data.highWatermark;
      const logStart = Math.max(0, data.logStartOffset);
      const { records, next } = visibleRecords(topic, partition, data, at);
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
        if (trimmed) this.#keepAhead(topic, partition, fetched.topicId, records.slice(taken.length), nextOffset, Math.max(next, at), lastStable, logStart);
        return batch(taken, nextOffset, Math.max(lastStable, nextOffset), logStart);
      }
      if (next > at) {
        // Only aborted records and markers: step over them, and look again at once if there is more below the end.
        at = next;
        if (at < lastStable) {
          waitMs = 0;
          continue;
        }
      }
      const remaining = deadline - performance.now();
      if (remaining <= 0 || options.signal?.aborted === true || at < lastStable || at > data.highWatermark) {
        return batch([], at, lastStable, logStart);
      }
      waitMs = Math.max(1, Math.min(this.#options.pollSliceMs, Math.ceil(remaining)));
    }
  }

  async #takeAhead(topic: string, partition: number, from: number, maxRecords: number, maxBytes: number): Promise<ReadBatch | undefined> {
    const key = readAheadKey(topic, partition);
    const entry = this.#readAhead.get(key);
    if (entry === undefined) return undefined;
    if (entry.from !== from || performance.now() - entry.fetchedAt > READ_AHEAD_TTL_MS || (await this.#options.directory.find(topic))?.id !== entry.topicId) {
      this.#drop(key, entry);
      return undefined;
    }
    let count = 0;
    let bytes = 0;
    while (count < entry.records.length && count < maxRecords && bytes < maxBytes) {
      const record = entry.records[count++]!;
      bytes += (record.key?.length ?? 0) + (record.value?.length ?? 0);
    }
    const taken = entry.records.slice(0, count);
    let nextOffset: number;
    if (count >= entry.records.length) {
      nextOffset = entry.next;
      this.#drop(key, entry);
    } else {
      nextOffset = taken[taken.length - 1]!.offset + 1;
      entry.records = entry.records.slice(count);
      entry.bytes -= bytes;
      this.#readAheadBytes -= bytes;
      entry.from = nextOffset;
    }
    return batch(taken, nextOffset, Math.max(entry.lastStable, nextOffset), entry.logStart);
  }

  #keepAhead(topic: string, partition: number, topicId: string, records: LogRecord[], from: number, next: number, lastStable: number, logStart: number): void {
    const key = readAheadKey(topic, partition);
    const previous = this.#readAhead.get(key);
    if (previous !== undefined) this.#drop(key, previous);
    let bytes = 0;
    for (const r of records) bytes += (r.key?.length ?? 0) + (r.value?.length ?? 0);
    if (bytes > READ_AHEAD_MAX_BYTES / 4) return;
    for (const [oldest, entry] of this.#readAhead) {
      if (this.#readAheadBytes + bytes <= READ_AHEAD_MAX_BYTES) break;
      this.#drop(oldest, entry);
    }
    this.#readAhead.set(key, { topicId, from, records, bytes, next, lastStable, logStart, fetchedAt: performance.now() });
    this.#readAheadBytes += bytes;
  }

  #drop(key: string, entry: ReadAhead): void {
    if (this.#readAhead.get(key) !== entry) return;
    this.#readAhead.delete(key);
    this.#readAheadBytes -= entry.bytes;
  }

  /** Start, high watermark and last stable offset of some partitions of a topic. */
  async bounds(topic: string, partitions: readonly number[]): Promise<Map<number, PartitionBounds>> {
    const [start, end, stable] = await Promise.all([
      this.listOffsets(topic, partitions, ListOffsetTimestamps.EARLIEST, FetchIsolationLevels.READ_UNCOMMITTED),
      this.listOffsets(topic, partitions, ListOffsetTimestamps.LATEST, FetchIsolationLevels.READ_UNCOMMITTED),
      this.listOffsets(topic, partitions, ListOffsetTimestamps.LATEST, FetchIsolationLevels.READ_COMMITTED),
    ]);
    const out = new Map<number, PartitionBounds>();
    for (const p of partitions) out.set(p, { start: start.get(p) ?? 0, highWatermark: end.get(p) ?? 0, lastStable: stable.get(p) ?? 0 });
    return out;
  }

  /** ListOffsets for some partitions of a topic; -1 (none) stays -1. */
  async listOffsets(topic: string, partitions: readonly number[], timestamp: bigint, isolationLevel: number): Promise<Map<number, number>> {
    const listed = await this.#options.admin.listOffsets({
      topics: [{ name: topic, partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp })) }],
      isolationLevel: isolationLevel as 0 | 1,
    });
    const out = new Map<number, number>();
    for (const t of listed) {
      if (t.name !== topic) continue;
      for (const p of t.partitions) out.set(p.partitionIndex, Number(p.offset));
    }
    return out;
  }

  /**
   * One fetch at `at`, retried across leader changes; `undefined` when `signal` ended a waiting fetch. Below the log
   * start it fetches from the start; past the high watermark it answers with nothing (and the bounds).
   */
  async #fetch(topic: string, partition: number, at: number, bytes: number, waitMs: number, signal: AbortSignal | undefined): Promise<{ data: Fetched; position: number; topicId: string } | undefined> {
    let position = at;
    for (let attempt = 1; ; attempt++) {
      let data: Fetched;
      let topicId: string;
      try {
        const leader = await this.#options.directory.leader(topic, partition);
        const pools = this.#options.pollPools;
        const pool = waitMs > 0 && pools.length > 0 ? pools[Math.abs(hash(`${topic}/${partition}`)) % pools.length]! : this.#options.dataPool;
        const connection = await connect(pool, leader.broker);
        const request = this.#options.fetchApi.async(connection, waitMs, 1, bytes, FetchIsolationLevels.READ_COMMITTED, 0, -1, [
          {
            topicId: leader.topicId,
            partitions: [{ partition, currentLeaderEpoch: -1, fetchOffset: BigInt(position), lastFetchedEpoch: -1, partitionMaxBytes: bytes }],
          },
        ], [], '');
        const response = signal === undefined || waitMs === 0 ? await request.catch(partitionOf) : await raceAbort(request.catch(partitionOf), signal);
        if (response === undefined) return undefined;
        topicId = leader.topicId;
        data = fromResponse(topic, partition, topicId, response);
      } catch (err) {
        if (err instanceof MillraceError && !err.retriable) throw err;
        if (attempt < FETCH_ATTEMPTS && (err instanceof MillraceError || isRetriableClientError(err) || hasApiError(err, 'UNKNOWN_TOPIC_ID'))) {
          this.#options.directory.forget(topic);
          await sleep(RETRY_BACKOFF_MS * attempt);
          continue;
        }
        throw fromClientError(err, `reading ${topic}/${partition} at ${position}`, 'MILLRACE_INTERNAL');
      }
      switch (data.errorCode) {
        case 0:
          return { data, position, topicId };
        case 1: {
          // OFFSET_OUT_OF_RANGE
          const bounds = (await this.bounds(topic, [partition])).get(partition)!;
          if (position < bounds.start) {
            position = bounds.start;
            continue;
          }
          if (position > bounds.highWatermark) {
            return {
              data: { ...data, errorCode: 0, highWatermark: bounds.highWatermark, lastStableOffset: bounds.lastStable, logStartOffset: bounds.start, batches: [] },
              position,
              topicId,
            };
          }
          break;
        }
        case 3: // UNKNOWN_TOPIC_OR_PARTITION
        case 6: // NOT_LEADER_OR_FOLLOWER
        case 74: // FENCED_LEADER_EPOCH
        case 75: // UNKNOWN_LEADER_EPOCH
        case 100: // UNKNOWN_TOPIC_ID
          // Stale metadata: the next lookup says whether the topic is gone or moved.
          this.#options.directory.forget(topic);
          if ((await this.#options.directory.find(topic, true)) === undefined) throw topicUnknown(topic);
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

/**
 * The client rejects a response in which a partition has an error, attaching the parsed response: the partition's
 * own error code is what the reader acts on. Anything else (no response: a decoding failure, a lost connection)
 * stays an error.
 */
function partitionOf(err: unknown): FetchResponse {
  const response = (err as { response?: unknown } | null)?.response;
  if (response !== null && typeof response === 'object' && Array.isArray((response as FetchResponse).responses) && (response as FetchResponse).errorCode === 0) {
    return response as FetchResponse;
  }
  throw err;
}

function fromResponse(topic: string, partition: number, topicId: string, response: FetchResponse): Fetched {
  let found: FetchResponsePartition | undefined;
  for (const t of response.responses) {
    if (t.topicId !== topicId) continue;
    found = t.partitions.find((p) => p.partitionIndex === partition);
  }
  if (found === undefined) throw new MillraceError('MILLRACE_INTERNAL', `the broker sent no data for ${topic}/${partition}`, { retriable: true });
  return {
    errorCode: found.errorCode,
    highWatermark: toOffset(found.highWatermark, topic, partition),
    lastStableOffset: Number(found.lastStableOffset),
    logStartOffset: Number(found.logStartOffset),
    abortedTransactions: found.abortedTransactions.map((a) => ({ producerId: a.producerId, firstOffset: Number(a.firstOffset) })),
    batches: found.records ?? [],
  };
}

function readAheadKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

function batch(records: LogRecord[], nextOffset: number, highWatermark: number, logStartOffset: number): ReadBatch {
  return { records, nextOffset: nextOffset as Offset, highWatermark: highWatermark as Offset, logStartOffset: logStartOffset as Offset };
}

function undecodable(topic: string, partition: number, at: number, why: string): MillraceError {
  return new MillraceError('MILLRACE_INTERNAL', `${topic}/${partition} holds a record batch at ${at} that cannot be decoded: ${why}`, {
    details: { topic, partition, offset: at },
  });
}

function toOffset(value: bigint, topic: string, partition: number): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < -1) throw undecodable(topic, partition, -1, `offset ${value} is out of range`);
  return n;
}

/**
 * The records a `read_committed` reader sees in a fetched partition, at or after `from`, and the offset after the
 * last batch (visible or not). Aborted transactions are dropped batch by batch as Kafka's own consumer does (a batch
 * of a producer whose transaction the broker listed as aborted, up to that producer's abort marker); control batches
 * are never records. Bytes that do not make a well-formed batch are an error, never records.
 */
export function visibleRecords(topic: string, partition: number, data: Fetched, from: number): { records: LogRecord[]; next: number } {
  const aborted = [...data.abortedTransactions].sort((a, b) => a.firstOffset - b.firstOffset);
  let nextAborted = 0;
  const abortedProducers = new Set<bigint>();
  const records: LogRecord[] = [];
  let next = from;
  for (const b of data.batches) {
    const first = Number(b.firstOffset);
    const last = first + b.lastOffsetDelta;
    if (b.magic !== RECORD_BATCH_MAGIC) throw undecodable(topic, partition, first, `magic ${b.magic}, expected ${RECORD_BATCH_MAGIC}`);
    if (!Number.isSafeInteger(first) || first < 0 || b.lastOffsetDelta < 0 || !Number.isSafeInteger(last)) {
      throw undecodable(topic, partition, first, `offsets ${b.firstOffset}+${b.lastOffsetDelta}`);
    }
    next = Math.max(next, last + 1);
    const inTransaction = (b.attributes & IS_TRANSACTIONAL) !== 0;
    const isControl = (b.attributes & IS_CONTROL) !== 0;
    if (inTransaction || isControl) {
      while (nextAborted < aborted.length && aborted[nextAborted]!.firstOffset <= last) abortedProducers.add(aborted[nextAborted++]!.producerId);
    }
    if (isControl) {
      const key = b.records[0]?.key;
      if (key !== null && key !== undefined && key.length >= 4 && key.readInt16BE(2) === ABORT_MARKER_TYPE) abortedProducers.delete(b.producerId);
      continue;
    }
    if (inTransaction && abortedProducers.has(b.producerId)) continue;
    const firstTimestamp = Number(b.firstTimestamp);
    let previous = first - 1;
    for (const r of b.records) {
      const offset = first + r.offsetDelta;
      const timestamp = firstTimestamp + Number(r.timestampDelta);
      if (!Number.isSafeInteger(offset) || offset <= previous || offset > last) throw undecodable(topic, partition, first, `record offset delta ${r.offsetDelta}`);
      if (!Number.isSafeInteger(timestamp)) throw undecodable(topic, partition, first, `record timestamp ${timestamp}`);
      previous = offset;
      if (offset < from) continue;
      records.push({ topic, partition, offset: offset as Offset, timestamp, key: r.key, value: r.value, headers: toHeaders(r.headers) });
    }
  }
  return { records, next };
}

/** Repeated header keys: the last value wins, as in a map; a null header value reads as empty. */
function toHeaders(raw: ReadonlyArray<[Buffer | null, Buffer | null]>): Headers {
  if (raw.length === 0) return EMPTY_HEADERS;
  const out: Record<string, Buffer> = {};
  for (const [key, value] of raw) out[key === null ? '' : key.toString('utf8')] = value ?? Buffer.alloc(0);
  return out;
}

const EMPTY_HEADERS: Headers = Object.freeze({});

function hash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}

/** The request's answer, or `undefined` once `signal` aborts (the answer, when it comes, is dropped). */
async function raceAbort<T>(request: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) {
    request.catch(() => undefined);
    return undefined;
  }
  let onAbort!: () => void;
  const aborted = new Promise<undefined>((resolve) => {
    onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([request, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
    request.catch(() => undefined);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
