/**
 * The Cassandra projection store: projections shared by every engine process that points at the same keyspace.
 * The data model and the CQL statements are described in `store.ts` ("How this maps to Cassandra"); this file adds
 * the reasons behind the details.
 *
 * - **Every write to a projection's partition is a Paxos (LWT) write**, even where no condition is needed (creating
 *   a fresh partition): Paxos gives the writes of one partition increasing timestamps, so a later write always
 *   shadows an earlier one. A plain write would carry the client's clock, and a skewed clock could let it shadow,
 *   or be shadowed by, a write that came before or after it.
 * - **The head row** (kind 0, key '') holds the projection's stream time and the id of the last write to its data
 *   (`write_id`, a fresh timeuuid per write). An apply is conditional on the stream time it read (so that no two
 *   writers drop expired ops against different boundaries) and on its source position; a prune on `write_id` (so that
 *   it removes only versions it saw, with the boundary it read). `write_id` also settles a write whose outcome is
 *   unknown (a timeout): a SERIAL read of the head finishes any Paxos round in flight and says whose write it was.
 * - **The registry row is the truth** of whether a projection exists and which partition (`id`) holds it; every call
 *   reads it, so another process's drop or re-creation is seen at once. A projection's data is written first and its
 *   registry row last (the commit point of creation); a drop removes the registry row first (its commit point) and
 *   the data after, recording the id in `drops` so that `open` finishes a drop a crash interrupted.
 * - Within one store, writes to one projection run one at a time (as the LevelDB store's do), so its own calls never
 *   contend in Paxos; conflicts come only from other processes and are retried a bounded number of times.
 */
import cassandra from 'cassandra-driver';
import { MillraceError, errorMessage } from '../errors.js';
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
  type NormalizedBatch,
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

type Client = cassandra.Client;
type Row = cassandra.types.Row;
type ResultSet = cassandra.types.ResultSet;
type Uuid = cassandra.types.Uuid;
type Consistency = cassandra.types.consistencies;

const { consistencies, responseErrorCodes, TimeUuid } = cassandra.types;

export interface CassandraProjectionStoreOptions extends ProjectionStoreOptions {
  /** "host:port" of one or more nodes to discover the cluster from. Unused when `client` is given. */
  readonly contactPoints: readonly string[];
  /** The data centre this process runs in: requests go to its nodes, and a new keyspace is replicated there. */
  readonly localDataCenter?: string;
  /** Keyspace of the store's tables (letters, digits and _, at most 48), created with them when missing. */
  readonly keyspace: string;
  /** Replicas in the local data centre when the keyspace is created (an existing keyspace is left as it is). */
  readonly replicationFactor?: number;
  /** A client to share: `open` connects it if needed, `close` leaves it open for its owner. */
  readonly client?: Client;
  /** Reads and writes, including the commit of conditional writes. */
  readonly consistency?: Consistency;
  /** The Paxos round of conditional writes, and the reads that settle a write whose outcome is unknown. */
  readonly serialConsistency?: Consistency;
  /** Connecting to one node. */
  readonly connectTimeoutMs?: number;
  /** One request, client side (the driver's readTimeout). */
  readonly requestTimeoutMs?: number;
  /** How long `open` waits for every node to agree on the schema it created. */
  readonly schemaAgreementTimeoutMs?: number;
  /** Conditional writes lost to another process, per call, before it fails (retriable). */
  readonly maxConflictRetries?: number;
  /** Requests one connection carries at once (the driver's pooling.maxRequestsPerConnection). */
  readonly maxRequestsPerConnection?: number;
}

interface ResolvedOptions {
  readonly contactPoints: readonly string[];
  readonly localDataCenter: string;
  readonly keyspace: string;
  readonly replicationFactor: number;
  readonly consistency: Consistency;
  readonly serialConsistency: Consistency;
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly schemaAgreementTimeoutMs: number;
  readonly maxConflictRetries: number;
  readonly maxRequestsPerConnection: number;
}

const DEFAULTS = {
  localDataCenter: 'datacenter1',
  replicationFactor: 1,
  consistency: consistencies.localQuorum,
  serialConsistency: consistencies.serial,
  connectTimeoutMs: 5_000,
  requestTimeoutMs: 12_000,
  schemaAgreementTimeoutMs: 10_000,
  maxConflictRetries: 10,
  maxRequestsPerConnection: 1_024,
} as const;

/** Quoted in every statement, so it keeps its case; Cassandra allows 48 characters. */
const KEYSPACE_PATTERN = /^[A-Za-z0-9_]{1,48}$/;
/** The registry, active pointers and drop records each live in one partition, so `list` reads one partition each. */
const BUCKET = 'all';
/** The head row's key: topics are never empty, so it cannot be a position. */
const HEAD_KEY = '';
/** A version row's value for a delete. Never valid JSON, and unlike a null it writes no cell tombstone to scan past. */
const TOMBSTONE = '';
/** Rows per request when scanning: the first request asks for about a page's worth, later ones for more. */
const MIN_FETCH_ROWS = 16;
const MAX_FETCH_ROWS = 1_000;
/** Base of the jittered pause between rounds of a conditional write lost to another process. */
const CONFLICT_BACKOFF_MS = 5;

/** Errors that say the cluster could not serve the request now: retriable, and for a write, of unknown outcome. */
const UNAVAILABLE_RESPONSE_CODES: ReadonlySet<number> = new Set([
  responseErrorCodes.unavailableException,
  responseErrorCodes.overloaded,
  responseErrorCodes.isBootstrapping,
  responseErrorCodes.readTimeout,
  responseErrorCodes.writeTimeout,
  responseErrorCodes.readFailure,
  responseErrorCodes.writeFailure,
]);

function isUnavailable(err: unknown): boolean {
  const { errors } = cassandra;
  if (err instanceof errors.NoHostAvailableError || err instanceof errors.OperationTimedOutError || err instanceof errors.BusyConnectionError) return true;
  return err instanceof errors.ResponseError && UNAVAILABLE_RESPONSE_CODES.has(err.code);
}

