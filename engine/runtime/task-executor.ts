import { MillraceError, errorMessage, isMillraceError } from '../errors.js';
import type { Headers, LogRecord } from '../log/log.js';
import { Partitioner } from '../log/partitioner.js';
import type { SerdeContext } from '../serde/serde.js';
import type { KeyValueBackend } from '../state/backend.js';
import { CachingStore, RecordJournal } from '../state/caching-store.js';
import { TypedKeyValueStore, type KeyValueStore, type ReadOnlyKeyValueStore } from '../state/key-value-store.js';
import type { Cancellable, Processor, ProcessorContext, ProcessorInspection, PunctuationType } from '../topology/processor.js';
import type { RecordMetadata, StreamRecord } from '../topology/record.js';
import type { NodeSpec, SinkNodeSpec, SourceNodeSpec, StoreSpec, Subtopology, Topology } from '../topology/topology.js';
import { deadLetterFor, type ErrorPolicy } from './dead-letter.js';
import type { NodeStatus } from './status.js';

/** A record a task writes: to a sink topic, a changelog, a dead-letter or the late-records topic. */
export interface OutputRecord {
  readonly topic: string;
  readonly partition: number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly timestamp: number;
  readonly headers: Headers;
}

/** What a task needs from where it runs: the runtime (LevelDB, a log) or the test driver (memory). */
export interface TaskEnvironment {
  readonly applicationId: string;
  readonly errorPolicy: ErrorPolicy;
  /** Bytes of cache per store. */
  readonly cacheMaxBytesPerStore: number;
  openBackend(store: StoreSpec, partition: number): KeyValueBackend;
  /** Partition count of a topic a sink writes to. */
  partitionsOf(topic: string): number;
  wallClockMs(): number;
  /** A global store, read-only. */
  globalStore(name: string): ReadOnlyKeyValueStore<unknown, unknown>;
  /** Told about failures that have no record to dead-letter (a punctuator that threw). */
  onPunctuationError?(node: string, error: unknown): void;
}

export interface StoreChanges {
  readonly store: StoreSpec;
  readonly backend: KeyValueBackend;
  readonly changes: Array<[Buffer, Buffer | null]>;
}

/** Everything one checkpoint must commit atomically, taken from a task between records. */
export interface TaskCheckpoint {
  readonly outputs: OutputRecord[];
  readonly stores: StoreChanges[];
}

/** Task-level event time, committed with each checkpoint. */
export interface TaskClock {
  readonly streamTimeMs: number;
  readonly watermarkFloorMs: number;
}

interface PendingWork {
  readonly node: string;
  readonly promise: Promise<void>;
}

interface StoreHandle {
  readonly spec: StoreSpec;
  readonly cache: CachingStore;
  readonly typed: TypedKeyValueStore<unknown, unknown>;
}

interface Punctuator {
  readonly node: string;
  readonly type: PunctuationType;
  readonly intervalMs: number;
  readonly callback: (timestampMs: number) => void;
  /** Stream time: the interval bucket last fired; wall clock: when it fires next. */
  mark: number;
  cancelled: boolean;
}

/** What went wrong in a unit of work (a record or a punctuation), and where. */
interface Failure {
  readonly error: unknown;
  readonly node: string;
}

const EMPTY_HEADERS: Headers = Object.freeze({});

/**
 * Runs one sub-topology for one partition, one record at a time. Synchronous when every processor is: the
 * `TopologyTestDriver` and the runtime's tasks share this code, so a topology behaves the same in tests and in
 * production. Outputs and store changes accumulate until `takeCheckpoint`. A record (or punctuation) is a unit of
 * work: if it fails, its store writes and outputs are rolled back; a failed record becomes a dead letter, a late
 * one goes to the late-records topic.
 */
export class TaskExecutor {
  readonly taskId: string;
  readonly partition: number;
  readonly subtopology: Subtopology;
  readonly #topology: Topology;
  readonly #env: TaskEnvironment;
  readonly #journal = new RecordJournal();
  readonly #stores = new Map<string, StoreHandle>();
  readonly #sources = new Map<string, { spec: SourceNodeSpec; node: NodeInstance; keyContext: SerdeContext; valueContext: SerdeContext }>();
  /** Serde contexts of each sink topic, made once: they are the same for every record. */
  readonly #sinkContexts = new Map<string, { key: SerdeContext; value: SerdeContext }>();
  readonly #nodes: NodeInstance[] = [];
  readonly #commitHooks: Array<() => void | Promise<void>> = [];
  readonly #punctuators: Punctuator[] = [];
  readonly #partitioner = new Partitioner();
  #outputs: OutputRecord[] = [];
  #pending: PendingWork[] = [];
  #current: LogRecord | undefined;
  #currentNode = '';
  #streamTime = -1;
  #watermarkFloor = -1;
  #lastInputWallClock: number;
  /** Records processed, dead-lettered and sent to the late-records topic since creation, for metrics. */
  processed = 0;
  deadLettered = 0;
  late = 0;
  punctuationErrors = 0;

