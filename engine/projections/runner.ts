import { MillraceError, errorMessage, problemFromError } from '../errors.js';
import type { Logger } from '../logger.js';
import { offset, type Log, type LogRecord, type Offset } from '../log/log.js';
import { decodeEvent, handleEvent, type HandledEvent, type StoredValue } from './apply.js';
import { earliestQueue, eventTimeQueues } from './event-time.js';
import { consumes, projectionDeadLetterTopic, type ProjectionDefinition } from './projection.js';
import { normalizeBatch, type ProjectionId, type ProjectionOp, type ProjectionStore } from './store.js';

/**
 * Runs one projection into one namespace of a store: reads its source partitions from the positions the store
 * holds, runs the handler on each record, and applies the changes of a run of records together with the position
 * one past them (`ProjectionStore.apply`). The store's position is the only checkpoint: after a crash the runner
 * starts again from it, and a batch that a crash left half-way was never applied at all. So every record's changes
 * are applied exactly once, and a second runner racing on the same projection only ever gets `skipped`.
 *
 * Bounded: a batch holds at most `maxRecordsPerRead` records and the store's op and byte limits; a replay stops at
 * the end of its range.
 */

export interface TopicPartitionRange {
  /** First offset to apply (default: the partition's start). */
  readonly from?: Offset;
  /** Stop before this offset (default: follow the partition forever). */
  readonly to?: Offset;
}

export interface ProjectionRunnerOptions {
  readonly log: Log;
  readonly store: ProjectionStore;
  readonly definition: ProjectionDefinition;
  readonly namespace: string;
  readonly logger: Logger;
  /** Records read from a partition at a time (default 500). */
  readonly maxRecordsPerRead?: number;
  /** How long to wait before polling again when every partition is caught up (default 200 ms). */
  readonly idleWaitMs?: number;
  /** How often a `topicPattern` looks for new topics (default 5 s). */
  readonly discoverIntervalMs?: number;
  /** A bounded run (a replay): where each partition starts and stops; partitions not named are not read. */
  readonly ranges?: ReadonlyMap<string, TopicPartitionRange>;
  /** Records for which this answers false are passed over (their position still advances). */
  readonly accept?: (record: LogRecord) => boolean;
  /** Reads a key the store does not have (a sandbox seeded from live). Default: absent. */
  readonly readMissing?: (key: string) => Promise<StoredValue | undefined>;
  /** Whether the store's answer for a key counts even when absent (keys the sandbox wrote: a delete stays deleted). */
  readonly storeOwns?: (key: string) => boolean;
  /** Called after each record, in order, with what it did or why it failed; awaited. */
  readonly onRecord?: (record: LogRecord, outcome: { handled: HandledEvent } | { error: MillraceError }) => Promise<void>;
  /** Dead-letter refused records to `projectionDeadLetterTopic(name)` (default true; a sandbox keeps them in its steps). */
  readonly deadLetters?: boolean;
  /** Yield to the event loop between batches at least this often (ms), so a large replay cannot starve live work. */
  readonly yieldEveryMs?: number;
  /** Keys whose latest value the runner keeps in memory between batches (default 10 000; 0: none). */
  readonly cacheMaxEntries?: number;
}

export interface PartitionProgress {
  readonly topic: string;
  readonly partition: number;
  /** Next offset to apply. */
  readonly position: number;
  /** The partition's end offset when last read. */
  readonly end: number;
  readonly lag: number;
}

export type RunnerState = 'starting' | 'running' | 'caught-up' | 'finished' | 'stopped' | 'failed';

export interface ProjectionRunnerStatus {
  readonly name: string;
  readonly namespace: string;
  readonly state: RunnerState;
  readonly partitions: readonly PartitionProgress[];
  readonly lag: number;
  readonly recordsApplied: number;
  readonly deadLetters: number;
  /**
   * Changes the store dropped because their event time was older than its retained history (Kafka Streams' rule
   * for versioned stores): a partition far behind the others in event time, or a retention shorter than their skew.
   */
  readonly expiredOps: number;
  readonly error?: string;
}

const tpKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/** A key's latest version: its value (undefined: absent) and the time it is valid from (-1: not known). */
interface Latest {
  readonly stored: StoredValue | undefined;
  readonly timestampMs: number;
}

/** What one round read from a partition. */
interface Chunk {
  readonly key: string;
  readonly topic: string;
  readonly partition: number;
  readonly records: readonly LogRecord[];
  /** The partition has more records than were read. */
  readonly more: boolean;
  /** Where the partition starts now, when retention deleted the records at the position. */
  readonly startsAt?: number;
}

