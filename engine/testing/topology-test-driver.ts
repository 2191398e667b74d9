import { MillraceError } from '../errors.js';
import type { Headers, LogRecord, Offset } from '../log/log.js';
import { Serdes, type Serde } from '../serde/serde.js';
import { MemoryBackend } from '../state/backend.js';
import type { TypedKeyValueStore } from '../state/key-value-store.js';
import type { StreamRecord } from '../topology/record.js';
import type { GlobalStoreSpec, Topology } from '../topology/topology.js';
import { GlobalStoreView, globalChange } from '../runtime/global-store.js';
import type { DeadLetter, ErrorPolicy } from '../runtime/dead-letter.js';
import { TaskExecutor, type OutputRecord } from '../runtime/task-executor.js';

/** What one checkpoint wrote: each store's changed keys with their bytes before and after, and the records out. */
export interface CheckpointObservation {
  readonly stores: ReadonlyArray<{ readonly store: string; readonly key: Buffer; readonly before: Buffer | null; readonly after: Buffer | null }>;
  readonly outputs: readonly OutputRecord[];
}

export interface TopologyTestDriverOptions {
  /** Wall-clock time the driver starts at (ms since the epoch); advanced only by `advanceWallClockTime`. */
  readonly initialWallClockMs?: number;
  /** Sees every checkpoint (one per input record): what replays record as steps. */
  readonly onCheckpoint?: (observation: CheckpointObservation) => void;
  readonly errorPolicy?: ErrorPolicy;
  readonly cacheMaxBytesPerStore?: number;
}

interface StoredRecord extends OutputRecord {
  readonly offset: number;
}

/**
 * Runs a topology synchronously in memory, without a log or a server: pipe records in, read records out, look
 * into stores. Every topic has one partition; records written to a topic the topology reads (a repartition topic)
 * are processed at once, and a checkpoint is taken after every input record, so outputs appear immediately.
 *
 *   const driver = new TopologyTestDriver(topology);
 *   const input = driver.createInputTopic('words', { valueSerde: Serdes.string() });
 *   const output = driver.createOutputTopic('counts', { valueSerde: Serdes.int64() });
 *   input.pipeInput('a', 'hello');
 *   expect(output.readKeyValuesToList()).toEqual([{ key: 'hello', value: 1 }]);
 */
export class TopologyTestDriver {
  readonly #topology: Topology;
  readonly #tasks = new Map<string, TaskExecutor>();
  readonly #topics = new Map<string, StoredRecord[]>();
  readonly #backends = new Map<string, MemoryBackend>();
  /** Global stores by the topic that feeds them. */
  readonly #globals = new Map<string, { spec: GlobalStoreSpec; backend: MemoryBackend; view: GlobalStoreView<unknown, unknown> }>();
  #wallClockMs: number;
  readonly #onCheckpoint: TopologyTestDriverOptions['onCheckpoint'];
  #processing = false;
  readonly #queue: StoredRecord[] = [];

