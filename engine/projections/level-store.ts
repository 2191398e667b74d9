/**
 * The embedded projection store: one LevelDB database of its own, binary keys as in the embedded log's format.
 *
 *   01 name 00 namespace            projection (JSON: its id)
 *   02 pid topic 00 partition       position: next offset (u64), greatest op time applied (f64, -1 none)
 *   03 pid key 00 time              version: a flag byte (0 tombstone, 1 value), then the value's JSON
 *   04 name                         the active namespace of a name
 *   05                              projection id sequence (u64)
 *   06 pid                          a drop whose housekeeping has not finished
 *
 * `pid` is a u32 assigned when a projection is first applied to and never reused, so a dropped and re-created
 * projection shares nothing, and dropping is one small atomic write (the rest is housekeeping). Names, namespaces
 * and topics never hold a 00 byte, and keys never hold U+0000, so the 00 separators keep byte order equal to
 * (name, namespace), (topic, partition) and (key, time) order. Integers are big-endian.
 *
 * Writes (apply, prune, drop, activate) run one at a time, so the position check and the batch that advances the
 * position cannot interleave; reads never wait for them.
 */
import { ClassicLevel } from 'classic-level';
import { MillraceError, errorMessage } from '../errors.js';
import { prefixRange, readU64, u64Value, writeU64 } from '../log/embedded/format.js';
import type { Offset } from '../log/log.js';
import {
  ProjectionErrorCodes,
  encodeCursor,
  historyBoundaryMs,
  isExpired,
  normalizeBatch,
  resolveLimits,
  validateKey,
  validateName,
  validateProjectionId,
  validateReadOptions,
  validateRetention,
  validateScan,
  type ApplyResult,
  type GetResult,
  type JsonValue,
  type NotRetained,
  type ProjectionBatch,
  type ProjectionId,
  type ProjectionInfo,
  type ProjectionItem,
  type ProjectionLimits,
  type ProjectionPosition,
  type ProjectionStore,
  type ProjectionStoreOptions,
  type PruneResult,
  type ReadOptions,
  type ScanOptions,
  type ScanResult,
} from './store.js';

const PREFIX_PROJECTION = 0x01;
const PREFIX_POSITION = 0x02;
const PREFIX_VERSION = 0x03;
const PREFIX_ACTIVE = 0x04;
const PREFIX_SEQUENCE = 0x05;
const PREFIX_DROP = 0x06;

const FLAG_TOMBSTONE = 0;
const FLAG_VALUE = 1;
/** Separator (1) and time (8) after a version's key bytes. */
const VERSION_SUFFIX_BYTES = 9;
const READ_CHUNK = 1000;
/** A scan reads this many versions of a key, then answers it from its newest version and seeks past the rest. */
const LONG_HISTORY_VERSIONS = 16;

export interface LevelProjectionStoreOptions extends ProjectionStoreOptions {
  /** Directory of the LevelDB database. Locked by one process at a time. */
  readonly path: string;
  /** fsync every write batch (survives power loss, not only a crash of the process). */
  readonly fsync?: boolean;
}

type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

interface Projection {
  readonly id: number;
  readonly ref: ProjectionId;
  /** Greatest op time applied over all partitions, -1 before any. */
  streamTimeMs: number;
}

// ---------------------------------------------------------------- keys

function u32(value: number): Buffer {
  const buf = Buffer.allocUnsafe(4);
  buf.writeUInt32BE(value, 0);
  return buf;
}

function projectionKey(ref: ProjectionId): Buffer {
  return Buffer.concat([Buffer.of(PREFIX_PROJECTION), Buffer.from(ref.name, 'utf8'), Buffer.of(0), Buffer.from(ref.namespace, 'utf8')]);
}

function parseProjectionKey(key: Buffer): ProjectionId {
  const separator = key.indexOf(0, 1);
  return { name: key.toString('utf8', 1, separator), namespace: key.toString('utf8', separator + 1) };
}

function idPrefix(kind: number, id: number): Buffer {
  return Buffer.concat([Buffer.of(kind), u32(id)]);
}

