import type { Serde, SerdeContext } from '../serde/serde.js';
import type { KeyRange } from './backend.js';
import type { CachingStore } from './caching-store.js';

export interface KeyValueEntry<K, V> {
  readonly key: K;
  readonly value: V;
}

export interface ReadOnlyKeyValueStore<K, V> {
  readonly name: string;
  /** Synchronous: served from the cache, or one LevelDB `getSync` on a miss. */
  get(key: K): V | undefined;
  /** Entries with `from <= key < to` in the byte order of the serialised keys. */
  range(from?: K, to?: K): AsyncIterable<KeyValueEntry<K, V>>;
  all(): AsyncIterable<KeyValueEntry<K, V>>;
}

export interface KeyValueStore<K, V> extends ReadOnlyKeyValueStore<K, V> {
  put(key: K, value: V): void;
  delete(key: K): void;
}

/**
 * The typed face of a store: serdes on the outside, the caching layer's bytes inside. Counts reads and writes for
 * metrics (the "metered" layer of `Metered(Caching(ChangeLogging(LevelStore)))`).
 */
export class TypedKeyValueStore<K, V> implements KeyValueStore<K, V> {
  readonly name: string;
  readonly #cache: CachingStore;
  readonly #keySerde: Serde<K>;
  readonly #valueSerde: Serde<V>;
  readonly #keyContext: SerdeContext;
  readonly #valueContext: SerdeContext;
  reads = 0;
  writes = 0;

  constructor(name: string, cache: CachingStore, keySerde: Serde<K>, valueSerde: Serde<V>) {
    this.name = name;
    this.#cache = cache;
    this.#keySerde = keySerde;
    this.#valueSerde = valueSerde;
    this.#keyContext = { topic: `store:${name}`, isKey: true };
    this.#valueContext = { topic: `store:${name}`, isKey: false };
  }

  get cache(): CachingStore {
    return this.#cache;
  }

  get(key: K): V | undefined {
    this.reads++;
    const bytes = this.#cache.get(this.#keySerde.serialize(key, this.#keyContext));
    return bytes === undefined ? undefined : this.#valueSerde.deserialize(bytes, this.#valueContext);
  }

  put(key: K, value: V): void {
    this.writes++;
    this.#cache.put(this.#keySerde.serialize(key, this.#keyContext), this.#valueSerde.serialize(value, this.#valueContext));
  }

  delete(key: K): void {
    this.writes++;
    this.#cache.put(this.#keySerde.serialize(key, this.#keyContext), null);
  }

  range(from?: K, to?: K): AsyncIterable<KeyValueEntry<K, V>> {
    return this.#typed(this.#cache.entries(this.#range(from, to)));
  }

  all(): AsyncIterable<KeyValueEntry<K, V>> {
    return this.range();
  }

  /** Synchronous iteration, where the backend allows it (the test driver's memory stores). */
  *rangeSync(from?: K, to?: K): Iterable<KeyValueEntry<K, V>> {
    for (const [key, value] of this.#cache.entriesSync(this.#range(from, to))) {
      yield {
        key: this.#keySerde.deserialize(key, this.#keyContext),
        value: this.#valueSerde.deserialize(value, this.#valueContext),
      };
    }
  }

  #range(from?: K, to?: K): KeyRange {
    return {
      ...(from === undefined ? {} : { gte: this.#keySerde.serialize(from, this.#keyContext) }),
      ...(to === undefined ? {} : { lt: this.#keySerde.serialize(to, this.#keyContext) }),
    };
  }

  async *#typed(entries: AsyncIterable<[Buffer, Buffer]>): AsyncIterable<KeyValueEntry<K, V>> {
    for await (const [key, value] of entries) {
      yield {
        key: this.#keySerde.deserialize(key, this.#keyContext),
        value: this.#valueSerde.deserialize(value, this.#valueContext),
      };
    }
  }
}
