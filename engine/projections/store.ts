/**
 * `ProjectionStore` is the one seam between projections and where their read models live. `LevelProjectionStore`
 * (embedded, `level-store.ts`) and `CassandraProjectionStore` (shared, `cassandra-store.ts`) implement it; both pass
 * the conformance suite in `test/conformance/projection-store.ts`, test for test.
 *
 * The model. A projection is addressed by a `ProjectionId`: a name and a namespace (`live`, a rebuild generation
 * such as `gen-2`, a replay sandbox). Namespaces share nothing. A projection exists from its first applied batch
 * until it is dropped; reads of one that does not exist answer as an empty projection (absent, no items).
 *
 * - **Apply** writes one `ProjectionBatch` atomically: its puts and deletes *and* the new position of its source
 *   (topic, partition), or of each of its sources (a batch of records from several partitions). Positions are "next offset to read" offsets (as everywhere in Millrace, see `log.ts`): one
 *   past the last record the batch applied. A batch whose `nextOffset` is not beyond the stored position of its
 *   partition (any of them, for several sources) is **skipped** (nothing written, `{ status: 'skipped' }`), not refused: after a crash the consumer
 *   re-reads from the position it committed to the source, which may be behind this store, and re-applying what is
 *   already here must be a harmless no-op. That is what makes applying exactly-once.
 * - **Versions.** Every put and delete carries the event time it is valid from (`timestampMs`). A key keeps its
 *   versions; `get`/`scan` without `asOfMs` answer the latest (the version with the greatest time, not the last
 *   written: out-of-order events go into history), with `asOfMs` the version with the greatest time ≤ asOfMs. A
 *   delete is a version too (a tombstone): as of then the key is absent. A later write at the same (key, time)
 *   replaces the earlier one, within a batch and across batches.
 * - **Retention.** A projection's stream time is the greatest op time it has applied (over all its partitions). Its
 *   history boundary is stream time − `historyRetentionMs`; an `asOfMs` before the boundary answers
 *   `{ status: 'not-retained', retainedFromMs }` whether or not the old versions were pruned yet, so the answer
 *   never depends on when pruning ran. `prune` removes versions no read at or after the boundary can need,
 *   tombstones at the boundary included.
 * - **Expired ops.** An op whose time is before the boundary as it stood *before* its batch is dropped (counted in
 *   `expiredOps`), as Kafka Streams' versioned stores drop writes older than their history: a pruned tombstone
 *   could no longer hide it, so storing it could answer differently depending on when `prune` ran. Ops of one
 *   batch never expire one another.
 * - **Scans** go in key order: the byte order of the keys' UTF-8 (code point order, which is also Cassandra's
 *   order for `text` clustering columns). Cursors are opaque strings holding the last key returned: the next page
 *   starts strictly after it, so a key present throughout a paged scan is returned exactly once, whatever is
 *   written meanwhile. Keys written behind the cursor are not seen; keys written ahead of it are.
 * - **Limits** bound every request (`ProjectionLimits`); a refused request leaves nothing behind.
 *
 * How this maps to Cassandra (`cassandra-store.ts`; keyspace per store; one partition per projection id, so every
 * batch is single-partition and may be conditional; every write to that partition is conditional, so that Paxos
 * orders their timestamps):
 *
 *   projections (bucket text, name text, namespace text, id timeuuid, PRIMARY KEY (bucket, name, namespace))
 *       one small registry partition (`bucket = 'all'`), the truth of which projections exist and where (`id`);
 *       every call reads it. `list` reads the partition.
 *   active (bucket text, name text, namespace text, id timeuuid, PRIMARY KEY (bucket, name))       `activate`/`active`
 *       one partition too; the pointer holds the id, so it never points at a dropped and re-created namesake.
 *   drops (bucket text, id timeuuid, name text, namespace text, PRIMARY KEY (bucket, id))
 *       drops whose housekeeping has not finished; `open` finishes those whose id is no longer registered.
 *   projection_data (id timeuuid, kind tinyint, k text, ts bigint, next_offset bigint, max_ts bigint, write_id
 *                    timeuuid, value text, PRIMARY KEY ((id), kind, k, ts)) WITH CLUSTERING ORDER BY
 *                    (kind ASC, k ASC, ts DESC)
 *       kind 0, k = '' (topics are never empty), ts = 0: the head row, max_ts = stream time, write_id = a fresh
 *       timeuuid per write (it tells a timed-out write's outcome, and guards prune);
 *       kind 0, k = topic, ts = partition: a position row; kind 1, k = key, ts = event time: a version row, value =
 *       the JSON, or '' for a tombstone (no null: a null writes a cell tombstone that reads would have to skip).
 *   apply:   SELECT … WHERE id = ? AND kind = 0 AND (k, ts) IN (('', 0), (:topic, :partition)) (head and position),
 *            then BEGIN BATCH (logged, conditional) UPDATE head SET max_ts, write_id IF max_ts = :read (no writer
 *            expires ops against a stale boundary); UPDATE position … IF next_offset = :read (or INSERT … IF NOT
 *            EXISTS); INSERT version rows …; APPLY BATCH. All rows are in one partition, so the conditions and the
 *            writes commit together (Paxos); `[applied] = false` with a position ≥ the batch's is a skip, anything
 *            else is re-read and retried (a bounded number of times). A new projection's first batch goes into a
 *            fresh partition (INSERT head … IF NOT EXISTS), then `INSERT INTO projections … IF NOT EXISTS` makes it
 *            exist; a writer that loses that race removes its partition and applies to the winner's.
 *   get:     SELECT … WHERE id = ? AND kind = 1 AND k = ? AND ts <= :asOf LIMIT 1   (ts DESC: the newest first)
 *   scan:    SELECT … WHERE id = ? AND kind = 1 AND k >= :from [AND k < :prefixEnd], from = the prefix or the cursor's
 *            key + U+0000 (keys never hold it), prefixEnd = the prefix with its last code point raised by one; paged
 *            by our own key cursor, not the driver's page state, so cursors mean the same on both stores
 *   positions / stream time: SELECT … WHERE id = ? AND kind = 0
 *   prune:   BEGIN BATCH UPDATE head SET write_id = :new IF write_id = :read (as read before the versions: a batch
 *            applied meanwhile fails it, and the chunk is read again); DELETE … WHERE id = ? AND kind = 1 AND k = ?
 *            AND ts < :keep (ts <= for a tombstone at the boundary), a range tombstone per key …; APPLY BATCH
 *   drop:    INSERT INTO drops, DELETE FROM projections … IF id = ? (the commit point), DELETE FROM active … IF id = ?,
 *            DELETE FROM projection_data WHERE id = ? (one partition), DELETE FROM drops
 * A batch's size is bounded by `maxBatchBytes` and `maxOpsPerBatch`. Cassandra's batch_size_fail_threshold (50 KiB)
 * does not apply to single-partition batches (CASSANDRA-10876); what does is max_mutation_size (half of
 * commitlog_segment_size: 16 MiB by default), well above the default 4 MiB.
 */