export class ProjectionRunner {
  readonly id: ProjectionId;
  readonly #options: ProjectionRunnerOptions;
  readonly #definition: ProjectionDefinition;
  readonly #store: ProjectionStore;
  readonly #log: Log;
  readonly #maxRecords: number;
  readonly #idleWaitMs: number;
  readonly #positions = new Map<string, number>();
  readonly #ends = new Map<string, number>();
  readonly #partitions: Array<{ topic: string; partition: number }> = [];
  readonly #abort = new AbortController();
  #state: RunnerState = 'starting';
  #error: Error | undefined;
  #loop: Promise<void> | undefined;
  #recordsApplied = 0;
  #deadLetters = 0;
  #expiredOps = 0;
  #dlqReady = false;
  #lastDiscoveryMs = 0;
  #lastYieldMs = 0;
  #caughtUpWaiters: Array<() => void> = [];
  /**
   * The latest value of recently read or written keys (null: absent), least recently used first. The runner is the
   * only writer of its namespace, so what it applied is what the store holds; a skipped batch (another writer got
   * there first) empties it.
   */
  readonly #cache = new Map<string, Latest>();
  readonly #cacheMaxEntries: number;

  constructor(options: ProjectionRunnerOptions) {
    this.#options = options;
    this.#definition = options.definition;
    this.#store = options.store;
    this.#log = options.log;
    this.id = { name: options.definition.name, namespace: options.namespace };
    this.#maxRecords = Math.min(options.maxRecordsPerRead ?? 500, options.store.limits.maxOpsPerBatch);
    this.#idleWaitMs = options.idleWaitMs ?? 200;
    this.#cacheMaxEntries = options.cacheMaxEntries ?? 10_000;
  }

  #remember(key: string, value: Latest): void {
    if (this.#cacheMaxEntries === 0) return;
    this.#cache.delete(key);
    this.#cache.set(key, value);
    if (this.#cache.size > this.#cacheMaxEntries) this.#cache.delete(this.#cache.keys().next().value!);
  }

  get state(): RunnerState {
    return this.#state;
  }

  /** Starts the loop; resolves once the store's positions are read. */
  async start(): Promise<void> {
    for (const position of await this.#store.positions(this.id)) this.#positions.set(tpKey(position.topic, position.partition), position.nextOffset);
    await this.#discover(true);
    this.#state = 'running';
    this.#loop = this.#run().catch((err: unknown) => {
      this.#state = 'failed';
      this.#error = err instanceof Error ? err : new Error(String(err));
      this.#options.logger.error({ err, projection: this.id }, 'projection stopped on an error');
      this.#wakeWaiters();
    });
  }

