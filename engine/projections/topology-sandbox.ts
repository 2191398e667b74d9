import { MillraceError, errorMessage } from '../errors.js';
import { offset, type Log, type LogRecord } from '../log/log.js';
import type { Serde } from '../serde/serde.js';
import { TopologyTestDriver, type CheckpointObservation } from '../testing/topology-test-driver.js';
import type { Topology } from '../topology/topology.js';
import { earliestQueue, eventTimeQueues } from './event-time.js';
import type { PartitionProgress, TopicPartitionRange } from './runner.js';
import type { JsonValue } from './store.js';

/**
 * Runs a topology over a slice of its input topics in memory (a `TopologyTestDriver`), beside the live one, and
 * reports each record's effect: the store entries it changed (before and after) and the records it produced. The
 * replay of a topology (`replay.ts`) records these as steps and compares the outputs with the live output topics.
 *
 * Records of every input partition go in event-time order into one in-memory task per sub-topology (the driver's
 * model), so per-key results are those of the live tasks; stream time, and so which records a window still
 * accepts, is that of all partitions together. Processors must be synchronous (the driver's rule): a topology
 * that awaits (inference) cannot be replayed this way, and is refused before anything runs.
 */

export interface TopologyEffect {
  /** `<store>/<key>` → value, before and after the record (null: absent). */
  readonly before: Record<string, JsonValue | null>;
  readonly after: Record<string, JsonValue | null>;
  readonly outputs: ReadonlyArray<{ topic: string; key: JsonValue | null; value: JsonValue | null; timestamp: string }>;
}

export interface TopologySandboxOptions {
  readonly log: Log;
  readonly topology: Topology;
  readonly ranges: ReadonlyMap<string, TopicPartitionRange & { readonly topic: string; readonly partition: number }>;
  readonly accept?: (record: LogRecord) => boolean;
  readonly onRecord: (record: LogRecord, outcome: { effect: TopologyEffect } | { error: MillraceError }) => Promise<void>;
  readonly maxRecordsPerRead?: number;
}

/** Bytes shown as JSON when they are JSON text, as a string when they are other text, else as base64. */
export function showBytes(bytes: Buffer | null, serde?: Serde<unknown>, topic = ''): JsonValue | null {
  if (bytes === null) return null;
  if (serde !== undefined) {
    try {
      return toJson(serde.deserialize(bytes, { topic, isKey: false }));
    } catch {
      // not in the serde's format: shown raw below
    }
  }
  const text = bytes.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(bytes)) {
    try {
      return JSON.parse(text) as JsonValue;
    } catch {
      return /^[\P{Cc}\t\n\r]*$/u.test(text) ? text : { base64: bytes.toString('base64') };
    }
  }
  return { base64: bytes.toString('base64') };
}

function toJson(value: unknown): JsonValue | null {
  if (value === undefined) return null;
  try {
    return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : Buffer.isBuffer(v) ? v.toString('base64') : v))) as JsonValue;
  } catch {
    return String(value);
  }
}

export class TopologySandbox {
  readonly #options: TopologySandboxOptions;
  readonly #driver: TopologyTestDriver;
  readonly #positions = new Map<string, number>();
  readonly #abort = new AbortController();
  #observed: CheckpointObservation[] = [];
  #state: 'running' | 'finished' | 'stopped' | 'failed' = 'running';
  #loop: Promise<void> | undefined;
  #error: Error | undefined;

  constructor(options: TopologySandboxOptions) {
    this.#options = options;
    try {
      this.#driver = new TopologyTestDriver(options.topology, { onCheckpoint: (observation) => this.#observed.push(observation) });
    } catch (err) {
      throw new MillraceError('MILLRACE_REPLAY_INVALID', `topology ${options.topology.applicationId} cannot run in a replay sandbox: ${errorMessage(err)}`, { cause: err });
    }
    for (const [key, range] of options.ranges) this.#positions.set(key, range.from ?? 0);
  }

