import { randomBytes } from 'node:crypto';
import { MillraceError, errorMessage, problemFromError } from '../errors.js';
import type { Logger } from '../logger.js';
import { offset, type Log, type LogRecord, type Offset } from '../log/log.js';
import type { HandledEvent, StoredValue } from './apply.js';
import { consumes, type ProjectionDefinition } from './projection.js';
import { ProjectionRunner, type PartitionProgress, type TopicPartitionRange } from './runner.js';
import { showBytes, TopologySandbox } from './topology-sandbox.js';
import type { Topology } from '../topology/topology.js';
import type { JsonValue, ProjectionId, ProjectionOp, ProjectionStore } from './store.js';

/**
 * Time travel: a slice of a projection's history run again into a sandbox namespace of the same store, optionally
 * with other handler code, recorded step by step, and compared with live key by key. Live processing goes on: the
 * replay is one more runner, bounded to its range, sharing the event loop (it yields between batches).
 *
 * - **The slice.** Per source partition, from `from` (an offset, or the first record at or after an ISO time) to
 *   `to` (an offset, inclusive, or every record up to an ISO time, inclusive), and never past the end the partition
 *   had when the replay started. Without `from`, from the start of the log; without `to`, to that end.
 * - **The sandbox's starting state.** A slice from the start of the log starts empty. A slice from later starts from
 *   the live read model as it stood just before the slice (an `asOf` read, done lazily, key by key, when a handler
 *   first reads a key), so that the sandbox differs from live only by what the slice did differently. That moment
 *   must still be within the retained history.
 * - **Steps.** For each record: the event, each changed key's value before and after, the changes written, or the
 *   error that would have dead-lettered it. Kept in the store (`<projection>` / `replay-<id>.steps`), paged by cursor;
 *   the first `maxSteps` are kept, the rest counted.
 * - **Diff.** Every key the sandbox changed, sandbox value against live's value as of the slice's last moment (the
 *   `to` time, or the latest event time replayed): only those keys can differ, since the sandbox started from live.
 */

export interface ReplayRequest {
  /** The projection to replay; or `topology`, a topology's application id. Exactly one of the two. */
  readonly projection?: string;
  readonly topology?: string;
  /** An offset (every partition) or an ISO 8601 time. */
  readonly from?: string | number;
  /** An offset (inclusive, every partition) or an ISO 8601 time (inclusive). */
  readonly to?: string | number;
  /** A module (path on the engine's machine) exporting the code to replay with (a projection, or a topology). */
  readonly code?: string;
}

export interface ReplayLimits {
  /** Replays running at once. */
  readonly maxRunning: number;
  /** Finished replays kept (with their sandbox, steps and diff); the oldest go first. */
  readonly maxRetained: number;
  /** Steps recorded per replay; records beyond are replayed but not recorded. */
  readonly maxSteps: number;
  /** Distinct keys a replay may change (they are the diff's scope, held in memory while it runs). */
  readonly maxKeys: number;
}

export const DEFAULT_REPLAY_LIMITS: ReplayLimits = Object.freeze({ maxRunning: 2, maxRetained: 20, maxSteps: 100_000, maxKeys: 1_000_000 });

export type ReplayState = 'running' | 'finished' | 'failed' | 'stopped' | 'interrupted';

export interface ReplayView {
  readonly id: string;
  readonly kind: 'projection' | 'topology';
  /** The projection's name, or the topology's application id. */
  readonly projection: string;
  /** The sandbox namespace in the projection store. */
  readonly namespace: string;
  readonly state: ReplayState;
  readonly request: ReplayRequest;
  readonly createdAt: string;
  readonly finishedAt?: string;
  readonly partitions: ReadonlyArray<{ topic: string; partition: number; from: number; to: number; position: number }>;
  /** The sandbox started from live as of this time (ms), or null when the slice starts at the log's start. */
  readonly seededAsOfMs: number | null;
  /** Live is read as of this time for the diff; null until a record was replayed. */
  readonly diffAsOfMs: number | null;
  readonly progress: { readonly records: number; readonly total: number; readonly applied: number; readonly errors: number; readonly percent: number };
  readonly steps: number;
  readonly stepsTruncated: boolean;
  readonly keysChanged: number;
  readonly error?: string;
}

