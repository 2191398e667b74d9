import type { KeyRange, KeyValueBackend } from './backend.js';

interface CacheEntry {
  readonly key: Buffer;
  /** `null`: the key is deleted (a dirty tombstone) or known to be absent (a clean one). */
  value: Buffer | null;
  dirty: boolean;
  /** Written by a commit still in flight: the backend may not hold it yet, so it must not be evicted. */
  pinned: boolean;
}

const ENTRY_OVERHEAD_BYTES = 64;
const EVICTION_SCAN_LIMIT = 256;

function entryBytes(entry: CacheEntry): number {
  return entry.key.length + (entry.value?.length ?? 0) + ENTRY_OVERHEAD_BYTES;
}

/**
 * Undo log of the record being processed: if a processor throws half-way, every store write it made is rolled back
 * before the record goes to the dead-letter topic, so a record is either wholly processed or not at all.
 */
export class RecordJournal {
  readonly #entries: Array<{ store: CachingStore; key: string; previous: CacheEntry | undefined }> = [];

  note(store: CachingStore, key: string, previous: CacheEntry | undefined): void {
    this.#entries.push({ store, key, previous: previous === undefined ? undefined : { ...previous } });
  }

  rollback(): void {
    for (let i = this.#entries.length - 1; i >= 0; i--) {
      const { store, key, previous } = this.#entries[i]!;
      store.restore(key, previous);
    }
    this.#entries.length = 0;
  }

  clear(): void {
    this.#entries.length = 0;
  }
}

export interface CachingStoreOptions {
  /** Bound on cached bytes; above it clean entries are evicted and a commit is asked for to clean dirty ones. */
  readonly maxBytes: number;
  readonly journal: RecordJournal;
}

/**
 * Write-back cache over a backend, bytes in and bytes out. Repeated keys are served from memory; changes stay here
 * (dirty) until the task's checkpoint takes them with `takeDirty`, so state on disk only ever moves together with
 * the outputs and input offsets of the same checkpoint.
 */
export class CachingStore {
  readonly backend: KeyValueBackend;
  readonly #entries = new Map<string, CacheEntry>();
  readonly #maxBytes: number;
  readonly #journal: RecordJournal;
  #bytes = 0;
  #dirtyCount = 0;
  #pinned: CacheEntry[] = [];
  hits = 0;
  misses = 0;

  constructor(backend: KeyValueBackend, options: CachingStoreOptions) {
    this.backend = backend;
    this.#maxBytes = options.maxBytes;
    this.#journal = options.journal;
  }

  get(key: Buffer): Buffer | undefined {
    const mapKey = key.toString('latin1');
    const entry = this.#entries.get(mapKey);
    if (entry !== undefined) {
      this.hits++;
      if (!entry.dirty && !entry.pinned) {
        // Move to the back of the map: the front is the least recently used.
        this.#entries.delete(mapKey);
        this.#entries.set(mapKey, entry);
      }
      return entry.value ?? undefined;
    }
    this.misses++;
    const value = this.backend.getSync(key);
    this.#insert(mapKey, { key, value: value ?? null, dirty: false, pinned: false });
    return value;
  }

  put(key: Buffer, value: Buffer | null): void {
    const mapKey = key.toString('latin1');
    const previous = this.#entries.get(mapKey);
    this.#journal.note(this, mapKey, previous);
    if (previous !== undefined) {
      this.#bytes -= entryBytes(previous);
      if (!previous.dirty) this.#dirtyCount++;
      previous.value = value;
      previous.dirty = true;
      this.#bytes += entryBytes(previous);
      return;
    }
    this.#dirtyCount++;
    this.#insert(mapKey, { key, value, dirty: true, pinned: false });
  }

  /** Undo of one journaled write. */
  restore(mapKey: string, previous: CacheEntry | undefined): void {
    const current = this.#entries.get(mapKey);
    if (current !== undefined) {
      this.#bytes -= entryBytes(current);
      if (current.dirty) this.#dirtyCount--;
    }
    if (previous === undefined) {
      this.#entries.delete(mapKey);
      return;
    }
    // Restore in place: a pinned entry is also referenced by the in-flight checkpoint's pin list.
    const target = current ?? previous;
    target.value = previous.value;
    target.dirty = previous.dirty;
    target.pinned = previous.pinned;
    if (current === undefined) this.#entries.set(mapKey, target);
    this.#bytes += entryBytes(target);
    if (target.dirty) this.#dirtyCount++;
  }

  #insert(mapKey: string, entry: CacheEntry): void {
    this.#entries.set(mapKey, entry);
    this.#bytes += entryBytes(entry);
    if (this.#bytes > this.#maxBytes) this.#evict();
  }

  #evict(): void {
    let scanned = 0;
    for (const [mapKey, entry] of this.#entries) {
      if (this.#bytes <= this.#maxBytes || scanned++ >= EVICTION_SCAN_LIMIT) return;
      if (entry.dirty || entry.pinned) continue;
      this.#entries.delete(mapKey);
      this.#bytes -= entryBytes(entry);
    }
  }

  /** True when dirty entries alone fill the budget: the task should commit soon. */
  get wantsFlush(): boolean {
    return this.#bytes > this.#maxBytes && this.#dirtyCount > 0;
  }

  get dirtyCount(): number {
    return this.#dirtyCount;
  }

  get sizeBytes(): number {
    return this.#bytes;
  }

