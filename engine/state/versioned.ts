import { deserializationError, type Serde } from '../serde/serde.js';
import type { KeyValueStore } from './key-value-store.js';

/**
 * Versioned state: per key, the values it has had over event time, so a lookup can ask "as of" a time. One store
 * value per key holds that key's whole version list (oldest first), so a lookup is one synchronous `get` and a
 * binary search, never a scan.
 */

/** One version of a key's value: valid from `validFrom` (event time, ms) until the next version's `validFrom`. */
export interface Version<V> {
  readonly validFrom: number;
  /** `null`: the key was deleted (a tombstone) at `validFrom`. */
  readonly value: V | null;
}

/** A key's versions, strictly ascending by `validFrom`. */
export type VersionList<V> = ReadonlyArray<Version<V>>;

export interface VersionedOptions {
  /**
   * How far behind stream time lookups may look. Versions that only answer earlier times are pruned; the version
   * valid at the boundary (stream time − history retention) is always kept.
   */
  readonly historyRetentionMs: number;
}

const FORMAT_V1 = 1;
const HEADER_BYTES = 5;
/** validFrom (8) and the flag byte: the least a version takes. */
const MIN_VERSION_BYTES = 9;
const FLAG_TOMBSTONE = 0;
const FLAG_VALUE = 1;

/**
 * The bytes of a version list: a format byte (1) and the version count (uint32 BE), then per version its
 * `validFrom` (float64 BE, exact for every safe integer), a flag byte (0 tombstone, 1 value) and, for a value, its
 * length (uint32 BE) and the bytes `valueSerde` made of it.
 */
export function versionListSerde<V>(valueSerde: Serde<V>): Serde<VersionList<V>> {
  return {
    name: `versioned(${valueSerde.name})`,
    serialize(versions, context) {
      const parts: Buffer[] = [];
      const header = Buffer.allocUnsafe(HEADER_BYTES);
      header.writeUInt8(FORMAT_V1, 0);
      header.writeUInt32BE(versions.length, 1);
      parts.push(header);
      for (const version of versions) {
        const head = Buffer.allocUnsafe(version.value === null ? MIN_VERSION_BYTES : MIN_VERSION_BYTES + 4);
        head.writeDoubleBE(version.validFrom, 0);
        if (version.value === null) {
          head.writeUInt8(FLAG_TOMBSTONE, 8);
          parts.push(head);
          continue;
        }
        const bytes = valueSerde.serialize(version.value, context);
        head.writeUInt8(FLAG_VALUE, 8);
        head.writeUInt32BE(bytes.length, 9);
        parts.push(head, bytes);
      }
      return Buffer.concat(parts);
    },
    deserialize(bytes, context) {
      if (bytes.length < HEADER_BYTES) throw deserializationError(context, 'version list shorter than its header');
      if (bytes.readUInt8(0) !== FORMAT_V1) throw deserializationError(context, `unknown version list format ${bytes.readUInt8(0)}`);
      const count = bytes.readUInt32BE(1);
      // Checked before allocating: the count must be one the bytes can hold.
      if (count > (bytes.length - HEADER_BYTES) / MIN_VERSION_BYTES) throw deserializationError(context, `version count ${count} exceeds what ${bytes.length} bytes can hold`);
      const versions: Array<Version<V>> = [];
      let at = HEADER_BYTES;
      for (let i = 0; i < count; i++) {
        if (at + MIN_VERSION_BYTES > bytes.length) throw deserializationError(context, 'version list truncated');
        const validFrom = bytes.readDoubleBE(at);
        const flag = bytes.readUInt8(at + 8);
        at += MIN_VERSION_BYTES;
        if (!Number.isSafeInteger(validFrom)) throw deserializationError(context, `version time ${validFrom} is not an integer of ms`);
        const previous = versions[versions.length - 1];
        if (previous !== undefined && previous.validFrom >= validFrom) throw deserializationError(context, 'versions are not in ascending time order');
        if (flag === FLAG_TOMBSTONE) {
          versions.push({ validFrom, value: null });
          continue;
        }
        if (flag !== FLAG_VALUE) throw deserializationError(context, `unknown version flag ${flag}`);
        if (at + 4 > bytes.length) throw deserializationError(context, 'version list truncated');
        const length = bytes.readUInt32BE(at);
        at += 4;
        if (at + length > bytes.length) throw deserializationError(context, 'version value truncated');
        versions.push({ validFrom, value: valueSerde.deserialize(bytes.subarray(at, at + length), context) });
        at += length;
      }
      if (at !== bytes.length) throw deserializationError(context, `${bytes.length - at} bytes after the last version`);
      return versions;
    },
  };
}

