import {
  JoinWindows,
  joinSideProcessor,
  recordBufferSerde,
  streamGlobalTableJoinProcessor,
  streamStreamJoinProcessor,
  streamTableJoinProcessor,
  tableProcessor,
  type JoinKind,
} from '../operators/joins.js';
import { Serdes, type Serde } from '../serde/serde.js';
import { versionListSerde, type VersionedOptions } from '../state/versioned.js';
import { KStream, KTable, autoKeySerde, type StreamsBuilder } from './builder.js';
import type { ProcessorSupplier } from './processor.js';
import type { StreamRecord } from './record.js';

/**
 * The DSL of tables and joins, as functions over the builder and its streams: `table`, `globalTable`,
 * `streamTableJoin`, `streamStreamJoin` and `streamGlobalTableJoin`. The processors are in `operators/joins.ts`.
 */

export { JoinWindows, type JoinKind };

export interface TableOptions<K, V> {
  /** Names the table's processor node and its store (`<app>-<name>-changelog`). */
  readonly name: string;
  /** Default: strings (UTF-8), as `builder.stream`. */
  readonly keySerde?: Serde<K>;
  /** Default: JSON. */
  readonly valueSerde?: Serde<V>;
  /**
   * Keep each key's versions over event time for the history retention, so joins look values up as of their
   * record's timestamp. Without it the table holds the latest value per key only.
   */
  readonly versioned?: VersionedOptions;
  /** Write the store's changes to a compacted changelog topic (default true). */
  readonly changelog?: boolean;
  /** Name of the source node; default `<name>-source`. */
  readonly sourceName?: string;
  /** Event time of a record (a version's `validFrom`), from its contents; by default the log record's timestamp. */
  readonly timestampExtractor?: (record: StreamRecord<K, V>) => number;
}

/** What a join needs to know of a table beyond the `KTable` handle. */
export interface TableInfo {
  readonly storeName: string;
  readonly topic: string | null;
  readonly versioned: VersionedOptions | undefined;
}

const tables = new WeakMap<KTable<unknown, unknown>, TableInfo>();

/** How a table is stored: for tables made by `table`, what they were made with; for others, latest values in their store. */
export function tableInfo(table: KTable<unknown, unknown>): TableInfo {
  return tables.get(table) ?? { storeName: table.storeName, topic: null, versioned: undefined };
}

/**
 * A table read from a (compacted) topic: a source node and a processor, named `name`, that keeps the latest value
 * per key in a store also named `name` (tombstones delete), or with `versioned` each key's versions within the
 * history retention, and forwards every change to the current value (so `toStream` sees the changelog).
 *
 * A stream joined with the table runs in the same task as the table, so the stream's topic and the table's topic
 * must be co-partitioned (same partition count, same key bytes); the runtime checks the partition counts.
 */
export function table<K = string, V = unknown>(builder: StreamsBuilder, topic: string, options: TableOptions<K, V>): KTable<K, V> {
  const { name } = options;
  const sourceName = options.sourceName ?? `${name}-source`;
  builder.claim(sourceName);
  builder.claim(name);
  const keySerde = options.keySerde ?? (Serdes.string() as unknown as Serde<K>);
  const valueSerde = options.valueSerde ?? Serdes.json<V>();
  const versioned = options.versioned === undefined ? undefined : { historyRetentionMs: options.versioned.historyRetentionMs };
  if (versioned !== undefined && (!Number.isSafeInteger(versioned.historyRetentionMs) || versioned.historyRetentionMs < 0)) {
    throw new RangeError(`table ${name}: historyRetentionMs must be a non-negative integer, got ${versioned.historyRetentionMs}`);
  }
  const detail = { topic, versioned: versioned ?? null };
  builder.draft.addSource(sourceName, {
    topics: [topic],
    keySerde,
    valueSerde,
    ...(options.timestampExtractor === undefined ? {} : { timestampExtractor: options.timestampExtractor as (r: StreamRecord<unknown, unknown>) => number }),
  });
  builder.draft.addStore({
    name,
    kind: 'key-value',
    keySerde,
    valueSerde: versioned === undefined ? valueSerde : versionListSerde(valueSerde),
    changelog: options.changelog ?? true,
    detail,
  });
  builder.draft.addProcessor(name, tableProcessor<K, V>({ storeName: name, ...(versioned === undefined ? {} : { versioned }) }), {
    parents: [sourceName],
    stores: [name],
    operator: 'table',
    detail,
  });
  const result = new KTable<K, V>(builder, name, keySerde, valueSerde);
  tables.set(result as KTable<unknown, unknown>, { storeName: name, topic, versioned });
  return result;
}