  constructor(topology: Topology, subtopology: Subtopology, partition: number, env: TaskEnvironment) {
    this.#topology = topology;
    this.subtopology = subtopology;
    this.partition = partition;
    this.#env = env;
    this.taskId = `${subtopology.id}_${partition}`;
    this.#lastInputWallClock = env.wallClockMs();
    for (const storeName of subtopology.stores) {
      const spec = topology.stores.get(storeName)!;
      const cache = new CachingStore(env.openBackend(spec, partition), {
        maxBytes: env.cacheMaxBytesPerStore,
        journal: this.#journal,
      });
      const typed = new TypedKeyValueStore(storeName, cache, spec.keySerde, spec.valueSerde, {
        ...(spec.ttlMs === undefined ? {} : { ttlMs: spec.ttlMs }),
        now: () => this.#streamTime,
      });
      this.#stores.set(storeName, { spec, cache, typed });
      if (spec.ttlMs !== undefined) this.#commitHooks.push(() => typed.sweepExpired());
    }
    const instances = new Map<string, NodeInstance>();
    for (const name of subtopology.nodes) {
      const instance = new NodeInstance(this, topology.nodes.get(name)!);
      instances.set(name, instance);
      this.#nodes.push(instance);
    }
    for (const instance of this.#nodes) {
      for (const child of topology.children.get(instance.name) ?? []) instance.addChild(instances.get(child)!);
      if (instance.spec.kind === 'source') {
        for (const topic of instance.spec.topics) {
          this.#sources.set(topic, { spec: instance.spec, node: instance, keyContext: { topic, isKey: true }, valueContext: { topic, isKey: false } });
        }
      }
    }
  }