  constructor(topology: Topology, options: TopologyTestDriverOptions = {}) {
    this.#topology = topology;
    this.#wallClockMs = options.initialWallClockMs ?? 0;
    this.#onCheckpoint = options.onCheckpoint;
    const env = {
      applicationId: topology.applicationId,
      errorPolicy: options.errorPolicy ?? 'dead-letter',
      cacheMaxBytesPerStore: options.cacheMaxBytesPerStore ?? 1024 * 1024,
      openBackend: (store: { name: string }, partition: number) => {
        const backend = new MemoryBackend(store.name, partition);
        this.#backends.set(store.name, backend);
        return backend;
      },
      partitionsOf: () => 1,
      wallClockMs: () => this.#wallClockMs,
      globalStore: (name: string) => {
        const global = [...this.#globals.values()].find((g) => g.spec.name === name);
        if (global === undefined) throw new MillraceError('MILLRACE_STORE_UNKNOWN', `the topology has no global store ${name}`);
        return global.view;
      },
    };
    for (const spec of topology.globalStores.values()) {
      const backend = new MemoryBackend(`~global-${spec.name}`, 0);
      this.#globals.set(spec.topic, { spec, backend, view: new GlobalStoreView(spec, backend) });
    }
    for (const sub of topology.subtopologies) {
      const task = new TaskExecutor(topology, sub, 0, env);
      for (const topic of sub.sourceTopics) this.#tasks.set(topic, task);
    }
    for (const task of new Set(this.#tasks.values())) {
      if (task.init() !== undefined) throw new TypeError('a processor init returned a promise: the TopologyTestDriver runs synchronous processors only');
    }
  }

  createInputTopic<K = string, V = unknown>(topic: string, serdes: { keySerde?: Serde<K>; valueSerde?: Serde<V> } = {}): TestInputTopic<K, V> {
    if (!this.#tasks.has(topic) && !this.#globals.has(topic)) {
      throw new MillraceError('MILLRACE_TOPIC_UNKNOWN', `the topology does not read ${topic}; it reads ${[...this.#tasks.keys(), ...this.#globals.keys()].join(', ')}`);
    }
    return new TestInputTopic<K, V>(this, topic, serdes.keySerde ?? (Serdes.string() as unknown as Serde<K>), serdes.valueSerde ?? Serdes.json<V>());
  }

  createOutputTopic<K = string, V = unknown>(topic: string, serdes: { keySerde?: Serde<K>; valueSerde?: Serde<V> } = {}): TestOutputTopic<K, V> {
    return new TestOutputTopic<K, V>(this, topic, serdes.keySerde ?? (Serdes.string() as unknown as Serde<K>), serdes.valueSerde ?? Serdes.json<V>());
  }

  /** Records that arrived after their window closed, with the reason (`<app>-late-records`). */
  lateRecords(): DeadLetter[] {
    return this.records(this.#topology.lateRecordsTopic).map((r) => JSON.parse(r.value!.toString('utf8')) as DeadLetter);
  }

  /** Dead letters written for records read from `sourceTopic`. */
  deadLetters(sourceTopic: string): DeadLetter[] {
    return this.records(`${sourceTopic}.dlq`).map((r) => JSON.parse(r.value!.toString('utf8')) as DeadLetter);
  }

  /** A store of the task that owns it. */
  getKeyValueStore<K, V>(name: string): TypedKeyValueStore<K, V> {
    for (const task of new Set(this.#tasks.values())) {
      if (task.subtopology.stores.includes(name)) return task.store<K, V>(name);
    }
    throw new MillraceError('MILLRACE_STORE_UNKNOWN', `the topology has no store ${name}`);
  }

  /** What the store's backend holds after the last checkpoint, as [key bytes, value bytes]. */
  committedStoreEntries(name: string): Array<[Buffer, Buffer]> {
    const backend = this.#backends.get(name);
    if (backend === undefined) throw new MillraceError('MILLRACE_STORE_UNKNOWN', `the topology has no store ${name}`);
    return [...backend.entries({})];
  }

  /** Moves the wall clock forward and fires the wall-clock punctuators that came due, as a running task would. */
  advanceWallClockTime(ms: number): void {
    this.#wallClockMs += ms;
    for (const task of new Set(this.#tasks.values())) {
      if (task.punctuateWallClock(this.#wallClockMs) !== undefined) {
        throw new TypeError('a punctuator left async work: the TopologyTestDriver runs synchronous processors only');
      }
      this.#checkpoint(task);
    }
    this.#drain();
  }

  get wallClockMs(): number {
    return this.#wallClockMs;
  }

  /** @internal Every record written to a topic, in order. */
  records(topic: string): readonly StoredRecord[] {
    return this.#topics.get(topic) ?? [];
  }

  /** @internal */
  pipe(topic: string, key: Buffer | null, value: Buffer | null, timestamp: number, headers: Headers): void {
    const stored = this.#append({ topic, partition: 0, key, value, timestamp, headers });
    const global = this.#globals.get(topic);
    if (global !== undefined) {
      // A global store takes the record at once, as the runtime's global store task would soon after.
      const change = globalChange(global.spec, stored);
      if (typeof change !== 'string') {
        global.backend.apply(global.backend.writesFor([change]));
        global.view.applied([change]);
      }
      return;
    }
    this.#queue.push(stored);
    this.#drain();
  }

  /** Stream time and watermark of the task that reads `topic`. */
  clockOf(topic: string): { streamTimeMs: number; watermarkMs: number } {
    const task = this.#tasks.get(topic);
    if (task === undefined) throw new MillraceError('MILLRACE_TOPIC_UNKNOWN', `the topology does not read ${topic}`);
    return { streamTimeMs: task.streamTimeMs, watermarkMs: task.watermarkMs };
  }

  #append(record: OutputRecord): StoredRecord {
    let list = this.#topics.get(record.topic);
    if (list === undefined) {
      list = [];
      this.#topics.set(record.topic, list);
    }
    const stored = { ...record, partition: 0, offset: list.length };
    list.push(stored);
    return stored;
  }

  #drain(): void {
    if (this.#processing) return;
    this.#processing = true;
    try {
      while (this.#queue.length > 0) {
        const record = this.#queue.shift()!;
        const task = this.#tasks.get(record.topic);
        if (task === undefined) continue;
        const input: LogRecord = {
          topic: record.topic,
          partition: 0,
          offset: record.offset as Offset,
          timestamp: record.timestamp,
          key: record.key,
          value: record.value,
          headers: record.headers,
        };
        task.noteInput(this.#wallClockMs);
        if (task.process(input) !== undefined) {
          throw new TypeError('a processor returned a promise: the TopologyTestDriver runs synchronous processors only');
        }
        this.#checkpoint(task);
      }
    } finally {
      this.#processing = false;
    }
  }

  #checkpoint(task: TaskExecutor): void {
    if (task.runCommitHooks() !== undefined) {
      throw new TypeError('a commit hook returned a promise: the TopologyTestDriver runs synchronous hooks only');
    }
    const checkpoint = task.takeCheckpoint();
    const observed: Array<CheckpointObservation['stores'][number]> = [];
    for (const { store, backend, changes } of checkpoint.stores) {
      if (this.#onCheckpoint !== undefined) {
        for (const [key, value] of changes) observed.push({ store: store.name, key, before: (backend as MemoryBackend).getSync(key) ?? null, after: value });
      }
      backend.apply!(backend.writesFor(changes));
      if (store.changelog) {
        for (const [key, value] of changes) {
          this.#append({ topic: this.#topology.changelogTopic(store.name), partition: 0, key, value, timestamp: this.#wallClockMs, headers: {} });
        }
      }
    }
    task.checkpointDurable();
    this.#onCheckpoint?.({ stores: observed, outputs: checkpoint.outputs });
    for (const output of checkpoint.outputs) {
      const stored = this.#append(output);
      if (this.#tasks.has(output.topic)) this.#queue.push(stored);
    }
  }

  close(): void {
    for (const task of new Set(this.#tasks.values())) task.close();
  }
}

export class TestInputTopic<K, V> {
  readonly #driver: TopologyTestDriver;
  readonly topic: string;
  readonly #keySerde: Serde<K>;
  readonly #valueSerde: Serde<V>;

  constructor(driver: TopologyTestDriver, topic: string, keySerde: Serde<K>, valueSerde: Serde<V>) {
    this.#driver = driver;
    this.topic = topic;
    this.#keySerde = keySerde;
    this.#valueSerde = valueSerde;
  }

  /** Pipes one record; without a timestamp, the driver's wall-clock time. `null` key or value pipes a null. */
  pipeInput(key: K | null, value: V | null, timestampMs?: number, headers: Headers = {}): void {
    const timestamp = timestampMs ?? this.#driver.wallClockMs;
    this.#driver.pipe(
      this.topic,
      key === null ? null : this.#keySerde.serialize(key, { topic: this.topic, isKey: true }),
      value === null ? null : this.#valueSerde.serialize(value, { topic: this.topic, isKey: false }),
      timestamp,
      headers,
    );
  }

  pipeRecords(records: Iterable<{ key: K | null; value: V | null; timestamp?: number; headers?: Headers }>): void {
    for (const r of records) this.pipeInput(r.key, r.value, r.timestamp, r.headers);
  }

  /** Pipes raw bytes, as a producer that ignores the schema would. */
  pipeRawInput(key: Buffer | null, value: Buffer | null, timestampMs?: number, headers: Headers = {}): void {
    this.#driver.pipe(this.topic, key, value, timestampMs ?? this.#driver.wallClockMs, headers);
  }
}

export class TestOutputTopic<K, V> {
  readonly #driver: TopologyTestDriver;
  readonly topic: string;
  readonly #keySerde: Serde<K>;
  readonly #valueSerde: Serde<V>;
  #position = 0;

  constructor(driver: TopologyTestDriver, topic: string, keySerde: Serde<K>, valueSerde: Serde<V>) {
    this.#driver = driver;
    this.topic = topic;
    this.#keySerde = keySerde;
    this.#valueSerde = valueSerde;
  }

  get queueSize(): number {
    return this.#driver.records(this.topic).length - this.#position;
  }

  isEmpty(): boolean {
    return this.queueSize === 0;
  }

  readRecord(): StreamRecord<K | null, V | null> {
    const record = this.#driver.records(this.topic)[this.#position];
    if (record === undefined) throw new RangeError(`no more records on ${this.topic}: check isEmpty() first`);
    this.#position++;
    return {
      key: record.key === null ? null : this.#keySerde.deserialize(record.key, { topic: this.topic, isKey: true }),
      value: record.value === null ? null : this.#valueSerde.deserialize(record.value, { topic: this.topic, isKey: false }),
      timestamp: record.timestamp,
      headers: record.headers,
    };
  }

  readRecordsToList(): Array<StreamRecord<K | null, V | null>> {
    const out: Array<StreamRecord<K | null, V | null>> = [];
    while (!this.isEmpty()) out.push(this.readRecord());
    return out;
  }

  readKeyValue(): { key: K | null; value: V | null } {
    const { key, value } = this.readRecord();
    return { key, value };
  }

  readKeyValuesToList(): Array<{ key: K | null; value: V | null }> {
    return this.readRecordsToList().map(({ key, value }) => ({ key, value }));
  }

  readValuesToList(): Array<V | null> {
    return this.readRecordsToList().map((r) => r.value);
  }

  /** The latest value per key (a table's final state); keys are compared as their serialised bytes. */
  readKeyValuesToMap(): Map<K | null, V | null> {
    const latest = new Map<string | null, { key: K | null; value: V | null }>();
    const records = this.#driver.records(this.topic).slice(this.#position);
    for (const entry of this.readRecordsToList().map((r, i) => ({ ...r, bytes: records[i]!.key }))) {
      latest.set(entry.bytes === null ? null : entry.bytes.toString('latin1'), { key: entry.key, value: entry.value });
    }
    return new Map([...latest.values()].map(({ key, value }) => [key, value]));
  }
}
