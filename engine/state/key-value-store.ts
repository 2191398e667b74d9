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
  /**
   * Visits entries in key order (`from <= key < to`). Returns `undefined` when it ran synchronously (in-memory
   * stores: the test driver), or a promise (LevelDB). Either way, changes made while visiting are not seen.
   */
  forEach(visit: (key: K, value: V) => void, range?: { from?: K; to?: K }): void | Promise<void>;
}

export interface KeyValueStore<K, V> extends ReadOnlyKeyValueStore<K, V> {
  put(key: K, value: V): void;
  delete(key: K): void;
}

export interface TypedStoreOptions {
  /**
   * Entries not written for this long in event time (the task's stream time) read as absent and are swept before
   * checkpoints. Event time, not wall time, so a replay expires exactly what the first run did.
   */
  readonly ttlMs?: number;
  /** The task's stream time, for TTL. */
  readonly now?: () => number;
}

const STAMP_BYTES = 8;

/**
 * The typed face of a store: serdes on the outside, the caching layer's bytes inside. Counts reads and writes for
 * metrics (the "metered" layer of `Metered(Caching(ChangeLogging(LevelStore)))`). With a TTL, each value carries
 * the stream time of its last write in 8 leading bytes.
 */
export class TypedKeyValueStore<K, V> implements KeyValueStore<K, V> {
  readonly name: string;
  readonly #cache: CachingStore;
  readonly #keySerde: Serde<K>;
  readonly #valueSerde: Serde<V>;
  readonly #keyContext: SerdeContext;
  readonly #valueContext: SerdeContext;
  readonly #ttlMs: number | undefined;
  readonly #now: () => number;
  #sweptAt = -Infinity;
  reads = 0;
  writes = 0;

  constructor(name: string, cache: CachingStore, keySerde: Serde<K>, valueSerde: Serde<V>, options: TypedStoreOptions = {}) {
    this.name = name;
    this.#cache = cache;
    this.#keySerde = keySerde;
    this.#valueSerde = valueSerde;
    this.#keyContext = { topic: `store:${name}`, isKey: true };
    this.#valueContext = { topic: `store:${name}`, isKey: false };
    this.#ttlMs = options.ttlMs;
    this.#now = options.now ?? (() => -1);
  }

  get cache(): CachingStore {
    return this.#cache;
  }

  get ttlMs(): number | undefined {
    return this.#ttlMs;
  }

  get(key: K): V | undefined {
    this.reads++;
    const bytes = this.#cache.get(this.#keySerde.serialize(key, this.#keyContext));
    return bytes === undefined ? undefined : this.#decode(bytes);
  }

  put(key: K, value: V): void {
    this.writes++;
    let bytes = this.#valueSerde.serialize(value, this.#valueContext);
    if (this.#ttlMs !== undefined) {
      const stamped = Buffer.allocUnsafe(STAMP_BYTES + bytes.length);
      stamped.writeDoubleBE(this.#now(), 0);
      bytes.copy(stamped, STAMP_BYTES);
      bytes = stamped;
    }
    this.#cache.put(this.#keySerde.serialize(key, this.#keyContext), bytes);
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

  forEach(visit: (key: K, value: V) => void, range: { from?: K; to?: K } = {}): void | Promise<void> {
    const bounds = this.#range(range.from, range.to);
    if (this.#cache.iteratesSynchronously) {
      for (const [key, bytes] of [...this.#cache.entriesSync(bounds)]) this.#visit(key, bytes, visit);
      return;
    }
    return (async () => {
      const entries: Array<[Buffer, Buffer]> = [];
      for await (const entry of this.#cache.entries(bounds)) entries.push(entry);
      for (const [key, bytes] of entries) this.#visit(key, bytes, visit);
    })();
  }

  /** Synchronous iteration, where the backend allows it (the test driver's memory stores). */
  *rangeSync(from?: K, to?: K): Iterable<KeyValueEntry<K, V>> {
    for (const [key, bytes] of this.#cache.entriesSync(this.#range(from, to))) {
      const value = this.#decode(bytes);
      if (value !== undefined) yield { key: this.#keySerde.deserialize(key, this.#keyContext), value };
    }
  }

  /**
   * Deletes the entries whose TTL has passed. Sweeps at most once per half TTL of stream time: between sweeps,
   * expired entries already read as absent.
   */
  sweepExpired(): void | Promise<void> {
    const ttl = this.#ttlMs;
    const now = this.#now();
    if (ttl === undefined || now < 0 || now - this.#sweptAt < ttl / 2) return;
    this.#sweptAt = now;
    const expired: Buffer[] = [];
    const collect = (key: Buffer, bytes: Buffer): void => {
      if (bytes.readDoubleBE(0) + ttl <= now) expired.push(key);
    };
    const remove = (): void => {
      for (const key of expired) this.#cache.put(key, null);
    };
    if (this.#cache.iteratesSynchronously) {
      for (const [key, bytes] of this.#cache.entriesSync({})) collect(key, bytes);
      remove();
      return;
    }
    return (async () => {
      for await (const [key, bytes] of this.#cache.entries({})) collect(key, bytes);
      remove();
    })();
  }

  #visit(key: Buffer, bytes: Buffer, visit: (key: K, value: V) => void): void {
    const value = this.#decode(bytes);
    if (value !== undefined) visit(this.#keySerde.deserialize(key, this.#keyContext), value);
  }

  /** The value, or `undefined` if its TTL has passed. */
  #decode(bytes: Buffer): V | undefined {
    if (this.#ttlMs === undefined) return this.#valueSerde.deserialize(bytes, this.#valueContext);
    if (bytes.readDoubleBE(0) + this.#ttlMs <= this.#now()) return undefined;
    return this.#valueSerde.deserialize(bytes.subarray(STAMP_BYTES), this.#valueContext);
  }

  #range(from?: K, to?: K): KeyRange {
    return {
      ...(from === undefined ? {} : { gte: this.#keySerde.serialize(from, this.#keyContext) }),
      ...(to === undefined ? {} : { lt: this.#keySerde.serialize(to, this.#keyContext) }),
    };
  }

  async *#typed(entries: AsyncIterable<[Buffer, Buffer]>): AsyncIterable<KeyValueEntry<K, V>> {
    for await (const [key, bytes] of entries) {
      const value = this.#decode(bytes);
      if (value !== undefined) yield { key: this.#keySerde.deserialize(key, this.#keyContext), value };
    }
  }
}
