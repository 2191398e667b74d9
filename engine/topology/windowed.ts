import type { Aggregator, Initializer, Merger } from '../operators/aggregate.js';
import { EMIT_MODES, windowStoreSerdes, windowedAggregateProcessor, type EmitMode } from '../operators/windowed-aggregate.js';
import type { SessionWindows, TimeWindowSpec, WindowSpec } from '../operators/windows.js';
import { Serdes, type Serde } from '../serde/serde.js';
import type { Windowed } from './record.js';
import { KTable, windowedSerde, type StoreOptions, type StreamsBuilder } from './builder.js';

export type { EmitMode } from '../operators/windowed-aggregate.js';

export interface WindowedStoreOptions<A> extends StoreOptions<A> {
  /**
   * `update` (the default): forward every change of a window as it happens. `final`: forward each window once, when
   * it closes (watermark ≥ end + grace), with its final aggregate, and nothing before.
   */
  readonly emit?: EmitMode;
  /**
   * Close every open window once the task has read nothing for this many wall-clock ms (checked every
   * min(idleCloseMs, 1 s), so it happens at most that much later), and raise the watermark past them: a key that
   * stops sending still gets its final result, and records for those windows are late from then on.
   */
  readonly idleCloseMs?: number;
}

export interface SessionStoreOptions<A, E extends EmitMode> extends WindowedStoreOptions<A> {
  readonly emit?: E;
}

export interface SessionAggregateOptions<K, A, E extends EmitMode> extends SessionStoreOptions<A, E> {
  /** Combines the aggregates of two sessions a record bridges (the earlier one first). */
  readonly merger: Merger<K, A>;
}

/** Session values in `update` mode include the tombstones (`null`) of sessions a merge replaced. */
export type SessionValue<A, E extends EmitMode> = E extends 'final' ? A : A | null;

interface WindowedStep<K, V, A> {
  readonly builder: StreamsBuilder;
  readonly parent: string;
  readonly keySerde: Serde<K>;
  readonly valueSerde: Serde<V>;
  readonly windows: WindowSpec;
  readonly name: string;
  readonly operator: string;
  readonly initializer: Initializer<A>;
  readonly aggregator: Aggregator<K, V, A>;
  readonly merger?: Merger<K, A>;
  readonly aggregateSerde: Serde<A>;
  readonly options: WindowedStoreOptions<A>;
}

/**
 * Adds a windowed aggregation: its store and node are named `name`. Both describe themselves with the window spec,
 * and with `emit` and `idleCloseMs` when they are not the defaults (so a topology that does not use them describes
 * itself as it did before they existed).
 */
function addWindowedAggregate<K, V, A>(step: WindowedStep<K, V, A>): KTable<Windowed<K>, A> {
  const { builder, name, windows, keySerde, options } = step;
  const emit = options.emit ?? 'update';
  if (!EMIT_MODES.includes(emit)) throw new RangeError(`${name}: emit must be one of ${EMIT_MODES.join(', ')}, got ${String(emit)}`);
  const idleCloseMs = options.idleCloseMs;
  if (idleCloseMs !== undefined && (!Number.isSafeInteger(idleCloseMs) || idleCloseMs <= 0)) {
    throw new RangeError(`${name}: idleCloseMs must be a positive integer of ms, got ${idleCloseMs}`);
  }
  builder.claim(name);
  const detail = {
    window: windows.describe(),
    ...(emit === 'update' ? {} : { emit }),
    ...(idleCloseMs === undefined ? {} : { idleCloseMs }),
  };
  const serdes = windowStoreSerdes(windows, keySerde, step.valueSerde, step.aggregateSerde);
  builder.draft.addStore({ name, kind: 'window', ...serdes, changelog: options.changelog ?? true, detail });
  const supplier = windowedAggregateProcessor(windows, {
    storeName: name,
    keySerde,
    initializer: step.initializer,
    aggregator: step.aggregator,
    emit,
    ...(step.merger === undefined ? {} : { merger: step.merger }),
    ...(idleCloseMs === undefined ? {} : { idleCloseMs }),
  });
  builder.draft.addProcessor(name, supplier, { parents: [step.parent], stores: [name], operator: step.operator, detail });
  return new KTable<Windowed<K>, A>(builder, name, windowedSerde(keySerde), step.aggregateSerde);
}

/**
 * The windowed DSL for tumbling, hopping and sliding windows: `groupByKey(...).windowedBy(windows)` then `count`,
 * `reduce` or `aggregate`. Keys come out as `Windowed<K>`: the grouping key and the window [start, end) (for a
 * sliding window, end − 1 is the anchoring record's timestamp).
 */
export class TimeWindowedKStream<K, V> {
  readonly #builder: StreamsBuilder;
  readonly #parent: string;
  readonly #keySerde: Serde<K>;
  readonly #valueSerde: Serde<V>;
  readonly #windows: TimeWindowSpec;

  constructor(builder: StreamsBuilder, parent: string, keySerde: Serde<K>, valueSerde: Serde<V>, windows: TimeWindowSpec) {
    this.#builder = builder;
    this.#parent = parent;
    this.#keySerde = keySerde;
    this.#valueSerde = valueSerde;
    this.#windows = windows;
  }