function positionKey(id: number, topic: string, partition: number): Buffer {
  return Buffer.concat([idPrefix(PREFIX_POSITION, id), Buffer.from(topic, 'utf8'), Buffer.of(0), u32(partition)]);
}

function encodePosition(nextOffset: number, maxTimestampMs: number): Buffer {
  const buf = Buffer.allocUnsafe(16);
  writeU64(buf, nextOffset, 0);
  buf.writeDoubleBE(maxTimestampMs, 8);
  return buf;
}

function decodePosition(value: Buffer): { nextOffset: number; maxTimestampMs: number } {
  return { nextOffset: readU64(value, 0), maxTimestampMs: value.readDoubleBE(8) };
}

/** `03 pid key 00`: every version of one key. */
function versionsPrefix(id: number, key: string): Buffer {
  return Buffer.concat([idPrefix(PREFIX_VERSION, id), Buffer.from(key, 'utf8'), Buffer.of(0)]);
}

function versionKey(id: number, key: string, timestampMs: number): Buffer {
  const prefix = versionsPrefix(id, key);
  const full = Buffer.allocUnsafe(prefix.length + 8);
  prefix.copy(full, 0);
  writeU64(full, timestampMs, prefix.length);
  return full;
}

/** The key bytes (latin1, so comparisons are cheap and byte-ordered) and the time of a version key. */
function parseVersionKey(key: Buffer): { keyBytes: Buffer; timestampMs: number } {
  return {
    keyBytes: key.subarray(5, key.length - VERSION_SUFFIX_BYTES),
    timestampMs: readU64(key, key.length - 8),
  };
}

function encodeVersion(json: string | null): Buffer {
  return json === null ? Buffer.of(FLAG_TOMBSTONE) : Buffer.concat([Buffer.of(FLAG_VALUE), Buffer.from(json, 'utf8')]);
}

function decodeVersion(value: Buffer): JsonValue | undefined {
  return value[0] === FLAG_TOMBSTONE ? undefined : (JSON.parse(value.toString('utf8', 1)) as JsonValue);
}

const refKey = (ref: ProjectionId): string => `${ref.name}\u0000${ref.namespace}`;

/** A LevelDB-backed `ProjectionStore` for one machine. */
export class LevelProjectionStore implements ProjectionStore {
  readonly kind = 'leveldb' as const;
  readonly historyRetentionMs: number;
  readonly limits: ProjectionLimits;

  readonly #path: string;
  readonly #fsync: boolean;
  readonly #db: ClassicLevel<Buffer, Buffer>;
  readonly #projections = new Map<string, Projection>();
  readonly #active = new Map<string, string>();
  #nextId = 1;
  /** The write chain: every write waits for the one before. */
  #tail: Promise<unknown> = Promise.resolve();
  #state: 'new' | 'open' | 'closed' = 'new';

