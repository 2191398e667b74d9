import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import { offset, type Log, type LogRecord, type Offset } from '../log/log.js';
import type { Serde, SerdeContext } from '../serde/serde.js';
import type { KeyValueBackend } from '../state/backend.js';
import type { KeyValueEntry, ReadOnlyKeyValueStore } from '../state/key-value-store.js';
import type { GlobalStoreSpec } from '../topology/topology.js';
import type { LocalState } from './stream-task.js';

function partitionKey(partition: number): Buffer {
  const key = Buffer.allocUnsafe(4);
  key.writeUInt32BE(partition, 0);
  return key;
}

/** Keys whose bytes a view keeps in memory; past it the oldest go (insertion order). */
const VIEW_CACHE_ENTRIES = 10_000;

/**
 * A global store as processors see it: read-only, synchronous lookups. The bytes of recently read keys (and the
 * absence of missing ones) are kept in memory, so a hot table — a routing table every record looks up — is not
 * read from LevelDB per record; `applied` updates them once the store task's changes are written. Values are
 * decoded on every `get`, so a processor that changes what it got cannot change what the next one gets.
 */
export class GlobalStoreView<K, V> implements ReadOnlyKeyValueStore<K, V> {
  readonly name: string;
  readonly #backend: KeyValueBackend;
  readonly #keySerde: Serde<K>;
  readonly #valueSerde: Serde<V>;
  readonly #keyContext: SerdeContext;
  readonly #valueContext: SerdeContext;
  /** Key bytes (latin1) → value bytes, `null` for a key the store does not hold. */
  readonly #cache = new Map<string, Buffer | null>();

  constructor(spec: GlobalStoreSpec, backend: KeyValueBackend) {
    this.name = spec.name;
    this.#backend = backend;
    this.#keySerde = spec.keySerde as Serde<K>;
    this.#valueSerde = spec.valueSerde as Serde<V>;
    this.#keyContext = { topic: spec.topic, isKey: true };
    this.#valueContext = { topic: spec.topic, isKey: false };
  }

