import { performance } from 'node:perf_hooks';
import type { Batch, Consumer, Kafka, RetryOptions } from 'kafkajs';
import { MillraceError, errorMessage } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { LogRecord, Offset, ReadBatch, ReadOptions, SubscribeOptions, Subscription } from '../log.js';
import type { PartitionBounds } from './reader.js';
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_RECORDS, toHeaders } from './reader.js';
import { taskAssignor, tasksOf } from './task-assignor.js';

/** What one rebalance did to this member, reported once the new assignment is handed out. */
export interface RebalanceEvent {
  readonly group: string;
  readonly memberId: string;
  readonly leader: boolean;
  readonly owned: readonly string[];
  readonly gained: readonly string[];
  readonly lost: readonly string[];
  /** From the rebalance starting (this member noticing it, or starting to join) to the new tasks being handed out. */
  readonly pauseMs: number;
}

export interface KafkaSubscriptionOptions {
  readonly client: Kafka;
  readonly subscribe: SubscribeOptions;
  /** Random-access reads, for a task that asks for records the buffers no longer hold. */
  readonly read: (topic: string, partition: number, from: Offset, options: ReadOptions) => Promise<ReadBatch>;
  readonly bounds: (topic: string, partitions: readonly number[]) => Promise<Map<number, PartitionBounds>>;
  readonly sessionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly rebalanceTimeoutMs: number;
  readonly joinTimeoutMs: number;
  readonly maxWaitMs: number;
  readonly maxBufferedRecords: number;
  readonly maxBufferedBytes: number;
  readonly retry: RetryOptions;
  readonly logger?: Logger;
  readonly onRebalance?: (event: RebalanceEvent) => void;
  readonly onClose: () => void;
}

interface PartitionBuffer {
  readonly topic: string;
  readonly partition: number;
  readonly task: string;
  /** Records not handed out yet, from `head` on, in offset order. */
  records: LogRecord[];
  head: number;
  bytes: number;
  /**
   * The offsets `records` stands for: every committed record in [from, to) that was not handed out is in `records`
   * (the rest of that range is aborted records, markers, or gaps).
   */
  covered: { from: number; to: number } | undefined;
  highWatermark: number;
  logStart: number;
  paused: boolean;
}

type Taken = { readonly kind: 'behind' } | { readonly kind: 'batch'; readonly batch: ReadBatch };

/**
 * Membership in a Kafka consumer group, task by task. kafkajs runs the group protocol (eager rebalancing) with the
 * task-aware sticky assigner; its fetch loop (`eachBatch`, `read_committed`) fills bounded per-partition buffers,
 * pausing a partition whose buffer is full; tasks read from the buffers. Offsets are never committed here: tasks
 * commit them in their transactions, so kafkajs only moves its own position on.
 *
 * After each assignment `onAssignment(owned, previous)` runs (one at a time, in order); records of a newly gained
 * task are handed out only once it has returned. Tasks kept through a rebalance keep their buffers; kafkajs re-fetches
 * them from the committed offsets, and what the task already had is dropped.
 */
export class KafkaSubscription implements Subscription {
  readonly #options: KafkaSubscriptionOptions;
  readonly #group: string;
  readonly #taskOf = new Map<string, string>();
  readonly #buffers = new Map<string, PartitionBuffer>();
  readonly #waiters = new Map<string, Set<() => void>>();
  #consumer: Consumer | undefined;
  /** Tasks of the latest assignment, oldest first (what this member claims when it rejoins). */
  #latestOrder: string[] = [];
  #latest = new Set<string>();
  /** Tasks of the latest assignment whose `onAssignment` has not returned yet. */
  readonly #pending = new Set<string>();
  /** Tasks handed out by the last completed `onAssignment`. */
  #owned: readonly string[] = [];
  #handover: Promise<void> = Promise.resolve();
  readonly #firstHandover = deferred<void>();
  #firstDone = false;
  #rebalanceStartedAt: number | undefined;
  #joinStartedAt = performance.now();
  #memberId = '';
  #closed = false;
  #failure: unknown;
  /** How long the last rebalance held back new tasks (ms). */
  lastRebalancePauseMs: number | undefined;
  /** Rebalances this member went through (assignments handed out). */
  rebalances = 0;
  /** Times a partition was paused because its buffer was full. */
  pauses = 0;

