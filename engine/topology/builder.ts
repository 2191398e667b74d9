import { MillraceError } from '../errors.js';
import { aggregateProcessor, type Aggregator, type Initializer } from '../operators/aggregate.js';
import {
  branchProcessor,
  filterProcessor,
  flatMapProcessor,
  foreachProcessor,
  mapProcessor,
  mapValuesProcessor,
  passThroughProcessor,
  peekProcessor,
} from '../operators/stateless.js';
import type { SessionWindows, TimeWindowSpec, WindowSpec } from '../operators/windows.js';
import { SessionWindowedKStream, TimeWindowedKStream } from './windowed.js';
import {
  GlobalKTable,
  globalTable,
  streamGlobalTableJoin,
  streamStreamJoin,
  streamTableJoin,
  table,
  type GlobalTableOptions,
  type JoinWindows,
  type StreamJoiner,
  type TableJoiner,
  type TableOptions,
} from './tables.js';
import { Serdes, deserializationError, type Serde } from '../serde/serde.js';
import type { ProcessorSupplier } from './processor.js';
import type { KeyValue, StreamRecord, Windowed } from './record.js';
import { TopologyDraft, type StoreSpec, type Topology, type TopologyOptions } from './topology.js';

/**
 * Keys whose serde was not given: strings as UTF-8 (as Kafka's StringSerializer, so partitioning matches other
 * producers), buffers as they are, anything else as JSON. Reads back as a string.
 */
export const autoKeySerde: Serde<any> = {
  name: 'auto-key',
  serialize(value, context) {
    if (typeof value === 'string') return Buffer.from(value, 'utf8');
    if (Buffer.isBuffer(value)) return value;
    return Serdes.json().serialize(value, context);
  },
  deserialize(bytes, context) {
    return Serdes.string().deserialize(bytes, context);
  },
};

/** A windowed key on a topic: the inner key's bytes, then window start and end (8 bytes each, big-endian). */
export function windowedSerde<K>(inner: Serde<K>): Serde<Windowed<K>> {
  return {
    name: `windowed(${inner.name})`,
    serialize(value, context) {
      const key = inner.serialize(value.key, context);
      const out = Buffer.allocUnsafe(key.length + 16);
      key.copy(out, 0);
      out.writeBigUInt64BE(BigInt(value.window.start), key.length);
      out.writeBigUInt64BE(BigInt(value.window.end), key.length + 8);
      return out;
    },
    deserialize(bytes, context) {
      if (bytes.length < 16) throw deserializationError(context, 'windowed key shorter than 16 bytes');
      const at = bytes.length - 16;
      return {
        key: inner.deserialize(bytes.subarray(0, at), context),
        window: { start: Number(bytes.readBigUInt64BE(at)), end: Number(bytes.readBigUInt64BE(at + 8)) },
      };
    },
  };
}

export interface SerdeOptions<K, V> {
  readonly keySerde?: Serde<K>;
  readonly valueSerde?: Serde<V>;
}

export interface StreamOptions<K, V> extends SerdeOptions<K, V> {
  /** Node name; defaults to `source-<topic>` (topics joined by `__`). */
  readonly name?: string;
  /** Event time from the record's contents (ms since the epoch); by default the log record's timestamp. */
  readonly timestampExtractor?: (record: StreamRecord<K, V>) => number;
}

export interface SinkOptions<K, V> extends SerdeOptions<K, V> {
  /** Node name; defaults to `to-<topic>`. */
  readonly name?: string;
}

export interface RepartitionOptions<K, V> extends SerdeOptions<K, V> {
  /** Partitions of the repartition topic; by default as many as the most of the upstream source topics. */
  readonly partitions?: number;
}

export interface JoinOptions<VR> {
  /** Serde of the joined values, for a repartition or store downstream (JSON by default). */
  readonly valueSerde?: Serde<VR>;
}

export interface StoreOptions<V> {
  readonly valueSerde?: Serde<V>;
  /** Write changes to a compacted changelog topic, from which the store can be restored (default true). */
  readonly changelog?: boolean;
  /**
   * State TTL: a key not updated for this long in event time (the task's stream time) is forgotten, so its next
   * record starts from the initializer again. Not for windowed aggregations, whose windows expire by themselves.
   */
  readonly ttlMs?: number;
}