/**
 * A driver error in one line. NoHostAvailableError's own message embeds the stack of its first inner error; the
 * inner errors' first lines (per host) say what matters.
 */
function driverMessage(err: unknown): string {
  const firstLine = (e: unknown): string => errorMessage(e).split('\n')[0]!.trim();
  const inner = innerErrors(err);
  if (inner.length > 0) return `no node answered (${inner.map(([host, e]) => `${host}: ${firstLine(e)}`).join('; ')})`;
  return firstLine(err);
}

/** The errors of each host a NoHostAvailableError tried. */
function innerErrors(err: unknown): Array<[string, unknown]> {
  if (!(err instanceof cassandra.errors.NoHostAvailableError)) return [];
  return Object.entries((err.innerErrors ?? {}) as Record<string, unknown>);
}

/**
 * cassandra-driver 4.10 leaves the control connection's socket open when `connect` fails after it opened (a wrong
 * localDataCenter, for one), and `shutdown` does nothing for a client that never connected; left open, it keeps the
 * process alive. Closed here through the driver's internals, hence the guards.
 */
async function closeFailedConnection(client: Client): Promise<void> {
  type Closable = { close?: (callback: () => void) => void };
  const connection = (client as unknown as { controlConnection?: { connection?: Closable | null } }).controlConnection?.connection;
  const close = connection?.close;
  if (typeof close !== 'function') return;
  await new Promise<void>((resolve) => close.call(connection, () => resolve()));
}

/** A bigint column as a number (a `Long`, or a `bigint` when a shared client decodes them so). */
function num(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof cassandra.types.Long) return value.toNumber();
  throw new TypeError(`expected a bigint column, got ${String(value)}`);
}