export interface GlobalTableOptions<K, V> {
  /** Names the global store. */
  readonly name: string;
  readonly keySerde?: Serde<K>;
  readonly valueSerde?: Serde<V>;
}

/** A table every task sees in full (a global store), for lookups by any key: see `streamGlobalTableJoin`. */
export class GlobalKTable<K, V> {
  readonly storeName: string;
  readonly topic: string;
  readonly keySerde: Serde<K>;
  readonly valueSerde: Serde<V>;

  constructor(storeName: string, topic: string, keySerde: Serde<K>, valueSerde: Serde<V>) {
    this.storeName = storeName;
    this.topic = topic;
    this.keySerde = keySerde;
    this.valueSerde = valueSerde;
  }
}

/**
 * A global table: a global store named `name` fed from every partition of `topic` by the runtime, before and while
 * tasks run. The topic must not also be read as a stream.
 */
export function globalTable<K = string, V = unknown>(builder: StreamsBuilder, topic: string, options: GlobalTableOptions<K, V>): GlobalKTable<K, V> {
  const keySerde = options.keySerde ?? (Serdes.string() as unknown as Serde<K>);
  const valueSerde = options.valueSerde ?? Serdes.json<V>();
  builder.draft.addGlobalStore({ name: options.name, topic, keySerde, valueSerde });
  return new GlobalKTable(options.name, topic, keySerde, valueSerde);
}

/** The joiner of a stream–table or stream–global-table join: the table side is `null` only for a left join. */
export type TableJoiner<K, V, VT, VR, Left extends boolean> = (value: V, tableValue: Left extends true ? VT | null : VT, key: K) => VR;

export interface StreamTableJoinOptions<VR, Left extends boolean> {
  /** Names the join node (and `<name>-repartition` if the stream's key changed upstream). */
  readonly name: string;
  /** Forward stream records the table has no value for, joined with `null` (a left join). Default: inner. */
  readonly left?: Left;
  /** Serde of the joined values, for a sink downstream; default JSON. */
  readonly valueSerde?: Serde<VR>;
}

/** Adds a processor node to the builder and returns the stream flowing out of it. */
function addNode<K, V>(
  builder: StreamsBuilder,
  name: string,
  operator: string,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the graph holds nodes of every key and value type
  supplier: ProcessorSupplier<any, any, any, any>,
  options: { parents: readonly string[]; stores?: readonly string[]; detail?: Record<string, unknown>; keySerde: Serde<K> | undefined; valueSerde: Serde<V> | undefined; keyChanged?: boolean },
): KStream<K, V> {
  builder.claim(name);
  builder.draft.addProcessor(name, supplier, {
    parents: options.parents,
    operator,
    ...(options.stores === undefined ? {} : { stores: options.stores }),
    ...(options.detail === undefined ? {} : { detail: options.detail }),
  });
  return new KStream<K, V>(builder, name, { keySerde: options.keySerde, valueSerde: options.valueSerde, keyChanged: options.keyChanged ?? false });
}

/** The stream, first sent through `<name>` (a repartition topic) if an earlier step changed its keys. */
function partitionedByKey<K, V>(stream: KStream<K, V>, name: string, keySerde: Serde<K> | undefined, valueSerde: Serde<V> | undefined): KStream<K, V> {
  if (!stream.internals.shape.keyChanged) return stream;
  return stream.repartition(name, {
    ...(keySerde === undefined ? {} : { keySerde }),
    ...(valueSerde === undefined ? {} : { valueSerde }),
  });
}