/**
 * The typed DSL. Every operation takes a name first: it names the node and everything derived from it (stores,
 * `<app>-<name>-changelog`, `<app>-<name>-repartition`), so the names stay stable when the code around them changes.
 *
 *   const b = new StreamsBuilder('word-count');
 *   b.stream<string, { text: string }>('sentences')
 *     .flatMap('split', (r) => r.value.text.split(' ').map((w) => ({ key: w, value: 1 })))
 *     .groupByKey('by-word')
 *     .count('counts')
 *     .toStream('changes')
 *     .to('word-counts');
 *   const topology = b.build();
 */
export class StreamsBuilder {
  readonly draft: TopologyDraft;

  constructor(applicationId: string, options: TopologyOptions = {}) {
    this.draft = new TopologyDraft(applicationId, options);
  }

  get applicationId(): string {
    return this.draft.applicationId;
  }

  stream<K = string, V = unknown>(topics: string | readonly string[], options: StreamOptions<K, V> = {}): KStream<K, V> {
    const list = typeof topics === 'string' ? [topics] : topics;
    const name = options.name ?? `source-${list.join('__')}`;
    this.claim(name);
    const keySerde = options.keySerde ?? (Serdes.string() as unknown as Serde<K>);
    const valueSerde = options.valueSerde ?? Serdes.json<V>();
    this.draft.addSource(name, {
      topics: list,
      keySerde,
      valueSerde,
      ...(options.timestampExtractor === undefined ? {} : { timestampExtractor: options.timestampExtractor as (r: StreamRecord<any, any>) => number }),
    });
    return new KStream<K, V>(this, name, { keySerde, valueSerde, keyChanged: false });
  }

  /**
   * A table of the latest value per key of a (compacted) topic, materialised in a store named `options.name`.
   * With `versioned: { historyRetentionMs }` it keeps each key's history, so stream–table joins look up the
   * value valid at each stream record's event time.
   */
  table<K = string, V = unknown>(topic: string, options: TableOptions<K, V>): KTable<K, V> {
    return table(this, topic, options);
  }

  /** A table every task sees in full (a global store), for lookups by any key without co-partitioning. */
  globalTable<K = string, V = unknown>(topic: string, options: GlobalTableOptions<K, V>): GlobalKTable<K, V> {
    return globalTable(this, topic, options);
  }

  /** A store for Processor API nodes (`KStream.process(..., { stores })`). */
  addStore(spec: StoreSpec): this {
    this.draft.addStore(spec);
    return this;
  }

  /** @internal Fails early, at the line that reuses a name. */
  claim(name: string): void {
    if (this.draft.hasNode(name)) {
      throw new MillraceError('MILLRACE_TOPOLOGY_INVALID', `a node is already named ${name}: give this step its own name`);
    }
  }

  build(): Topology {
    return this.draft.build();
  }
}

export interface StreamShape<K, V> {
  readonly keySerde: Serde<K> | undefined;
  readonly valueSerde: Serde<V> | undefined;
  /** The key may differ from the one the records were partitioned by: grouping needs a repartition first. */
  readonly keyChanged: boolean;
}

export class KStream<K, V> {
  readonly #builder: StreamsBuilder;
  /** The node this stream flows out of. */
  readonly nodeName: string;
  readonly #shape: StreamShape<K, V>;

  constructor(builder: StreamsBuilder, nodeName: string, shape: StreamShape<K, V>) {
    this.#builder = builder;
    this.nodeName = nodeName;
    this.#shape = shape;
  }