/** Index of the version valid at `asOfMs` (the last with `validFrom <= asOfMs`); -1 if none had begun. */
export function versionIndexAt(versions: VersionList<unknown>, asOfMs: number): number {
  let lo = 0;
  let hi = versions.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (versions[mid]!.validFrom <= asOfMs) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** The version valid at `asOfMs`, if any had begun (it may be a tombstone). */
export function versionAt<V>(versions: VersionList<V>, asOfMs: number): Version<V> | undefined {
  return versions[versionIndexAt(versions, asOfMs)];
}

/** The list with `version` added; a version with the same `validFrom` is replaced (the later write wins). */
export function withVersion<V>(versions: VersionList<V>, version: Version<V>): VersionList<V> {
  const at = versionIndexAt(versions, version.validFrom);
  const replaces = at >= 0 && versions[at]!.validFrom === version.validFrom;
  return [...versions.slice(0, at + (replaces ? 0 : 1)), version, ...versions.slice(at + 1)];
}

/**
 * The list without the versions no lookup at or after `boundaryMs` can need: those before the one valid at the
 * boundary. That one is kept, unless it is a tombstone, which answers lookups as no version at all does. Returns
 * `versions` itself when nothing is pruned.
 */
export function pruneVersions<V>(versions: VersionList<V>, boundaryMs: number): VersionList<V> {
  const at = versionIndexAt(versions, boundaryMs);
  if (at < 0) return versions;
  const keepFrom = versions[at]!.value === null ? at + 1 : at;
  return keepFrom === 0 ? versions : versions.slice(keepFrom);
}

/** The earliest time lookups may ask about: stream time − history retention (-Infinity before any record). */
export function historyBoundaryMs(streamTimeMs: number, historyRetentionMs: number): number {
  return streamTimeMs < 0 ? -Infinity : streamTimeMs - historyRetentionMs;
}

/** What `VersionedKeyValueStore.put` did with a version. */
export type VersionedPutResult =
  /** It is the key's latest version now: the table's current value changed. */
  | 'latest'
  /** It went into the history behind a later version; the current value is unchanged. */
  | 'history'
  /** It is older than the history boundary: refused, the store is unchanged. */
  | 'expired';

/**
 * A versioned face over a key-value store whose values are version lists (`versionListSerde`). Writes prune the
 * key's history to the boundary; `sweep` prunes keys that are no longer written. Synchronous, except `sweep` on a
 * backend that iterates asynchronously (LevelDB).
 */
export class VersionedKeyValueStore<K, V> {
  readonly historyRetentionMs: number;
  readonly #store: KeyValueStore<K, VersionList<V>>;
  readonly #streamTimeMs: () => number;
  #sweptAtMs = -Infinity;

  constructor(store: KeyValueStore<K, VersionList<V>>, options: VersionedOptions & { readonly streamTimeMs: () => number }) {
    if (!Number.isSafeInteger(options.historyRetentionMs) || options.historyRetentionMs < 0) {
      throw new RangeError(`historyRetentionMs must be a non-negative integer, got ${options.historyRetentionMs}`);
    }
    this.#store = store;
    this.historyRetentionMs = options.historyRetentionMs;
    this.#streamTimeMs = options.streamTimeMs;
  }

  get name(): string {
    return this.#store.name;
  }

  /** Lookups must not ask about times before this: the versions that answered them may be gone. */
  historyBoundaryMs(): number {
    return historyBoundaryMs(this.#streamTimeMs(), this.historyRetentionMs);
  }

  isBehindHistory(asOfMs: number): boolean {
    return asOfMs < this.historyBoundaryMs();
  }

  /**
   * The value valid at `asOfMs` (the latest value without it); `null` when no version had begun then or the key
   * was deleted. Times behind the history boundary read as `null` too: check `isBehindHistory` first.
   */
  get(key: K, asOfMs?: number): V | null {
    const versions = this.#store.get(key);
    if (versions === undefined) return null;
    if (asOfMs === undefined) return versions[versions.length - 1]?.value ?? null;
    if (this.isBehindHistory(asOfMs)) return null;
    return versionAt(versions, asOfMs)?.value ?? null;
  }

  /** The key's retained versions, oldest first. */
  versions(key: K): VersionList<V> {
    return this.#store.get(key) ?? [];
  }

  /** Adds a version (`null`: a tombstone) valid from `validFromMs`, and prunes the key's history. */
  put(key: K, value: V | null, validFromMs: number): VersionedPutResult {
    const boundary = this.historyBoundaryMs();
    if (validFromMs < boundary) return 'expired';
    const current = this.#store.get(key) ?? [];
    const latest = current[current.length - 1];
    const next = pruneVersions(withVersion(current, { validFrom: validFromMs, value }), boundary);
    if (next.length === 0) this.#store.delete(key);
    else this.#store.put(key, next);
    return latest === undefined || validFromMs >= latest.validFrom ? 'latest' : 'history';
  }

  /**
   * Prunes every key to the history boundary. Scans the whole store, so it runs at most once per half history
   * retention of stream time, and only when stream time moved; between sweeps, keys are pruned as they are written.
   */
  sweep(): void | Promise<void> {
    const now = this.#streamTimeMs();
    if (now < 0 || now <= this.#sweptAtMs || now - this.#sweptAtMs < this.historyRetentionMs / 2) return;
    this.#sweptAtMs = now;
    const boundary = this.historyBoundaryMs();
    const changes: Array<[K, VersionList<V>]> = [];
    const visiting = this.#store.forEach((key, versions) => {
      const pruned = pruneVersions(versions, boundary);
      if (pruned !== versions) changes.push([key, pruned]);
    });
    const apply = (): void => {
      for (const [key, versions] of changes) {
        if (versions.length === 0) this.#store.delete(key);
        else this.#store.put(key, versions);
      }
    };
    if (visiting === undefined) {
      apply();
      return;
    }
    return visiting.then(apply);
  }
}
