import {
  windowKeySerde,
  windowedAggregateProcessor,
  type Aggregator,
  type Initializer,
} from '../operators/aggregate.js';
import type { WindowSpec } from '../operators/windows.js';
import { Serdes, type Serde } from '../serde/serde.js';
import type { Windowed } from './record.js';
import { KTable, windowedSerde, type StoreOptions, type StreamsBuilder } from './builder.js';

/** The windowed DSL: `groupByKey(...).windowedBy(windows)` then `count`, `reduce` or `aggregate`. */
export class TimeWindowedKStream<K, V> {
  readonly #builder: StreamsBuilder;
  readonly #parent: string;
  readonly #keySerde: Serde<K>;
  readonly #valueSerde: Serde<V>;
  readonly #windows: WindowSpec;

  constructor(builder: StreamsBuilder, parent: string, keySerde: Serde<K>, valueSerde: Serde<V>, windows: WindowSpec) {
    this.#builder = builder;
    this.#parent = parent;
    this.#keySerde = keySerde;
    this.#valueSerde = valueSerde;
    this.#windows = windows;
  }

  count(name: string, options: StoreOptions<number> = {}): KTable<Windowed<K>, number> {
    return this.aggregate(name, () => 0, (n) => n + 1, { valueSerde: Serdes.int64(), ...options }, 'windowedCount');
  }

  reduce(name: string, reducer: (aggregate: V, value: V) => V, options: StoreOptions<V> = {}): KTable<Windowed<K>, V> {
    const init = (): V | undefined => undefined;
    const agg: Aggregator<K, V, V | undefined> = (a, value) => (a === undefined ? value : reducer(a, value));
    return this.aggregate(name, init, agg, { ...options, valueSerde: (options.valueSerde ?? this.#valueSerde) as Serde<V | undefined> }, 'windowedReduce') as KTable<Windowed<K>, V>;
  }

  aggregate<A>(
    name: string,
    initializer: Initializer<A>,
    aggregator: Aggregator<K, V, A>,
    options: StoreOptions<A> = {},
    operator = 'windowedAggregate',
  ): KTable<Windowed<K>, A> {
    const valueSerde = options.valueSerde ?? Serdes.json<A>();
    this.#builder.claim(name);
    this.#builder.draft.addStore({
      name,
      kind: 'window',
      keySerde: windowKeySerde(this.#keySerde),
      valueSerde,
      changelog: options.changelog ?? true,
      detail: { window: this.#windows.describe() },
    });
    this.#builder.draft.addProcessor(name, windowedAggregateProcessor(name, this.#windows, initializer, aggregator), {
      parents: [this.#parent],
      stores: [name],
      operator,
      detail: { window: this.#windows.describe() },
    });
    return new KTable<Windowed<K>, A>(this.#builder, name, windowedSerde(this.#keySerde), valueSerde);
  }
}