  constructor(options: LevelProjectionStoreOptions) {
    this.historyRetentionMs = validateRetention(options.historyRetentionMs);
    this.limits = resolveLimits(options.limits);
    this.#path = options.path;
    this.#fsync = options.fsync ?? false;
    this.#db = new ClassicLevel<Buffer, Buffer>(options.path, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  }

  /** The LevelDB database, for tests that inject faults. */
  get db(): ClassicLevel<Buffer, Buffer> {
    return this.#db;
  }

  async open(): Promise<void> {
    if (this.#state === 'open') return;
    if (this.#state === 'closed') throw this.#closedError();
    try {
      await this.#db.open();
    } catch (err) {
      const locked = (err as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED';
      throw new MillraceError(
        locked ? 'MILLRACE_LOG_LOCKED' : 'MILLRACE_LOG_WRITE_FAILED',
        locked
          ? `the projection store at ${this.#path} is in use by another process; stop it or choose another path`
          : `could not open the projection store at ${this.#path}: ${errorMessage(err)}`,
        { cause: err },
      );
    }
    const sequence = await this.#db.get(Buffer.of(PREFIX_SEQUENCE));
    if (sequence !== undefined) this.#nextId = readU64(sequence, 0);
    for await (const [key, value] of this.#db.iterator(prefixRange(Buffer.of(PREFIX_PROJECTION)))) {
      const ref = parseProjectionKey(key);
      const { id } = JSON.parse(value.toString('utf8')) as { id: number };
      let streamTimeMs = -1;
      for await (const position of this.#db.values(prefixRange(idPrefix(PREFIX_POSITION, id)))) {
        streamTimeMs = Math.max(streamTimeMs, decodePosition(position).maxTimestampMs);
      }
      this.#projections.set(refKey(ref), { id, ref, streamTimeMs });
    }
    for await (const [key, value] of this.#db.iterator(prefixRange(Buffer.of(PREFIX_ACTIVE)))) {
      this.#active.set(key.toString('utf8', 1), value.toString('utf8'));
    }
    this.#state = 'open';
    // Drops that a crash interrupted: their projections are gone already, only their bytes are left.
    for await (const key of this.#db.keys(prefixRange(Buffer.of(PREFIX_DROP)))) await this.#clearDropped(key.readUInt32BE(1));
  }

  async close(): Promise<void> {
    if (this.#state !== 'open') {
      this.#state = 'closed';
      return;
    }
    this.#state = 'closed';
    await this.#tail.catch(() => undefined);
    await this.#db.close();
  }

  // ---------------------------------------------------------------- writes

  async apply(projection: ProjectionId, batch: ProjectionBatch): Promise<ApplyResult> {
    this.#checkOpen();
    validateProjectionId(projection);
    const normalized = normalizeBatch(batch, this.limits);
    return this.#serial(async () => {
      const existing = this.#projections.get(refKey(projection));
      const id = existing?.id ?? this.#nextId;
      const ops: BatchOp[] = [];
      // Every source must be beyond its stored position, or nothing is written.
      const advanced: Array<{ key: Buffer; nextOffset: number; maxTimestampMs: number }> = [];
      for (const { topic, partition, nextOffset } of normalized.sources) {
        const posKey = positionKey(id, topic, partition);
        const stored = existing === undefined ? undefined : await this.#db.get(posKey);
        const current = stored === undefined ? { nextOffset: 0, maxTimestampMs: -1 } : decodePosition(stored);
        if (nextOffset <= current.nextOffset) return { status: 'skipped', position: current.nextOffset as Offset };
        advanced.push({ key: posKey, nextOffset, maxTimestampMs: Math.max(current.maxTimestampMs, normalized.maxTimestampMs) });
      }
      if (existing === undefined) {
        ops.push({ type: 'put', key: projectionKey(projection), value: Buffer.from(JSON.stringify({ id })) });
        ops.push({ type: 'put', key: Buffer.of(PREFIX_SEQUENCE), value: u64Value(id + 1) });
      }
      let maxTimestampMs = -1;
      for (const position of advanced) {
        ops.push({ type: 'put', key: position.key, value: encodePosition(position.nextOffset, position.maxTimestampMs) });
        maxTimestampMs = Math.max(maxTimestampMs, position.maxTimestampMs);
      }
      const streamTimeBeforeMs = existing?.streamTimeMs ?? -1;
      let expiredOps = 0;
      for (const op of normalized.ops) {
        if (isExpired(op.timestampMs, streamTimeBeforeMs, this.historyRetentionMs)) {
          expiredOps++;
          continue;
        }
        ops.push({ type: 'put', key: versionKey(id, op.key, op.timestampMs), value: encodeVersion(op.json) });
      }
      // Memory changes only once the batch is durable: a failed write leaves the store as it was.
      await this.#db.batch(ops, { sync: this.#fsync });
      if (existing === undefined) {
        this.#nextId = id + 1;
        this.#projections.set(refKey(projection), { id, ref: { name: projection.name, namespace: projection.namespace }, streamTimeMs: maxTimestampMs });
      } else {
        existing.streamTimeMs = Math.max(existing.streamTimeMs, maxTimestampMs);
      }
      return { status: 'applied', position: normalized.source.nextOffset, expiredOps };
    });
  }

  async prune(projection: ProjectionId): Promise<PruneResult> {
    this.#checkOpen();
    validateProjectionId(projection);
    let versionsRemoved = 0;
    let after: Buffer | undefined;
    // In chunks, each under the write chain (an apply may not replace a version between the read and the delete),
    // with applies let through between chunks.
    for (;;) {
      const chunk = await this.#serial(async () => {
        const found = this.#projections.get(refKey(projection));
        if (found === undefined) return undefined;
        return this.#pruneChunk(found, after);
      });
      if (chunk === undefined) return { versionsRemoved };
      versionsRemoved += chunk.removed;
      if (chunk.lastKey === undefined) return { versionsRemoved };
      after = chunk.lastKey;
    }
  }

  /** Prunes whole keys from just after `after` until about `maxScanEntries` versions were read. */
  async #pruneChunk(projection: Projection, after: Buffer | undefined): Promise<{ removed: number; lastKey: Buffer | undefined }> {
    const boundary = historyBoundaryMs(projection.streamTimeMs, this.historyRetentionMs);
    if (boundary === -Infinity) return { removed: 0, lastKey: undefined };
    const all = prefixRange(idPrefix(PREFIX_VERSION, projection.id));
    const gte = after === undefined ? all.gte : Buffer.concat([all.gte, after, Buffer.of(1)]);
    const ops: BatchOp[] = [];
    let group: Array<{ key: Buffer; timestampMs: number; tombstone: boolean }> = [];
    let groupKey: Buffer | undefined;
    let examined = 0;
    const finish = (): void => {
      // Keep the version valid at the boundary (and all after it); a tombstone there answers as nothing does.
      let at = -1;
      while (at + 1 < group.length && group[at + 1]!.timestampMs <= boundary) at++;
      const keepFrom = at >= 0 && group[at]!.tombstone ? at + 1 : Math.max(at, 0);
      for (let i = 0; i < keepFrom; i++) ops.push({ type: 'del', key: group[i]!.key });
    };
    const iterator = this.#db.iterator({ gte, lt: all.lt });
    try {
      for (;;) {
        const entries = await iterator.nextv(READ_CHUNK);
        if (entries.length === 0) break;
        for (const [key, value] of entries) {
          const { keyBytes, timestampMs } = parseVersionKey(key);
          if (groupKey === undefined || !keyBytes.equals(groupKey)) {
            if (groupKey !== undefined) {
              finish();
              if (examined >= this.limits.maxScanEntries) {
                await this.#db.batch(ops, { sync: this.#fsync });
                return { removed: ops.length, lastKey: groupKey };
              }
            }
            groupKey = Buffer.from(keyBytes);
            group = [];
          }
          group.push({ key, timestampMs, tombstone: value[0] === FLAG_TOMBSTONE });
          examined++;
        }
      }
    } finally {
      await iterator.close();
    }
    if (groupKey !== undefined) finish();
    if (ops.length > 0) await this.#db.batch(ops, { sync: this.#fsync });
    return { removed: ops.length, lastKey: undefined };
  }

