import type { ClassicLevel } from 'classic-level';
import type { LocalWrite } from '../log/log.js';
import { PREFIX_LOCAL, prefixRange } from '../log/embedded/format.js';

export interface KeyRange {
  /** Inclusive lower bound. */
  readonly gte?: Buffer;
  /** Exclusive upper bound. */
  readonly lt?: Buffer;
}

/**
 * Where a state store's bytes live: one store of one task. Reads are synchronous (a LevelDB `getSync` on a cache
 * miss costs about a microsecond), so processors never await a read. Writes are never applied here directly: a
 * store turns its changes into `LocalWrite`s that the task's checkpoint commits atomically with its outputs and
 * input offsets.
 */
export interface KeyValueBackend {
  readonly description: string;
  /** `entries` returns a synchronous iterable (memory): scans need not await. */
  readonly synchronous: boolean;
  getSync(key: Buffer): Buffer | undefined;
  /** Entries in key order. Synchronous where the backend can (memory), so the test driver stays synchronous. */
  entries(range: KeyRange): Iterable<[Buffer, Buffer]> | AsyncIterable<[Buffer, Buffer]>;
  /** The raw writes that apply these changes (value `null` deletes). */
  writesFor(changes: Iterable<readonly [Buffer, Buffer | null]>): LocalWrite[];
  /** Applies raw writes produced by `writesFor` (used where there is no log transaction: the test driver). */
  apply?(writes: readonly LocalWrite[]): void;
  /** Deletes every entry (before a restore from the changelog). */
  clear(): Promise<void> | void;
}

/** The local-state prefix of one store of one task: `07 len(name) name partition`. */
export function localPrefix(storeName: string, partition: number): Buffer {
  const name = Buffer.from(storeName, 'utf8');
  const prefix = Buffer.allocUnsafe(1 + 2 + name.length + 4);
  prefix[0] = PREFIX_LOCAL;
  prefix.writeUInt16BE(name.length, 1);
  name.copy(prefix, 3);
  prefix.writeUInt32BE(partition, 3 + name.length);
  return prefix;
}

function boundedRange(prefix: Buffer, range: KeyRange): { gte: Buffer; lt: Buffer } {
  const all = prefixRange(prefix);
  return {
    gte: range.gte === undefined ? all.gte : Buffer.concat([prefix, range.gte]),
    lt: range.lt === undefined ? all.lt : Buffer.concat([prefix, range.lt]),
  };
}

function prefixedWrites(prefix: Buffer, changes: Iterable<readonly [Buffer, Buffer | null]>): LocalWrite[] {
  const writes: LocalWrite[] = [];
  for (const [key, value] of changes) {
    const full = Buffer.concat([prefix, key]);
    writes.push(value === null ? { type: 'del', key: full } : { type: 'put', key: full, value });
  }
  return writes;
}

/** A store's slice of the embedded log's LevelDB: its writes commit in the same batch as the task's checkpoint. */
export class LevelBackend implements KeyValueBackend {
  readonly description: string;
  readonly synchronous = false;
  readonly #db: ClassicLevel<Buffer, Buffer>;
  readonly #prefix: Buffer;

  constructor(db: ClassicLevel<Buffer, Buffer>, storeName: string, partition: number) {
    this.#db = db;
    this.#prefix = localPrefix(storeName, partition);
    this.description = `leveldb:${storeName}/${partition}`;
  }

  getSync(key: Buffer): Buffer | undefined {
    return this.#db.getSync(Buffer.concat([this.#prefix, key]));
  }

  async *entries(range: KeyRange): AsyncIterable<[Buffer, Buffer]> {
    const strip = this.#prefix.length;
    const iterator = this.#db.iterator(boundedRange(this.#prefix, range));
    try {
      for (;;) {
        const batch = await iterator.nextv(1000);
        if (batch.length === 0) return;
        for (const [key, value] of batch) yield [key.subarray(strip), value];
      }
    } finally {
      await iterator.close();
    }
  }

  writesFor(changes: Iterable<readonly [Buffer, Buffer | null]>): LocalWrite[] {
    return prefixedWrites(this.#prefix, changes);
  }

  async clear(): Promise<void> {
    await this.#db.clear(prefixRange(this.#prefix));
  }
}

/** An in-memory backend: the test driver's stores, and a reference for the store conformance tests. */
export class MemoryBackend implements KeyValueBackend {
  readonly description: string;
  readonly synchronous = true;
  readonly #prefix: Buffer;
  readonly #map = new Map<string, Buffer>();
  #sorted: string[] | undefined;

  constructor(storeName: string, partition: number) {
    this.#prefix = localPrefix(storeName, partition);
    this.description = `memory:${storeName}/${partition}`;
  }

  getSync(key: Buffer): Buffer | undefined {
    return this.#map.get(key.toString('latin1'));
  }

  *entries(range: KeyRange): Iterable<[Buffer, Buffer]> {
    // latin1 strings compare code unit by code unit, which is byte order.
    this.#sorted ??= [...this.#map.keys()].sort();
    const lo = range.gte?.toString('latin1');
    const hi = range.lt?.toString('latin1');
    for (const key of [...this.#sorted]) {
      if (lo !== undefined && key < lo) continue;
      if (hi !== undefined && key >= hi) break;
      const value = this.#map.get(key);
      if (value !== undefined) yield [Buffer.from(key, 'latin1'), value];
    }
  }

  writesFor(changes: Iterable<readonly [Buffer, Buffer | null]>): LocalWrite[] {
    return prefixedWrites(this.#prefix, changes);
  }

  apply(writes: readonly LocalWrite[]): void {
    const strip = this.#prefix.length;
    for (const write of writes) {
      const key = write.key.subarray(strip).toString('latin1');
      if (write.type === 'put') {
        if (!this.#map.has(key)) this.#sorted = undefined;
        this.#map.set(key, write.value);
      } else if (this.#map.delete(key)) {
        this.#sorted = undefined;
      }
    }
  }

  clear(): void {
    this.#map.clear();
    this.#sorted = undefined;
  }

  get size(): number {
    return this.#map.size;
  }
}