export interface ReplayStep {
  readonly seq: number;
  readonly event: { topic: string; partition: number; offset: number; timestamp: string; key: string | null; value: JsonValue | null };
  /** Each changed key's value before and after the event (null: absent); for a topology, `<store>/<key>`. */
  readonly before: Record<string, JsonValue | null>;
  readonly after: Record<string, JsonValue | null>;
  /** A projection's changes, or the records a topology produced. */
  readonly outputs: ReadonlyArray<{ type: 'put' | 'del'; key: string; value?: JsonValue; timestamp: string } | { topic: string; key: JsonValue | null; value: JsonValue | null; timestamp: string }>;
  /** The problem that would have dead-lettered the record. */
  readonly error?: JsonValue;
}

export interface DiffEntry {
  readonly key: string;
  readonly change: 'added' | 'removed' | 'changed';
  readonly sandbox: JsonValue | null;
  readonly live: JsonValue | null;
}

export interface ReplayServiceOptions {
  readonly log: Log;
  readonly store: ProjectionStore;
  readonly logger: Logger;
  readonly definition: (name: string) => ProjectionDefinition | undefined;
  readonly liveNamespace: (name: string) => string | undefined;
  readonly livePositions: (name: string) => readonly PartitionProgress[];
  readonly loadCode?: (path: string) => Promise<ProjectionDefinition[]>;
  /** A running topology by application id. */
  readonly topology?: (applicationId: string) => Topology | undefined;
  /** Loads a topology module (a path on the engine's machine). */
  readonly loadTopologyCode?: (path: string) => Promise<Topology>;
  readonly limits?: Partial<ReplayLimits>;
  /** Records of a topology's output topics read to compare them with the sandbox's. */
  readonly maxLiveOutputRecords?: number;
}

const META: ProjectionId = { name: '_replays', namespace: 'meta' };
const STEP_KEY_DIGITS = 12;
const STEP_FLUSH_COUNT = 256;
const STEP_FLUSH_BYTES = 1024 * 1024;

/** What a replay runs: a projection's runner, or a topology's sandbox. */
interface SandboxRun {
  start(): Promise<void> | void;
  done(): Promise<void>;
  stop(): Promise<void>;
  status(): { partitions: readonly PartitionProgress[] };
  readonly state: string;
}

interface Replay {
  view: ReplayView;
  runner?: SandboxRun;
  touched: Set<string>;
  done?: Promise<void>;
}

/** Writes documents (replay metadata, steps) to a projection of their own: each write advances a private counter. */
class DocWriter {
  readonly #store: ProjectionStore;
  readonly #id: ProjectionId;
  #next: number | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(store: ProjectionStore, id: ProjectionId) {
    this.#store = store;
    this.#id = id;
  }

  write(ops: readonly ProjectionOp[]): Promise<void> {
    const run = this.#queue.then(async () => {
      this.#next ??= ((await this.#store.positions(this.#id))[0]?.nextOffset ?? 0) + 1;
      await this.#store.apply(this.#id, { source: { topic: '_replays', partition: 0, nextOffset: offset(this.#next) }, ops });
      this.#next++;
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

function parseBound(value: string | number | undefined, name: string): Bound {
  if (value === undefined) return {};
  if (typeof value === 'number' || /^\d+$/.test(value)) {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0) throw new MillraceError('MILLRACE_REPLAY_INVALID', `${name} must be an offset (a non-negative integer) or an ISO 8601 time, got ${JSON.stringify(value)}`);
    return { offset: n };
  }
  const timeMs = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(timeMs)) {
    throw new MillraceError('MILLRACE_REPLAY_INVALID', `${name} must be an offset or an ISO 8601 time such as 2026-11-24T08:00:00Z, got ${JSON.stringify(value)}`);
  }
  return { timeMs };
}