import { MillraceError, type ErrorCode } from '../errors.js';
import { TOPIC_NAME_PATTERN, type Offset } from '../log/log.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A projection's read model: its name and the namespace (generation, sandbox) it lives in. */
export interface ProjectionId {
  readonly name: string;
  readonly namespace: string;
}

/** The namespace of the projection that serves reads, until a rebuild is activated beside it. */
export const LIVE_NAMESPACE = 'live';

/** Names and namespaces: what a Kafka topic name may be, at most 200 characters. */
export const PROJECTION_NAME_PATTERN = /^[a-zA-Z0-9._-]{1,200}$/;

/** One change of a batch, valid from `timestampMs` (event time, ms since the epoch, a non-negative integer). */
export type ProjectionOp =
  | { readonly type: 'put'; readonly key: string; readonly value: JsonValue; readonly timestampMs: number }
  | { readonly type: 'del'; readonly key: string; readonly timestampMs: number };

/** The source position a batch advances: `nextOffset` is one past the last record it applied. */
export interface SourcePosition {
  readonly topic: string;
  readonly partition: number;
  readonly nextOffset: Offset;
}

export interface ProjectionBatch {
  /**
   * The position this batch advances; or `sources`, several (distinct partitions), when one batch applies records of
   * several partitions together (a runner that merges its partitions in event-time order). Exactly one of the two.
   */
  readonly source?: SourcePosition;
  readonly sources?: readonly SourcePosition[];
  /** May be empty: a batch of records that changed nothing still advances the position. */
  readonly ops: readonly ProjectionOp[];
}