/**
 * Joins each stream record with the table's value for its key as of the record's timestamp (the version valid then,
 * for a versioned table; the latest value otherwise). Inner by default; `left: true` also forwards records without a
 * table value, joined with `null`. See `streamTableJoinProcessor` for late records and history retention.
 *
 * The join runs in the table's task: the stream must be co-partitioned with the table's topic. A stream whose keys
 * changed upstream is repartitioned first (`<name>-repartition`, keyed with the table's key serde).
 */
export function streamTableJoin<K, V, VT, VR, Left extends boolean = false>(
  stream: KStream<K, V>,
  table: KTable<K, VT>,
  joiner: TableJoiner<K, V, VT, VR, Left>,
  options: StreamTableJoinOptions<VR, Left>,
): KStream<K, VR> {
  const { builder, shape } = stream.internals;
  const info = tableInfo(table as KTable<unknown, unknown>);
  const left = options.left === true;
  builder.claim(options.name);
  const input = partitionedByKey(stream, `${options.name}-repartition`, table.keySerde, shape.valueSerde);
  return addNode<K, VR>(
    builder,
    options.name,
    'streamTableJoin',
    streamTableJoinProcessor<K, V, VT, VR>({
      tableStore: info.storeName,
      ...(info.versioned === undefined ? {} : { versioned: info.versioned }),
      left,
      joiner: joiner as (value: V, tableValue: VT | null, key: K) => VR,
    }),
    {
      parents: [input.nodeName],
      stores: [info.storeName],
      detail: {
        join: left ? 'left' : 'inner',
        table: info.storeName,
        lookup: info.versioned === undefined ? 'latest' : 'as-of-record-time',
        versioned: info.versioned ?? null,
      },
      keySerde: table.keySerde,
      valueSerde: options.valueSerde,
    },
  );
}

/** The joiner of a stream–stream join: which sides may be `null` depends on the kind of join. */
export type StreamJoiner<K, VL, VR, VO, Kind extends JoinKind> = Kind extends 'outer'
  ? (left: VL | null, right: VR | null, key: K) => VO
  : Kind extends 'left'
    ? (left: VL, right: VR | null, key: K) => VO
    : (left: VL, right: VR, key: K) => VO;

export interface StreamStreamJoinOptions<K, VL, VR, VO, Kind extends JoinKind> {
  /**
   * Names the join node and everything derived from it: the side nodes `<name>-left` and `<name>-right`, the
   * buffers `<name>-left-buffer` and `<name>-right-buffer` (stores with changelogs), and the repartition topics
   * `<name>-left-repartition` / `<name>-right-repartition` for a side whose keys changed upstream.
   */
  readonly name: string;
  /** Default `inner`. */
  readonly kind?: Kind;
  /** Key serde of the buffers and repartition topics; default the streams' own, else the automatic key serde. */
  readonly keySerde?: Serde<K>;
  /** Value serdes of the buffers; default the streams' own, else JSON. */
  readonly leftValueSerde?: Serde<VL>;
  readonly rightValueSerde?: Serde<VR>;
  /** Serde of the joined values, for a sink downstream; default JSON. */
  readonly valueSerde?: Serde<VO>;
  /** Write the buffers' changes to changelog topics (default true). */
  readonly changelog?: boolean;
}

/**
 * A windowed join of two streams by key: a left record at `tl` pairs with each right record at `tr` with
 * `tl − before ≤ tr ≤ tl + after`, forwarded as `joiner(left, right)` at `max(tl, tr)`. `kind: 'left'` also
 * forwards each left record that never paired, joined with `null`, once its window closes; `'outer'` does so for
 * both sides. Records more than grace behind the watermark are late. See `streamStreamJoinProcessor`.
 *
 * Both streams run in one task: they must be co-partitioned. A side whose keys changed upstream is repartitioned
 * first.
 */
