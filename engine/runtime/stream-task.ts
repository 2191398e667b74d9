import { performance } from 'node:perf_hooks';
import { MillraceError, errorMessage, isMillraceError } from '../errors.js';
import type { Logger } from '../logger.js';
import {
  offset,
  type AppendRecord,
  type AppendResult,
  type LocalWrite,
  type Log,
  type LogRecord,
  type Offset,
  type ReadBatch,
  type Subscription,
} from '../log/log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { KeyValueBackend } from '../state/backend.js';
import type { StoreSpec, Subtopology, Topology } from '../topology/topology.js';
import { RecentCheckpoints } from './recent.js';
import type { InputStatus, TaskStatus } from './status.js';
import { TaskExecutor, type TaskEnvironment } from './task-executor.js';

/** The reason a fetch's wait is cut short (`abort()` without one builds a DOMException, stack and all, per fetch). */
const WOKEN = Symbol('woken');

export interface TaskConfig {
  /** Commit at least this often while records flow. */
  readonly commitIntervalMs: number;
  /** Commit after this many records, whatever the time. */
  readonly commitMaxRecords: number;
  /** Records fetched per read of one input partition. */
  readonly pollMaxRecords: number;
  /** How long a read waits for new records when a task has caught up. */
  readonly pollMaxWaitMs: number;
  /** Purge a repartition topic once this many consumed records could be deleted. */
  readonly purgeRepartitionRecords: number;
}

interface InputBuffer {
  readonly topic: string;
  readonly internal: boolean;
  records: LogRecord[];
  index: number;
  /** Next offset to fetch. */
  fetchAt: number;
  /** Next offset to process: advances past each processed record, and past gaps once a batch is used up. */
  position: number;
  /** Position as of the last durable checkpoint. */
  committed: number;
  highWatermark: number;
  /** `fetchAt` of the batch in `records`, kept to skip gaps when the batch is used up. */
  batchNext: number;
  purgedBefore: number;
  /** When the task first found this input without records while another had some (`maxTaskIdleMs`). */
  drySince: number | undefined;
}

const CHECKPOINT_MARKER_KEY = Buffer.from('checkpoint');

/** A partition behind and not moving for this long is reported stalled. */
export const STALLED_AFTER_MS = 30_000;

/**
 * Where state lives when the log cannot commit it in its own transactions (Kafka): a LevelDB of the process. Its
 * batches are written after the log transaction commits, with a checkpoint saying which changelog offsets they
 * reflect.
 */
export interface LocalState {
  write(writes: readonly LocalWrite[]): Promise<void>;
}

/** The task's event time, committed as metadata with its input offsets (as Kafka Streams keeps partition time). */
interface ClockMetadata {
  readonly streamTimeMs: number;
  readonly watermarkFloorMs: number;
}

/**
 * One task: one sub-topology on one partition, driven by a log. Records are processed strictly in offset order,
 * one at a time. A checkpoint commits the task's outputs, changelog records and input positions as one log
 * transaction. State changes go in the same unit where the log allows (embedded: one LevelDB batch); otherwise
 * (Kafka) they are written to local state right after the transaction commits, with the changelog offsets they
 * reflect, and a restart replays only the changelog tail the local state misses.
 *
 * Checkpoints are pipelined: the next records are processed while the last checkpoint is being written, and a new
 * checkpoint waits for the previous one to be durable.
 */
export class StreamTask {
  readonly executor: TaskExecutor;
  readonly #log: Log;
  readonly #topology: Topology;
  readonly #config: TaskConfig;
  readonly #metrics: Metrics;
  readonly #logger: Logger;
  readonly #env: TaskEnvironment;
  readonly #inputs: InputBuffer[];
  /** `maxTaskIdleMs` of the topology when the task has several inputs; else 0. */
  readonly #maxIdleMs: number;
  readonly #transactionalId: string;
  #state: TaskStatus['state'] = 'created';
  #error: string | null = null;
  #stopRequested = false;
  #abort = new AbortController();
  #inflight: Promise<void> | undefined;
  #sinceCommit = 0;
  #lastCommitMs = 0;
  #lastCommitAt: string | null = null;
  #commits = 0;
  readonly #recent = new RecentCheckpoints();
  /** Each input's position when a status read last saw it move. */
  readonly #progressSeen = new Map<string, { position: number; atMs: number }>();
  /** When the first record since the last checkpoint was taken: its wait is the checkpoint's record latency. */
  #firstTakenMs: number | undefined;
  #loop: Promise<void> | undefined;
  /** Per input topic: records processed since the metrics were last updated. */
  readonly #inCounts = new Map<string, number>();
  readonly #subscription: Subscription;
  readonly #localState: LocalState | undefined;
  /** Changelog records replayed into local state at start (a full restore, or just the missing tail). */
  restoredRecords = 0;