export type ApplyResult =
  | {
      readonly status: 'applied';
      readonly position: Offset;
      /** Ops dropped for being older than the history boundary (see "Expired ops"). */
      readonly expiredOps: number;
    }
  /** A `nextOffset` of the batch was not beyond the stored one (shown, of the first such source): nothing was written. */
  | { readonly status: 'skipped'; readonly position: Offset };

export interface ProjectionPosition extends SourcePosition {
  /** Greatest op time applied from this partition, -1 when none: the projection's stream time is the max. */
  readonly maxTimestampMs: number;
}

export interface ReadOptions {
  /** Answer as of this event time (ms); without it, the latest. */
  readonly asOfMs?: number;
}

export interface NotRetained {
  readonly status: 'not-retained';
  /** The earliest `asOfMs` answered now (stream time − history retention). */
  readonly retainedFromMs: number;
}

export type GetResult =
  | { readonly status: 'found'; readonly value: JsonValue; readonly timestampMs: number }
  /** Never written, deleted (as of the time asked), or the projection does not exist. */
  | { readonly status: 'absent' }
  | NotRetained;

export interface ScanOptions extends ReadOptions {
  /** Only keys starting with this string. */
  readonly prefix?: string;
  /** Most items in the page, 1 … `limits.maxScanLimit`. */
  readonly limit: number;
  /** From the previous page's `nextCursor`, with the same prefix. */
  readonly cursor?: string;
}

export interface ProjectionItem {
  readonly key: string;
  readonly value: JsonValue;
  readonly timestampMs: number;
}

export type ScanResult =
  | {
      readonly status: 'ok';
      /** In key order; at most `limit`. Fewer with a cursor when `maxScanEntries` stopped the page early. */
      readonly items: readonly ProjectionItem[];
      /** Absent when the scan is complete. */
      readonly nextCursor?: string;
    }
  | NotRetained;

export interface ProjectionInfo extends ProjectionId {
  /** This namespace is the one `active(name)` answers. */
  readonly active: boolean;
}

export interface PruneResult {
  readonly versionsRemoved: number;
}

export interface ProjectionLimits {
  /** UTF-8 bytes of a key. */
  readonly maxKeyBytes: number;
  /** UTF-8 bytes of a value's JSON. */
  readonly maxValueBytes: number;
  readonly maxOpsPerBatch: number;
  /** Keys and value JSON of a batch together. */
  readonly maxBatchBytes: number;
  /** Largest `limit` of a scan. */
  readonly maxScanLimit: number;
  /** Stored versions one scan page may examine (tombstones and history included) before it returns early. */
  readonly maxScanEntries: number;
}

export const DEFAULT_PROJECTION_LIMITS: ProjectionLimits = Object.freeze({
  maxKeyBytes: 1024,
  maxValueBytes: 256 * 1024,
  maxOpsPerBatch: 1000,
  maxBatchBytes: 4 * 1024 * 1024,
  maxScanLimit: 1000,
  maxScanEntries: 10_000,
});

export interface ProjectionStoreOptions {
  /** How far behind a projection's stream time `asOfMs` reads are answered. */
  readonly historyRetentionMs: number;
  readonly limits?: Partial<ProjectionLimits>;
}