export function streamStreamJoin<K, VL, VR, VO, Kind extends JoinKind = 'inner'>(
  left: KStream<K, VL>,
  right: KStream<K, VR>,
  joiner: StreamJoiner<K, VL, VR, VO, Kind>,
  windows: JoinWindows,
  options: StreamStreamJoinOptions<K, VL, VR, VO, Kind>,
): KStream<K, VO> {
  const { builder } = left.internals;
  if (right.internals.builder !== builder) throw new TypeError('both sides of a join must come from one StreamsBuilder');
  const { name } = options;
  // Fail at the line that reuses a name, before anything is added.
  for (const node of [`${name}-left`, `${name}-right`, name]) builder.claim(node);
  const kind: JoinKind = options.kind ?? 'inner';
  const leftShape = left.internals.shape;
  const rightShape = right.internals.shape;
  const keySerde = options.keySerde ?? leftShape.keySerde ?? rightShape.keySerde ?? (autoKeySerde as Serde<K>);
  const leftValueSerde = options.leftValueSerde ?? leftShape.valueSerde ?? Serdes.json<VL>();
  const rightValueSerde = options.rightValueSerde ?? rightShape.valueSerde ?? Serdes.json<VR>();
  const leftInput = partitionedByKey(left, `${name}-left-repartition`, keySerde, leftValueSerde);
  const rightInput = partitionedByKey(right, `${name}-right-repartition`, keySerde, rightValueSerde);
  const leftStore = `${name}-left-buffer`;
  const rightStore = `${name}-right-buffer`;
  const window = windows.describe();
  for (const [store, side, valueSerde] of [[leftStore, 'left', leftValueSerde], [rightStore, 'right', rightValueSerde]] as const) {
    builder.draft.addStore({
      name: store,
      kind: 'key-value',
      keySerde,
      valueSerde: recordBufferSerde(valueSerde as Serde<unknown>),
      changelog: options.changelog ?? true,
      detail: { join: name, side, windows: window },
    });
  }
  const leftSide = addNode(builder, `${name}-left`, 'joinSide', joinSideProcessor('left'), { parents: [leftInput.nodeName], detail: { side: 'left' }, keySerde, valueSerde: undefined });
  const rightSide = addNode(builder, `${name}-right`, 'joinSide', joinSideProcessor('right'), { parents: [rightInput.nodeName], detail: { side: 'right' }, keySerde, valueSerde: undefined });
  return addNode<K, VO>(
    builder,
    name,
    'streamStreamJoin',
    streamStreamJoinProcessor<K, VL, VR, VO>({
      kind,
      windows,
      leftStore,
      rightStore,
      joiner: joiner as (left: VL | null, right: VR | null, key: K) => VO,
    }),
    {
      parents: [leftSide.nodeName, rightSide.nodeName],
      stores: [leftStore, rightStore],
      detail: { join: kind, windows: window, leftStore, rightStore },
      keySerde,
      valueSerde: options.valueSerde,
    },
  );
}

export interface StreamGlobalTableJoinOptions<VR, Left extends boolean> {
  /** Names the join node. */
  readonly name: string;
  /** Forward stream records the global table has no value for, joined with `null`. Default: inner. */
  readonly left?: Left;
  readonly valueSerde?: Serde<VR>;
}

/**
 * Joins each stream record with the global table's current value for `keyMapper(record)`. No co-partitioning and
 * no repartition: every task sees the whole global table. See `streamGlobalTableJoinProcessor`.
 */
export function streamGlobalTableJoin<K, V, GK, GV, VR, Left extends boolean = false>(
  stream: KStream<K, V>,
  globalTable: GlobalKTable<GK, GV>,
  keyMapper: (record: StreamRecord<K, V>) => GK,
  joiner: TableJoiner<K, V, GV, VR, Left>,
  options: StreamGlobalTableJoinOptions<VR, Left>,
): KStream<K, VR> {
  const { builder, shape } = stream.internals;
  const left = options.left === true;
  return addNode<K, VR>(
    builder,
    options.name,
    'streamGlobalTableJoin',
    streamGlobalTableJoinProcessor<K, V, GK, GV, VR>({
      globalStore: globalTable.storeName,
      keyMapper,
      left,
      joiner: joiner as (value: V, globalValue: GV | null, key: K) => VR,
    }),
    {
      parents: [stream.nodeName],
      detail: { join: left ? 'left' : 'inner', globalStore: globalTable.storeName, topic: globalTable.topic },
      keySerde: shape.keySerde,
      valueSerde: options.valueSerde,
      // The stream's key, unchanged: a later grouping repartitions only if it had to already.
      keyChanged: shape.keyChanged,
    },
  );
}