  constructor(options: {
    log: Log;
    subscription: Subscription;
    /** Required when the log cannot commit local state in its transactions. */
    localState?: LocalState;
    topology: Topology;
    subtopology: Subtopology;
    partition: number;
    env: TaskEnvironment;
    config: TaskConfig;
    metrics: Metrics;
    logger: Logger;
  }) {
    this.#log = options.log;
    this.#subscription = options.subscription;
    this.#localState = options.localState;
    this.#topology = options.topology;
    this.#config = options.config;
    this.#metrics = options.metrics;
    this.#env = options.env;
    this.executor = new TaskExecutor(options.topology, options.subtopology, options.partition, options.env);
    this.#logger = options.logger.child({ application: options.topology.applicationId, task: this.executor.taskId });
    this.#transactionalId = `${options.topology.applicationId}-${this.executor.taskId}`;
    this.#inputs = options.subtopology.sourceTopics.map((topic) => ({
      topic,
      internal: options.topology.internalTopics.has(topic),
      records: [],
      index: 0,
      fetchAt: 0,
      position: 0,
      committed: 0,
      highWatermark: 0,
      batchNext: 0,
      purgedBefore: 0,
      drySince: undefined,
    }));
    this.#maxIdleMs = this.#inputs.length > 1 ? options.topology.maxTaskIdleMs : 0;
    if (!this.#log.capabilities.atomicLocalState && this.#localState === undefined) {
      throw new TypeError('a log that cannot commit local state in its transactions needs a LocalState for the task');
    }
  }

  get taskId(): string {
    return this.executor.taskId;
  }

  get state(): TaskStatus['state'] {
    return this.#state;
  }

  /** Restores state if needed, finds where to resume, and starts the processing loop. */
  async start(): Promise<void> {
    const group = this.#topology.applicationId;
    this.#state = 'restoring';
    // A previous owner of this task (a stale process) must not commit after we read where to resume.
    await this.#log.fenceWriters(this.#transactionalId);
    await this.#restoreStores();
    for (const input of this.#inputs) {
      const metadata = (await this.#log.committedMetadata(group, input.topic)).get(this.executor.partition);
      if (metadata !== undefined && metadata !== '') this.executor.restoreClock(JSON.parse(metadata) as ClockMetadata);
      const committed = (await this.#log.committedOffsets(group, input.topic)).get(this.executor.partition);
      const [bounds] = (await this.#log.partitionOffsets(input.topic)).filter((p) => p.partition === this.executor.partition);
      // Never committed: start at the beginning (Kafka Streams' auto.offset.reset=earliest).
      const start = committed ?? bounds?.start ?? 0;
      input.fetchAt = input.position = input.committed = input.batchNext = input.purgedBefore = start;
      input.highWatermark = bounds?.end ?? 0;
    }
    const init = this.executor.init();
    if (init !== undefined) await init;
    this.#state = 'running';
    this.#lastCommitMs = performance.now();
    this.#logger.info({ positions: Object.fromEntries(this.#inputs.map((i) => [i.topic, i.position])) }, 'task started');
    this.#loop = this.#run().catch((err: unknown) => this.#fail(err));
  }

  /** Finishes the record in hand, commits, and stops. */
  async stop(): Promise<void> {
    this.#stopRequested = true;
    this.#abort.abort();
    await this.#loop;
    if (this.#state === 'running') this.#state = 'stopped';
    this.executor.close();
  }

  /** Resolves when the loop ends (stopped or failed). */
  get done(): Promise<void> {
    return this.#loop ?? Promise.resolve();
  }

  async #run(): Promise<void> {
    const executor = this.executor;
    const maxRecords = this.#config.commitMaxRecords;
    // Reading the clock costs more than processing a simple record: look at it every 64 records.
    let untilClockCheck = 64;
    while (!this.#stopRequested) {
      const input = this.#nextInput();
      const idleWaitMs = input === undefined || this.#maxIdleMs === 0 ? 0 : this.#idleWaitMs();
      if (input === undefined || idleWaitMs > 0) {
        await this.#punctuateWallClock();
        const fetched = await this.#fill(idleWaitMs);
        if (fetched === 0 && this.#commitDue()) await this.#commit();
        continue;
      }
      const record = input.records[input.index++]!;
      const pending = executor.process(record);
      if (pending !== undefined) await pending;
      input.position = record.offset + 1;
      if (input.index >= input.records.length) {
        input.position = Math.max(input.position, input.batchNext);
        input.records = [];
        input.index = 0;
      }
      this.#inCounts.set(input.topic, (this.#inCounts.get(input.topic) ?? 0) + 1);
      if (this.#sinceCommit === 0) this.#firstTakenMs = performance.now();
      this.#sinceCommit++;
      let due = this.#sinceCommit >= maxRecords || executor.wantsCommit;
      if (!due && --untilClockCheck === 0) {
        untilClockCheck = 64;
        await this.#punctuateWallClock();
        due = this.#commitDue();
      }
      if (due) await this.#commit();
    }
    await this.#commit();
    await this.#inflight;
  }

  async #punctuateWallClock(): Promise<void> {
    const due = this.executor.nextWallClockDueMs();
    if (due === undefined) return;
    const now = this.#env.wallClockMs();
    if (due > now) return;
    const punctuating = this.executor.punctuateWallClock(now);
    if (punctuating !== undefined) await punctuating;
  }

  #commitDue(): boolean {
    return performance.now() - this.#lastCommitMs >= this.#config.commitIntervalMs;
  }

  /** The input whose next buffered record has the lowest timestamp (Kafka Streams' choice among partitions). */
  #nextInput(): InputBuffer | undefined {
    const inputs = this.#inputs;
    if (inputs.length === 1) {
      const only = inputs[0]!;
      return only.index < only.records.length ? only : undefined;
    }
    let best: InputBuffer | undefined;
    for (const input of inputs) {
      if (input.index >= input.records.length) continue;
      if (best === undefined || input.records[input.index]!.timestamp < best.records[best.index]!.timestamp) best = input;
    }
    return best;
  }

  /**
   * While some input has records and another has none: how much longer to wait for the dry one (`maxTaskIdleMs`
   * from when it was first found dry; records arriving end the wait), or 0 to go on without it.
   */
  #idleWaitMs(): number {
    let wait = 0;
    let now: number | undefined;
    for (const input of this.#inputs) {
      if (input.index < input.records.length) continue;
      now ??= performance.now();
      input.drySince ??= now;
      wait = Math.max(wait, input.drySince + this.#maxIdleMs - now);
    }
    return wait;
  }

  /**
   * Fetches into every empty buffer. Waits (bounded) when nothing at all is buffered, or up to `idleWaitMs` for a
   * dry input while others have records.
   */
  async #fill(idleWaitMs = 0): Promise<number> {
    const empty = this.#inputs.filter((i) => i.index >= i.records.length);
    if (empty.length === 0) return 0;
    const anyBuffered = empty.length < this.#inputs.length;
    const untilCommit = this.#sinceCommit > 0 || this.#positionsMoved()
      ? Math.max(0, this.#config.commitIntervalMs - (performance.now() - this.#lastCommitMs))
      : this.#config.pollMaxWaitMs;
    const nextPunctuation = this.executor.nextWallClockDueMs();
    const untilPunctuation = nextPunctuation === undefined ? Infinity : Math.max(0, nextPunctuation - this.#env.wallClockMs());
    const maxWaitMs = Math.min(anyBuffered ? idleWaitMs : Infinity, this.#config.pollMaxWaitMs, untilCommit, untilPunctuation);
    // With several inputs, the first read that brings records wakes the others: records waiting in one input are not
    // held back. One input needs no wake-up of its own (and no AbortController per fetch): only a stop ends its wait.
    const wake = empty.length > 1 ? new AbortController() : undefined;
    const onStop = (): void => wake?.abort(WOKEN);
    if (wake !== undefined) this.#abort.signal.addEventListener('abort', onStop, { once: true });
    const signal = wake?.signal ?? this.#abort.signal;
    let fetched = 0;
    try {
      const results = await Promise.all(
        empty.map(async (input): Promise<[InputBuffer, ReadBatch]> => {
          const batch = await this.#subscription.read(input.topic, this.executor.partition, offset(input.fetchAt), {
            maxRecords: this.#config.pollMaxRecords,
            maxWaitMs,
            signal,
          });
          if (batch.records.length > 0) wake?.abort(WOKEN);
          return [input, batch];
        }),
      );
      for (const [input, batch] of results) {
        input.highWatermark = batch.highWatermark;
        input.fetchAt = batch.nextOffset;
        input.batchNext = batch.nextOffset;
        if (batch.records.length === 0) {
          // Nothing to process up to nextOffset (gaps, or records deleted by retention): the position moves on.
          input.position = Math.max(input.position, batch.nextOffset);
          continue;
        }
        input.records = batch.records;
        input.index = 0;
        input.drySince = undefined;
        fetched += batch.records.length;
        this.executor.noteInput(this.#env.wallClockMs());
      }
    } finally {
      if (wake !== undefined) this.#abort.signal.removeEventListener('abort', onStop);
    }
    return fetched;
  }

  #positionsMoved(): boolean {
    return this.#inputs.some((i) => i.position !== i.committed);
  }

  async #commit(): Promise<void> {
    // One checkpoint in flight at a time, in order: the previous one must be durable first.
    await this.#inflight;
    const executor = this.executor;
    const hooks = executor.runCommitHooks();
    if (hooks !== undefined) await hooks;
    const checkpoint = executor.takeCheckpoint();
    this.#lastCommitMs = performance.now();
    if (checkpoint.outputs.length === 0 && checkpoint.stores.length === 0 && !this.#positionsMoved()) {
      executor.checkpointDurable();
      return;
    }
    const group = this.#topology.applicationId;
    const clock: ClockMetadata = executor.clock;
    const metadata = JSON.stringify(clock);
    const positions = this.#inputs.map((i) => ({ topic: i.topic, partition: executor.partition, offset: offset(i.position), metadata }));
    const atomic = this.#log.capabilities.atomicLocalState;
    const transaction = await this.#log.beginTransaction({ transactionalId: this.#transactionalId });
    transaction.append(checkpoint.outputs);
    const stateWrites: LocalWrite[] = [];
    const changelogs: Array<{ store: StoreSpec; topic: string; count: number }> = [];
    for (const { store, backend, changes } of checkpoint.stores) {
      for (const write of backend.writesFor(changes)) stateWrites.push(write);
      if (store.changelog) {
        const topic = this.#topology.changelogTopic(store.name);
        const records: AppendRecord[] = changes.map(([key, value]) => ({ topic, partition: executor.partition, key, value }));
        transaction.append(records);
        changelogs.push({ store, topic, count: records.length });
        if (atomic) for (const write of this.#marker(store).writesFor([[CHECKPOINT_MARKER_KEY, Buffer.from('1')]])) stateWrites.push(write);
      }
    }
    if (atomic) transaction.addLocalWrites!(stateWrites);
    transaction.commitOffsets(group, positions);
    const started = performance.now();
    const outputs = checkpoint.outputs;
    const inCounts = new Map(this.#inCounts);
    this.#inCounts.clear();
    this.#sinceCommit = 0;
    const firstTakenMs = this.#firstTakenMs;
    this.#firstTakenMs = undefined;
    this.#inflight = transaction.commit().then(
      async (results) => {
        if (!atomic) await this.#writeLocalState(stateWrites, changelogs, results);
        executor.checkpointDurable();
        for (const input of this.#inputs) {
          const committed = positions.find((p) => p.topic === input.topic)!.offset;
          input.committed = committed;
        }
        const now = performance.now();
        this.#recordMetrics(outputs, inCounts, (now - started) / 1000, firstTakenMs === undefined ? undefined : (now - firstTakenMs) / 1000);
        this.#commits++;
        this.#recent.record(Date.now(), executor.processed, firstTakenMs === undefined ? undefined : now - firstTakenMs);
        this.#lastCommitAt = new Date().toISOString();
        return this.#purgeRepartitionInputs();
      },
      (err: unknown) => {
        if (isMillraceError(err, 'MILLRACE_TRANSACTION_FENCED')) throw err;
        throw new MillraceError('MILLRACE_TASK_FAILED', `task ${this.taskId} could not commit: ${errorMessage(err)}`, { cause: err });
      },
    );
    // The failure surfaces where the next checkpoint awaits this one; until then it is not "unhandled".
    this.#inflight.catch(() => undefined);
  }

  /**
   * The second half of a checkpoint on a log without atomic local state: the store changes, and per store the
   * changelog offset they reach, in one local batch. A crash before it leaves local state behind the committed
   * changelog, which the next start replays from the offset recorded here.
   */
  async #writeLocalState(
    stateWrites: LocalWrite[],
    changelogs: ReadonlyArray<{ store: StoreSpec; topic: string; count: number }>,
    results: readonly AppendResult[],
  ): Promise<void> {
    for (const { store, topic } of changelogs) {
      let next = -1;
      for (const r of results) if (r.topic === topic && r.partition === this.executor.partition && r.offset + 1 > next) next = r.offset + 1;
      if (next < 0) continue;
      for (const write of this.#marker(store).writesFor([[CHECKPOINT_MARKER_KEY, u64(next)]])) stateWrites.push(write);
    }
    await this.#localState!.write(stateWrites);
  }

  #recordMetrics(outputs: ReadonlyArray<{ topic: string }>, inCounts: Map<string, number>, seconds: number, latencySeconds: number | undefined): void {
    const application = this.#topology.applicationId;
    const task = this.taskId;
    for (const [topic, n] of inCounts) this.#metrics.recordsIn.inc({ application, task, topic }, n);
    const outCounts = new Map<string, number>();
    for (const o of outputs) outCounts.set(o.topic, (outCounts.get(o.topic) ?? 0) + 1);
    for (const [topic, n] of outCounts) this.#metrics.recordsOut.inc({ application, task, topic }, n);
    for (const { topic } of this.#inputs) {
      const dead = outCounts.get(`${topic}.dlq`);
      if (dead !== undefined) this.#metrics.deadLetters.inc({ application, task, topic }, dead);
    }
    this.#metrics.commitDuration.observe({ application }, seconds);
    if (latencySeconds !== undefined) this.#metrics.recordLatency.observe({ application }, latencySeconds);
    this.#metrics.commits.inc({ application });
  }

  /** Consumed and committed records of a repartition topic are no longer needed (Kafka Streams purges them too). */
  async #purgeRepartitionInputs(): Promise<void> {
    for (const input of this.#inputs) {
      if (!input.internal || input.committed - input.purgedBefore < this.#config.purgeRepartitionRecords) continue;
      await this.#log.deleteRecords(input.topic, this.executor.partition, offset(input.committed));
      input.purgedBefore = input.committed;
    }
  }

  #marker(store: StoreSpec): KeyValueBackend {
    return this.#env.openBackend({ ...store, name: `${store.name}~checkpoint` }, this.executor.partition);
  }

  /**
   * Brings every changelogged store up to its changelog before processing anything. On the embedded log a store is
   * consistent whenever its marker is there (state and changelog commit together); without it the store lost its
   * local state (or never had any), and is rebuilt from the whole changelog. Elsewhere the marker holds the changelog
   * offset the local state reflects: only the records after it are replayed; without it, the whole changelog is.
   */
  async #restoreStores(): Promise<void> {
    const atomic = this.#log.capabilities.atomicLocalState;
    for (const { spec, cache } of this.executor.storeHandles()) {
      if (!spec.changelog) continue;
      const marker = this.#marker(spec);
      const checkpoint = marker.getSync(CHECKPOINT_MARKER_KEY);
      if (atomic && checkpoint !== undefined) continue;
      const topic = this.#topology.changelogTopic(spec.name);
      const [bounds] = (await this.#log.partitionOffsets(topic)).filter((p) => p.partition === this.executor.partition);
      if (bounds === undefined) continue;
      const local = !atomic && checkpoint !== undefined && checkpoint.length === 8 ? checkpoint.readDoubleBE(0) : undefined;
      if (local === undefined && bounds.end <= bounds.start) continue;
      const started = performance.now();
      if (local === undefined) await cache.backend.clear();
      let at: Offset = offset(Math.max(local ?? bounds.start, bounds.start));
      let replayed = 0;
      while (at < bounds.end) {
        const batch = await this.#log.read(topic, this.executor.partition, at, { maxRecords: 5_000 });
        if (batch.records.length === 0 && batch.nextOffset <= at) break;
        const writes = cache.backend.writesFor(batch.records.map((r) => [r.key!, r.value] as const));
        for (const write of marker.writesFor([[CHECKPOINT_MARKER_KEY, atomic ? Buffer.from('1') : u64(batch.nextOffset)]])) writes.push(write);
        await this.#writeLocal(writes);
        replayed += batch.records.length;
        at = batch.nextOffset;
        if (batch.records.length === 0) break;
      }
      if (atomic && replayed === 0) await this.#writeLocal(marker.writesFor([[CHECKPOINT_MARKER_KEY, Buffer.from('1')]]));
      cache.reset();
      this.restoredRecords += replayed;
      this.#logger.info(
        { store: spec.name, records: replayed, from: local ?? bounds.start, to: bounds.end, ms: Math.round(performance.now() - started) },
        local === undefined ? 'store restored from its changelog' : 'changelog tail replayed into local state',
      );
    }
  }

  /** Local writes outside a checkpoint (restoring), as each kind of log allows. */
  async #writeLocal(writes: readonly LocalWrite[]): Promise<void> {
    if (this.#localState !== undefined) {
      await this.#localState.write(writes);
      return;
    }
    const transaction = await this.#log.beginTransaction({ transactionalId: `${this.#transactionalId}-restore` });
    transaction.addLocalWrites!(writes);
    await transaction.commit();
  }

  #fail(err: unknown): void {
    if (isMillraceError(err, 'MILLRACE_TRANSACTION_FENCED')) {
      // Another member owns this task now; its uncommitted work is redone there.
      this.#state = 'stopped';
      this.#logger.warn('task fenced by its new owner; stopping');
      return;
    }
    this.#state = 'failed';
    this.#error = errorMessage(err);
    this.#logger.error({ err }, 'task failed');
  }

  get error(): string | null {
    return this.#error;
  }

  /** Timestamp of the next record of each input the task has in hand (undefined: none buffered), by topic. */
  nextTimestamps(): Map<string, number | undefined> {
    return new Map(this.#inputs.map((i) => [i.topic, i.records[i.index]?.timestamp]));
  }

  inputs(): InputStatus[] {
    const now = Date.now();
    return this.#inputs.map((i) => {
      const lag = Math.max(0, i.highWatermark - i.position);
      // Progress is seen by status reads (reading the clock per record costs more than a simple record).
      const seen = this.#progressSeen.get(i.topic);
      if (seen === undefined || seen.position !== i.position || lag === 0) this.#progressSeen.set(i.topic, { position: i.position, atMs: now });
      const stalledForMs = lag > 0 && seen !== undefined && seen.position === i.position ? now - seen.atMs : 0;
      // The record at the position: the one being processed (just taken) or the next buffered.
      const taken = i.index > 0 ? i.records[i.index - 1] : undefined;
      const next = taken !== undefined && taken.offset === i.position ? taken : i.records[i.index];
      return {
        topic: i.topic,
        partition: this.executor.partition,
        position: i.position,
        committed: i.committed,
        highWatermark: Math.max(i.highWatermark, i.position),
        lag,
        lagSeconds: lag > 0 && next !== undefined ? Math.max(0, (now - next.timestamp) / 1000) : null,
        stalledForMs,
        stalled: stalledForMs >= STALLED_AFTER_MS,
      };
    });
  }

  status(): TaskStatus {
    const streamTime = this.executor.streamTimeMs;
    return {
      taskId: this.taskId,
      subtopology: this.executor.subtopology.id,
      partition: this.executor.partition,
      state: this.#state,
      inputs: this.inputs(),
      processed: this.executor.processed,
      deadLettered: this.executor.deadLettered,
      commits: this.#commits,
      restoredRecords: this.restoredRecords,
      lastCommitAt: this.#lastCommitAt,
      streamTime: streamTime < 0 ? null : new Date(streamTime).toISOString(),
      watermark: this.executor.watermarkMs < 0 || !Number.isFinite(this.executor.watermarkMs) ? null : new Date(this.executor.watermarkMs).toISOString(),
      error: this.#error,
      recordsPerSecond: this.#recent.recordsPerSecond(Date.now(), this.executor.processed),
      latencyMs: this.#recent.latency(),
      nodes: this.executor.nodes(),
    };
  }
}

/** A changelog offset in a checkpoint marker: 8 bytes (a double holds every safe offset exactly). */
function u64(n: number): Buffer {
  const buf = Buffer.allocUnsafe(8);
  buf.writeDoubleBE(n, 0);
  return buf;
}