  count(name: string, options: WindowedStoreOptions<number> = {}): KTable<Windowed<K>, number> {
    return this.#aggregate(name, 'windowedCount', () => 0, (n) => n + 1, options.valueSerde ?? Serdes.int64(), options);
  }

  reduce(name: string, reducer: (aggregate: V, value: V) => V, options: WindowedStoreOptions<V> = {}): KTable<Windowed<K>, V> {
    const init = (): V | undefined => undefined;
    const agg: Aggregator<K, V, V | undefined> = (a, value) => (a === undefined ? value : reducer(a, value));
    const serde = (options.valueSerde ?? this.#valueSerde) as Serde<V | undefined>;
    return this.#aggregate(name, 'windowedReduce', init, agg, serde, options as WindowedStoreOptions<V | undefined>) as KTable<Windowed<K>, V>;
  }

  aggregate<A>(name: string, initializer: Initializer<A>, aggregator: Aggregator<K, V, A>, options: WindowedStoreOptions<A> = {}): KTable<Windowed<K>, A> {
    return this.#aggregate(name, 'windowedAggregate', initializer, aggregator, options.valueSerde ?? Serdes.json<A>(), options);
  }

  #aggregate<A>(
    name: string,
    operator: string,
    initializer: Initializer<A>,
    aggregator: Aggregator<K, V, A>,
    aggregateSerde: Serde<A>,
    options: WindowedStoreOptions<A>,
  ): KTable<Windowed<K>, A> {
    return addWindowedAggregate({
      builder: this.#builder,
      parent: this.#parent,
      keySerde: this.#keySerde,
      valueSerde: this.#valueSerde,
      windows: this.#windows,
      name,
      operator,
      initializer,
      aggregator,
      aggregateSerde,
      options,
    });
  }
}

/**
 * The windowed DSL for session windows. Keys come out as `Windowed<K>` with the session [first, last + 1). In
 * `update` mode a session that a record extends or merges is replaced by a tombstone (value `null`) before the new
 * session is forwarded; `emit: 'final'` forwards each session once, when it closes, and never a tombstone.
 */
export class SessionWindowedKStream<K, V> {
  readonly #builder: StreamsBuilder;
  readonly #parent: string;
  readonly #keySerde: Serde<K>;
  readonly #valueSerde: Serde<V>;
  readonly #windows: SessionWindows;

  constructor(builder: StreamsBuilder, parent: string, keySerde: Serde<K>, valueSerde: Serde<V>, windows: SessionWindows) {
    this.#builder = builder;
    this.#parent = parent;
    this.#keySerde = keySerde;
    this.#valueSerde = valueSerde;
    this.#windows = windows;
  }

  /** Merged sessions add their counts. */
  count<E extends EmitMode = EmitMode>(name: string, options: SessionStoreOptions<number, E> = {}): KTable<Windowed<K>, SessionValue<number, E>> {
    return this.#aggregate(name, 'windowedCount', () => 0, (n) => n + 1, (a, b) => a + b, options.valueSerde ?? Serdes.int64(), options) as KTable<Windowed<K>, SessionValue<number, E>>;
  }

  /** Merged sessions are combined with the reducer itself. */
  reduce<E extends EmitMode = EmitMode>(name: string, reducer: (aggregate: V, value: V) => V, options: SessionStoreOptions<V, E> = {}): KTable<Windowed<K>, SessionValue<V, E>> {
    const init = (): V | undefined => undefined;
    const agg: Aggregator<K, V, V | undefined> = (a, value) => (a === undefined ? value : reducer(a, value));
    const merger: Merger<K, V | undefined> = (a, b) => (a === undefined ? b : b === undefined ? a : reducer(a, b));
    const serde = (options.valueSerde ?? this.#valueSerde) as Serde<V | undefined>;
    return this.#aggregate(name, 'windowedReduce', init, agg, merger, serde, options as WindowedStoreOptions<V | undefined>) as KTable<Windowed<K>, SessionValue<V, E>>;
  }

  aggregate<A, E extends EmitMode = EmitMode>(
    name: string,
    initializer: Initializer<A>,
    aggregator: Aggregator<K, V, A>,
    options: SessionAggregateOptions<K, A, E>,
  ): KTable<Windowed<K>, SessionValue<A, E>> {
    return this.#aggregate(name, 'windowedAggregate', initializer, aggregator, options.merger, options.valueSerde ?? Serdes.json<A>(), options) as KTable<Windowed<K>, SessionValue<A, E>>;
  }

  #aggregate<A>(
    name: string,
    operator: string,
    initializer: Initializer<A>,
    aggregator: Aggregator<K, V, A>,
    merger: Merger<K, A>,
    aggregateSerde: Serde<A>,
    options: WindowedStoreOptions<A>,
  ): KTable<Windowed<K>, A> {
    if (typeof merger !== 'function') throw new TypeError(`${name}: aggregating session windows needs a merger(left, right) option`);
    return addWindowedAggregate({
      builder: this.#builder,
      parent: this.#parent,
      keySerde: this.#keySerde,
      valueSerde: this.#valueSerde,
      windows: this.#windows,
      name,
      operator,
      initializer,
      aggregator,
      merger,
      aggregateSerde,
      options,
    });
  }
}