  get(key: K): V | undefined {
    const keyBytes = this.#keySerde.serialize(key, this.#keyContext);
    const cacheKey = keyBytes.toString('latin1');
    let bytes = this.#cache.get(cacheKey);
    if (bytes === undefined) {
      bytes = this.#backend.getSync(keyBytes) ?? null;
      if (this.#cache.size >= VIEW_CACHE_ENTRIES) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(cacheKey, bytes);
    }
    return bytes === null ? undefined : this.#valueSerde.deserialize(bytes, this.#valueContext);
  }

  /** Changes the store task has written to the backend: cached keys take their new bytes. */
  applied(changes: ReadonlyArray<readonly [Buffer, Buffer | null]>): void {
    for (const [key, value] of changes) {
      const cacheKey = key.toString('latin1');
      if (this.#cache.has(cacheKey)) this.#cache.set(cacheKey, value);
    }
  }

  async *range(from?: K, to?: K): AsyncIterable<KeyValueEntry<K, V>> {
    for await (const [key, value] of this.#backend.entries(this.#bounds(from, to))) {
      yield { key: this.#keySerde.deserialize(key, this.#keyContext), value: this.#valueSerde.deserialize(value, this.#valueContext) };
    }
  }

  all(): AsyncIterable<KeyValueEntry<K, V>> {
    return this.range();
  }

  forEach(visit: (key: K, value: V) => void, range: { from?: K; to?: K } = {}): void | Promise<void> {
    const entries = this.#backend.entries(this.#bounds(range.from, range.to));
    const each = ([key, value]: [Buffer, Buffer]): void =>
      visit(this.#keySerde.deserialize(key, this.#keyContext), this.#valueSerde.deserialize(value, this.#valueContext));
    if (Symbol.iterator in entries) {
      for (const entry of [...entries]) each(entry);
      return;
    }
    return (async () => {
      const all: Array<[Buffer, Buffer]> = [];
      for await (const entry of entries) all.push(entry);
      for (const entry of all) each(entry);
    })();
  }

  #bounds(from?: K, to?: K): { gte?: Buffer; lt?: Buffer } {
    return {
      ...(from === undefined ? {} : { gte: this.#keySerde.serialize(from, this.#keyContext) }),
      ...(to === undefined ? {} : { lt: this.#keySerde.serialize(to, this.#keyContext) }),
    };
  }
}

/**
 * Checks a record for a global store and turns it into a change: key bytes and value bytes (`null` deletes).
 * Records that cannot be decoded are refused here, so a lookup never meets bytes it cannot read.
 */
export function globalChange(spec: GlobalStoreSpec, record: { key: Buffer | null; value: Buffer | null }): [Buffer, Buffer | null] | string {
  if (record.key === null) return 'a record without a key cannot update a global store';
  try {
    spec.keySerde.deserialize(record.key, { topic: spec.topic, isKey: true });
    if (record.value !== null) spec.valueSerde.deserialize(record.value, { topic: spec.topic, isKey: false });
  } catch (err) {
    return errorMessage(err);
  }
  return [record.key, record.value];
}

export interface GlobalStoreTaskOptions {
  readonly log: Log;
  readonly spec: GlobalStoreSpec;
  readonly backend: KeyValueBackend;
  /**
   * Where a log that cannot commit local state in its transactions (Kafka) has the store's changes written,
   * together with how far each partition was read (kept in `positions`): the store's own checkpoint, as Kafka
   * Streams keeps one for global stores.
   */
  readonly localState?: LocalState;
  readonly positions?: KeyValueBackend;
  /** Consumer group whose committed offsets say how far the store has read. */
  readonly group: string;
  readonly transactionalId: string;
  readonly logger: Logger;
  readonly pollMaxRecords: number;
  readonly pollMaxWaitMs: number;
  /** Told of each batch of changes once it is written (the views' caches follow it). */
  readonly onApplied?: (changes: ReadonlyArray<readonly [Buffer, Buffer | null]>) => void;
}

/**
 * Keeps a global store up to date from every partition of its topic. Each batch of changes commits with the offsets
 * it reflects, in one transaction, so a restart resumes exactly. `bootstrap` reads up to the end offsets seen when
 * it starts, before any task processes a record: lookups see the whole table from the first record on.
 */
export class GlobalStoreTask {
  readonly #options: GlobalStoreTaskOptions;
  readonly #positions = new Map<number, number>();
  readonly #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #stopping = false;
  applied = 0;
  refused = 0;
  error: string | null = null;

  constructor(options: GlobalStoreTaskOptions) {
    this.#options = options;
  }

  get name(): string {
    return this.#options.spec.name;
  }

  async bootstrap(): Promise<void> {
    const { log, spec, group } = this.#options;
    const bounds = await log.partitionOffsets(spec.topic);
    const committed = this.#options.localState === undefined ? await log.committedOffsets(group, spec.topic) : this.#localPositions(bounds.length);
    for (const { partition, start } of bounds) this.#positions.set(partition, committed.get(partition) ?? start);
    for (const { partition, end } of bounds) {
      while (this.#positions.get(partition)! < end) {
        const batch = await log.read(spec.topic, partition, offset(this.#positions.get(partition)!), { maxRecords: this.#options.pollMaxRecords });
        await this.#apply(partition, batch.records, batch.nextOffset);
        if (batch.records.length === 0) break;
      }
    }
  }

  start(): void {
    this.#loop = this.#run().catch((err: unknown) => {
      this.error = errorMessage(err);
      this.#options.logger.error({ store: this.name, err }, 'global store stopped updating');
    });
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#abort.abort();
    await this.#loop;
  }

  /** How far each partition was read, from the store's own checkpoint (logs without atomic local state). */
  #localPositions(partitions: number): Map<number, Offset> {
    const positions = new Map<number, Offset>();
    for (let partition = 0; partition < partitions; partition++) {
      const stored = this.#options.positions!.getSync(partitionKey(partition));
      if (stored !== undefined) positions.set(partition, offset(stored.readDoubleBE(0)));
    }
    return positions;
  }

  lag(): Array<{ partition: number; position: number }> {
    return [...this.#positions].map(([partition, position]) => ({ partition, position }));
  }

  async #run(): Promise<void> {
    const { log, spec } = this.#options;
    while (!this.#stopping) {
      // Wait on every partition at once; the first that has records wakes the others.
      const wake = new AbortController();
      const onStop = (): void => wake.abort();
      this.#abort.signal.addEventListener('abort', onStop, { once: true });
      try {
        const batches = await Promise.all(
          [...this.#positions].map(async ([partition, position]) => {
            const batch = await log.read(spec.topic, partition, offset(position), {
              maxRecords: this.#options.pollMaxRecords,
              maxWaitMs: this.#options.pollMaxWaitMs,
              signal: wake.signal,
            });
            if (batch.records.length > 0) wake.abort();
            return { partition, batch };
          }),
        );
        for (const { partition, batch } of batches) {
          if (batch.nextOffset > this.#positions.get(partition)!) await this.#apply(partition, batch.records, batch.nextOffset);
        }
      } finally {
        this.#abort.signal.removeEventListener('abort', onStop);
      }
    }
  }

  async #apply(partition: number, records: readonly LogRecord[], next: Offset): Promise<void> {
    const { log, spec, backend, group, transactionalId, logger } = this.#options;
    const changes: Array<[Buffer, Buffer | null]> = [];
    for (const record of records) {
      const change = globalChange(spec, record);
      if (typeof change === 'string') {
        this.refused++;
        logger.warn({ store: spec.name, topic: record.topic, partition: record.partition, offset: record.offset, reason: change }, 'record refused by a global store');
        continue;
      }
      changes.push(change);
    }
    if (this.#options.localState !== undefined) {
      const position = Buffer.allocUnsafe(8);
      position.writeDoubleBE(next, 0);
      const writes = backend.writesFor(changes);
      for (const write of this.#options.positions!.writesFor([[partitionKey(partition), position]])) writes.push(write);
      await this.#options.localState.write(writes);
    } else {
      const transaction = await log.beginTransaction({ transactionalId });
      if (changes.length > 0) transaction.addLocalWrites!(backend.writesFor(changes));
      transaction.commitOffsets(group, [{ topic: spec.topic, partition, offset: next }]);
      await transaction.commit();
    }
    this.#positions.set(partition, next);
    this.applied += changes.length;
    if (changes.length > 0) this.#options.onApplied?.(changes);
  }
}