  /** Resolves when a bounded run has finished, or rejects with the error that stopped it. */
  async done(): Promise<void> {
    await this.#loop;
    if (this.#state === 'failed') throw this.#error;
  }

  /** Resolves the next time every partition has been read up to its end (a rebuild is then ready to take over). */
  caughtUp(): Promise<void> {
    if (this.#state === 'failed') return Promise.reject(this.#error);
    if (this.#state === 'finished' || this.#state === 'stopped') return Promise.resolve();
    return new Promise((resolve) => this.#caughtUpWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
    if (this.#state !== 'failed' && this.#state !== 'finished') this.#state = 'stopped';
    this.#wakeWaiters();
  }

  status(): ProjectionRunnerStatus {
    const partitions = this.#partitions.map(({ topic, partition }) => {
      const key = tpKey(topic, partition);
      const position = this.#positions.get(key) ?? this.#options.ranges?.get(key)?.from ?? 0;
      const end = Math.max(this.#ends.get(key) ?? 0, position);
      const to = this.#options.ranges?.get(key)?.to;
      const stopAt = to === undefined ? end : Math.min(end, to);
      return { topic, partition, position, end: stopAt, lag: Math.max(0, stopAt - position) };
    });
    return {
      name: this.id.name,
      namespace: this.id.namespace,
      state: this.#state,
      partitions,
      lag: partitions.reduce((sum, p) => sum + p.lag, 0),
      recordsApplied: this.#recordsApplied,
      deadLetters: this.#deadLetters,
      expiredOps: this.#expiredOps,
      ...(this.#error === undefined ? {} : { error: this.#error.message }),
    };
  }

  #wakeWaiters(): void {
    const waiters = this.#caughtUpWaiters;
    this.#caughtUpWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Finds the source partitions: named topics once (waiting for them to exist), pattern topics every so often. */
  async #discover(first: boolean): Promise<void> {
    const now = Date.now();
    if (!first && this.#definition.topicPattern === undefined) return;
    if (!first && now - this.#lastDiscoveryMs < (this.#options.discoverIntervalMs ?? 5_000)) return;
    this.#lastDiscoveryMs = now;
    const known = new Set(this.#partitions.map((p) => tpKey(p.topic, p.partition)));
    const existing = await this.#log.listTopics();
    const topics = existing.map((t) => t.name).filter((topic) => consumes(this.#definition, topic));
    for (const topic of topics) {
      for (const { partition, end } of await this.#log.partitionOffsets(topic)) {
        const key = tpKey(topic, partition);
        if (this.#options.ranges !== undefined && !this.#options.ranges.has(key)) continue;
        this.#ends.set(key, Math.max(this.#ends.get(key) ?? 0, end));
        if (known.has(key)) continue;
        known.add(key);
        this.#partitions.push({ topic, partition });
      }
    }
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      await this.#discover(false);
      const chunks: Chunk[] = [];
      let open = 0;
      for (const { topic, partition } of this.#partitions) {
        if (signal.aborted) return;
        const key = tpKey(topic, partition);
        const range = this.#options.ranges?.get(key);
        const from = this.#positions.get(key) ?? range?.from ?? 0;
        if (range?.to !== undefined && from >= range.to) continue;
        open++;
        const batch = await this.#log.read(topic, partition, offset(from), { maxRecords: this.#maxRecords });
        this.#ends.set(key, batch.highWatermark);
        let records = batch.records;
        if (range?.to !== undefined) records = records.filter((r) => r.offset < range.to!);
        // Below the start offset (retention deleted records): the position moves up to where the log starts.
        const startsAt = records.length === 0 && batch.nextOffset > from && (range?.to === undefined || batch.nextOffset <= range.to) ? batch.nextOffset : undefined;
        const more = batch.records.length >= this.#maxRecords && (range?.to === undefined || batch.nextOffset < range.to);
        chunks.push({ key, topic, partition, records, more, ...(startsAt === undefined ? {} : { startsAt }) });
      }
      if (this.#options.ranges !== undefined && open === 0) {
        this.#state = 'finished';
        this.#wakeWaiters();
        return;
      }
      const progressed = await this.#applyMerged(chunks);
      if (!progressed) {
        if (this.#state === 'running' || this.#state === 'caught-up') this.#state = 'caught-up';
        this.#wakeWaiters();
        await sleep(this.#idleWaitMs, signal);
      } else {
        if (this.#state === 'caught-up') this.#state = 'running';
        await this.#maybeYield();
      }
    }
  }

  async #maybeYield(): Promise<void> {
    const every = this.#options.yieldEveryMs;
    if (every === undefined) return;
    const now = Date.now();
    if (now - this.#lastYieldMs < every) return;
    this.#lastYieldMs = now;
    await new Promise((resolve) => setImmediate(resolve));
  }

  /**
   * Handles the records of every partition in event-time order (`event-time.ts`) and applies their changes in
   * batches, each with the position of every partition it took records from. So a key updated from several
   * partitions gets its versions in event-time order, and `asOf` any moment answers what the records up to it made
   * (as a replay up to that moment builds).
   *
   * A read of a key sees the pending changes of the batch first, then the store.
   */
  async #applyMerged(chunks: readonly Chunk[]): Promise<boolean> {
    const queues = eventTimeQueues(chunks);
    const jumps = chunks.filter((c) => c.startsAt !== undefined);
    if (queues.every((q) => q.records.length === 0) && jumps.length === 0) return false;

    const limits = this.#store.limits;
    /** The batch's changes not yet applied, as the store will answer them: the latest version of each key. */
    const pending = new Map<string, Latest>();
    /** Next offset per partition that records of this batch reached. */
    const reached = new Map<string, { topic: string; partition: number; nextOffset: number }>();
    for (const chunk of jumps) reached.set(chunk.key, { topic: chunk.topic, partition: chunk.partition, nextOffset: chunk.startsAt! });
    let ops: ProjectionOp[] = [];
    let bytes = 0;
    const read = async (key: string): Promise<StoredValue | undefined> => {
      const change = pending.get(key);
      if (change !== undefined) return change.stored;
      return (await latest(key)).stored;
    };
    /** A key's latest version as the store holds it (the cache first). */
    const latest = async (key: string): Promise<Latest> => {
      const cached = this.#cache.get(key);
      if (cached !== undefined) {
        this.#remember(key, cached);
        return cached;
      }
      const got = await this.#store.get(this.id, key);
      let entry: Latest;
      if (got.status === 'found') entry = { stored: { value: got.value, timestampMs: got.timestampMs }, timestampMs: got.timestampMs };
      else {
        // Absent: never written, or deleted at a time the store does not say (-1: an older put still wins).
        const seeded = this.#options.readMissing !== undefined && this.#options.storeOwns?.(key) !== true ? await this.#options.readMissing(key) : undefined;
        entry = { stored: seeded, timestampMs: seeded?.timestampMs ?? -1 };
      }
      this.#remember(key, entry);
      return entry;
    };
    const flush = async (): Promise<boolean> => {
      if (reached.size === 0) return true;
      const sources = [...reached.values()].map((r) => ({ topic: r.topic, partition: r.partition, nextOffset: offset(r.nextOffset) }));
      const result = await this.#store.apply(this.id, sources.length === 1 ? { source: sources[0]!, ops } : { sources, ops });
      if (result.status === 'skipped') {
        // Another writer applied some of these records first: take the store's positions, drop what was computed.
        this.#cache.clear();
        for (const position of await this.#store.positions(this.id)) this.#positions.set(tpKey(position.topic, position.partition), position.nextOffset);
        return false;
      }
      if (result.expiredOps > 0) {
        if (this.#expiredOps === 0) {
          this.#options.logger.warn(
            { projection: this.id, expiredOps: result.expiredOps, historyRetentionMs: this.#store.historyRetentionMs },
            'the projection store dropped changes older than its retained history (counted in expiredOps from now on)',
          );
        }
        this.#expiredOps += result.expiredOps;
      }
      for (const [key, r] of reached) this.#positions.set(key, r.nextOffset);
      for (const [key, change] of pending) this.#remember(key, change);
      reached.clear();
      ops = [];
      bytes = 0;
      pending.clear();
      return true;
    };

    for (;;) {
      if (this.#abort.signal.aborted) return true; // what is not applied is read again next time
      // The partition whose next record is the earliest (ties: the order partitions were found in).
      const pick = earliestQueue(queues);
      if (pick === undefined) break;
      const record = pick.records[pick.next++]!;
      const at = { topic: pick.chunk.topic, partition: pick.chunk.partition, nextOffset: record.offset + 1 };
      if (this.#options.accept !== undefined && !this.#options.accept(record)) {
        reached.set(pick.chunk.key, at);
        continue;
      }
      let handled: HandledEvent;
      let eventBytes = 0;
      try {
        const event = await decodeEvent(this.#definition, record);
        handled = await handleEvent(this.#definition, event, read);
        // Checked one event at a time, so a change the store would refuse dead-letters its event, not the batch.
        normalizeBatch({ source: { topic: record.topic, partition: record.partition, nextOffset: offset(record.offset + 1) }, ops: handled.ops }, limits);
        for (const op of handled.ops) eventBytes += Buffer.byteLength(op.key) + (op.type === 'put' ? Buffer.byteLength(JSON.stringify(op.value)) : 0);
      } catch (err) {
        const error = err instanceof MillraceError ? err : new MillraceError('MILLRACE_PROCESSING', errorMessage(err), { cause: err });
        await this.#deadLetter(record, error);
        await this.#options.onRecord?.(record, { error });
        reached.set(pick.chunk.key, at);
        continue;
      }
      if (ops.length > 0 && (ops.length + handled.ops.length > limits.maxOpsPerBatch || bytes + eventBytes > limits.maxBatchBytes)) {
        // The batch so far ends before this record; it is handled again on top of what the batch applied.
        pick.next--;
        if (!(await flush())) return true;
        continue;
      }
      ops.push(...handled.ops);
      bytes += eventBytes;
      for (const op of handled.ops) {
        // The handler read every key it changed (for `before`), so this is a cache hit unless it was evicted.
        const current = pending.get(op.key) ?? (await latest(op.key));
        if (current.timestampMs > op.timestampMs) continue; // history, not the latest
        pending.set(op.key, { stored: op.type === 'put' ? { value: op.value, timestampMs: op.timestampMs } : undefined, timestampMs: op.timestampMs });
      }
      reached.set(pick.chunk.key, at);
      this.#recordsApplied++;
      await this.#options.onRecord?.(record, { handled });
    }
    await flush();
    return true;
  }

  async #deadLetter(record: LogRecord, error: MillraceError): Promise<void> {
    this.#deadLetters++;
    this.#options.logger.warn({ projection: this.id, topic: record.topic, partition: record.partition, offset: record.offset, code: error.code }, 'projection dead-lettered a record');
    if (this.#options.deadLetters === false) return;
    const topic = projectionDeadLetterTopic(this.#definition.name);
    if (!this.#dlqReady) {
      await this.#log.ensureTopic({ name: topic, partitions: 1 });
      this.#dlqReady = true;
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(record.headers)) headers[name] = value.toString('base64');
    const body = {
      ...problemFromError(error),
      source: { topic: record.topic, partition: record.partition, offset: record.offset, timestamp: new Date(record.timestamp).toISOString() },
      application: `projection:${this.#definition.name}`,
      task: `${record.topic}-${record.partition}`,
      node: this.#definition.name,
      original: {
        key: record.key === null ? null : record.key.toString('base64'),
        value: record.value === null ? null : record.value.toString('base64'),
        encoding: 'base64',
        headers,
      },
    };
    // Written before the batch that moves past the record: after a crash it may be written twice, never lost.
    await this.#log.append([{ topic, key: record.key, value: Buffer.from(JSON.stringify(body), 'utf8'), timestamp: record.timestamp }]);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