function sameUuid(a: unknown, b: Uuid): boolean {
  return a instanceof cassandra.types.Uuid && a.equals(b);
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The least string after every string that starts with `prefix`, or undefined when there is none: the last code
 * point raised by one (code point order is UTF-8 byte order, Cassandra's order for `text`).
 */
function prefixEnd(prefix: string): string | undefined {
  const points = [...prefix];
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) return points.join('') + String.fromCodePoint(last === 0xd7ff ? 0xe000 : last + 1);
  }
  return undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const refKey = (ref: ProjectionId): string => `${ref.name}\u0000${ref.namespace}`;

interface Head {
  /** Greatest op time applied over all partitions, -1 before any. */
  readonly streamTimeMs: number;
  readonly writeId: Uuid;
}

interface Statement {
  readonly query: string;
  readonly params: unknown[];
}

/** The CQL of one keyspace, built once. */
function statements(keyspace: string) {
  const ks = `"${keyspace}"`;
  const data = `${ks}.projection_data`;
  const head = `id = ? AND kind = 0 AND k = '${HEAD_KEY}' AND ts = 0`;
  return {
    schema: [
      `CREATE TABLE IF NOT EXISTS ${ks}.projections (bucket text, name text, namespace text, id timeuuid, PRIMARY KEY (bucket, name, namespace))`,
      `CREATE TABLE IF NOT EXISTS ${ks}.active (bucket text, name text, namespace text, id timeuuid, PRIMARY KEY (bucket, name))`,
      `CREATE TABLE IF NOT EXISTS ${ks}.drops (bucket text, id timeuuid, name text, namespace text, PRIMARY KEY (bucket, id))`,
      `CREATE TABLE IF NOT EXISTS ${data} (id timeuuid, kind tinyint, k text, ts bigint, next_offset bigint, max_ts bigint, ` +
        'write_id timeuuid, value text, PRIMARY KEY ((id), kind, k, ts)) WITH CLUSTERING ORDER BY (kind ASC, k ASC, ts DESC)',
    ],
    lookup: `SELECT id FROM ${ks}.projections WHERE bucket = '${BUCKET}' AND name = ? AND namespace = ?`,
    register: `INSERT INTO ${ks}.projections (bucket, name, namespace, id) VALUES ('${BUCKET}', ?, ?, ?) IF NOT EXISTS`,
    unregister: `DELETE FROM ${ks}.projections WHERE bucket = '${BUCKET}' AND name = ? AND namespace = ? IF id = ?`,
    listProjections: `SELECT name, namespace, id FROM ${ks}.projections WHERE bucket = '${BUCKET}'`,
    listActive: `SELECT name, namespace, id FROM ${ks}.active WHERE bucket = '${BUCKET}'`,
    readActive: `SELECT namespace, id FROM ${ks}.active WHERE bucket = '${BUCKET}' AND name = ?`,
    setActive: `UPDATE ${ks}.active SET namespace = ?, id = ? WHERE bucket = '${BUCKET}' AND name = ? IF id = ?`,
    clearActive: `DELETE FROM ${ks}.active WHERE bucket = '${BUCKET}' AND name = ? IF id = ?`,
    recordDrop: `INSERT INTO ${ks}.drops (bucket, id, name, namespace) VALUES ('${BUCKET}', ?, ?, ?)`,
    listDrops: `SELECT id, name, namespace FROM ${ks}.drops WHERE bucket = '${BUCKET}'`,
    forgetDrop: `DELETE FROM ${ks}.drops WHERE bucket = '${BUCKET}' AND id = ?`,
    dropData: `DELETE FROM ${data} WHERE id = ?`,
    readHead: `SELECT max_ts, write_id FROM ${data} WHERE ${head}`,
    /** The head and one position in one read: the IN on (k, ts) keeps it a single-partition slice. */
    readHeadAndPosition: `SELECT k, ts, next_offset, max_ts, write_id FROM ${data} WHERE id = ? AND kind = 0 AND (k, ts) IN (('${HEAD_KEY}', 0), (?, ?))`,
    /** The head and every position. */
    readPositions: `SELECT k, ts, next_offset, max_ts FROM ${data} WHERE id = ? AND kind = 0`,
    createHead: `INSERT INTO ${data} (id, kind, k, ts, max_ts, write_id) VALUES (?, 0, '${HEAD_KEY}', 0, ?, ?) IF NOT EXISTS`,
    advanceHead: `UPDATE ${data} SET max_ts = ?, write_id = ? WHERE ${head} IF max_ts = ?`,
    touchHead: `UPDATE ${data} SET write_id = ? WHERE ${head} IF write_id = ?`,
    insertPosition: `INSERT INTO ${data} (id, kind, k, ts, next_offset, max_ts) VALUES (?, 0, ?, ?, ?, ?) IF NOT EXISTS`,
    /** Unconditional: only in the batch that creates the partition. */
    writeFirstPosition: `INSERT INTO ${data} (id, kind, k, ts, next_offset, max_ts) VALUES (?, 0, ?, ?, ?, ?)`,
    advancePosition: `UPDATE ${data} SET next_offset = ?, max_ts = ? WHERE id = ? AND kind = 0 AND k = ? AND ts = ? IF next_offset = ?`,
    writeVersion: `INSERT INTO ${data} (id, kind, k, ts, value) VALUES (?, 1, ?, ?, ?)`,
    /** ts DESC: the first row is the newest version at or before the bound. */
    readVersion: `SELECT ts, value FROM ${data} WHERE id = ? AND kind = 1 AND k = ? AND ts <= ? LIMIT 1`,
    scanFrom: `SELECT k, ts, value FROM ${data} WHERE id = ? AND kind = 1 AND k >= ?`,
    scanRange: `SELECT k, ts, value FROM ${data} WHERE id = ? AND kind = 1 AND k >= ? AND k < ?`,
    pruneBefore: `DELETE FROM ${data} WHERE id = ? AND kind = 1 AND k = ? AND ts < ?`,
    pruneThrough: `DELETE FROM ${data} WHERE id = ? AND kind = 1 AND k = ? AND ts <= ?`,
  };
}

/** A `ProjectionStore` in a Cassandra keyspace, shared by every process that opens the same keyspace. */
export class CassandraProjectionStore implements ProjectionStore {
  readonly kind = 'cassandra' as const;
  readonly historyRetentionMs: number;
  readonly limits: ProjectionLimits;

  readonly #options: ResolvedOptions;
  readonly #client: Client;
  readonly #ownsClient: boolean;
  readonly #cql: ReturnType<typeof statements>;
  /** Per projection, the tail of its write chain: every write waits for the one before. */
  readonly #chains = new Map<string, Promise<unknown>>();
  /** Calls under way, so that `close` waits for them before it shuts the client down. */
  readonly #inFlight = new Set<Promise<unknown>>();
  #opening: Promise<void> | undefined;
  #state: 'new' | 'open' | 'closed' = 'new';

  constructor(options: CassandraProjectionStoreOptions) {
    this.historyRetentionMs = validateRetention(options.historyRetentionMs);
    this.limits = resolveLimits(options.limits);
    this.#options = resolveOptions(options);
    this.#cql = statements(this.#options.keyspace);
    this.#ownsClient = options.client === undefined;
    this.#client =
      options.client ??
      new cassandra.Client({
        contactPoints: [...this.#options.contactPoints],
        localDataCenter: this.#options.localDataCenter,
        socketOptions: { connectTimeout: this.#options.connectTimeoutMs, readTimeout: this.#options.requestTimeoutMs },
        protocolOptions: { maxSchemaAgreementWaitSeconds: Math.ceil(this.#options.schemaAgreementTimeoutMs / 1000) },
        pooling: { maxRequestsPerConnection: this.#options.maxRequestsPerConnection },
        queryOptions: { consistency: this.#options.consistency, serialConsistency: this.#options.serialConsistency, prepare: true },
      });
  }

  /** The driver client, for tests and for sharing with other stores. */
  get client(): Client {
    return this.#client;
  }

  get keyspace(): string {
    return this.#options.keyspace;
  }

  /** Connects, creates the keyspace and tables when missing, and finishes drops that a crash interrupted. */
  async open(): Promise<void> {
    if (this.#state === 'open') return;
    if (this.#state === 'closed') throw this.#closedError();
    this.#opening ??= this.#open().finally(() => {
      this.#opening = undefined;
    });
    return this.#opening;
  }

  async #open(): Promise<void> {
    const where = this.#ownsClient ? this.#options.contactPoints.join(',') : 'the shared client';
    try {
      await this.#client.connect();
    } catch (err) {
      if (this.#ownsClient) await closeFailedConnection(this.#client);
      // A node answered but the options do not fit the cluster (the data centre name, for one): not worth retrying.
      const misconfigured = innerErrors(err).some(([, e]) => e instanceof cassandra.errors.ArgumentError);
      throw new MillraceError(
        misconfigured ? 'MILLRACE_CONFIG_INVALID' : 'MILLRACE_LOG_UNAVAILABLE',
        `could not reach Cassandra at ${where} (data centre ${this.#options.localDataCenter}): ${driverMessage(err)}; ` +
          'check that the nodes run, that the contact points and the data centre name are right',
        { cause: err, retriable: !misconfigured, details: { contactPoints: this.#options.contactPoints, localDataCenter: this.#options.localDataCenter } },
      );
    }
    try {
      const { keyspace, localDataCenter, replicationFactor } = this.#options;
      await this.#ddl(
        `CREATE KEYSPACE IF NOT EXISTS "${keyspace}" WITH replication = ` +
          `{'class': 'NetworkTopologyStrategy', '${localDataCenter.replaceAll("'", "''")}': ${replicationFactor}}`,
      );
      for (const table of this.#cql.schema) await this.#ddl(table);
      if (this.#state === 'closed') throw this.#closedError(); // closed while it was opening
      this.#state = 'open';
      await this.#finishDrops();
    } catch (err) {
      // The client stays connected, so that `open` can be tried again; `close` shuts it down.
      if (this.#state === 'open') this.#state = 'new';
      const doing = `could not create the projection tables in Cassandra keyspace ${this.#options.keyspace}`;
      if (err instanceof MillraceError || isUnavailable(err)) throw this.#mapError(err, doing);
      throw new MillraceError(
        'MILLRACE_CONFIG_INVALID',
        `${doing}: ${driverMessage(err)}; check localDataCenter, replicationFactor and the permissions of the client's user`,
        { cause: err },
      );
    }
  }

  /** Schema changes are awaited until every node agrees, so that the statements after them work on any node. */
  async #ddl(query: string): Promise<void> {
    const result = await this.#client.execute(query, [], { consistency: this.#options.consistency });
    const agreed = (result.info as { isSchemaInAgreement?: boolean }).isSchemaInAgreement;
    // The driver already waited (maxSchemaAgreementWaitSeconds); one more check, then it is an error.
    const metadata = this.#client.metadata as unknown as { checkSchemaAgreement(): Promise<boolean> }; // missing from its typings
    if (agreed === false && !(await metadata.checkSchemaAgreement())) {
      throw new MillraceError(
        'MILLRACE_LOG_UNAVAILABLE',
        `the Cassandra nodes did not agree on the schema within ${this.#options.schemaAgreementTimeoutMs} ms after: ${query.slice(0, 80)}…`,
        { retriable: true },
      );
    }
  }

  async close(): Promise<void> {
    this.#state = 'closed';
    await this.#opening?.catch(() => undefined);
    await Promise.allSettled([...this.#inFlight]);
    // A no-op for a client that never connected.
    if (this.#ownsClient) await this.#client.shutdown();
  }

  // ---------------------------------------------------------------- writes

  async apply(projection: ProjectionId, batch: ProjectionBatch): Promise<ApplyResult> {
    this.#checkOpen();
    validateProjectionId(projection);
    const normalized = normalizeBatch(batch, this.limits);
    return this.#track(`apply to ${describe(projection)}`, () => this.#serial(projection, () => this.#apply(projection, normalized)));
  }

  async #apply(projection: ProjectionId, batch: NormalizedBatch): Promise<ApplyResult> {
    const { sources } = batch;
    const position = batch.source.nextOffset; // of the first source, as an applied batch answers
    for (let round = 0; ; round++) {
      await this.#beforeRound(round, `apply to ${describe(projection)}`);
      const id = await this.#lookup(projection);
      if (id === undefined) {
        if (sources.some((source) => source.nextOffset <= 0)) return { status: 'skipped', position: 0 as Offset };
        if (await this.#create(projection, batch)) return { status: 'applied', position, expiredOps: 0 };
        continue; // another process created it first: apply to theirs
      }
      const read = await this.#readHeadAndPositions(id, sources);
      if (read === undefined) continue; // dropped since the lookup
      const { streamTimeBeforeMs, current } = read;
      // Every source must be beyond its stored position, or nothing is written.
      const behind = current.findIndex((stored, i) => sources[i]!.nextOffset <= (stored?.nextOffset ?? 0));
      if (behind >= 0) return { status: 'skipped', position: (current[behind]?.nextOffset ?? 0) as Offset };

      const writeId = TimeUuid.now();
      const queries: Statement[] = [
        { query: this.#cql.advanceHead, params: [Math.max(streamTimeBeforeMs, batch.maxTimestampMs), writeId, id, streamTimeBeforeMs] },
      ];
      sources.forEach(({ topic, partition, nextOffset }, i) => {
        const stored = current[i];
        const maxTimestampMs = Math.max(stored?.maxTimestampMs ?? -1, batch.maxTimestampMs);
        queries.push(stored === undefined
          ? { query: this.#cql.insertPosition, params: [id, topic, partition, nextOffset, maxTimestampMs] }
          : { query: this.#cql.advancePosition, params: [nextOffset, maxTimestampMs, id, topic, partition, stored.nextOffset] });
      });
      let expiredOps = 0;
      for (const op of batch.ops) {
        if (isExpired(op.timestampMs, streamTimeBeforeMs, this.historyRetentionMs)) expiredOps++;
        else queries.push({ query: this.#cql.writeVersion, params: [id, op.key, op.timestampMs, op.json ?? TOMBSTONE] });
      }
      const outcome = await this.#cas(queries, () => this.#headWrittenBy(id, writeId));
      if (outcome.applied) return { status: 'applied', position, expiredOps };
      // Lost to another writer. When it got a source to or past our offset, ours is a replay: skip it. (The failed
      // batch answers with the conditioned rows as they are now.)
      for (const { topic, partition, nextOffset } of sources) {
        const theirs = outcome.rows?.find((row) => row.get('k') === topic && num(row.get('ts')) === partition);
        const theirOffset = theirs?.get('next_offset') == null ? undefined : num(theirs.get('next_offset'));
        if (theirOffset !== undefined && theirOffset >= nextOffset) return { status: 'skipped', position: theirOffset as Offset };
      }
    }
  }

  /**
   * The head (stream time) and the stored position of each source (undefined: none yet), or undefined when the
   * partition is gone. One source, the usual case, reads just its row; several read every position of the projection
   * (one slice, and as many rows as it has source partitions) rather than an IN list as long as the batch's.
   */
  async #readHeadAndPositions(
    id: Uuid,
    sources: NormalizedBatch['sources'],
  ): Promise<{ streamTimeBeforeMs: number; current: Array<{ nextOffset: number; maxTimestampMs: number } | undefined> } | undefined> {
    const only = sources.length === 1 ? sources[0]! : undefined;
    const rows = only === undefined
      ? await this.#read(this.#cql.readPositions, [id])
      : await this.#read(this.#cql.readHeadAndPosition, [id, only.topic, only.partition]);
    const head = rows.find((row) => row.get('k') === HEAD_KEY);
    if (head === undefined) return undefined;
    const current = sources.map(({ topic, partition }) => {
      const row = rows.find((r) => r.get('k') === topic && num(r.get('ts')) === partition);
      return row === undefined ? undefined : { nextOffset: num(row.get('next_offset')), maxTimestampMs: num(row.get('max_ts')) };
    });
    return { streamTimeBeforeMs: num(head.get('max_ts')), current };
  }

  /**
   * Creates the projection with its first batch: the data in a fresh partition first, then the registry row that
   * makes it visible. False when another process registered the name first (our partition is then removed).
   */
  async #create(projection: ProjectionId, batch: NormalizedBatch): Promise<boolean> {
    const id = TimeUuid.now();
    const writeId = TimeUuid.now();
    const queries: Statement[] = [
      { query: this.#cql.createHead, params: [id, batch.maxTimestampMs, writeId] },
      ...batch.sources.map(({ topic, partition, nextOffset }) => ({
        query: this.#cql.writeFirstPosition,
        params: [id, topic, partition, nextOffset, batch.maxTimestampMs],
      })),
      ...batch.ops.map((op) => ({ query: this.#cql.writeVersion, params: [id, op.key, op.timestampMs, op.json ?? TOMBSTONE] })),
    ];
    // The partition is new, so the condition fails only when a timed-out write turns out not to have happened.
    const data = await this.#cas(queries, () => this.#headWrittenBy(id, writeId));
    if (!data.applied) return false;
    const registered = await this.#cas(
      [{ query: this.#cql.register, params: [projection.name, projection.namespace, id] }],
      async () => sameUuid(await this.#lookup(projection, this.#options.serialConsistency), id),
    );
    if (registered.applied) return true;
    await this.#execute(this.#cql.dropData, [id]);
    return false;
  }

  async prune(projection: ProjectionId): Promise<PruneResult> {
    this.#checkOpen();
    validateProjectionId(projection);
    return this.#track(`prune ${describe(projection)}`, async () => {
      let versionsRemoved = 0;
      let after: string | undefined;
      // In chunks, each in the write chain, with the applies of this store let through between them.
      for (;;) {
        const chunk = await this.#serial(projection, () => this.#pruneChunk(projection, after));
        versionsRemoved += chunk.removed;
        if (chunk.lastKey === undefined) return { versionsRemoved };
        after = chunk.lastKey;
      }
    });
  }

  /**
   * Prunes whole keys from just after `after` until about `maxScanEntries` versions were read. Every delete is
   * conditional on the head's `write_id` as read before the versions: a batch applied meanwhile (by another process)
   * fails the condition, and the chunk is read again.
   */
  async #pruneChunk(projection: ProjectionId, after: string | undefined): Promise<{ removed: number; lastKey: string | undefined }> {
    let removedBefore = 0; // by earlier rounds of this chunk, which lost a later batch to another writer
    for (let round = 0; ; round++) {
      await this.#beforeRound(round, `prune ${describe(projection)}`);
      const id = await this.#lookup(projection);
      if (id === undefined) return { removed: removedBefore, lastKey: undefined };
      const head = await this.#readHead(id);
      if (head === undefined) return { removed: removedBefore, lastKey: undefined };
      const boundary = historyBoundaryMs(head.streamTimeMs, this.historyRetentionMs);
      if (boundary === -Infinity) return { removed: removedBefore, lastKey: undefined };

      const deletes: Array<{ key: string; through: boolean; timestampMs: number; versions: number }> = [];
      let lastKey: string | undefined;
      type Group = { key: string; times: number[]; atBoundary: { index: number; tombstone: boolean } | undefined };
      let group: Group | undefined;
      const finish = ({ key, times, atBoundary }: Group): void => {
        // Keep the version valid at the boundary (and all after it); a tombstone there answers as nothing does.
        if (atBoundary === undefined) return;
        const versions = times.length - atBoundary.index - (atBoundary.tombstone ? 0 : 1);
        if (versions > 0) deletes.push({ key, through: atBoundary.tombstone, timestampMs: times[atBoundary.index]!, versions });
      };
      let examined = 0;
      let complete = true;
      for await (const row of this.#scanRows(id, '', after, 0)) {
        const key = row.get('k') as string;
        if (group !== undefined && key !== group.key) {
          finish(group);
          if (examined >= this.limits.maxScanEntries) {
            lastKey = group.key;
            complete = false;
            break;
          }
          group = undefined;
        }
        group ??= { key, times: [], atBoundary: undefined };
        const timestampMs = num(row.get('ts'));
        // Newest first: the first version at or before the boundary is the one valid there.
        if (group.atBoundary === undefined && timestampMs <= boundary) {
          group.atBoundary = { index: group.times.length, tombstone: row.get('value') === TOMBSTONE };
        }
        group.times.push(timestampMs);
        examined++;
      }
      if (complete && group !== undefined) finish(group);

      let removed = 0;
      let conflict = false;
      let writeId = head.writeId;
      for (let i = 0; i < deletes.length && !conflict; i += this.limits.maxOpsPerBatch) {
        const part = deletes.slice(i, i + this.limits.maxOpsPerBatch);
        const nextWriteId = TimeUuid.now();
        const queries: Statement[] = [
          { query: this.#cql.touchHead, params: [nextWriteId, id, writeId] },
          ...part.map((d) => ({ query: d.through ? this.#cql.pruneThrough : this.#cql.pruneBefore, params: [id, d.key, d.timestampMs] })),
        ];
        const outcome = await this.#cas(queries, () => this.#headWrittenBy(id, nextWriteId));
        if (outcome.applied) {
          removed += part.reduce((sum, d) => sum + d.versions, 0);
          writeId = nextWriteId;
        } else {
          conflict = true;
        }
      }
      removedBefore += removed;
      if (!conflict) return { removed: removedBefore, lastKey: complete ? undefined : lastKey };
      // What was removed stays removed; the chunk is read again against the new head.
    }
  }

  async drop(projection: ProjectionId): Promise<void> {
    this.#checkOpen();
    validateProjectionId(projection);
    return this.#track(`drop ${describe(projection)}`, () =>
      this.#serial(projection, async () => {
        for (let round = 0; ; round++) {
          await this.#beforeRound(round, `drop ${describe(projection)}`);
          const id = await this.#lookup(projection);
          if (id === undefined) return;
          // Recorded first, so that a crash after the registry row is gone leaves a trace for `open` to finish.
          await this.#execute(this.#cql.recordDrop, [id, projection.name, projection.namespace]);
          const outcome = await this.#cas(
            [{ query: this.#cql.unregister, params: [projection.name, projection.namespace, id] }],
            async () => !sameUuid(await this.#lookup(projection, this.#options.serialConsistency), id),
          );
          // Not applied, with the row naming another id or none: another process dropped this id. Either way it is
          // unreachable now (ids are never reused), and only its bytes are left. (No rows: a timed-out delete that
          // did not happen, so the id is still registered; try again.)
          if (outcome.applied || (outcome.rows !== undefined && !sameUuid(outcome.rows[0]?.get('id'), id))) {
            await this.#clearDropped(id, projection.name);
            return;
          }
        }
      }),
    );
  }

  /** The id is unreachable already: this clears its active pointer (if still there) and reclaims its space. */
  async #clearDropped(id: Uuid, name: string): Promise<void> {
    await this.#cas([{ query: this.#cql.clearActive, params: [name, id] }], async () => {
      const row = (await this.#read(this.#cql.readActive, [name], this.#options.serialConsistency))[0];
      return !sameUuid(row?.get('id'), id);
    });
    await this.#execute(this.#cql.dropData, [id]);
    await this.#execute(this.#cql.forgetDrop, [id]);
  }

  /** Drops recorded but not finished (a crash, a failed request): finished when their id is no longer registered. */
  async #finishDrops(): Promise<void> {
    const drops = await this.#readAll(this.#cql.listDrops, []);
    if (drops.length === 0) return;
    const live = (await this.#readAll(this.#cql.listProjections, [])).map((row) => row.get('id') as Uuid);
    for (const drop of drops) {
      const id = drop.get('id') as Uuid;
      if (live.some((other) => other.equals(id))) continue; // a drop that failed before its commit point
      await this.#clearDropped(id, drop.get('name') as string);
    }
  }

  async activate(projection: ProjectionId): Promise<void> {
    this.#checkOpen();
    validateProjectionId(projection);
    return this.#track(`activate ${describe(projection)}`, () =>
      this.#serial(projection, async () => {
        const id = await this.#lookup(projection);
        if (id === undefined) {
          throw new MillraceError(
            ProjectionErrorCodes.unknownProjection,
            `projection ${projection.name}/${projection.namespace} does not exist: apply to it before activating it`,
            { details: { name: projection.name, namespace: projection.namespace } },
          );
        }
        // The pointer names the projection's id, not only its namespace, so that it can never point at a later
        // projection of the same name that a drop and re-creation made.
        const readCurrent = async (consistency?: Consistency): Promise<Uuid | null> =>
          ((await this.#read(this.#cql.readActive, [projection.name], consistency))[0]?.get('id') as Uuid | null | undefined) ?? null;
        let current = await readCurrent();
        for (let round = 0; ; round++) {
          await this.#beforeRound(round, `activate ${describe(projection)}`);
          // `IF id = null` holds for a missing row too.
          const outcome = await this.#cas(
            [{ query: this.#cql.setActive, params: [projection.namespace, id, projection.name, current] }],
            async () => sameUuid(await readCurrent(this.#options.serialConsistency), id),
          );
          if (outcome.applied) return;
          current = outcome.rows === undefined ? await readCurrent() : ((outcome.rows[0]?.get('id') as Uuid | null | undefined) ?? null);
        }
      }),
    );
  }

  // ---------------------------------------------------------------- reads

  async active(name: string): Promise<string | undefined> {
    this.#checkOpen();
    validateName(name);
    return this.#track(`read the active namespace of ${name}`, async () => {
      const row = (await this.#read(this.#cql.readActive, [name]))[0];
      if (row === undefined) return undefined;
      const namespace = row.get('namespace') as string;
      // A pointer to a dropped projection (its drop interrupted, or racing an activate) answers nothing.
      const id = await this.#lookup({ name, namespace });
      return id !== undefined && sameUuid(row.get('id'), id) ? namespace : undefined;
    });
  }

  async list(): Promise<ProjectionInfo[]> {
    this.#checkOpen();
    return this.#track('list projections', async () => {
      const [projections, actives] = await Promise.all([this.#readAll(this.#cql.listProjections, []), this.#readAll(this.#cql.listActive, [])]);
      const activeIds = new Map(actives.map((row) => [row.get('name') as string, row.get('id') as Uuid]));
      return projections
        .map((row) => {
          const name = row.get('name') as string;
          const activeId = activeIds.get(name);
          return { name, namespace: row.get('namespace') as string, active: activeId !== undefined && sameUuid(row.get('id'), activeId) };
        })
        .sort((a, b) => compare(a.name, b.name) || compare(a.namespace, b.namespace));
    });
  }

  async positions(projection: ProjectionId): Promise<ProjectionPosition[]> {
    this.#checkOpen();
    validateProjectionId(projection);
    return this.#track(`read the positions of ${describe(projection)}`, async () => {
      const id = await this.#lookup(projection);
      if (id === undefined) return [];
      return (await this.#readAll(this.#cql.readPositions, [id]))
        .filter((row) => row.get('k') !== HEAD_KEY)
        .map((row) => ({
          topic: row.get('k') as string,
          partition: num(row.get('ts')),
          nextOffset: num(row.get('next_offset')) as Offset,
          maxTimestampMs: num(row.get('max_ts')),
        }))
        .sort((a, b) => compareBytes(a.topic, b.topic) || a.partition - b.partition);
    });
  }

  async get(projection: ProjectionId, key: string, options?: ReadOptions): Promise<GetResult> {
    this.#checkOpen();
    validateProjectionId(projection);
    validateKey(key, this.limits);
    validateReadOptions(options);
    return this.#track(`read ${describe(projection)}`, async () => {
      const id = await this.#lookup(projection);
      if (id === undefined) return { status: 'absent' };
      const asOfMs = options?.asOfMs;
      const [notRetained, rows] = await Promise.all([
        this.#notRetained(id, asOfMs),
        this.#read(this.#cql.readVersion, [id, key, asOfMs ?? Number.MAX_SAFE_INTEGER]),
      ]);
      if (notRetained !== undefined) return notRetained;
      const row = rows[0];
      const value = row?.get('value') as string | undefined;
      if (row === undefined || value === undefined || value === null || value === TOMBSTONE) return { status: 'absent' };
      return { status: 'found', value: JSON.parse(value) as JsonValue, timestampMs: num(row.get('ts')) };
    });
  }

  async scan(projection: ProjectionId, options: ScanOptions): Promise<ScanResult> {
    this.#checkOpen();
    validateProjectionId(projection);
    const { prefix, after } = validateScan(options, this.limits);
    return this.#track(`scan ${describe(projection)}`, async () => {
      const id = await this.#lookup(projection);
      if (id === undefined) return { status: 'ok', items: [] };
      const asOfMs = options.asOfMs;
      const notRetained = await this.#notRetained(id, asOfMs);
      if (notRetained !== undefined) return notRetained;

      const items: ProjectionItem[] = [];
      let resumeAfter: string | undefined; // the last key dealt with: returned, or found absent
      let current: { key: string; best: { timestampMs: number; value: string } | undefined } | undefined;
      let examined = 0;
      /** Settles `current`; false when it is an item beyond the page (so the page is full and more follow). */
      const settle = (): boolean => {
        const { key, best } = current!;
        if (best !== undefined && best.value !== TOMBSTONE) {
          if (items.length === options.limit) return false;
          items.push({ key, value: JSON.parse(best.value) as JsonValue, timestampMs: best.timestampMs });
        }
        resumeAfter = key;
        return true;
      };
      const page = (more: boolean): ScanResult => (more && resumeAfter !== undefined
        ? { status: 'ok', items, nextCursor: encodeCursor(resumeAfter, prefix) }
        : { status: 'ok', items });
      for await (const row of this.#scanRows(id, prefix, after, options.limit)) {
        const key = row.get('k') as string;
        if (current !== undefined && key !== current.key) {
          if (!settle()) return page(true);
          current = undefined;
          // Stop between keys, having settled one at least, so a long run of tombstones still makes progress.
          if (examined >= this.limits.maxScanEntries) return page(true);
        }
        current ??= { key, best: undefined };
        examined++;
        // Versions come newest first: the first one not after asOfMs answers.
        const timestampMs = num(row.get('ts'));
        if (current.best === undefined && (asOfMs === undefined || timestampMs <= asOfMs)) {
          current.best = { timestampMs, value: (row.get('value') as string | null) ?? TOMBSTONE };
        }
      }
      if (current !== undefined && !settle()) return page(true);
      return page(false);
    });
  }

  /**
   * The version rows from the first key after `after` with `prefix`, in key order, fetched a page of the driver at
   * a time. Paged by key, not by the driver's page state, so a scan cursor means the same on every store.
   */
  async *#scanRows(id: Uuid, prefix: string, after: string | undefined, limit: number): AsyncGenerator<Row> {
    // `after` + U+0000 is the least string after `after` (keys never hold U+0000): "k > after" as a lower bound.
    const afterCursor = after === undefined ? undefined : `${after}\u0000`;
    const from = afterCursor !== undefined && compareBytes(afterCursor, prefix) > 0 ? afterCursor : prefix;
    const to = prefixEnd(prefix);
    const [query, params] = to === undefined ? [this.#cql.scanFrom, [id, from]] : [this.#cql.scanRange, [id, from, to]];
    let fetchSize = Math.min(MAX_FETCH_ROWS, Math.max(MIN_FETCH_ROWS, 2 * (limit + 1)));
    let pageState: string | undefined;
    do {
      const result = await this.#execute(query, params, { fetchSize, pageState, isIdempotent: true });
      yield* result.rows;
      pageState = result.pageState ?? undefined;
      fetchSize = Math.min(MAX_FETCH_ROWS, fetchSize * 4);
    } while (pageState);
  }

  // ---------------------------------------------------------------- helpers

  async #notRetained(id: Uuid, asOfMs: number | undefined): Promise<NotRetained | undefined> {
    if (asOfMs === undefined) return undefined;
    const head = await this.#readHead(id);
    if (head === undefined) return undefined; // dropped meanwhile: the read answers as of nothing
    const retainedFromMs = historyBoundaryMs(head.streamTimeMs, this.historyRetentionMs);
    return asOfMs < retainedFromMs ? { status: 'not-retained', retainedFromMs } : undefined;
  }

  async #lookup(projection: ProjectionId, consistency?: Consistency): Promise<Uuid | undefined> {
    const rows = await this.#read(this.#cql.lookup, [projection.name, projection.namespace], consistency);
    return (rows[0]?.get('id') as Uuid | undefined) ?? undefined;
  }

  async #readHead(id: Uuid, consistency?: Consistency): Promise<Head | undefined> {
    const row = (await this.#read(this.#cql.readHead, [id], consistency))[0];
    return row === undefined ? undefined : { streamTimeMs: num(row.get('max_ts')), writeId: row.get('write_id') as Uuid };
  }

  /** Settles a conditional write of unknown outcome: the SERIAL read finishes a Paxos round left in flight. */
  async #headWrittenBy(id: Uuid, writeId: Uuid): Promise<boolean> {
    const head = await this.#readHead(id, this.#options.serialConsistency);
    return head !== undefined && head.writeId.equals(writeId);
  }

  /**
   * A conditional batch (all in one partition). On a timeout or a lost connection the write may or may not have
   * happened, so `wasApplied` is asked (it reads at SERIAL); when that fails too, the call fails, retriable: the
   * caller's retry is safe, as every write here is guarded by its condition. `rows` (the current values of the
   * conditioned rows, when not applied) is undefined when the outcome was settled by reading.
   */
  async #cas(queries: Statement[], wasApplied: () => Promise<boolean>): Promise<{ applied: boolean; rows: Row[] | undefined }> {
    let result: ResultSet;
    const options = { prepare: true, consistency: this.#options.consistency, serialConsistency: this.#options.serialConsistency, isIdempotent: false };
    try {
      result = queries.length === 1
        ? await this.#client.execute(queries[0]!.query, queries[0]!.params, options)
        : await this.#client.batch(queries.map((q) => ({ query: q.query, params: q.params })), { ...options, logged: true });
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      return { applied: await wasApplied(), rows: undefined };
    }
    return { applied: result.wasApplied(), rows: result.rows ?? [] };
  }

  async #execute(query: string, params: unknown[], options: cassandra.QueryOptions = {}): Promise<ResultSet> {
    return this.#client.execute(query, params, { prepare: true, consistency: this.#options.consistency, ...options });
  }

  async #read(query: string, params: unknown[], consistency?: Consistency): Promise<Row[]> {
    const result = await this.#execute(query, params, { isIdempotent: true, ...(consistency === undefined ? {} : { consistency }) });
    return result.rows;
  }

  /** Every row of a query, paging through the driver: for the small partitions of the registry and positions. */
  async #readAll(query: string, params: unknown[]): Promise<Row[]> {
    const rows: Row[] = [];
    for await (const row of await this.#execute(query, params, { isIdempotent: true, fetchSize: MAX_FETCH_ROWS })) rows.push(row);
    return rows;
  }

  async #beforeRound(round: number, doing: string): Promise<void> {
    if (round === 0) return;
    if (round > this.#options.maxConflictRetries) {
      throw new MillraceError(
        'MILLRACE_LOG_WRITE_FAILED',
        `${doing}: lost ${this.#options.maxConflictRetries} conditional writes in a row to other writers of the projection; ` +
          'retry, or check that one consumer (task) writes each projection partition',
        { retriable: true },
      );
    }
    this.#checkOpen();
    await sleep(CONFLICT_BACKOFF_MS * round * (0.5 + Math.random()));
  }

  /** Runs a call, counted for `close`, with driver failures mapped to Millrace errors. */
  async #track<T>(doing: string, work: () => Promise<T>): Promise<T> {
    const run = work().catch((err: unknown) => {
      throw this.#mapError(err, doing);
    });
    this.#inFlight.add(run);
    const forget = (): void => {
      this.#inFlight.delete(run);
    };
    run.then(forget, forget);
    return run;
  }

  #mapError(err: unknown, doing: string): unknown {
    if (err instanceof MillraceError || !isUnavailable(err)) return err;
    return new MillraceError('MILLRACE_LOG_UNAVAILABLE', `${doing}: Cassandra did not answer: ${driverMessage(err)}`, { cause: err, retriable: true });
  }

  #serial<T>(projection: ProjectionId, work: () => Promise<T>): Promise<T> {
    const key = refKey(projection);
    const run = (this.#chains.get(key) ?? Promise.resolve()).then(() => {
      this.#checkOpen();
      return work();
    });
    const tail = run.then(() => undefined, () => undefined);
    this.#chains.set(key, tail);
    // The map holds only chains with work queued, so it stays as small as the projections being written.
    void tail.then(() => {
      if (this.#chains.get(key) === tail) this.#chains.delete(key);
    });
    return run;
  }

  #checkOpen(): void {
    if (this.#state === 'open') return;
    if (this.#state === 'closed') throw this.#closedError();
    throw new MillraceError('MILLRACE_LOG_NOT_OPEN', `the projection store in Cassandra keyspace ${this.#options.keyspace} is not open`);
  }

  #closedError(): MillraceError {
    return new MillraceError(ProjectionErrorCodes.closed, `the projection store in Cassandra keyspace ${this.#options.keyspace} is closed`);
  }
}

function describe(projection: ProjectionId): string {
  return `projection ${projection.name}/${projection.namespace}`;
}

function resolveOptions(options: CassandraProjectionStoreOptions): ResolvedOptions {
  const positive = (name: string, value: number | undefined, fallback: number): number => {
    const resolved = value ?? fallback;
    if (!Number.isSafeInteger(resolved) || resolved < 1) throw new RangeError(`${name} must be a positive integer, got ${resolved}`);
    return resolved;
  };
  if (!KEYSPACE_PATTERN.test(options.keyspace)) {
    throw new RangeError(`keyspace must be 1 to 48 letters, digits or underscores, got ${JSON.stringify(options.keyspace)}`);
  }
  if (options.client === undefined && (!Array.isArray(options.contactPoints) || options.contactPoints.length === 0)) {
    throw new RangeError('contactPoints must name at least one node ("host:port") when no client is given');
  }
  const serialConsistency = options.serialConsistency ?? DEFAULTS.serialConsistency;
  if (serialConsistency !== consistencies.serial && serialConsistency !== consistencies.localSerial) {
    throw new RangeError(`serialConsistency must be SERIAL or LOCAL_SERIAL, got ${serialConsistency}`);
  }
  return Object.freeze({
    contactPoints: Object.freeze([...options.contactPoints]),
    localDataCenter: options.localDataCenter ?? DEFAULTS.localDataCenter,
    keyspace: options.keyspace,
    replicationFactor: positive('replicationFactor', options.replicationFactor, DEFAULTS.replicationFactor),
    consistency: options.consistency ?? DEFAULTS.consistency,
    serialConsistency,
    connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs, DEFAULTS.connectTimeoutMs),
    requestTimeoutMs: positive('requestTimeoutMs', options.requestTimeoutMs, DEFAULTS.requestTimeoutMs),
    schemaAgreementTimeoutMs: positive('schemaAgreementTimeoutMs', options.schemaAgreementTimeoutMs, DEFAULTS.schemaAgreementTimeoutMs),
    maxConflictRetries: positive('maxConflictRetries', options.maxConflictRetries, DEFAULTS.maxConflictRetries),
    maxRequestsPerConnection: positive('maxRequestsPerConnection', options.maxRequestsPerConnection, DEFAULTS.maxRequestsPerConnection),
  });
}