  async drop(projection: ProjectionId): Promise<void> {
    this.#checkOpen();
    validateProjectionId(projection);
    await this.#serial(async () => {
      const found = this.#projections.get(refKey(projection));
      if (found === undefined) return;
      const ops: BatchOp[] = [
        { type: 'del', key: projectionKey(projection) },
        { type: 'put', key: idPrefix(PREFIX_DROP, found.id), value: Buffer.alloc(0) },
      ];
      const clearsActive = this.#active.get(projection.name) === projection.namespace;
      if (clearsActive) ops.push({ type: 'del', key: activeKey(projection.name) });
      await this.#db.batch(ops, { sync: this.#fsync });
      this.#projections.delete(refKey(projection));
      if (clearsActive) this.#active.delete(projection.name);
      await this.#clearDropped(found.id);
    });
  }

  /** The id is never reused, so its bytes are unreachable already: this only reclaims space. */
  async #clearDropped(id: number): Promise<void> {
    await this.#db.clear(prefixRange(idPrefix(PREFIX_VERSION, id)));
    await this.#db.clear(prefixRange(idPrefix(PREFIX_POSITION, id)));
    await this.#db.del(idPrefix(PREFIX_DROP, id));
  }

  async activate(projection: ProjectionId): Promise<void> {
    this.#checkOpen();
    validateProjectionId(projection);
    await this.#serial(async () => {
      if (!this.#projections.has(refKey(projection))) {
        throw new MillraceError(
          ProjectionErrorCodes.unknownProjection,
          `projection ${projection.name}/${projection.namespace} does not exist: apply to it before activating it`,
          { details: { name: projection.name, namespace: projection.namespace } },
        );
      }
      await this.#db.put(activeKey(projection.name), Buffer.from(projection.namespace, 'utf8'), { sync: this.#fsync });
      this.#active.set(projection.name, projection.namespace);
    });
  }

  // ---------------------------------------------------------------- reads

  async active(name: string): Promise<string | undefined> {
    this.#checkOpen();
    validateName(name);
    return this.#active.get(name);
  }

  async list(): Promise<ProjectionInfo[]> {
    this.#checkOpen();
    return [...this.#projections.values()]
      .map(({ ref }) => ({ name: ref.name, namespace: ref.namespace, active: this.#active.get(ref.name) === ref.namespace }))
      .sort((a, b) => compare(a.name, b.name) || compare(a.namespace, b.namespace));
  }

  async positions(projection: ProjectionId): Promise<ProjectionPosition[]> {
    this.#checkOpen();
    validateProjectionId(projection);
    const found = this.#projections.get(refKey(projection));
    if (found === undefined) return [];
    const positions: ProjectionPosition[] = [];
    for await (const [key, value] of this.#db.iterator(prefixRange(idPrefix(PREFIX_POSITION, found.id)))) {
      const { nextOffset, maxTimestampMs } = decodePosition(value);
      positions.push({
        topic: key.toString('utf8', 5, key.length - 5),
        partition: key.readUInt32BE(key.length - 4),
        nextOffset: nextOffset as Offset,
        maxTimestampMs,
      });
    }
    return positions;
  }

  async get(projection: ProjectionId, key: string, options?: ReadOptions): Promise<GetResult> {
    this.#checkOpen();
    validateProjectionId(projection);
    validateKey(key, this.limits);
    validateReadOptions(options);
    const found = this.#projections.get(refKey(projection));
    if (found === undefined) return { status: 'absent' };
    const asOfMs = options?.asOfMs;
    const notRetained = this.#notRetained(found, asOfMs);
    if (notRetained !== undefined) return notRetained;
    const prefix = versionsPrefix(found.id, key);
    const range = asOfMs === undefined
      ? prefixRange(prefix)
      : { gte: prefix, lte: versionKey(found.id, key, asOfMs) };
    const [entry] = await this.#db.iterator({ ...range, reverse: true, limit: 1 }).all();
    if (entry === undefined) return { status: 'absent' };
    const value = decodeVersion(entry[1]);
    if (value === undefined) return { status: 'absent' };
    return { status: 'found', value, timestampMs: parseVersionKey(entry[0]).timestampMs };
  }

  async scan(projection: ProjectionId, options: ScanOptions): Promise<ScanResult> {
    this.#checkOpen();
    validateProjectionId(projection);
    const { prefix, after } = validateScan(options, this.limits);
    const found = this.#projections.get(refKey(projection));
    if (found === undefined) return { status: 'ok', items: [] };
    const asOfMs = options.asOfMs;
    const notRetained = this.#notRetained(found, asOfMs);
    if (notRetained !== undefined) return notRetained;

    const base = Buffer.concat([idPrefix(PREFIX_VERSION, found.id), Buffer.from(prefix, 'utf8')]);
    const lt = prefixRange(base).lt;
    // `after 01` is past every version of `after` (`after 00 time`) and before every longer key.
    const gte = after === undefined ? base : Buffer.concat([idPrefix(PREFIX_VERSION, found.id), Buffer.from(after, 'utf8'), Buffer.of(1)]);
    const items: ProjectionItem[] = [];
    let resumeAfter: string | undefined; // the last key dealt with: returned, or found absent
    let current: { keyBytes: Buffer; best: { timestampMs: number; value: Buffer } | undefined } | undefined;
    let examined = 0;
    /** Settles `current`; false when it is an item beyond the page (so the page is full and more follow). */
    const settle = (): boolean => {
      const { keyBytes, best } = current!;
      const value = best === undefined ? undefined : decodeVersion(best.value);
      if (value !== undefined) {
        if (items.length === options.limit) return false;
        items.push({ key: keyBytes.toString('utf8'), value, timestampMs: best!.timestampMs });
      }
      resumeAfter = keyBytes.toString('utf8');
      return true;
    };
    const page = (more: boolean): ScanResult => (more && resumeAfter !== undefined
      ? { status: 'ok', items, nextCursor: encodeCursor(resumeAfter, prefix) }
      : { status: 'ok', items });
    const iterator = this.#db.iterator({ gte, lt });
    let versionsOfCurrent = 0;
    try {
      chunks: for (;;) {
        const entries = await iterator.nextv(READ_CHUNK);
        if (entries.length === 0) break;
        for (const [key, value] of entries) {
          const { keyBytes, timestampMs } = parseVersionKey(key);
          if (current !== undefined && !keyBytes.equals(current.keyBytes)) {
            if (!settle()) return page(true);
            current = undefined;
            // Stop between keys, having settled one at least, so a long run of tombstones still makes progress.
            if (examined >= this.limits.maxScanEntries) return page(true);
          }
          if (current === undefined) {
            current = { keyBytes: Buffer.from(keyBytes), best: undefined };
            versionsOfCurrent = 0;
          }
          examined++;
          versionsOfCurrent++;
          // Versions come oldest first: the last one not after asOfMs answers.
          if (asOfMs === undefined || timestampMs <= asOfMs) current.best = { timestampMs, value };
          if (versionsOfCurrent === LONG_HISTORY_VERSIONS) {
            // A key with a long history (a counter updated by every event): its answer is one reverse read away,
            // and the scan jumps past the rest of its versions instead of reading them all.
            const name = current.keyBytes.toString('utf8');
            const versions = versionsPrefix(found.id, name);
            const range = asOfMs === undefined ? prefixRange(versions) : { gte: versions, lte: versionKey(found.id, name, asOfMs) };
            const [newest] = await this.#db.iterator({ ...range, reverse: true, limit: 1 }).all();
            if (newest !== undefined) current.best = { timestampMs: parseVersionKey(newest[0]).timestampMs, value: newest[1] };
            iterator.seek(Buffer.concat([idPrefix(PREFIX_VERSION, found.id), current.keyBytes, Buffer.of(1)]));
            continue chunks;
          }
        }
      }
    } finally {
      await iterator.close();
    }
    if (current !== undefined && !settle()) return page(true);
    return page(false);
  }

  // ---------------------------------------------------------------- helpers

  #notRetained(projection: Projection, asOfMs: number | undefined): NotRetained | undefined {
    if (asOfMs === undefined) return undefined;
    const retainedFromMs = historyBoundaryMs(projection.streamTimeMs, this.historyRetentionMs);
    return asOfMs < retainedFromMs ? { status: 'not-retained', retainedFromMs } : undefined;
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(() => {
      this.#checkOpen();
      return work();
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }

  #checkOpen(): void {
    if (this.#state === 'open') return;
    if (this.#state === 'closed') throw this.#closedError();
    throw new MillraceError('MILLRACE_LOG_NOT_OPEN', `the projection store at ${this.#path} is not open`);
  }

  #closedError(): MillraceError {
    return new MillraceError(ProjectionErrorCodes.closed, `the projection store at ${this.#path} is closed`);
  }
}

function activeKey(name: string): Buffer {
  return Buffer.concat([Buffer.of(PREFIX_ACTIVE), Buffer.from(name, 'utf8')]);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