/**
 * The codes projection stores raise. The catalogue has no projection codes yet, so these are the closest existing
 * ones; stores and the conformance suite use this table, so adopting dedicated codes is a change here only.
 */
export const ProjectionErrorCodes = {
  /** A read's arguments are invalid: name, limit, cursor, asOfMs. */
  invalidRequest: 'MILLRACE_HTTP_VALIDATION',
  /** A batch's content is invalid or over a limit: key, value, timestamp, size. */
  invalidBatch: 'MILLRACE_RECORD_INVALID',
  /** A batch's source position is invalid. */
  invalidPosition: 'MILLRACE_OFFSET_INVALID',
  /** `activate` of a projection that does not exist. */
  unknownProjection: 'MILLRACE_STORE_UNKNOWN',
  /** Used after `close`. */
  closed: 'MILLRACE_LOG_CLOSED',
} as const satisfies Record<string, ErrorCode>;

export interface ProjectionStore {
  readonly kind: string;
  readonly historyRetentionMs: number;
  readonly limits: ProjectionLimits;

  /** Applies a batch atomically with its source position, or skips it when that position is already applied. */
  apply(projection: ProjectionId, batch: ProjectionBatch): Promise<ApplyResult>;
  /** The applied position of every source partition, by topic then partition. */
  positions(projection: ProjectionId): Promise<ProjectionPosition[]>;
  get(projection: ProjectionId, key: string, options?: ReadOptions): Promise<GetResult>;
  scan(projection: ProjectionId, options: ScanOptions): Promise<ScanResult>;
  /** Removes versions that no read at or after the history boundary can need. */
  prune(projection: ProjectionId): Promise<PruneResult>;
  /** Every existing projection, by name then namespace. */
  list(): Promise<ProjectionInfo[]>;
  /** Removes the projection, its versions and positions; clears its name's active pointer if it pointed here. */
  drop(projection: ProjectionId): Promise<void>;
  /** Makes `projection.namespace` the one `active(projection.name)` answers (switching over to a rebuild). */
  activate(projection: ProjectionId): Promise<void>;
  active(name: string): Promise<string | undefined>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- shared validation (every store uses these)

export function resolveLimits(limits: Partial<ProjectionLimits> | undefined): ProjectionLimits {
  const resolved = { ...DEFAULT_PROJECTION_LIMITS, ...limits };
  for (const [name, value] of Object.entries(resolved)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`limits.${name} must be a positive integer, got ${value}`);
  }
  return Object.freeze(resolved);
}

export function validateRetention(historyRetentionMs: number): number {
  if (!Number.isSafeInteger(historyRetentionMs) || historyRetentionMs < 0) {
    throw new RangeError(`historyRetentionMs must be a non-negative integer, got ${historyRetentionMs}`);
  }
  return historyRetentionMs;
}

export function validateProjectionId(projection: ProjectionId): void {
  if (!PROJECTION_NAME_PATTERN.test(projection.name) || !PROJECTION_NAME_PATTERN.test(projection.namespace)) {
    throw new MillraceError(
      ProjectionErrorCodes.invalidRequest,
      `projection name and namespace must match ${PROJECTION_NAME_PATTERN}, got ${JSON.stringify(projection.name)}/${JSON.stringify(projection.namespace)}`,
      { details: { name: projection.name, namespace: projection.namespace } },
    );
  }
}

export function validateName(name: string): void {
  validateProjectionId({ name, namespace: LIVE_NAMESPACE });
}

/**
 * Keys are non-empty well-formed strings without U+0000 (stores use it as the separator before a version's
 * time, so that a key sorts before every key it is a prefix of).
 */
