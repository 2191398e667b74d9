import { MillraceError, errorMessage, isMillraceError } from '../errors.js';
import type { Headers, LogRecord } from '../log/log.js';
import { Partitioner } from '../log/partitioner.js';
import type { SerdeContext } from '../serde/serde.js';
import type { KeyValueBackend } from '../state/backend.js';
import { CachingStore, RecordJournal } from '../state/caching-store.js';
import { TypedKeyValueStore, type KeyValueStore } from '../state/key-value-store.js';
import type { Processor, ProcessorContext } from '../topology/processor.js';
import type { RecordMetadata, StreamRecord } from '../topology/record.js';
import type { NodeSpec, SinkNodeSpec, SourceNodeSpec, StoreSpec, Subtopology, Topology } from '../topology/topology.js';
import { deadLetterFor, type ErrorPolicy } from './dead-letter.js';

/** A record a task writes: to a sink topic, a changelog or a dead-letter topic. */
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

interface PendingWork {
  readonly node: string;
  readonly promise: Promise<void>;
}

interface StoreHandle {
  readonly spec: StoreSpec;
  readonly cache: CachingStore;
  readonly typed: TypedKeyValueStore<unknown, unknown>;
}

const EMPTY_HEADERS: Headers = Object.freeze({});

/**
 * Runs one sub-topology for one partition, one record at a time. Synchronous when every processor is: the
 * `TopologyTestDriver` and the runtime's tasks share this code, so a topology behaves the same in tests and in
 * production. Outputs and store changes accumulate until `takeCheckpoint`; a record that fails has its store writes
 * and outputs rolled back and is turned into a dead letter.
 */
export class TaskExecutor {
  readonly taskId: string;
  readonly partition: number;
  readonly subtopology: Subtopology;
  readonly #topology: Topology;
  readonly #env: TaskEnvironment;
  readonly #journal = new RecordJournal();
  readonly #stores = new Map<string, StoreHandle>();
  readonly #sources = new Map<string, { spec: SourceNodeSpec; node: NodeInstance }>();
  readonly #nodes: NodeInstance[] = [];
  readonly #commitHooks: Array<() => void | Promise<void>> = [];
  readonly #partitioner = new Partitioner();
  #outputs: OutputRecord[] = [];
  #pending: PendingWork[] = [];
  #current: LogRecord | undefined;
  #currentNode = '';
  #streamTime = -1;
  /** Records processed and dead-lettered since creation, for metrics. */
  processed = 0;
  deadLettered = 0;

  constructor(topology: Topology, subtopology: Subtopology, partition: number, env: TaskEnvironment) {
    this.#topology = topology;
    this.subtopology = subtopology;
    this.partition = partition;
    this.#env = env;
    this.taskId = `${subtopology.id}_${partition}`;
    for (const storeName of subtopology.stores) {
      const spec = topology.stores.get(storeName)!;
      const cache = new CachingStore(env.openBackend(spec, partition), {
        maxBytes: env.cacheMaxBytesPerStore,
        journal: this.#journal,
      });
      this.#stores.set(storeName, {
        spec,
        cache,
        typed: new TypedKeyValueStore(storeName, cache, spec.keySerde, spec.valueSerde),
      });
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
        for (const topic of instance.spec.topics) this.#sources.set(topic, { spec: instance.spec, node: instance });
      }
    }
  }

  /** Calls every processor's `init`. */
  init(): void {
    for (const node of this.#nodes) node.init();
  }

  close(): void {
    for (const node of this.#nodes) node.close();
  }

  get streamTimeMs(): number {
    return this.#streamTime;
  }

  /** Resumes stream time from a checkpoint, so late-record decisions after a restart match an uninterrupted run. */
  restoreStreamTime(ms: number): void {
    if (ms > this.#streamTime) this.#streamTime = ms;
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
    const keyContext: SerdeContext = { topic: input.topic, isKey: true };
    const valueContext: SerdeContext = { topic: input.topic, isKey: false };
    const preparing = (input.key === null ? undefined : source.spec.keySerde.prepare?.(input.key, keyContext))
      ?? (input.value === null ? undefined : source.spec.valueSerde.prepare?.(input.value, valueContext));
    if (preparing !== undefined) {
      return preparing.then(
        () => this.process(input),
        (err: unknown) => this.#fail(input, err, source.spec.name, outputsBefore),
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
    } catch (err) {
      this.#fail(input, err, source.spec.name, outputsBefore);
      return;
    }
    // Only a record that could be read moves stream time: a corrupt one must not close every open window.
    if (input.timestamp > this.#streamTime) this.#streamTime = input.timestamp;
    try {
      source.node.forward(record);
    } catch (err) {
      this.#fail(input, err, this.#currentNode, outputsBefore);
      return;
    }
    if (this.#pending.length > 0) return this.#settle(input, outputsBefore);
    this.#succeed();
  }

  async #settle(input: LogRecord, outputsBefore: number): Promise<void> {
    // Processors may forward to async children while they settle: drain until nothing is left.
    while (this.#pending.length > 0) {
      const work = this.#pending.shift()!;
      try {
        await work.promise;
      } catch (err) {
        this.#pending = [];
        this.#fail(input, err, work.node, outputsBefore);
        return;
      }
    }
    this.#succeed();
  }

  #succeed(): void {
    this.#journal.clear();
    this.#current = undefined;
    this.processed++;
  }

  #fail(input: LogRecord, err: unknown, node: string, outputsBefore: number): void {
    this.#journal.rollback();
    this.#outputs.length = outputsBefore;
    this.#current = undefined;
    if (this.#env.errorPolicy === 'fail') {
      throw new MillraceError('MILLRACE_TASK_FAILED', `task ${this.taskId} failed at ${input.topic}/${input.partition}@${input.offset} in ${node}: ${errorMessage(err)}`, {
        cause: err,
        details: { topic: input.topic, partition: input.partition, offset: input.offset, node },
      });
    }
    const error = isMillraceError(err)
      ? err
      : new MillraceError('MILLRACE_PROCESSING', `${node} threw: ${errorMessage(err)}`, { cause: err });
    const dlqTopic = `${input.topic}.dlq`;
    this.#outputs.push(
      deadLetterFor(input, error, {
        topic: dlqTopic,
        partition: input.partition % this.#env.partitionsOf(dlqTopic),
        node,
        applicationId: this.#env.applicationId,
        taskId: this.taskId,
      }),
    );
    this.deadLettered++;
  }

  /** Runs the processors' pre-checkpoint work (e.g. purging closed windows). */
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
    const keyBytes = record.key === null || record.key === undefined ? null : sink.keySerde.serialize(record.key, { topic: sink.topic, isKey: true });
    const valueBytes = record.value === null || record.value === undefined ? null : sink.valueSerde.serialize(record.value, { topic: sink.topic, isKey: false });
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

/** One node of the graph inside one task: its processor instance, context and children. */
class NodeInstance {
  readonly name: string;
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
      streamTimeMs: () => task.streamTimeMs,
      wallClockMs: () => task.environment.wallClockMs(),
      onCommit(callback) {
        task.addCommitHook(callback);
      },
    };
  }

  addChild(child: NodeInstance): void {
    this.#children.push(child);
    this.#childByName.set(child.name, child);
  }

  init(): void {
    this.#processor?.init?.(this.#context);
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

  receive(record: StreamRecord<unknown, unknown>): void {
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