  /** @internal For operators defined in other modules (windows, joins): the builder and what is known of the stream. */
  get internals(): { readonly builder: StreamsBuilder; readonly shape: StreamShape<K, V> } {
    return { builder: this.#builder, shape: this.#shape };
  }

  #add<K2, V2>(
    name: string,
    operator: string,
    supplier: ProcessorSupplier<any, any, any, any>,
    shape: StreamShape<K2, V2>,
    extra: { parents?: readonly string[]; stores?: readonly string[]; detail?: Record<string, unknown> } = {},
  ): KStream<K2, V2> {
    this.#builder.claim(name);
    this.#builder.draft.addProcessor(name, supplier, {
      parents: extra.parents ?? [this.nodeName],
      operator,
      ...(extra.stores === undefined ? {} : { stores: extra.stores }),
      ...(extra.detail === undefined ? {} : { detail: extra.detail }),
    });
    return new KStream<K2, V2>(this.#builder, name, shape);
  }

  /** New key and value for each record. Grouping after a `map` repartitions by the new key. */
  map<K2, V2>(name: string, fn: (record: StreamRecord<K, V>) => KeyValue<K2, V2>, options: SerdeOptions<K2, V2> = {}): KStream<K2, V2> {
    return this.#add(name, 'map', mapProcessor(fn), { keySerde: options.keySerde, valueSerde: options.valueSerde, keyChanged: true });
  }

  mapValues<V2>(name: string, fn: (value: V, record: StreamRecord<K, V>) => V2, options: { valueSerde?: Serde<V2> } = {}): KStream<K, V2> {
    return this.#add(name, 'mapValues', mapValuesProcessor(fn), { ...this.#shape, valueSerde: options.valueSerde });
  }

  filter(name: string, predicate: (record: StreamRecord<K, V>) => boolean): KStream<K, V> {
    return this.#add(name, 'filter', filterProcessor(predicate), this.#shape);
  }

  filterNot(name: string, predicate: (record: StreamRecord<K, V>) => boolean): KStream<K, V> {
    return this.#add(name, 'filterNot', filterProcessor<K, V>((r) => !predicate(r)), this.#shape);
  }

  flatMap<K2, V2>(name: string, fn: (record: StreamRecord<K, V>) => Iterable<KeyValue<K2, V2>>, options: SerdeOptions<K2, V2> = {}): KStream<K2, V2> {
    return this.#add(name, 'flatMap', flatMapProcessor(fn), { keySerde: options.keySerde, valueSerde: options.valueSerde, keyChanged: true });
  }

  flatMapValues<V2>(name: string, fn: (value: V, record: StreamRecord<K, V>) => Iterable<V2>, options: { valueSerde?: Serde<V2> } = {}): KStream<K, V2> {
    const supplier = flatMapProcessor<K, V, K, V2>((r) => [...fn(r.value, r)].map((value) => ({ key: r.key, value })));
    return this.#add(name, 'flatMapValues', supplier, { ...this.#shape, valueSerde: options.valueSerde });
  }

  peek(name: string, fn: (record: StreamRecord<K, V>) => void): KStream<K, V> {
    return this.#add(name, 'peek', peekProcessor(fn), this.#shape);
  }

  /** A terminal step that runs a side effect for each record. */
  foreach(name: string, fn: (record: StreamRecord<K, V>) => void): void {
    this.#add(name, 'foreach', foreachProcessor(fn), this.#shape);
  }

  /**
   * Splits the stream: each record goes to the first branch whose predicate holds; with `defaultBranch`, the rest
   * go to a branch of that name. Branch streams are named `<name>-<branch>`.
   */
  branch<B extends string>(
    name: string,
    branches: Readonly<Record<B, (record: StreamRecord<K, V>) => boolean>>,
    options: { defaultBranch?: string } = {},
  ): Record<B, KStream<K, V>> & Record<string, KStream<K, V>> {
    const entries = Object.entries(branches) as Array<[B, (record: StreamRecord<K, V>) => boolean]>;
    const childName = (branch: string): string => `${name}-${branch}`;
    const defaultChild = options.defaultBranch === undefined ? undefined : childName(options.defaultBranch);
    const splitter = this.#add<K, V>(
      name,
      'branch',
      branchProcessor(entries.map(([b, p]) => [childName(b), p] as const), defaultChild),
      this.#shape,
      { detail: { branches: entries.map(([b]) => b), defaultBranch: options.defaultBranch ?? null } },
    );
    const result: Record<string, KStream<K, V>> = {};
    for (const branch of [...entries.map(([b]) => b as string), ...(options.defaultBranch === undefined ? [] : [options.defaultBranch])]) {
      result[branch] = splitter.#add(childName(branch), 'branchOutput', passThroughProcessor(), this.#shape);
    }
    return result as Record<B, KStream<K, V>> & Record<string, KStream<K, V>>;
  }

  /** One stream of the records of this and the others, each in its own order. */
  merge(name: string, ...others: ReadonlyArray<KStream<K, V>>): KStream<K, V> {
    const keyChanged = this.#shape.keyChanged || others.some((o) => o.#shape.keyChanged);
    return this.#add(name, 'merge', passThroughProcessor(), { ...this.#shape, keyChanged }, {
      parents: [this.nodeName, ...others.map((o) => o.nodeName)],
    });
  }

  /** The low-level Processor API inside the DSL. */
  process<K2, V2>(
    name: string,
    supplier: ProcessorSupplier<K, V, K2, V2>,
    options: { stores?: readonly string[]; keySerde?: Serde<K2>; valueSerde?: Serde<V2> } = {},
  ): KStream<K2, V2> {
    return this.#add(name, 'process', supplier, { keySerde: options.keySerde, valueSerde: options.valueSerde, keyChanged: true }, {
      ...(options.stores === undefined ? {} : { stores: options.stores }),
    });
  }

  /** Re-keys the stream and sends it through `<app>-<name>-repartition`, so each new key lands in one task. */
  keyBy<K2>(name: string, fn: (record: StreamRecord<K, V>) => K2, options: RepartitionOptions<K2, V> = {}): KStream<K2, V> {
    const rekeyed = this.#add<K2, V>(name, 'keyBy', mapProcessor<K, V, K2, V>((r) => ({ key: fn(r), value: r.value })), {
      keySerde: options.keySerde,
      valueSerde: options.valueSerde ?? this.#shape.valueSerde,
      keyChanged: true,
    });
    return rekeyed.repartition(`${name}-repartition`, options);
  }

  /** Writes the stream through an internal topic named `<app>-<name>` and reads it back, partitioned by key. */
  repartition(name: string, options: RepartitionOptions<K, V> = {}): KStream<K, V> {
    const builder = this.#builder;
    const topic = `${builder.applicationId}-${name}`;
    const keySerde = options.keySerde ?? this.#shape.keySerde ?? (autoKeySerde as Serde<K>);
    const valueSerde = options.valueSerde ?? this.#shape.valueSerde ?? Serdes.json<V>();
    const sinkName = `${name}-sink`;
    const sourceName = `${name}-source`;
    builder.claim(sinkName);
    builder.claim(sourceName);
    builder.draft.addInternalTopic({ name: topic, kind: 'repartition', ...(options.partitions === undefined ? {} : { partitions: options.partitions }) });
    builder.draft.addSink(sinkName, topic, { parents: [this.nodeName], keySerde, valueSerde, internal: true });
    builder.draft.addSource(sourceName, { topics: [topic], keySerde, valueSerde, internal: true });
    return new KStream<K, V>(builder, sourceName, { keySerde, valueSerde, keyChanged: false });
  }

  /** Groups by the current key, repartitioning first (as `<name>-repartition`) if an earlier step changed keys. */
  groupByKey(name: string, options: RepartitionOptions<K, V> = {}): KGroupedStream<K, V> {
    const stream = this.#shape.keyChanged ? this.repartition(`${name}-repartition`, options) : this;
    const keySerde = options.keySerde ?? stream.#shape.keySerde ?? (autoKeySerde as Serde<K>);
    const valueSerde = options.valueSerde ?? stream.#shape.valueSerde ?? Serdes.json<V>();
    return new KGroupedStream<K, V>(this.#builder, stream.nodeName, keySerde, valueSerde);
  }

  /** `keyBy` then `groupByKey`. */
  groupBy<K2>(name: string, fn: (record: StreamRecord<K, V>) => K2, options: RepartitionOptions<K2, V> = {}): KGroupedStream<K2, V> {
    return this.keyBy(name, fn, options).groupByKey(`${name}-grouped`, options);
  }

  /**
   * Inner joins. With a table: each record joins the table's value for its key as of the record's event time
   * (versioned tables; otherwise the latest value). With another stream: records of the two streams whose event
   * times fall within the join windows of each other. With a global table: the value for the key `keyMapper` picks.
   * A record with nothing to join forwards nothing.
   */
  join<VT, VR>(name: string, table: KTable<K, VT>, joiner: TableJoiner<K, V, VT, VR, false>, options?: JoinOptions<VR>): KStream<K, VR>;
  join<VO, VR>(name: string, other: KStream<K, VO>, joiner: StreamJoiner<K, V, VO, VR, 'inner'>, windows: JoinWindows, options?: JoinOptions<VR>): KStream<K, VR>;
  join<GK, GV, VR>(
    name: string,
    globalTable: GlobalKTable<GK, GV>,
    keyMapper: (record: StreamRecord<K, V>) => GK,
    joiner: TableJoiner<K, V, GV, VR, false>,
    options?: JoinOptions<VR>,
  ): KStream<K, VR>;
  join(name: string, other: unknown, a: unknown, b?: unknown, c?: unknown): KStream<K, unknown> {
    return this.#join(name, other, a, b, c, 'inner');
  }

  /** As `join`, but a record with nothing to join is forwarded too, with `null` for the other side. */
  leftJoin<VT, VR>(name: string, table: KTable<K, VT>, joiner: TableJoiner<K, V, VT, VR, true>, options?: JoinOptions<VR>): KStream<K, VR>;
  leftJoin<VO, VR>(name: string, other: KStream<K, VO>, joiner: StreamJoiner<K, V, VO, VR, 'left'>, windows: JoinWindows, options?: JoinOptions<VR>): KStream<K, VR>;
  leftJoin<GK, GV, VR>(
    name: string,
    globalTable: GlobalKTable<GK, GV>,
    keyMapper: (record: StreamRecord<K, V>) => GK,
    joiner: TableJoiner<K, V, GV, VR, true>,
    options?: JoinOptions<VR>,
  ): KStream<K, VR>;
  leftJoin(name: string, other: unknown, a: unknown, b?: unknown, c?: unknown): KStream<K, unknown> {
    return this.#join(name, other, a, b, c, 'left');
  }

  /** A windowed join of two streams that also forwards each unmatched record of either side, once, when its window closes. */
  outerJoin<VO, VR>(name: string, other: KStream<K, VO>, joiner: StreamJoiner<K, V, VO, VR, 'outer'>, windows: JoinWindows, options?: JoinOptions<VR>): KStream<K, VR> {
    return streamStreamJoin(this, other, joiner, windows, { name, kind: 'outer', ...options });
  }

  #join(name: string, other: unknown, a: unknown, b: unknown, c: unknown, kind: 'inner' | 'left'): KStream<K, unknown> {
    const left = kind === 'left';
    if (other instanceof KTable) {
      return streamTableJoin(this, other, a as TableJoiner<K, V, unknown, unknown, boolean>, { name, left, ...(b as JoinOptions<unknown> | undefined) });
    }
    if (other instanceof KStream) {
      return streamStreamJoin(this, other, a as StreamJoiner<K, V, unknown, unknown, 'inner'>, b as JoinWindows, {
        name,
        kind,
        ...(c as JoinOptions<unknown> | undefined),
      });
    }
    if (other instanceof GlobalKTable) {
      return streamGlobalTableJoin(this, other, a as (record: StreamRecord<K, V>) => unknown, b as TableJoiner<K, V, unknown, unknown, boolean>, {
        name,
        left,
        ...(c as JoinOptions<unknown> | undefined),
      });
    }
    throw new TypeError(`${name}: join with a KTable, a KStream (and JoinWindows) or a GlobalKTable`);
  }

  /** Writes the stream to a topic. */
  to(topic: string, options: SinkOptions<K, V> = {}): void {
    const name = options.name ?? `to-${topic}`;
    this.#builder.claim(name);
    this.#builder.draft.addSink(name, topic, {
      parents: [this.nodeName],
      keySerde: options.keySerde ?? this.#shape.keySerde ?? (autoKeySerde as Serde<K>),
      valueSerde: options.valueSerde ?? this.#shape.valueSerde ?? Serdes.json<V>(),
    });
  }
}