  /** Per node: records received, and what its processor tells of itself (open windows). */
  nodes(): NodeStatus[] {
    return this.#nodes.map((node) => {
      const inspection = node.inspect();
      return {
        node: node.name,
        records: node.received,
        ...(inspection?.openWindows === undefined ? {} : { openWindows: inspection.openWindows }),
        ...(inspection?.nextWindowCloseMs === undefined
          ? {}
          : { nextWindowCloseAt: inspection.nextWindowCloseMs === null ? null : new Date(inspection.nextWindowCloseMs).toISOString() }),
      };
    });
  }

  /** Calls every processor's `init`, in graph order; returns a promise only if some `init` did. */
  init(): void | Promise<void> {
    for (let i = 0; i < this.#nodes.length; i++) {
      const result = this.#nodes[i]!.init();
      if (result !== undefined) {
        return (async () => {
          await result;
          for (const node of this.#nodes.slice(i + 1)) await node.init();
          this.#journal.clear();
        })();
      }
    }
    this.#journal.clear();
  }

  close(): void {
    for (const node of this.#nodes) node.close();
  }

  get streamTimeMs(): number {
    return this.#streamTime;
  }

  /** Stream time − allowed lateness, never below the floor an idle close raised it to; -1 before any record. */
  get watermarkMs(): number {
    if (this.#streamTime < 0) return this.#watermarkFloor;
    return Math.max(this.#streamTime - this.#topology.allowedLatenessMs, this.#watermarkFloor);
  }

  get clock(): TaskClock {
    return { streamTimeMs: this.#streamTime, watermarkFloorMs: this.#watermarkFloor };
  }

  /** Resumes event time from a checkpoint, so late-record decisions after a restart match an uninterrupted run. */
  restoreClock(clock: TaskClock): void {
    if (clock.streamTimeMs > this.#streamTime) this.#streamTime = clock.streamTimeMs;
    if (clock.watermarkFloorMs > this.#watermarkFloor) this.#watermarkFloor = clock.watermarkFloorMs;
    for (const p of this.#punctuators) if (p.type === 'stream-time') p.mark = this.#bucket(p);
  }

  /** The runtime says when it last handed the task input (once per fetched batch, not per record). */
  noteInput(wallClockMs: number): void {
    this.#lastInputWallClock = wallClockMs;
  }

  get outputCount(): number {
    return this.#outputs.length;
  }

  /** A store cache has more dirty bytes than it may hold: commit soon. */
  get wantsCommit(): boolean {
    for (const store of this.#stores.values()) if (store.cache.wantsFlush) return true;
    return false;
  }

  storeHandles(): Iterable<StoreHandle> {
    return this.#stores.values();
  }

  /** A store of this task, typed, for the test driver and for queries. */
  store<K, V>(name: string): TypedKeyValueStore<K, V> {
    const handle = this.#stores.get(name);
    if (handle === undefined) {
      throw new MillraceError('MILLRACE_STORE_UNKNOWN', `task ${this.taskId} has no store ${name}`);
    }
    return handle.typed as TypedKeyValueStore<K, V>;
  }

  // ---------------------------------------------------------------- records

  /**
   * Processes one record read from a source topic. Returns a promise only if some processor (or a serde's
   * `prepare`) returned one; the caller must await it before the next record.
   */
  process(input: LogRecord): void | Promise<void> {
    const source = this.#sources.get(input.topic);
    if (source === undefined) throw new TypeError(`task ${this.taskId} does not read ${input.topic}`);
    this.#current = input;
    this.#currentNode = source.spec.name;
    const outputsBefore = this.#outputs.length;
    const { keyContext, valueContext } = source;
    const preparing = (input.key === null ? undefined : source.spec.keySerde.prepare?.(input.key, keyContext))
      ?? (input.value === null ? undefined : source.spec.valueSerde.prepare?.(input.value, valueContext));
    if (preparing !== undefined) {
      return preparing.then(
        () => this.process(input),
        (error: unknown) => this.#recordFailed(input, { error, node: source.spec.name }, outputsBefore),
      );
    }
    let record: StreamRecord<unknown, unknown>;
    try {
      record = {
        key: input.key === null ? null : source.spec.keySerde.deserialize(input.key, keyContext),
        value: input.value === null ? null : source.spec.valueSerde.deserialize(input.value, valueContext),
        timestamp: input.timestamp,
        headers: input.headers,
      };
      if (source.spec.timestampExtractor !== undefined) record = { ...record, timestamp: extractTimestamp(source.spec, record) };
    } catch (error) {
      this.#recordFailed(input, { error, node: source.spec.name }, outputsBefore);
      return;
    }
    // Only a record that could be read moves stream time: a corrupt one must not close every open window.
    if (record.timestamp > this.#streamTime) this.#streamTime = record.timestamp;
    let failure: Failure | undefined;
    try {
      source.node.received++;
      source.node.forward(record);
    } catch (error) {
      this.#pending = [];
      failure = { error, node: this.#currentNode };
    }
    if (failure === undefined && this.#pending.length > 0) {
      return this.#drainPending().then((late) => this.#finishRecord(input, late, outputsBefore));
    }
    return this.#finishRecord(input, failure, outputsBefore);
  }

  #finishRecord(input: LogRecord, failure: Failure | undefined, outputsBefore: number): void | Promise<void> {
    if (failure === undefined) {
      this.#journal.clear();
      this.#current = undefined;
      this.processed++;
    } else {
      this.#recordFailed(input, failure, outputsBefore);
    }
    return this.#punctuateStreamTime();
  }

  /** Awaits the async work a unit left (processors may forward to async children while they settle). */
  async #drainPending(): Promise<Failure | undefined> {
    while (this.#pending.length > 0) {
      const next = this.#pending.shift()!;
      try {
        await next.promise;
      } catch (error) {
        this.#pending = [];
        return { error, node: next.node };
      }
    }
    return undefined;
  }

  #recordFailed(input: LogRecord, failure: Failure, outputsBefore: number): void {
    this.#journal.rollback();
    this.#outputs.length = outputsBefore;
    this.#current = undefined;
    const { error, node } = failure;
    if (isMillraceError(error, 'MILLRACE_LATE_RECORD')) {
      this.#emitLate(input, error, node);
      return;
    }
    if (this.#env.errorPolicy === 'fail') {
      throw new MillraceError('MILLRACE_TASK_FAILED', `task ${this.taskId} failed at ${input.topic}/${input.partition}@${input.offset} in ${node}: ${errorMessage(error)}`, {
        cause: error,
        details: { topic: input.topic, partition: input.partition, offset: input.offset, node },
      });
    }
    const problem = isMillraceError(error)
      ? error
      : new MillraceError('MILLRACE_PROCESSING', `${node} threw: ${errorMessage(error)}`, { cause: error });
    const dlqTopic = `${input.topic}.dlq`;
    this.#outputs.push(
      deadLetterFor(input, problem, {
        topic: dlqTopic,
        partition: input.partition % this.#env.partitionsOf(dlqTopic),
        node,
        applicationId: this.#env.applicationId,
        taskId: this.taskId,
      }),
    );
    this.deadLettered++;
  }

  #emitLate(input: LogRecord, error: MillraceError, node: string): void {
    const topic = this.#topology.lateRecordsTopic;
    this.#outputs.push(
      deadLetterFor(input, error, {
        topic,
        partition: this.partition % this.#env.partitionsOf(topic),
        node,
        applicationId: this.#env.applicationId,
        taskId: this.taskId,
      }),
    );
    this.late++;
  }

  // ---------------------------------------------------------------- punctuation

  /** @internal */
  schedule(node: string, intervalMs: number, type: PunctuationType, callback: (timestampMs: number) => void): Cancellable {
    if (!Number.isSafeInteger(intervalMs) || intervalMs <= 0) {
      throw new RangeError(`a punctuation interval must be a positive integer of ms, got ${intervalMs}`);
    }
    const punctuator: Punctuator = { node, type, intervalMs, callback, mark: 0, cancelled: false };
    punctuator.mark = type === 'stream-time' ? this.#bucket(punctuator) : this.#nextWallClock(punctuator, this.#env.wallClockMs());
    this.#punctuators.push(punctuator);
    return {
      cancel: () => {
        punctuator.cancelled = true;
        const at = this.#punctuators.indexOf(punctuator);
        if (at >= 0) this.#punctuators.splice(at, 1);
      },
    };
  }

  #bucket(p: Punctuator): number {
    return this.#streamTime < 0 ? -1 : Math.floor(this.#streamTime / p.intervalMs);
  }

  #nextWallClock(p: Punctuator, now: number): number {
    return (Math.floor(now / p.intervalMs) + 1) * p.intervalMs;
  }

  /** Fires stream-time punctuators whose interval stream time has crossed (at most once per call each). */
  #punctuateStreamTime(): void | Promise<void> {
    if (this.#punctuators.length === 0 || this.#streamTime < 0) return;
    let due: Punctuator[] | undefined;
    for (const p of this.#punctuators) {
      if (p.type !== 'stream-time') continue;
      const bucket = this.#bucket(p);
      if (bucket <= p.mark) continue;
      p.mark = bucket;
      (due ??= []).push(p);
    }
    if (due === undefined) return;
    return this.#punctuate(due, () => this.#streamTime);
  }

  /** When the next wall-clock punctuator is due; `undefined` if there is none. */
  nextWallClockDueMs(): number | undefined {
    let next: number | undefined;
    for (const p of this.#punctuators) if (p.type === 'wall-clock' && (next === undefined || p.mark < next)) next = p.mark;
    return next;
  }

  /** Fires the wall-clock punctuators due at `nowMs`. */
  punctuateWallClock(nowMs: number): void | Promise<void> {
    const due = this.#punctuators.filter((p) => p.type === 'wall-clock' && p.mark <= nowMs);
    for (const p of due) p.mark = this.#nextWallClock(p, nowMs);
    return this.#punctuate(due, () => nowMs);
  }

  #punctuate(due: Punctuator[], timestamp: () => number): void | Promise<void> {
    for (let i = 0; i < due.length; i++) {
      const p = due[i]!;
      if (p.cancelled) continue;
      const outcome = this.#punctuateOne(p, timestamp());
      if (outcome !== undefined) {
        return (async () => {
          await outcome;
          for (const rest of due.slice(i + 1)) if (!rest.cancelled) await this.#punctuateOne(rest, timestamp());
        })();
      }
    }
  }

  #punctuateOne(p: Punctuator, timestampMs: number): void | Promise<void> {
    this.#current = undefined;
    this.#currentNode = p.node;
    const outputsBefore = this.#outputs.length;
    let failure: Failure | undefined;
    try {
      p.callback(timestampMs);
    } catch (error) {
      this.#pending = [];
      failure = { error, node: p.node };
    }
    if (failure === undefined && this.#pending.length > 0) {
      return this.#drainPending().then((late) => this.#finishPunctuation(late, outputsBefore));
    }
    this.#finishPunctuation(failure, outputsBefore);
  }

  #finishPunctuation(failure: Failure | undefined, outputsBefore: number): void {
    if (failure === undefined) {
      this.#journal.clear();
      return;
    }
    this.#journal.rollback();
    this.#outputs.length = outputsBefore;
    if (this.#env.errorPolicy === 'fail') {
      throw new MillraceError('MILLRACE_TASK_FAILED', `task ${this.taskId} failed in a punctuator of ${failure.node}: ${errorMessage(failure.error)}`, {
        cause: failure.error,
      });
    }
    this.punctuationErrors++;
    this.#env.onPunctuationError?.(failure.node, failure.error);
  }

  // ---------------------------------------------------------------- checkpoints

  /** Runs the processors' pre-checkpoint work (e.g. purging closed windows, sweeping expired entries). */
  runCommitHooks(): void | Promise<void> {
    const pending: Array<Promise<void>> = [];
    for (const hook of this.#commitHooks) {
      const result = hook();
      if (result !== undefined) pending.push(result);
    }
    if (pending.length === 0) {
      this.#journal.clear();
      return;
    }
    return Promise.all(pending).then(() => this.#journal.clear());
  }

  /**
   * Takes the outputs and store changes since the last checkpoint. Store entries stay cached and pinned until
   * `checkpointDurable` is called.
   */
  takeCheckpoint(): TaskCheckpoint {
    const outputs = this.#outputs;
    this.#outputs = [];
    const stores: StoreChanges[] = [];
    for (const { spec, cache } of this.#stores.values()) {
      const changes = cache.takeDirty();
      if (changes.length > 0) stores.push({ store: spec, backend: cache.backend, changes });
    }
    return { outputs, stores };
  }

  checkpointDurable(): void {
    for (const { cache } of this.#stores.values()) cache.releasePinned();
  }

  // ---- used by node instances

  /** @internal */
  get currentRecord(): LogRecord | undefined {
    return this.#current;
  }

  /** @internal */
  get lastInputWallClockMs(): number {
    return this.#lastInputWallClock;
  }

  /** @internal */
  advanceWatermark(ms: number): void {
    if (ms > this.#watermarkFloor) this.#watermarkFloor = ms;
  }

  /** @internal The record in hand goes to the late-records topic too; its processing goes on. */
  reportLate(node: string, reason: string, details: Record<string, unknown> = {}): void {
    const input = this.#current;
    if (input === undefined) throw new TypeError(`${node}: reportLate is only valid while a record is processed`);
    this.#emitLate(input, new MillraceError('MILLRACE_LATE_RECORD', `${node}: ${reason}`, { details: { reason: 'late', ...details } }), node);
  }

  /** @internal */
  enterNode(name: string): string {
    const previous = this.#currentNode;
    this.#currentNode = name;
    return previous;
  }

  /** @internal */
  leaveNode(previous: string): void {
    this.#currentNode = previous;
  }

  /** @internal */
  addPending(node: string, promise: Promise<void>): void {
    this.#pending.push({ node, promise });
  }

  /** @internal */
  addCommitHook(hook: () => void | Promise<void>): void {
    this.#commitHooks.push(hook);
  }

  /** @internal */
  typedStore(node: string, allowed: readonly string[], name: string): KeyValueStore<unknown, unknown> {
    if (!allowed.includes(name)) {
      throw new MillraceError('MILLRACE_STORE_UNKNOWN', `processor ${node} did not declare store ${name} (declare it in the node's stores)`);
    }
    return this.store(name);
  }

  /** @internal A sink's output: the key picks the partition as Kafka's producer would. */
  emit(sink: SinkNodeSpec, record: StreamRecord<unknown, unknown>): void {
    let contexts = this.#sinkContexts.get(sink.topic);
    if (contexts === undefined) this.#sinkContexts.set(sink.topic, (contexts = { key: { topic: sink.topic, isKey: true }, value: { topic: sink.topic, isKey: false } }));
    const keyBytes = record.key === null || record.key === undefined ? null : sink.keySerde.serialize(record.key, contexts.key);
    const valueBytes = record.value === null || record.value === undefined ? null : sink.valueSerde.serialize(record.value, contexts.value);
    const partitions = this.#env.partitionsOf(sink.topic);
    // Without a key, stay deterministic (a replay must place records where the first run did): follow the input.
    const partition = keyBytes === null ? this.partition % partitions : this.#partitioner.partition(sink.topic, partitions, keyBytes);
    this.#outputs.push({
      topic: sink.topic,
      partition,
      key: keyBytes,
      value: valueBytes,
      timestamp: record.timestamp,
      headers: record.headers ?? EMPTY_HEADERS,
    });
  }

  /** @internal */
  get environment(): TaskEnvironment {
    return this.#env;
  }
}

function extractTimestamp(source: SourceNodeSpec, record: StreamRecord<unknown, unknown>): number {
  const timestamp = source.timestampExtractor!(record);
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new MillraceError('MILLRACE_PROCESSING', `${source.name}: the timestamp extractor gave ${String(timestamp)}, not a non-negative integer of ms`, {
      details: { reason: 'invalid-timestamp' },
    });
  }
  return timestamp;
}