function keyProblem(key: unknown, maxKeyBytes: number, allowEmpty: boolean): string | undefined {
  if (typeof key !== 'string') return 'must be a string';
  if (key.length === 0) return allowEmpty ? undefined : 'must not be empty';
  if (key.includes('\u0000')) return 'must not contain U+0000';
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > maxKeyBytes) return `is ${bytes} bytes, more than the ${maxKeyBytes} allowed`;
  if (Buffer.from(key, 'utf8').toString('utf8') !== key) return 'is not well-formed UTF-16 (a lone surrogate)';
  return undefined;
}

export function validateKey(key: string, limits: ProjectionLimits): void {
  const problem = keyProblem(key, limits.maxKeyBytes, false);
  if (problem !== undefined) {
    throw new MillraceError(ProjectionErrorCodes.invalidRequest, `key ${problem}`, { details: { key: String(key).slice(0, 100) } });
  }
}

function isTimestamp(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

export function validateReadOptions(options: ReadOptions | undefined): void {
  if (options?.asOfMs !== undefined && !isTimestamp(options.asOfMs)) {
    throw new MillraceError(ProjectionErrorCodes.invalidRequest, `asOfMs must be a non-negative integer of ms, got ${options.asOfMs}`);
  }
}

/** A validated batch: ops collapsed so each (key, time) appears once, the last op winning. */
export interface NormalizedBatch {
  /** The first source (the only one of most batches). */
  readonly source: SourcePosition;
  /** Every source, each (topic, partition) once. */
  readonly sources: readonly SourcePosition[];
  readonly ops: ReadonlyArray<{ readonly key: string; readonly timestampMs: number; readonly json: string | null }>;
  /** Greatest op time, -1 for a batch without ops. */
  readonly maxTimestampMs: number;
}

/**
 * Validates everything before anything is written, so a refused batch leaves nothing. Collapsing duplicates here
 * matters on Cassandra: two writes of one cell in one batch share a write time, and then the larger value wins,
 * not the later one.
 */
export function normalizeBatch(batch: ProjectionBatch, limits: ProjectionLimits): NormalizedBatch {
  const { ops } = batch;
  const refuse = (message: string, details: Record<string, unknown> = {}): never => {
    throw new MillraceError(ProjectionErrorCodes.invalidBatch, message, { details });
  };
  if ((batch.source === undefined) === (batch.sources === undefined)) refuse('a batch has either a source or sources');
  const sources = batch.sources ?? [batch.source!];
  if (!Array.isArray(sources) || sources.length === 0) refuse('batch.sources must be a non-empty array');
  const seen = new Set<string>();
  for (const source of sources) {
    if (typeof source?.topic !== 'string' || !TOPIC_NAME_PATTERN.test(source.topic)) refuse(`batch.source.topic must match ${TOPIC_NAME_PATTERN}`);
    if (!Number.isSafeInteger(source.partition) || source.partition < 0) refuse(`batch.source.partition must be a non-negative integer, got ${source.partition}`);
    if (!Number.isSafeInteger(source.nextOffset) || source.nextOffset < 0) {
      throw new MillraceError(ProjectionErrorCodes.invalidPosition, `batch.source.nextOffset must be a non-negative integer, got ${source.nextOffset}`, {
        details: { topic: source.topic, partition: source.partition },
      });
    }
    const id = `${source.topic}\u0000${source.partition}`;
    if (seen.has(id)) refuse(`batch.sources names ${source.topic}/${source.partition} twice`);
    seen.add(id);
  }
  const source = sources[0]!;
  if (!Array.isArray(ops)) refuse('batch.ops must be an array');
  if (ops.length > limits.maxOpsPerBatch) refuse(`a batch holds at most ${limits.maxOpsPerBatch} ops, got ${ops.length}`, { ops: ops.length });
  let bytes = 0;
  let maxTimestampMs = -1;
  const byVersion = new Map<string, { key: string; timestampMs: number; json: string | null }>();
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (op?.type !== 'put' && op?.type !== 'del') refuse(`op ${i}: type must be 'put' or 'del'`, { op: i });
    const problem = keyProblem(op.key, limits.maxKeyBytes, false);
    if (problem !== undefined) refuse(`op ${i}: key ${problem}`, { op: i });
    if (!isTimestamp(op.timestampMs)) refuse(`op ${i}: timestampMs must be a non-negative integer of ms, got ${op.timestampMs}`, { op: i });
    let json: string | null = null;
    if (op.type === 'put') {
      json = serializeValue(op.value, i);
      const valueBytes = Buffer.byteLength(json, 'utf8');
      if (valueBytes > limits.maxValueBytes) refuse(`op ${i}: value is ${valueBytes} bytes of JSON, more than the ${limits.maxValueBytes} allowed`, { op: i });
      bytes += valueBytes;
    }
    bytes += Buffer.byteLength(op.key, 'utf8');
    if (bytes > limits.maxBatchBytes) refuse(`a batch holds at most ${limits.maxBatchBytes} bytes of keys and values`, { op: i });
    if (op.timestampMs > maxTimestampMs) maxTimestampMs = op.timestampMs;
    const id = `${op.timestampMs}\u0000${op.key}`;
    byVersion.delete(id); // re-inserted last: the later op wins and keeps batch order
    byVersion.set(id, { key: op.key, timestampMs: op.timestampMs, json });
  }
  return { source, sources, ops: [...byVersion.values()], maxTimestampMs };
}