/** JSON with object keys sorted: two equal values compare equal whatever order their keys were written in. */
function canonical(value: JsonValue | null | undefined): string {
  if (value === undefined) return 'undefined';
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

interface Bound {
  readonly offset?: number;
  readonly timeMs?: number;
}

interface Slice {
  readonly ranges: Map<string, TopicPartitionRange & { topic: string; partition: number }>;
  readonly partitions: Array<{ topic: string; partition: number; from: number; to: number; position: number }>;
  /** The sandbox starts from live as of this moment (the slice starts after the log's start), else null. */
  readonly seedAt: number | null;
}

/** Writes a replay's steps and the keys it changed (the diff's scope), in batches. */
class StepRecorder {
  readonly #steps: DocWriter;
  readonly #keys: DocWriter;
  readonly #touched: Set<string>;
  readonly #limits: ReplayLimits;
  readonly #maxValueBytes: number;
  readonly #flushOps: number;
  readonly #flushBytes: number;
  #stepOps: ProjectionOp[] = [];
  #keyOps: ProjectionOp[] = [];
  #bytes = 0;
  seq = 0;
  applied = 0;
  errors = 0;
  maxEventMs = -1;

  constructor(store: ProjectionStore, sandbox: ProjectionId, touched: Set<string>, limits: ReplayLimits) {
    this.#steps = new DocWriter(store, { name: sandbox.name, namespace: `${sandbox.namespace}.steps` });
    this.#keys = new DocWriter(store, { name: sandbox.name, namespace: `${sandbox.namespace}.keys` });
    this.#touched = touched;
    this.#limits = limits;
    this.#maxValueBytes = store.limits.maxValueBytes;
    this.#flushOps = Math.min(STEP_FLUSH_COUNT, store.limits.maxOpsPerBatch);
    this.#flushBytes = Math.min(STEP_FLUSH_BYTES, store.limits.maxBatchBytes / 2);
  }

  /** Records one record's step (its `seq` is assigned here) and the keys it changed. */
  async record(record: LogRecord, step: ReplayStep, changedKeys: readonly string[]): Promise<void> {
    this.maxEventMs = Math.max(this.maxEventMs, record.timestamp);
    if (step.error === undefined) this.applied++;
    else this.errors++;
    await this.touch(changedKeys, false);
    const seq = this.seq++;
    if (seq < this.#limits.maxSteps) {
      let json = JSON.stringify({ ...step, seq });
      if (Buffer.byteLength(json) > this.#maxValueBytes) {
        json = JSON.stringify({ seq, event: { ...step.event, value: null }, before: {}, after: {}, outputs: [], truncated: true });
      }
      this.#stepOps.push({ type: 'put', key: String(seq).padStart(STEP_KEY_DIGITS, '0'), value: JSON.parse(json) as JsonValue, timestampMs: 0 });
      this.#bytes += json.length;
    }
    if (this.#stepOps.length + this.#keyOps.length >= this.#flushOps || this.#bytes >= this.#flushBytes) await this.flush();
  }

  /** Adds keys to the diff's scope. */
  async touch(keys: readonly string[], flush = true): Promise<void> {
    for (const key of keys) {
      if (this.#touched.has(key)) continue;
      if (this.#touched.size >= this.#limits.maxKeys) {
        throw new MillraceError('MILLRACE_REPLAY_LIMIT', `the replay changed more than ${this.#limits.maxKeys} keys; replay a shorter slice`);
      }
      this.#touched.add(key);
      this.#keyOps.push({ type: 'put', key, value: 1, timestampMs: 0 });
      if (flush && this.#keyOps.length >= this.#flushOps) await this.flush();
    }
  }

  async flush(): Promise<void> {
    const [steps, keys] = [this.#stepOps, this.#keyOps];
    this.#stepOps = [];
    this.#keyOps = [];
    this.#bytes = 0;
    if (steps.length > 0) await this.#steps.write(steps);
    if (keys.length > 0) await this.#keys.write(keys);
  }
}

export class ReplayService {
  readonly limits: ReplayLimits;
  readonly #options: ReplayServiceOptions;
  readonly #store: ProjectionStore;
  readonly #replays = new Map<string, Replay>();
  readonly #meta: DocWriter;
  #stopping = false;

  constructor(options: ReplayServiceOptions) {
    this.#options = options;
    this.#store = options.store;
    this.limits = Object.freeze({ ...DEFAULT_REPLAY_LIMITS, ...options.limits });
    this.#meta = new DocWriter(options.store, META);
  }

  /** Loads the replays kept from before; those that were running when the engine stopped are `interrupted`. */
  async start(): Promise<void> {
    let cursor: string | undefined;
    do {
      const page = await this.#store.scan(META, { limit: 100, ...(cursor === undefined ? {} : { cursor }) });
      if (page.status !== 'ok') break;
      for (const item of page.items) {
        let view = item.value as unknown as ReplayView;
        if (view.state === 'running') view = { ...view, state: 'interrupted' };
        this.#replays.set(view.id, { view, touched: new Set() });
      }
      cursor = page.nextCursor;
    } while (cursor !== undefined);
  }

  list(): ReplayView[] {
    return [...this.#replays.values()].map((r) => this.#view(r)).sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  }

  get(id: string): ReplayView {
    return this.#view(this.#replay(id));
  }

  #replay(id: string): Replay {
    const replay = this.#replays.get(id);
    if (replay === undefined) throw new MillraceError('MILLRACE_REPLAY_UNKNOWN', `no replay has the id ${JSON.stringify(id)}`, { details: { replay: id } });
    return replay;
  }

  #view(replay: Replay): ReplayView {
    if (replay.runner === undefined || replay.view.state !== 'running') return replay.view;
    const status = replay.runner.status();
    const byPartition = new Map(status.partitions.map((p) => [`${p.topic}/${p.partition}`, p.position]));
    const partitions = replay.view.partitions.map((p) => ({ ...p, position: Math.min(p.to, byPartition.get(`${p.topic}/${p.partition}`) ?? p.from) }));
    const records = partitions.reduce((sum, p) => sum + (p.position - p.from), 0);
    const total = replay.view.progress.total;
    return {
      ...replay.view,
      partitions,
      keysChanged: replay.touched.size,
      progress: { ...replay.view.progress, records, percent: total === 0 ? 100 : Math.floor((records / total) * 1000) / 10 },
    };
  }

  /** Starts a replay; answers at once with its id (it runs in the background: poll `get`). */
  async create(request: ReplayRequest): Promise<ReplayView> {
    if ((request.projection === undefined) === (request.topology === undefined)) {
      throw new MillraceError('MILLRACE_REPLAY_INVALID', 'name either a projection or a topology to replay');
    }
    const running = [...this.#replays.values()].filter((r) => r.view.state === 'running').length;
    if (running >= this.limits.maxRunning) {
      throw new MillraceError('MILLRACE_REPLAY_LIMIT', `${running} replays are running, the most allowed at once (${this.limits.maxRunning}); wait for one to finish or delete it`);
    }
    const from = parseBound(request.from, 'from');
    const to = parseBound(request.to, 'to');
    return request.topology === undefined ? this.#createProjectionReplay(request, request.projection!, from, to) : this.#createTopologyReplay(request, request.topology, from, to);
  }

  /** The slice, partition by partition, of the given topics. */
  async #slice(topics: readonly string[], from: Bound, to: Bound): Promise<Slice> {
    const ranges = new Map<string, TopicPartitionRange & { topic: string; partition: number }>();
    const partitions: Slice['partitions'] = [];
    let startsLater = false;
    let seedAsOfMs = Number.POSITIVE_INFINITY;
    for (const topic of topics) {
      for (const { partition, start, end } of await this.#options.log.partitionOffsets(topic)) {
        let first: number = start;
        if (from.offset !== undefined) first = Math.max(start, from.offset);
        if (from.timeMs !== undefined) first = Math.max(start, (await this.#options.log.offsetForTimestamp(topic, partition, from.timeMs)) ?? end);
        let stop: number = end;
        if (to.offset !== undefined) stop = Math.min(end, to.offset + 1);
        first = Math.min(first, stop);
        if (first > start && first < stop) {
          startsLater = true;
          if (from.timeMs !== undefined) seedAsOfMs = Math.min(seedAsOfMs, from.timeMs - 1);
          else {
            const firstRecord = (await this.#options.log.read(topic, partition, offset(first), { maxRecords: 1 })).records[0];
            if (firstRecord !== undefined) seedAsOfMs = Math.min(seedAsOfMs, firstRecord.timestamp - 1);
          }
        }
        ranges.set(`${topic}\u0000${partition}`, { topic, partition, from: offset(first), to: offset(stop) });
        partitions.push({ topic, partition, from: first, to: stop, position: first });
      }
    }
    const seedAt = startsLater ? Math.max(0, seedAsOfMs === Number.POSITIVE_INFINITY ? 0 : seedAsOfMs) : null;
    return { ranges, partitions, seedAt };
  }

  async #createProjectionReplay(request: ReplayRequest, name: string, from: Bound, to: Bound): Promise<ReplayView> {
    const liveDefinition = this.#options.definition(name);
    const liveNamespace = this.#options.liveNamespace(name);
    if (liveDefinition === undefined || liveNamespace === undefined) {
      throw new MillraceError('MILLRACE_PROJECTION_UNKNOWN', `no projection is named ${JSON.stringify(name)}`, { details: { projection: name } });
    }
    let definition = liveDefinition;
    if (request.code !== undefined) {
      if (this.#options.loadCode === undefined) throw new MillraceError('MILLRACE_REPLAY_INVALID', 'this engine does not load replay code');
      const loaded = await this.#options.loadCode(request.code);
      const chosen = loaded.find((d) => d.name === name) ?? (loaded.length === 1 ? loaded[0] : undefined);
      if (chosen === undefined) {
        throw new MillraceError('MILLRACE_REPLAY_INVALID', `${request.code} exports ${loaded.map((d) => d.name).join(', ')}, none named ${name}`);
      }
      definition = { ...chosen, name };
    }
    const topics = (await this.#options.log.listTopics()).map((t) => t.name).filter((t) => consumes(definition, t));
    const { ranges, partitions, seedAt } = await this.#slice(topics, from, to);
    const live: ProjectionId = { name, namespace: liveNamespace };
    if (seedAt !== null) {
      const probe = await this.#store.get(live, 'probe', { asOfMs: seedAt });
      if (probe.status === 'not-retained') {
        throw new MillraceError(
          'MILLRACE_PROJECTION_NOT_RETAINED',
          `the replay would start from live as of ${new Date(seedAt).toISOString()}, but history is retained from ${new Date(probe.retainedFromMs).toISOString()}: replay from the start of the log (no --from), or from a later moment`,
          { details: { retainedFrom: new Date(probe.retainedFromMs).toISOString() } },
        );
      }
    }
    const { replay, recorder } = await this.#begin(request, 'projection', name, partitions, seedAt, to);
    const runner = new ProjectionRunner({
      log: this.#options.log,
      store: this.#store,
      definition,
      namespace: replay.view.namespace,
      logger: this.#options.logger,
      ranges,
      ...(to.timeMs === undefined ? {} : { accept: (record: LogRecord) => record.timestamp <= to.timeMs! }),
      ...(seedAt === null
        ? {}
        : {
            readMissing: async (key: string): Promise<StoredValue | undefined> => {
              const got = await this.#store.get(live, key, { asOfMs: seedAt });
              return got.status === 'found' ? { value: got.value, timestampMs: got.timestampMs } : undefined;
            },
            storeOwns: (key: string) => replay.touched.has(key),
          }),
      onRecord: async (record, outcome) => {
        if ('error' in outcome) return recorder.record(record, this.#errorStep(record, outcome.error), []);
        return recorder.record(record, this.#step(record, outcome.handled), outcome.handled.ops.map((op) => op.key));
      },
      deadLetters: false,
      yieldEveryMs: 10,
    });
    await this.#run(replay, runner, recorder, to);
    return this.#view(replay);
  }

  async #createTopologyReplay(request: ReplayRequest, applicationId: string, from: Bound, to: Bound): Promise<ReplayView> {
    let topology = this.#options.topology?.(applicationId);
    if (topology === undefined) throw new MillraceError('MILLRACE_REPLAY_INVALID', `no running topology has the application id ${JSON.stringify(applicationId)}`, { details: { topology: applicationId } });
    if (request.code !== undefined) {
      if (this.#options.loadTopologyCode === undefined) throw new MillraceError('MILLRACE_REPLAY_INVALID', 'this engine does not load replay code');
      topology = await this.#options.loadTopologyCode(request.code);
    }
    const name = `topology.${applicationId}`;
    if (!/^[a-zA-Z0-9._-]{1,200}$/.test(name)) throw new MillraceError('MILLRACE_REPLAY_INVALID', `application id ${JSON.stringify(applicationId)} cannot name a sandbox`);
    const existing = new Set((await this.#options.log.listTopics()).map((t) => t.name));
    const { ranges, partitions, seedAt } = await this.#slice(topology.externalSourceTopics.filter((t) => existing.has(t)), from, to);
    const outputs = topology.externalSinkTopics;
    const { replay, recorder } = await this.#begin(request, 'topology', name, partitions, seedAt, to);
    const sandboxId: ProjectionId = { name, namespace: replay.view.namespace };
    const sandbox = new DocWriter(this.#store, sandboxId);
    let minEventMs = Number.POSITIVE_INFINITY;
    const runner = new TopologySandbox({
      log: this.#options.log,
      topology,
      ranges,
      ...(to.timeMs === undefined ? {} : { accept: (record: LogRecord) => record.timestamp <= to.timeMs! }),
      onRecord: async (record, outcome) => {
        minEventMs = Math.min(minEventMs, record.timestamp);
        if ('error' in outcome) return recorder.record(record, this.#errorStep(record, outcome.error), []);
        const { effect } = outcome;
        // The sandbox's side of the diff: the latest output per (topic, key).
        const ops: ProjectionOp[] = effect.outputs
          .filter((o) => outputs.includes(o.topic))
          .map((o) => ({ type: 'put', key: `${o.topic}/${JSON.stringify(o.key)}`, value: o.value, timestampMs: 0 }));
        if (ops.length > 0) await sandbox.write(ops);
        const step: ReplayStep = { seq: 0, event: this.#event(record, showBytes(record.value)), before: effect.before, after: effect.after, outputs: effect.outputs };
        return recorder.record(record, step, ops.map((op) => op.key));
      },
    });
    await this.#run(replay, runner, recorder, to, async () => {
      // Live's side: the latest record per key of each output topic within the slice's time, read once.
      if (minEventMs === Number.POSITIVE_INFINITY) return;
      const untilMs = to.timeMs ?? recorder.maxEventMs;
      const live = new DocWriter(this.#store, { name, namespace: `${replay.view.namespace}.live` });
      const latest = new Map<string, JsonValue | null>();
      let read = 0;
      for (const topic of outputs.filter((t) => existing.has(t))) {
        for (const { partition, start, end } of await this.#options.log.partitionOffsets(topic)) {
          for (let at: number = start; at < end; ) {
            const batch = await this.#options.log.read(topic, partition, offset(at), { maxRecords: 1_000 });
            if (batch.records.length === 0) break;
            for (const r of batch.records) {
              if (++read > (this.#options.maxLiveOutputRecords ?? 1_000_000)) {
                throw new MillraceError('MILLRACE_REPLAY_LIMIT', `the output topics hold more than ${this.#options.maxLiveOutputRecords ?? 1_000_000} records to compare; replay a shorter slice`);
              }
              if (r.timestamp >= minEventMs && r.timestamp <= untilMs) latest.set(`${topic}/${JSON.stringify(showBytes(r.key))}`, showBytes(r.value));
            }
            at = batch.nextOffset;
          }
        }
      }
      const ops: ProjectionOp[] = [...latest].map(([key, value]) => ({ type: 'put', key, value, timestampMs: 0 }));
      for (let i = 0; i < ops.length; i += 200) await live.write(ops.slice(i, i + 200));
      await recorder.touch(ops.map((op) => op.key));
    });
    return this.#view(replay);
  }

  /** Registers a new replay and the recorder of its steps and changed keys. */
  async #begin(request: ReplayRequest, kind: ReplayView['kind'], name: string, partitions: Slice['partitions'], seedAt: number | null, to: Bound): Promise<{ replay: Replay; recorder: StepRecorder }> {
    await this.#retainRoom();
    const id = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const namespace = `replay-${id}`;
    for (const ns of [namespace, `${namespace}.steps`, `${namespace}.keys`, `${namespace}.live`]) await this.#store.drop({ name, namespace: ns });
    const total = partitions.reduce((sum, p) => sum + (p.to - p.from), 0);
    const replay: Replay = {
      touched: new Set(),
      view: {
        id,
        kind,
        projection: name,
        namespace,
        state: 'running',
        request: { ...request },
        createdAt: new Date().toISOString(),
        partitions,
        seededAsOfMs: kind === 'projection' ? seedAt : null,
        diffAsOfMs: to.timeMs ?? null,
        progress: { records: 0, total, applied: 0, errors: 0, percent: total === 0 ? 100 : 0 },
        steps: 0,
        stepsTruncated: false,
        keysChanged: 0,
      },
    };
    this.#replays.set(id, replay);
    await this.#saveMeta(replay);
    return { replay, recorder: new StepRecorder(this.#store, { name, namespace }, replay.touched, this.limits) };
  }

  /** Starts the sandbox and, in the background, finishes the replay when it ends. */
  async #run(replay: Replay, runner: SandboxRun, recorder: StepRecorder, to: Bound, afterwards?: () => Promise<void>): Promise<void> {
    replay.runner = runner;
    await runner.start();
    replay.done = runner
      .done()
      .then(async () => {
        await recorder.flush();
        if (runner.state !== 'stopped' && !this.#stopping) await afterwards?.();
        await recorder.flush();
      })
      .then(
        async () => {
          const state: ReplayState = this.#stopping || runner.state === 'stopped' ? 'stopped' : 'finished';
          this.#finish(replay, state, recorder, to.timeMs);
          await this.#saveMeta(replay);
        },
        async (err: unknown) => {
          await recorder.flush().catch(() => undefined);
          this.#finish(replay, 'failed', recorder, to.timeMs, errorMessage(err));
          await this.#saveMeta(replay).catch(() => undefined);
        },
      );
  }

  #finish(replay: Replay, state: ReplayState, counts: StepRecorder, toMs: number | undefined, error?: string): void {
    const current = this.#view(replay);
    const records = state === 'finished' ? current.progress.total : current.progress.records;
    const diffAsOfMs = toMs ?? (counts.maxEventMs >= 0 ? counts.maxEventMs : null);
    replay.view = {
      ...current,
      state,
      finishedAt: new Date().toISOString(),
      partitions: state === 'finished' ? current.partitions.map((p) => ({ ...p, position: p.to })) : current.partitions,
      diffAsOfMs,
      progress: { records, total: current.progress.total, applied: counts.applied, errors: counts.errors, percent: state === 'finished' ? 100 : current.progress.percent },
      steps: Math.min(counts.seq, this.limits.maxSteps),
      stepsTruncated: counts.seq > this.limits.maxSteps,
      keysChanged: replay.touched.size,
      ...(error === undefined ? {} : { error }),
    };
    delete replay.runner;
  }

  #event(record: LogRecord, value: JsonValue | null): ReplayStep['event'] {
    return {
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      timestamp: new Date(record.timestamp).toISOString(),
      key: record.key === null ? null : record.key.toString('utf8'),
      value,
    };
  }

  #errorStep(record: LogRecord, error: MillraceError): ReplayStep {
    return {
      seq: 0,
      event: this.#event(record, record.value === null ? null : showBytes(record.value)),
      before: {},
      after: {},
      outputs: [],
      error: problemFromError(error) as unknown as JsonValue,
    };
  }

  #step(record: LogRecord, handled: HandledEvent): ReplayStep {
    const nullable = (v: JsonValue | undefined): JsonValue | null => (v === undefined ? null : v);
    return {
      seq: 0,
      event: this.#event(record, (handled.event.value ?? null) as JsonValue | null),
      before: Object.fromEntries([...handled.before].map(([k, v]) => [k, nullable(v)])),
      after: Object.fromEntries([...handled.after].map(([k, v]) => [k, nullable(v)])),
      outputs: handled.ops.map((op) => ({
        type: op.type,
        key: op.key,
        ...(op.type === 'put' ? { value: op.value } : {}),
        timestamp: new Date(op.timestampMs).toISOString(),
      })),
    };
  }

  /** A page of steps, in record order. */
  async steps(id: string, options: { cursor?: string; limit?: number } = {}): Promise<{ steps: JsonValue[]; nextCursor?: string }> {
    const replay = this.#replay(id);
    const page = await this.#store.scan({ name: replay.view.projection, namespace: `${replay.view.namespace}.steps` }, {
      limit: options.limit ?? 100,
      ...(options.cursor === undefined ? {} : { cursor: options.cursor }),
    });
    if (page.status !== 'ok') return { steps: [] };
    return { steps: page.items.map((i) => i.value), ...(page.nextCursor === undefined ? {} : { nextCursor: page.nextCursor }) };
  }

  /**
   * A page of the diff: of the keys the replay changed (in key order, `limit` of them per page), those whose sandbox
   * value differs from live's as of `diffAsOfMs`. A page can hold fewer entries than `limit`, even none, and still
   * have a `nextCursor`.
   */
  async diff(id: string, options: { cursor?: string; limit?: number } = {}): Promise<{ asOf: string | null; entries: DiffEntry[]; nextCursor?: string }> {
    const replay = this.#replay(id);
    const view = this.#view(replay);
    if (view.state === 'running') throw new MillraceError('MILLRACE_REPLAY_INVALID', `replay ${id} is still running (${view.progress.percent}%): the diff is ready when it finishes`);
    const name = view.projection;
    const liveNamespace = view.kind === 'topology' ? undefined : this.#options.liveNamespace(name);
    if (view.kind !== 'topology' && liveNamespace === undefined) throw new MillraceError('MILLRACE_PROJECTION_UNKNOWN', `no projection is named ${JSON.stringify(name)}`);
    const page = await this.#store.scan({ name, namespace: `${view.namespace}.keys` }, {
      limit: options.limit ?? 100,
      ...(options.cursor === undefined ? {} : { cursor: options.cursor }),
    });
    if (page.status !== 'ok') return { asOf: null, entries: [] };
    const asOfMs = view.diffAsOfMs;
    const entries: DiffEntry[] = [];
    for (const { key } of page.items) {
      const sandbox = await this.#store.get({ name, namespace: view.namespace }, key);
      const live =
        view.kind === 'topology'
          ? await this.#store.get({ name, namespace: `${view.namespace}.live` }, key)
          : await this.#store.get({ name, namespace: liveNamespace! }, key, asOfMs === null ? {} : { asOfMs });
      if (live.status === 'not-retained') {
        throw new MillraceError('MILLRACE_PROJECTION_NOT_RETAINED', `live is retained from ${new Date(live.retainedFromMs).toISOString()}, after the replay's last moment`, {
          details: { retainedFrom: new Date(live.retainedFromMs).toISOString() },
        });
      }
      const s = sandbox.status === 'found' ? sandbox.value : null;
      const l = live.status === 'found' ? live.value : null;
      if (canonical(s) === canonical(l)) continue;
      entries.push({ key, change: l === null ? 'added' : s === null ? 'removed' : 'changed', sandbox: s, live: l });
    }
    return { asOf: asOfMs === null ? null : new Date(asOfMs).toISOString(), entries, ...(page.nextCursor === undefined ? {} : { nextCursor: page.nextCursor }) };
  }

  /** Stops a running replay (if running) and removes it with its sandbox, steps and diff. */
  async delete(id: string): Promise<void> {
    const replay = this.#replay(id);
    await replay.runner?.stop();
    await replay.done;
    await this.#drop(replay);
  }

  /** Waits for a replay to end. */
  async finished(id: string): Promise<ReplayView> {
    const replay = this.#replay(id);
    await replay.done;
    return this.#view(replay);
  }

  async #drop(replay: Replay): Promise<void> {
    const { projection: name, namespace, id } = replay.view;
    for (const ns of [namespace, `${namespace}.steps`, `${namespace}.keys`, `${namespace}.live`]) await this.#store.drop({ name, namespace: ns });
    await this.#meta.write([{ type: 'del', key: id, timestampMs: 0 }]);
    this.#replays.delete(id);
  }

  async #retainRoom(): Promise<void> {
    const ended = [...this.#replays.values()].filter((r) => r.view.state !== 'running').sort((a, b) => (a.view.createdAt < b.view.createdAt ? -1 : 1));
    while (ended.length > 0 && this.#replays.size >= this.limits.maxRetained) await this.#drop(ended.shift()!);
  }

  async #saveMeta(replay: Replay): Promise<void> {
    await this.#meta.write([{ type: 'put', key: replay.view.id, value: replay.view as unknown as JsonValue, timestampMs: 0 }]);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    for (const replay of this.#replays.values()) {
      await replay.runner?.stop();
      await replay.done;
    }
  }
}