export class KGroupedStream<K, V> {
  readonly #builder: StreamsBuilder;
  readonly #parent: string;
  readonly #keySerde: Serde<K>;
  readonly #valueSerde: Serde<V>;

  constructor(builder: StreamsBuilder, parent: string, keySerde: Serde<K>, valueSerde: Serde<V>) {
    this.#builder = builder;
    this.#parent = parent;
    this.#keySerde = keySerde;
    this.#valueSerde = valueSerde;
  }

  /** Counts records per key. The store and node are named `name`. */
  count(name: string, options: StoreOptions<number> = {}): KTable<K, number> {
    return this.aggregate(name, () => 0, (n) => n + 1, { valueSerde: Serdes.int64(), ...options }, 'count');
  }

  reduce(name: string, reducer: (aggregate: V, value: V) => V, options: StoreOptions<V> = {}): KTable<K, V> {
    const supplier = aggregateProcessor<K, V, V | undefined>(name, () => undefined, (agg, value) => (agg === undefined ? value : reducer(agg, value)));
    return this.#stateful(name, 'reduce', supplier as ProcessorSupplier<K, V, K, V>, this.#keySerde, options.valueSerde ?? this.#valueSerde, options);
  }

  aggregate<A>(
    name: string,
    initializer: Initializer<A>,
    aggregator: Aggregator<K, V, A>,
    options: StoreOptions<A> = {},
    operator = 'aggregate',
  ): KTable<K, A> {
    return this.#stateful(name, operator, aggregateProcessor(name, initializer, aggregator), this.#keySerde, options.valueSerde ?? Serdes.json<A>(), options);
  }