  /**
   * Hands the dirty entries to a checkpoint. They stay cached, pinned, until `releasePinned` says the checkpoint is
   * durable: until then the backend may still hold older values.
   */
  takeDirty(): Array<[Buffer, Buffer | null]> {
    const changes: Array<[Buffer, Buffer | null]> = [];
    if (this.#dirtyCount === 0) return changes;
    for (const entry of this.#entries.values()) {
      if (!entry.dirty) continue;
      changes.push([entry.key, entry.value]);
      entry.dirty = false;
      entry.pinned = true;
      this.#pinned.push(entry);
    }
    this.#dirtyCount = 0;
    return changes;
  }

  releasePinned(): void {
    for (const entry of this.#pinned) entry.pinned = false;
    this.#pinned = [];
    if (this.#bytes > this.#maxBytes) this.#evict();
  }

  /** Forgets everything cached (after a restore rewrote the backend). Only valid with nothing dirty or pinned. */
  reset(): void {
    if (this.#dirtyCount > 0 || this.#pinned.length > 0) throw new Error('cannot reset a cache with unflushed changes');
    this.#entries.clear();
    this.#bytes = 0;
  }

  /**
   * Entries in key order: the backend's, overlaid with cached changes it may not hold yet. The overlay is taken
   * when iteration starts; changes made while iterating are not seen.
   */
  async *entries(range: KeyRange): AsyncIterable<[Buffer, Buffer]> {
    const overlay = this.#overlay(range);
    yield* mergeOverlay(this.backend.entries(range) as AsyncIterable<[Buffer, Buffer]>, overlay);
  }

  /** As `entries`, synchronously; only for backends that iterate synchronously (memory). */
  *entriesSync(range: KeyRange): Iterable<[Buffer, Buffer]> {
    const source = this.backend.entries(range);
    if (!(Symbol.iterator in source)) throw new TypeError(`${this.backend.description} cannot be iterated synchronously`);
    yield* mergeOverlaySync(source, this.#overlay(range));
  }

  /** Deletes every entry in the range (as tombstones, committed with the next checkpoint). */
  deleteRange(range: KeyRange): void | Promise<void> {
    if (this.iteratesSynchronously) {
      const keys = [...this.entriesSync(range)].map(([key]) => key);
      for (const key of keys) this.put(key, null);
      return;
    }
    return (async () => {
      const keys: Buffer[] = [];
      for await (const [key] of this.entries(range)) keys.push(key);
      for (const key of keys) this.put(key, null);
    })();
  }

  get iteratesSynchronously(): boolean {
    return this.backend.synchronous;
  }

  #overlay(range: KeyRange): Array<[string, Buffer | null]> {
    const lo = range.gte?.toString('latin1');
    const hi = range.lt?.toString('latin1');
    const overlay: Array<[string, Buffer | null]> = [];
    for (const [mapKey, entry] of this.#entries) {
      if (!entry.dirty && !entry.pinned) continue;
      if (lo !== undefined && mapKey < lo) continue;
      if (hi !== undefined && mapKey >= hi) continue;
      overlay.push([mapKey, entry.value]);
    }
    overlay.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return overlay;
  }
}

/**
 * Merges a key-ordered base with a sorted overlay of changes (null: deleted). A generator over a step function, so
 * the synchronous and asynchronous iterations below share one merge.
 */
class OverlayMerge {
  #i = 0;
  constructor(private readonly overlay: Array<[string, Buffer | null]>) {}

  /** Entries to yield for one base entry: overlay entries before it, then it or its replacement. */
  step(key: Buffer, value: Buffer, out: Array<[Buffer, Buffer]>): void {
    const mapKey = key.toString('latin1');
    const overlay = this.overlay;
    while (this.#i < overlay.length && overlay[this.#i]![0] < mapKey) {
      const [k, v] = overlay[this.#i++]!;
      if (v !== null) out.push([Buffer.from(k, 'latin1'), v]);
    }
    if (this.#i < overlay.length && overlay[this.#i]![0] === mapKey) {
      const v = overlay[this.#i++]![1];
      if (v !== null) out.push([key, v]);
      return;
    }
    out.push([key, value]);
  }

  rest(out: Array<[Buffer, Buffer]>): void {
    for (; this.#i < this.overlay.length; this.#i++) {
      const [k, v] = this.overlay[this.#i]!;
      if (v !== null) out.push([Buffer.from(k, 'latin1'), v]);
    }
  }
}

async function* mergeOverlay(
  base: AsyncIterable<[Buffer, Buffer]>,
  overlay: Array<[string, Buffer | null]>,
): AsyncIterable<[Buffer, Buffer]> {
  const merge = new OverlayMerge(overlay);
  const out: Array<[Buffer, Buffer]> = [];
  for await (const [key, value] of base) {
    merge.step(key, value, out);
    yield* out.splice(0);
  }
  merge.rest(out);
  yield* out;
}

function* mergeOverlaySync(
  base: Iterable<[Buffer, Buffer]>,
  overlay: Array<[string, Buffer | null]>,
): Iterable<[Buffer, Buffer]> {
  const merge = new OverlayMerge(overlay);
  const out: Array<[Buffer, Buffer]> = [];
  for (const [key, value] of base) {
    merge.step(key, value, out);
    yield* out.splice(0);
  }
  merge.rest(out);
  yield* out;
}