/** One node of the graph inside one task: its processor instance, context and children. */
class NodeInstance {
  readonly name: string;
  /** Records this node received since the task was created: the console colours the graph by it. */
  received = 0;
  readonly spec: NodeSpec;
  readonly #task: TaskExecutor;
  readonly #children: NodeInstance[] = [];
  readonly #childByName = new Map<string, NodeInstance>();
  readonly #processor: Processor<unknown, unknown, unknown, unknown> | undefined;
  readonly #context: ProcessorContext<unknown, unknown>;

  constructor(task: TaskExecutor, spec: NodeSpec) {
    this.#task = task;
    this.spec = spec;
    this.name = spec.name;
    this.#processor = spec.kind === 'processor' ? spec.supplier() : undefined;
    const stores = spec.kind === 'processor' ? spec.stores : [];
    const node = this;
    this.#context = {
      applicationId: task.environment.applicationId,
      taskId: task.taskId,
      partition: task.partition,
      nodeName: spec.name,
      recordMetadata(): RecordMetadata | undefined {
        const current = task.currentRecord;
        return current === undefined ? undefined : { topic: current.topic, partition: current.partition, offset: current.offset };
      },
      forward(record, childName) {
        node.forward(record, childName);
      },
      store<K, V>(name: string): KeyValueStore<K, V> {
        return task.typedStore(spec.name, stores, name) as KeyValueStore<K, V>;
      },
      globalStore<K, V>(name: string): ReadOnlyKeyValueStore<K, V> {
        return task.environment.globalStore(name) as ReadOnlyKeyValueStore<K, V>;
      },
      streamTimeMs: () => task.streamTimeMs,
      watermarkMs: () => task.watermarkMs,
      advanceWatermark: (ms) => task.advanceWatermark(ms),
      wallClockMs: () => task.environment.wallClockMs(),
      lastInputWallClockMs: () => task.lastInputWallClockMs,
      schedule: (intervalMs, type, callback) => task.schedule(spec.name, intervalMs, type, callback),
      reportLate: (reason, details) => task.reportLate(spec.name, reason, details),
      onCommit(callback) {
        task.addCommitHook(callback);
      },
    };
  }

  addChild(child: NodeInstance): void {
    this.#children.push(child);
    this.#childByName.set(child.name, child);
  }

  init(): void | Promise<void> {
    const previous = this.#task.enterNode(this.name);
    try {
      return this.#processor?.init?.(this.#context);
    } finally {
      this.#task.leaveNode(previous);
    }
  }

  close(): void {
    this.#processor?.close?.();
  }

  forward(record: StreamRecord<unknown, unknown>, childName?: string): void {
    if (childName !== undefined) {
      const child = this.#childByName.get(childName);
      if (child === undefined) throw new TypeError(`${this.name} has no child named ${childName}`);
      child.receive(record);
      return;
    }
    const children = this.#children;
    for (let i = 0; i < children.length; i++) children[i]!.receive(record);
  }

  inspect(): ProcessorInspection | undefined {
    return this.#processor?.inspect?.();
  }

  receive(record: StreamRecord<unknown, unknown>): void {
    this.received++;
    const task = this.#task;
    const previous = task.enterNode(this.name);
    if (this.spec.kind === 'sink') {
      task.emit(this.spec, record);
    } else if (this.#processor !== undefined) {
      const result = this.#processor.process(record, this.#context);
      if (result !== undefined && typeof (result as Promise<void>).then === 'function') task.addPending(this.name, result);
    }
    task.leaveNode(previous);
  }
}