  constructor(options: KafkaSubscriptionOptions) {
    this.#options = options;
    this.#group = options.subscribe.group;
    const topics = new Set(options.subscribe.topics);
    for (const [task, partitions] of options.subscribe.taskGroups.tasks) {
      for (const { topic, partition } of partitions) {
        if (!topics.has(topic)) throw new TypeError(`task ${task} reads ${topic}, which the subscription does not name`);
        const key = keyOf(topic, partition);
        if (this.#taskOf.has(key)) throw new TypeError(`${topic}/${partition} belongs to tasks ${this.#taskOf.get(key)} and ${task}`);
        this.#taskOf.set(key, task);
      }
    }
  }

  get memberId(): string {
    return this.#memberId;
  }

  /** Joins the group and returns once the first assignment is handed out. */
  async start(): Promise<void> {
    const { client, subscribe } = this.#options;
    const consumer = client.consumer({
      groupId: subscribe.group,
      partitionAssigners: [taskAssignor({ taskGroups: subscribe.taskGroups, owned: () => this.#latestOrder })],
      sessionTimeout: this.#options.sessionTimeoutMs,
      heartbeatInterval: this.#options.heartbeatIntervalMs,
      rebalanceTimeout: this.#options.rebalanceTimeoutMs,
      maxWaitTimeInMs: this.#options.maxWaitMs,
      // A full buffer pauses its partition after the fetch that filled it: one fetch brings at most a quarter of it.
      maxBytesPerPartition: Math.max(1024, Math.min(1024 * 1024, Math.floor(this.#options.maxBufferedBytes / 4))),
      readUncommitted: false,
      allowAutoTopicCreation: false,
      retry: this.#options.retry,
    });
    this.#consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, (event) => this.#onJoin(event.payload));
    consumer.on(consumer.events.REBALANCING, () => {
      this.#rebalanceStartedAt ??= performance.now();
    });
    consumer.on(consumer.events.CRASH, (event) => {
      if (event.payload.restart) {
        this.#options.logger?.warn({ group: this.#group, err: event.payload.error }, 'group member crashed; kafkajs restarts it');
        return;
      }
      this.#failure = event.payload.error;
      this.#firstHandover.reject(event.payload.error);
      this.#wakeAll();
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [...subscribe.topics], fromBeginning: true });
      this.#joinStartedAt = performance.now();
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: true,
        partitionsConsumedConcurrently: 1,
        eachBatch: async ({ batch }) => this.#onBatch(batch),
      });
      await withTimeout(this.#firstHandover.promise, this.#options.joinTimeoutMs, () =>
        new MillraceError('MILLRACE_LOG_UNAVAILABLE', `group ${this.#group} gave this member no assignment within ${this.#options.joinTimeoutMs} ms`, {
          retriable: true,
        }),
      );
    } catch (err) {
      this.#closed = true;
      await consumer.disconnect().catch(() => undefined);
      this.#options.onClose();
      if (err instanceof MillraceError) throw err;
      throw new MillraceError('MILLRACE_LOG_UNAVAILABLE', `could not join group ${this.#group}: ${errorMessage(err)}`, { cause: err, retriable: true });
    }
  }

  /** What waits in each partition buffer now (for metrics and tests). */
  buffered(): Array<{ topic: string; partition: number; records: number; bytes: number; paused: boolean }> {
    return [...this.#buffers.values()].map((b) => ({
      topic: b.topic,
      partition: b.partition,
      records: b.records.length - b.head,
      bytes: b.bytes,
      paused: b.paused,
    }));
  }

  owned(): readonly string[] {
    return this.#closed ? [] : this.#owned;
  }

  async read(topic: string, partition: number, from: Offset, options: ReadOptions = {}): Promise<ReadBatch> {
    this.#checkUsable();
    if (!Number.isSafeInteger(from) || from < 0) throw new MillraceError('MILLRACE_OFFSET_INVALID', `offset must be a non-negative integer, got ${from}`);
    const key = keyOf(topic, partition);
    const task = this.#taskOf.get(key);
    if (task === undefined) throw notOwned(this.#group, topic, partition);
    const maxRecords = options.maxRecords ?? DEFAULT_MAX_RECORDS;
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    const deadline = performance.now() + (options.maxWaitMs ?? 0);
    let at: number = from;
    for (;;) {
      this.#checkUsable();
      const assigned = this.#latest.has(task);
      if (!assigned && !this.#owned.includes(task)) throw notOwned(this.#group, topic, partition);
      const expired = performance.now() >= deadline || options.signal?.aborted === true;
      const buffer = assigned && !this.#pending.has(task) ? this.#bufferFor(key) : undefined;
      if (buffer !== undefined) {
        const taken = this.#take(buffer, at, maxRecords, maxBytes);
        if (taken.kind === 'behind') {
          // Records the buffer no longer holds (the task went back): read them from the log.
          return this.#options.read(topic, partition, at as Offset, { maxRecords, maxBytes });
        }
        if (taken.batch.records.length > 0) return taken.batch;
        if (expired) {
          // kafkajs steps over a batch holding only a transaction marker without showing it, so a marker at the end
          // of a partition would hold the position one short of the end until another record comes: a caught-up
          // read below the last stable offset asks the log, whose reads step over markers.
          if (taken.batch.nextOffset < buffer.highWatermark) return this.#options.read(topic, partition, taken.batch.nextOffset, { maxRecords, maxBytes });
          return taken.batch;
        }
        at = taken.batch.nextOffset;
      } else if (expired) {
        // Not handed out yet (its onAssignment runs), or on its way out: nothing to read for now.
        return { records: [], nextOffset: at as Offset, highWatermark: at as Offset, logStartOffset: 0 as Offset };
      }
      await this.#wait(key, deadline, options.signal);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wakeAll();
    this.#firstHandover.reject(new MillraceError('MILLRACE_LOG_CLOSED', `the subscription of group ${this.#group} was closed`));
    try {
      await this.#consumer?.disconnect();
    } finally {
      this.#options.onClose();
    }
  }

  // ---------------------------------------------------------------- assignment

  #onJoin(payload: { memberId: string; isLeader: boolean; memberAssignment: Record<string, number[]>; duration: number }): void {
    if (this.#closed) return;
    const now = performance.now();
    const startedAt = this.#rebalanceStartedAt ?? (this.#firstDone ? now - payload.duration : this.#joinStartedAt);
    this.#rebalanceStartedAt = undefined;
    this.#memberId = payload.memberId;
    const tasks = tasksOf(this.#options.subscribe.taskGroups, payload.memberAssignment);
    const next = new Set(tasks);
    const before = this.#latest;
    this.#latestOrder = [...this.#latestOrder.filter((t) => next.has(t)), ...tasks.filter((t) => !before.has(t))];
    this.#latest = next;
    for (const task of [...this.#pending]) if (!next.has(task)) this.#pending.delete(task);
    const gained = tasks.filter((t) => !before.has(t));
    for (const task of gained) this.#pending.add(task);
    const resume: Array<{ topic: string; partitions: number[] }> = [];
    for (const [key, buffer] of this.#buffers) {
      if (next.has(buffer.task)) continue;
      // Gone to another member: what it holds is that member's to read.
      this.#buffers.delete(key);
      if (buffer.paused) resume.push({ topic: buffer.topic, partitions: [buffer.partition] });
    }
    if (resume.length > 0) this.#consumer?.resume(resume);
    this.#wakeAll();
    const handover = this.#handover.then(() => this.#handOver(tasks, gained, startedAt, payload.isLeader));
    this.#handover = handover.catch(() => undefined);
  }

  async #handOver(tasks: readonly string[], gainedAtJoin: readonly string[], startedAt: number, leader: boolean): Promise<void> {
    if (this.#closed) return;
    const previous = this.#owned;
    const gained = tasks.filter((t) => !previous.includes(t));
    const lost = previous.filter((t) => !tasks.includes(t));
    this.#seedBounds(gainedAtJoin);
    let failure: unknown;
    try {
      await this.#options.subscribe.onAssignment(tasks, previous);
    } catch (err) {
      failure = err;
      this.#options.logger?.error({ group: this.#group, err }, 'onAssignment failed');
    }
    this.#owned = Object.freeze([...tasks]);
    for (const task of gainedAtJoin) if (this.#latest.has(task)) this.#pending.delete(task);
    const pauseMs = Math.max(0, performance.now() - startedAt);
    this.lastRebalancePauseMs = pauseMs;
    this.rebalances++;
    this.#wakeAll();
    const event: RebalanceEvent = { group: this.#group, memberId: this.#memberId, leader, owned: this.#owned, gained, lost, pauseMs };
    this.#options.logger?.info(
      { group: this.#group, member: this.#memberId, leader, owned: tasks.length, gained, lost, pauseMs: Math.round(pauseMs) },
      'group rebalanced',
    );
    try {
      this.#options.onRebalance?.(event);
    } catch (err) {
      this.#options.logger?.warn({ group: this.#group, err }, 'onRebalance listener failed');
    }
    if (!this.#firstDone) {
      this.#firstDone = true;
      if (failure === undefined) this.#firstHandover.resolve();
      else this.#firstHandover.reject(failure);
    }
  }

  /** Start offsets and last stable offsets of newly gained partitions, for the bounds reads report. */
  #seedBounds(tasks: readonly string[]): void {
    const byTopic = new Map<string, number[]>();
    for (const task of tasks) {
      for (const { topic, partition } of this.#options.subscribe.taskGroups.tasks.get(task) ?? []) {
        byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
      }
    }
    for (const [topic, partitions] of byTopic) {
      this.#options.bounds(topic, partitions).then(
        (bounds) => {
          for (const [partition, b] of bounds) {
            const key = keyOf(topic, partition);
            const task = this.#taskOf.get(key);
            if (this.#closed || task === undefined || !this.#latest.has(task)) continue;
            const buffer = this.#bufferFor(key);
            buffer.logStart = Math.max(buffer.logStart, b.start);
            buffer.highWatermark = Math.max(buffer.highWatermark, b.lastStable);
          }
        },
        (err: unknown) => this.#options.logger?.debug({ group: this.#group, topic, err }, 'could not read partition bounds'),
      );
    }
  }

  // ---------------------------------------------------------------- buffers

  async #onBatch(batch: Batch & { fetchedOffset?: string }): Promise<void> {
    const key = keyOf(batch.topic, batch.partition);
    const task = this.#taskOf.get(key);
    if (this.#closed || task === undefined || !this.#latest.has(task)) return;
    const buffer = this.#bufferFor(key);
    const fetchedAt = Number(batch.fetchedOffset ?? batch.firstOffset() ?? batch.lastOffset());
    const lastOffset = Number(batch.lastOffset());
    if (buffer.covered === undefined) buffer.covered = { from: fetchedAt, to: fetchedAt };
    // kafkajs steps over batches of only aborted records or markers without showing them: the gap holds none.
    else if (fetchedAt > buffer.covered.to) buffer.covered.to = fetchedAt;
    for (const message of batch.messages) {
      const at = Number(message.offset);
      if (at < buffer.covered.to) continue;
      const record: LogRecord = {
        topic: batch.topic,
        partition: batch.partition,
        offset: at as Offset,
        timestamp: Number(message.timestamp),
        key: message.key,
        value: message.value,
        headers: toHeaders(message.headers),
      };
      buffer.records.push(record);
      buffer.bytes += (record.key?.length ?? 0) + (record.value?.length ?? 0);
    }
    buffer.covered.to = Math.max(buffer.covered.to, lastOffset + 1);
    buffer.highWatermark = Math.max(buffer.highWatermark, Number(batch.highWatermark));
    const held = buffer.records.length - buffer.head;
    if (!buffer.paused && (held >= this.#options.maxBufferedRecords || buffer.bytes >= this.#options.maxBufferedBytes)) {
      buffer.paused = true;
      this.pauses++;
      this.#consumer?.pause([{ topic: batch.topic, partitions: [batch.partition] }]);
    }
    this.#wake(key);
  }

  #take(buffer: PartitionBuffer, from: number, maxRecords: number, maxBytes: number): Taken {
    const covered = buffer.covered;
    const bounds = (next: number): Pick<ReadBatch, 'highWatermark' | 'logStartOffset'> => ({
      highWatermark: Math.max(buffer.highWatermark, next) as Offset,
      logStartOffset: Math.min(buffer.logStart, next) as Offset,
    });
    if (covered === undefined) return { kind: 'batch', batch: { records: [], nextOffset: from as Offset, ...bounds(from) } };
    if (from < covered.from) return { kind: 'behind' };
    if (from > covered.to) {
      // The task is ahead of what arrived (it resumed from a newer commit): drop it all, keep what comes from `from`.
      this.#drop(buffer, buffer.records.length);
      buffer.covered = { from, to: from };
      return { kind: 'batch', batch: { records: [], nextOffset: from as Offset, ...bounds(from) } };
    }
    let skip = buffer.head;
    while (skip < buffer.records.length && buffer.records[skip]!.offset < from) skip++;
    this.#drop(buffer, skip);
    const taken: LogRecord[] = [];
    let bytes = 0;
    let end = buffer.head;
    while (end < buffer.records.length && taken.length < maxRecords && bytes < maxBytes) {
      const record = buffer.records[end++]!;
      taken.push(record);
      bytes += (record.key?.length ?? 0) + (record.value?.length ?? 0);
    }
    const exhausted = end >= buffer.records.length;
    this.#drop(buffer, end);
    const next = exhausted ? covered.to : taken[taken.length - 1]!.offset + 1;
    covered.from = next;
    return { kind: 'batch', batch: { records: taken, nextOffset: next as Offset, ...bounds(next) } };
  }

  /** Forgets records before index `until`; resumes fetching once the buffer is half empty. */
  #drop(buffer: PartitionBuffer, until: number): void {
    for (let i = buffer.head; i < until; i++) {
      const record = buffer.records[i]!;
      buffer.bytes -= (record.key?.length ?? 0) + (record.value?.length ?? 0);
    }
    buffer.head = Math.max(buffer.head, until);
    if (buffer.head >= buffer.records.length) {
      buffer.records = [];
      buffer.head = 0;
      buffer.bytes = 0;
    } else if (buffer.head > 1024 && buffer.head * 2 > buffer.records.length) {
      buffer.records = buffer.records.slice(buffer.head);
      buffer.head = 0;
    }
    const held = buffer.records.length - buffer.head;
    if (buffer.paused && held * 2 < this.#options.maxBufferedRecords && buffer.bytes * 2 < this.#options.maxBufferedBytes) {
      buffer.paused = false;
      this.#consumer?.resume([{ topic: buffer.topic, partitions: [buffer.partition] }]);
    }
  }

  #bufferFor(key: string): PartitionBuffer {
    let buffer = this.#buffers.get(key);
    if (buffer === undefined) {
      const [topic, partition] = splitKey(key);
      buffer = {
        topic,
        partition,
        task: this.#taskOf.get(key)!,
        records: [],
        head: 0,
        bytes: 0,
        covered: undefined,
        highWatermark: 0,
        logStart: 0,
        paused: false,
      };
      this.#buffers.set(key, buffer);
    }
    return buffer;
  }

  // ---------------------------------------------------------------- waiting

  #wait(key: string, deadline: number, signal: AbortSignal | undefined): Promise<void> {
    const remaining = deadline - performance.now();
    if (remaining <= 0 || signal?.aborted === true || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.#waiters.get(key);
      if (set === undefined) this.#waiters.set(key, (set = new Set()));
      const waiters = set;
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, remaining);
      signal?.addEventListener('abort', done, { once: true });
      waiters.add(done);
    });
  }

  #wake(key: string): void {
    const waiters = this.#waiters.get(key);
    if (waiters === undefined) return;
    for (const done of [...waiters]) done();
  }

  #wakeAll(): void {
    for (const key of [...this.#waiters.keys()]) this.#wake(key);
  }

  #checkUsable(): void {
    if (this.#closed) throw new MillraceError('MILLRACE_LOG_CLOSED', `the subscription of group ${this.#group} is closed`);
    if (this.#failure !== undefined) {
      throw new MillraceError('MILLRACE_LOG_CLOSED', `the subscription of group ${this.#group} stopped: ${errorMessage(this.#failure)}`, {
        cause: this.#failure,
      });
    }
  }
}

export function keyOf(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

function splitKey(key: string): [string, number] {
  const at = key.lastIndexOf('\u0000');
  return [key.slice(0, at), Number(key.slice(at + 1))];
}

export function notOwned(group: string, topic: string, partition: number): MillraceError {
  return new MillraceError('MILLRACE_PARTITION_UNKNOWN', `this member of group ${group} does not own ${topic}/${partition}`, {
    details: { group, topic, partition },
  });
}

export function deferred<T>(): { promise: Promise<T>; resolve(value: T): void; reject(err: unknown): void } {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Rejections surface where the promise is awaited (start); an unawaited one is not an error.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