  get state(): 'running' | 'finished' | 'stopped' | 'failed' {
    return this.#state;
  }

  start(): void {
    this.#loop = this.#run().then(
      () => {
        if (this.#state === 'running') this.#state = this.#abort.signal.aborted ? 'stopped' : 'finished';
      },
      (err: unknown) => {
        this.#state = 'failed';
        this.#error = err instanceof Error ? err : new Error(String(err));
      },
    );
  }

  async done(): Promise<void> {
    await this.#loop;
    this.#driver.close();
    if (this.#state === 'failed') throw this.#error;
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  status(): { partitions: PartitionProgress[] } {
    return {
      partitions: [...this.#options.ranges.entries()].map(([key, range]) => {
        const position = this.#positions.get(key) ?? 0;
        const end = range.to ?? position;
        return { topic: range.topic, partition: range.partition, position, end, lag: Math.max(0, end - position) };
      }),
    };
  }

  async #run(): Promise<void> {
    const maxRecords = this.#options.maxRecordsPerRead ?? 500;
    while (!this.#abort.signal.aborted) {
      // One chunk per open partition, then every record up to the horizon in event-time order (event-time.ts).
      const chunks: Array<{ key: string; records: LogRecord[]; more: boolean }> = [];
      for (const [key, range] of this.#options.ranges) {
        const from = this.#positions.get(key) ?? 0;
        const to = range.to ?? Number.POSITIVE_INFINITY;
        if (from >= to) continue;
        const batch = await this.#options.log.read(range.topic, range.partition, offset(from), { maxRecords });
        const records = batch.records.filter((r) => r.offset < to);
        if (records.length === 0) {
          // Nothing more below `to` (retention moved the start, or the range ends in a gap): the partition is done.
          this.#positions.set(key, Math.max(batch.nextOffset, to === Number.POSITIVE_INFINITY ? batch.nextOffset : to));
          continue;
        }
        chunks.push({ key, records, more: batch.records.length >= maxRecords && batch.nextOffset < to });
      }
      if (chunks.length === 0) return;
      const queues = eventTimeQueues(chunks);
      for (;;) {
        if (this.#abort.signal.aborted) return;
        const pick = earliestQueue(queues);
        if (pick === undefined) break;
        const record = pick.records[pick.next++]!;
        this.#positions.set(pick.chunk.key, record.offset + 1);
        if (this.#options.accept !== undefined && !this.#options.accept(record)) continue;
        await this.#options.onRecord(record, this.#pipe(record));
      }
      // Live work runs between chunks.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  #pipe(record: LogRecord): { effect: TopologyEffect } | { error: MillraceError } {
    this.#observed = [];
    try {
      this.#driver.pipe(record.topic, record.key, record.value, record.timestamp, record.headers);
    } catch (err) {
      return { error: err instanceof MillraceError ? err : new MillraceError('MILLRACE_PROCESSING', errorMessage(err), { cause: err }) };
    }
    const stores = this.#options.topology.stores;
    const before: Record<string, JsonValue | null> = {};
    const after: Record<string, JsonValue | null> = {};
    const outputs: Array<TopologyEffect['outputs'][number]> = [];
    for (const observation of this.#observed) {
      for (const change of observation.stores) {
        const spec = stores.get(change.store);
        const key = `${change.store}/${JSON.stringify(showBytes(change.key, spec?.kind === 'key-value' ? (spec.keySerde as Serde<unknown>) : undefined))}`;
        if (!(key in before)) before[key] = showBytes(change.before, spec?.kind === 'key-value' ? (spec.valueSerde as Serde<unknown>) : undefined);
        after[key] = showBytes(change.after, spec?.kind === 'key-value' ? (spec.valueSerde as Serde<unknown>) : undefined);
      }
      for (const output of observation.outputs) {
        outputs.push({ topic: output.topic, key: showBytes(output.key), value: showBytes(output.value), timestamp: new Date(output.timestamp).toISOString() });
      }
    }
    return { effect: { before, after, outputs } };
  }
}