  /** Windows the grouped records by event time: sessions give a `SessionWindowedKStream`, the others a `TimeWindowedKStream`. */
  windowedBy(windows: SessionWindows): SessionWindowedKStream<K, V>;
  windowedBy(windows: TimeWindowSpec): TimeWindowedKStream<K, V>;
  windowedBy(windows: WindowSpec): TimeWindowedKStream<K, V> | SessionWindowedKStream<K, V>;
  windowedBy(windows: WindowSpec): TimeWindowedKStream<K, V> | SessionWindowedKStream<K, V> {
    if (windows.kind === 'session') return new SessionWindowedKStream(this.#builder, this.#parent, this.#keySerde, this.#valueSerde, windows);
    return new TimeWindowedKStream(this.#builder, this.#parent, this.#keySerde, this.#valueSerde, windows);
  }

  #stateful<A>(
    name: string,
    operator: string,
    supplier: ProcessorSupplier<K, V, K, A>,
    keySerde: Serde<K>,
    valueSerde: Serde<A>,
    options: StoreOptions<A>,
  ): KTable<K, A> {
    this.#builder.claim(name);
    if (options.ttlMs !== undefined && (!Number.isSafeInteger(options.ttlMs) || options.ttlMs <= 0)) {
      throw new MillraceError('MILLRACE_TOPOLOGY_INVALID', `${name}: ttlMs must be a positive integer of ms, got ${options.ttlMs}`);
    }
    this.#builder.draft.addStore({
      name,
      kind: 'key-value',
      keySerde,
      valueSerde,
      changelog: options.changelog ?? true,
      ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }),
    });
    this.#builder.draft.addProcessor(name, supplier, { parents: [this.#parent], stores: [name], operator });
    return new KTable<K, A>(this.#builder, name, keySerde, valueSerde);
  }
}

/** The changelog of an aggregation: one row per key, each update forwarded as it happens. */
export class KTable<K, V> {
  readonly #builder: StreamsBuilder;
  readonly nodeName: string;
  readonly keySerde: Serde<K>;
  readonly valueSerde: Serde<V>;

  constructor(builder: StreamsBuilder, nodeName: string, keySerde: Serde<K>, valueSerde: Serde<V>) {
    this.#builder = builder;
    this.nodeName = nodeName;
    this.keySerde = keySerde;
    this.valueSerde = valueSerde;
  }

  /** The name of the store that holds the table (the aggregation's name). */
  get storeName(): string {
    return this.nodeName;
  }

  toStream(name: string): KStream<K, V> {
    this.#builder.claim(name);
    this.#builder.draft.addProcessor(name, passThroughProcessor(), { parents: [this.nodeName], operator: 'toStream' });
    return new KStream<K, V>(this.#builder, name, { keySerde: this.keySerde, valueSerde: this.valueSerde, keyChanged: false });
  }
}