function serializeValue(value: JsonValue, index: number): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw new MillraceError(ProjectionErrorCodes.invalidBatch, `op ${index}: value is not JSON-serialisable`, { cause: err, details: { op: index } });
  }
  if (json === undefined) {
    throw new MillraceError(ProjectionErrorCodes.invalidBatch, `op ${index}: value is not JSON-serialisable (${typeof value})`, { details: { op: index } });
  }
  return json;
}

/** The earliest `asOfMs` answered for a projection at `streamTimeMs` (-1: nothing applied yet). */
export function historyBoundaryMs(streamTimeMs: number, historyRetentionMs: number): number {
  return streamTimeMs < 0 ? -Infinity : streamTimeMs - historyRetentionMs;
}

/** An op of a batch applied at `streamTimeBeforeMs` is dropped when this is true. */
export function isExpired(timestampMs: number, streamTimeBeforeMs: number, historyRetentionMs: number): boolean {
  return timestampMs < historyBoundaryMs(streamTimeBeforeMs, historyRetentionMs);
}

// ---------------------------------------------------------------- cursors

interface CursorBody {
  readonly v: 1;
  /** The last key returned; the next page starts strictly after it. */
  readonly after: string;
  readonly prefix: string;
}

export function encodeCursor(after: string, prefix: string): string {
  const body: CursorBody = { v: 1, after, prefix };
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
}

/** The key a page starts after, or undefined for the first page. */
export function validateScan(options: ScanOptions, limits: ProjectionLimits): { prefix: string; after: string | undefined } {
  const invalid = (message: string): never => {
    throw new MillraceError(ProjectionErrorCodes.invalidRequest, message);
  };
  validateReadOptions(options);
  if (!Number.isSafeInteger(options.limit) || options.limit < 1 || options.limit > limits.maxScanLimit) {
    invalid(`limit must be an integer from 1 to ${limits.maxScanLimit}, got ${options.limit}`);
  }
  const prefix = options.prefix ?? '';
  const problem = keyProblem(prefix, limits.maxKeyBytes, true);
  if (problem !== undefined) invalid(`prefix ${problem}`);
  if (options.cursor === undefined) return { prefix, after: undefined };
  let body: Partial<CursorBody> | undefined;
  try {
    body = JSON.parse(Buffer.from(String(options.cursor), 'base64url').toString('utf8')) as Partial<CursorBody>;
  } catch {
    body = undefined; // reported below, as every other malformed cursor
  }
  if (body?.v !== 1 || typeof body.after !== 'string' || typeof body.prefix !== 'string') return invalid('cursor is not one this store made');
  if (body.prefix !== prefix) return invalid('cursor belongs to a scan with another prefix');
  return { prefix, after: body.after };
}
