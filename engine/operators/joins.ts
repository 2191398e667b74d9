import { MillraceError } from '../errors.js';
import { deserializationError, type Serde } from '../serde/serde.js';
import type { KeyValueStore, ReadOnlyKeyValueStore } from '../state/key-value-store.js';
import { VersionedKeyValueStore, type VersionList, type VersionedOptions } from '../state/versioned.js';
import type { Processor, ProcessorContext, ProcessorSupplier } from '../topology/processor.js';
import { EMPTY_HEADERS, type StreamRecord } from '../topology/record.js';

/**
 * Joins as processors: tables (materialised from a topic, optionally versioned), stream–table joins as of the
 * stream record's event time, windowed stream–stream joins (inner, left, outer) and stream–global-table lookups.
 * The DSL that wires them into a topology is `topology/tables.ts`.
 */

export type JoinKind = 'inner' | 'left' | 'outer';

function nullKey(node: string, what: string): MillraceError {
  return new MillraceError('MILLRACE_PROCESSING', `${node}: ${what}`, { details: { reason: 'null-key' } });
}

function isNullish(value: unknown): value is null | undefined {
  return value === null || value === undefined;
}

// ------------------------------------------------------------------------------------------------------ tables

export interface TableProcessorSpec {
  readonly storeName: string;
  /** Keep each key's history of versions for as-of lookups; without it, only the latest value. */
  readonly versioned?: VersionedOptions;
}

/**
 * Materialises a topic as a table: the latest value per key (a `null` value, a tombstone, deletes the key), or with
 * `versioned` the key's versions within the history retention. Forwards each change to the current value
 * (tombstones as `null` values); a versioned table does not forward a version that lands behind a later one, since
 * the current value did not change. A version older than the history boundary (stream time − history retention)
 * is refused and goes to the late-records topic: the history it belongs to is no longer kept.
 */
export function tableProcessor<K, V>(spec: TableProcessorSpec): ProcessorSupplier<K, V | null, K, V | null> {
  return () => {
    let versioned: VersionedKeyValueStore<K, V> | undefined;
    return {
      init(ctx) {
        if (spec.versioned === undefined) return;
        const store = new VersionedKeyValueStore(ctx.store<K, VersionList<V>>(spec.storeName), {
          historyRetentionMs: spec.versioned.historyRetentionMs,
          streamTimeMs: () => ctx.streamTimeMs(),
        });
        versioned = store;
        ctx.onCommit(() => store.sweep());
      },
      process(record, ctx) {
        if (isNullish(record.key)) throw nullKey(ctx.nodeName, 'a table record needs a key');
        const value = record.value ?? null;
        if (versioned === undefined) {
          const store = ctx.store<K, V>(spec.storeName);
          if (value === null) store.delete(record.key);
          else store.put(record.key, value);
          ctx.forward({ ...record, value });
          return;
        }
        const result = versioned.put(record.key, value, record.timestamp);
        if (result === 'expired') {
          const boundary = versioned.historyBoundaryMs();
          throw new MillraceError(
            'MILLRACE_LATE_RECORD',
            `${ctx.nodeName}: a version at ${record.timestamp} is older than the history kept (from ${boundary}, ${versioned.historyRetentionMs} ms behind stream time)`,
            {
              details: {
                reason: 'behind-history-retention',
                recordTimestamp: record.timestamp,
                historyBoundaryMs: boundary,
                historyRetentionMs: versioned.historyRetentionMs,
                streamTime: ctx.streamTimeMs(),
              },
            },
          );
        }
        if (result === 'latest') ctx.forward({ ...record, value });
      },
    };
  };
}

// --------------------------------------------------------------------------------------------- stream–table

export interface StreamTableJoinSpec<K, V, VT, VR> {
  readonly tableStore: string;
  /** The table keeps versions: look up the one valid at the stream record's timestamp. */
  readonly versioned?: VersionedOptions;
  /** Also forward stream records the table has no value for, joined with `null`. */
  readonly left: boolean;
  readonly joiner: (value: V, tableValue: VT | null, key: K) => VR;
}

/**
 * Joins each stream record with the table value for its key as of the record's event time: the version valid at
 * its timestamp (a versioned table), or the latest value (an unversioned one). The output has the stream record's
 * key, timestamp and headers.
 *
 * - A stream record processed after newer table versions (it arrived late) still joins the version valid at its
 *   time. A table version that arrives after a stream record of a later time was joined does not revisit it: a
 *   join result is final when it is forwarded.
 * - A record older than the table's history boundary (stream time − history retention) cannot be answered: the
 *   version valid then may have been pruned. It is treated as having no table value (an inner join forwards
 *   nothing, a left join forwards it joined with `null`), and it is reported to the late-records topic with reason
 *   `behind-history-retention`, so the gap is never silent.
 * - A record without a key cannot be joined: it goes to the dead-letter topic (`MILLRACE_PROCESSING`, `null-key`).
 */
export function streamTableJoinProcessor<K, V, VT, VR>(spec: StreamTableJoinSpec<K, V, VT, VR>): ProcessorSupplier<K, V, K, VR> {
  return () => {
    let versioned: VersionedKeyValueStore<K, VT> | undefined;
    let latest: KeyValueStore<K, VT> | undefined;
    return {
      init(ctx) {
        if (spec.versioned === undefined) {
          latest = ctx.store<K, VT>(spec.tableStore);
          return;
        }
        versioned = new VersionedKeyValueStore(ctx.store<K, VersionList<VT>>(spec.tableStore), {
          historyRetentionMs: spec.versioned.historyRetentionMs,
          streamTimeMs: () => ctx.streamTimeMs(),
        });
      },
      process(record, ctx) {
        if (isNullish(record.key)) throw nullKey(ctx.nodeName, 'a stream record without a key cannot be joined with a table');
        let tableValue: VT | null;
        if (versioned === undefined) {
          tableValue = latest!.get(record.key) ?? null;
        } else if (versioned.isBehindHistory(record.timestamp)) {
          tableValue = null;
          ctx.reportLate(`record at ${record.timestamp} is older than the table history kept: joined as if the table had no value`, {
            reason: 'behind-history-retention',
            recordTimestamp: record.timestamp,
            historyBoundaryMs: versioned.historyBoundaryMs(),
            historyRetentionMs: versioned.historyRetentionMs,
            streamTime: ctx.streamTimeMs(),
          });
        } else {
          tableValue = versioned.get(record.key, record.timestamp);
        }
        if (tableValue === null && !spec.left) return;
        ctx.forward({ key: record.key, value: spec.joiner(record.value, tableValue, record.key), timestamp: record.timestamp, headers: record.headers });
      },
    };
  };
}

// --------------------------------------------------------------------------------------- stream–global table

export interface StreamGlobalTableJoinSpec<K, V, GK, GV, VR> {
  readonly globalStore: string;
  /** The global table's key to look up for a stream record. */
  readonly keyMapper: (record: StreamRecord<K, V>) => GK;
  readonly left: boolean;
  readonly joiner: (value: V, globalValue: GV | null, key: K) => VR;
}

/**
 * Joins each stream record with the current value of a global table (every task sees all of it, so the stream
 * needs no repartition). The lookup is by `keyMapper(record)`, against the table as the task sees it when the record
 * is processed: a global table has no event-time history. A lookup key of `null` or `undefined` is a dead letter
 * (`MILLRACE_PROCESSING`, `null-key`), for inner and left joins alike.
 */
export function streamGlobalTableJoinProcessor<K, V, GK, GV, VR>(spec: StreamGlobalTableJoinSpec<K, V, GK, GV, VR>): ProcessorSupplier<K, V, K, VR> {
  return () => {
    let table: ReadOnlyKeyValueStore<GK, GV> | undefined;
    return {
      process(record, ctx) {
        const lookupKey = spec.keyMapper(record);
        if (isNullish(lookupKey)) throw nullKey(ctx.nodeName, 'the key mapper gave no key to look up in the global table');
        table ??= ctx.globalStore<GK, GV>(spec.globalStore);
        const globalValue = table.get(lookupKey) ?? null;
        if (globalValue === null && !spec.left) return;
        ctx.forward({ key: record.key, value: spec.joiner(record.value, globalValue, record.key), timestamp: record.timestamp, headers: record.headers });
      },
    };
  };
}

// ---------------------------------------------------------------------------------------------- stream–stream

/**
 * Which records of two streams join: a left record at `tl` with the right records of the same key at `tr` with
 * `tl − before ≤ tr ≤ tl + after`. `graceMs` is how far behind the watermark a record may arrive and still join.
 */
export class JoinWindows {
  readonly beforeMs: number;
  readonly afterMs: number;
  readonly graceMs: number;

  private constructor(beforeMs: number, afterMs: number, graceMs: number) {
    for (const [name, value] of [['beforeMs', beforeMs], ['afterMs', afterMs], ['graceMs', graceMs]] as const) {
      if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer of ms, got ${value}`);
    }
    this.beforeMs = beforeMs;
    this.afterMs = afterMs;
    this.graceMs = graceMs;
  }

  static of(beforeMs: number, afterMs: number, options: { graceMs?: number } = {}): JoinWindows {
    return new JoinWindows(beforeMs, afterMs, options.graceMs ?? 0);
  }

  /** Records at most `differenceMs` apart, either way. */
  static ofTimeDifference(differenceMs: number, options: { graceMs?: number } = {}): JoinWindows {
    return new JoinWindows(differenceMs, differenceMs, options.graceMs ?? 0);
  }

  /** How far ahead of a record of `side` its partners may lie: `after` for the left side, `before` for the right. */
  reachAhead(side: JoinSide): number {
    return side === 'left' ? this.afterMs : this.beforeMs;
  }

  /**
   * The watermark a record of `side` at `timestampMs` is buffered until: once the watermark passes it, every
   * record that could still pair with it would be late.
   */
  closeTime(side: JoinSide, timestampMs: number): number {
    return timestampMs + this.reachAhead(side) + this.graceMs;
  }

  describe(): { beforeMs: number; afterMs: number; graceMs: number } {
    return { beforeMs: this.beforeMs, afterMs: this.afterMs, graceMs: this.graceMs };
  }
}

export type JoinSide = 'left' | 'right';

/** A record on its way into a stream–stream join, tagged with the side it came from. */
export interface SideValue<V> {
  readonly side: JoinSide;
  readonly value: V;
}

/** Tags each record with its side: both sides then flow into one join node, which holds both buffers. */
export function joinSideProcessor<K, V>(side: JoinSide): ProcessorSupplier<K, V, K, SideValue<V>> {
  return () => ({
    process(record, ctx) {
      ctx.forward({ key: record.key, value: { side, value: record.value }, timestamp: record.timestamp, headers: record.headers });
    },
  });
}

/** A record buffered by a stream–stream join. `seq` tells apart records of one key with one timestamp. */
export interface BufferedRecord<V> {
  readonly timestamp: number;
  readonly seq: number;
  /** It has joined at least once (a left or outer join forwards the unmatched ones with `null` when they close). */
  readonly matched: boolean;
  readonly value: V | null;
}

/** One key's buffered records, ascending by (timestamp, seq). */
export type RecordBuffer<V> = ReadonlyArray<BufferedRecord<V>>;

const BUFFER_FORMAT_V1 = 1;
const BUFFER_HEADER_BYTES = 5;
const MIN_BUFFERED_BYTES = 17;
const FLAG_MATCHED = 1;
const FLAG_HAS_VALUE = 2;

/**
 * The bytes of a record buffer: a format byte (1), the record count (uint32 BE), then per record its timestamp and
 * sequence (float64 BE each), a flag byte (1: matched, 2: has a value) and, with a value, its length (uint32 BE)
 * and the bytes `valueSerde` made of it.
 */
export function recordBufferSerde<V>(valueSerde: Serde<V>): Serde<RecordBuffer<V>> {
  return {
    name: `join-buffer(${valueSerde.name})`,
    serialize(records, context) {
      const parts: Buffer[] = [];
      const header = Buffer.allocUnsafe(BUFFER_HEADER_BYTES);
      header.writeUInt8(BUFFER_FORMAT_V1, 0);
      header.writeUInt32BE(records.length, 1);
      parts.push(header);
      for (const record of records) {
        const hasValue = record.value !== null;
        const head = Buffer.allocUnsafe(hasValue ? MIN_BUFFERED_BYTES + 4 : MIN_BUFFERED_BYTES);
        head.writeDoubleBE(record.timestamp, 0);
        head.writeDoubleBE(record.seq, 8);
        head.writeUInt8((record.matched ? FLAG_MATCHED : 0) | (hasValue ? FLAG_HAS_VALUE : 0), 16);
        if (record.value === null) {
          parts.push(head);
          continue;
        }
        const bytes = valueSerde.serialize(record.value, context);
        head.writeUInt32BE(bytes.length, 17);
        parts.push(head, bytes);
      }
      return Buffer.concat(parts);
    },
    deserialize(bytes, context) {
      if (bytes.length < BUFFER_HEADER_BYTES) throw deserializationError(context, 'join buffer shorter than its header');
      if (bytes.readUInt8(0) !== BUFFER_FORMAT_V1) throw deserializationError(context, `unknown join buffer format ${bytes.readUInt8(0)}`);
      const count = bytes.readUInt32BE(1);
      if (count > (bytes.length - BUFFER_HEADER_BYTES) / MIN_BUFFERED_BYTES) throw deserializationError(context, `record count ${count} exceeds what ${bytes.length} bytes can hold`);
      const records: Array<BufferedRecord<V>> = [];
      let at = BUFFER_HEADER_BYTES;
      for (let i = 0; i < count; i++) {
        if (at + MIN_BUFFERED_BYTES > bytes.length) throw deserializationError(context, 'join buffer truncated');
        const timestamp = bytes.readDoubleBE(at);
        const seq = bytes.readDoubleBE(at + 8);
        const flags = bytes.readUInt8(at + 16);
        at += MIN_BUFFERED_BYTES;
        if (!Number.isSafeInteger(timestamp) || !Number.isSafeInteger(seq)) throw deserializationError(context, 'buffered record time or sequence is not an integer');
        if (flags > (FLAG_MATCHED | FLAG_HAS_VALUE)) throw deserializationError(context, `unknown buffered record flags ${flags}`);
        const previous = records[records.length - 1];
        if (previous !== undefined && (previous.timestamp > timestamp || (previous.timestamp === timestamp && previous.seq >= seq))) {
          throw deserializationError(context, 'buffered records are not in (timestamp, sequence) order');
        }
        let value: V | null = null;
        if ((flags & FLAG_HAS_VALUE) !== 0) {
          if (at + 4 > bytes.length) throw deserializationError(context, 'join buffer truncated');
          const length = bytes.readUInt32BE(at);
          at += 4;
          if (at + length > bytes.length) throw deserializationError(context, 'buffered value truncated');
          value = valueSerde.deserialize(bytes.subarray(at, at + length), context);
          at += length;
        }
        records.push({ timestamp, seq, matched: (flags & FLAG_MATCHED) !== 0, value });
      }
      if (at !== bytes.length) throw deserializationError(context, `${bytes.length - at} bytes after the last buffered record`);
      return records;
    },
  };
}

/** Index of the first buffered record with a timestamp ≥ `timestampMs`. */
function firstAtOrAfter(records: RecordBuffer<unknown>, timestampMs: number): number {
  let lo = 0;
  let hi = records.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (records[mid]!.timestamp < timestampMs) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A buffered record as the in-memory close index knows it. */
interface OpenRecord<K> {
  readonly closeMs: number;
  readonly seq: number;
  readonly side: JoinSide;
  readonly key: K;
}

function before(a: OpenRecord<unknown>, b: OpenRecord<unknown>): boolean {
  return a.closeMs < b.closeMs || (a.closeMs === b.closeMs && a.seq < b.seq);
}

/** A binary min-heap of open records by (close time, seq). */
class CloseIndex<K> {
  readonly #heap: Array<OpenRecord<K>> = [];

  get size(): number {
    return this.#heap.length;
  }

  peek(): OpenRecord<K> | undefined {
    return this.#heap[0];
  }

  push(entry: OpenRecord<K>): void {
    const heap = this.#heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >>> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  pop(): OpenRecord<K> | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      if (l < heap.length && before(heap[l]!, heap[smallest]!)) smallest = l;
      if (r < heap.length && before(heap[r]!, heap[smallest]!)) smallest = r;
      if (smallest === i) return top;
      [heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!];
      i = smallest;
    }
  }
}

export interface StreamStreamJoinSpec<K, VL, VR, VO> {
  readonly kind: JoinKind;
  readonly windows: JoinWindows;
  readonly leftStore: string;
  readonly rightStore: string;
  /** `left` is `null` only for an unmatched right record of an outer join; `right` only for left and outer joins. */
  readonly joiner: (left: VL | null, right: VR | null, key: K) => VO;
}

/**
 * A windowed stream–stream join in event time, one node fed by both sides (tagged by `joinSideProcessor`).
 *
 * - Each side is buffered per key in its own store: one value per key with its records (timestamp, seq, matched,
 *   value) in time order.
 * - A record joins the other side's buffered records of its key within the window; each pair is forwarded once,
 *   `joiner(left, right)` at the later of the two timestamps, when the second of the two is processed.
 * - A record at `t` is late when `t + grace` is behind the watermark (stream time − allowed lateness): it goes to
 *   the late-records topic (`MILLRACE_LATE_RECORD`, reason `late`) and joins nothing.
 * - A buffered record closes when the watermark passes `t + after + grace` (left) or `t + before + grace` (right):
 *   every record that could still pair with it would be late. Closed records are dropped from the buffer; a left
 *   (left and outer joins) or right (outer joins) record that never matched is forwarded then, exactly once, joined
 *   with `null`, at its own timestamp. Closing is checked after every record the join processes, and whenever
 *   stream time moves on a record of another input of the task: it is driven by stream time, so deterministic.
 *   (A task that receives no records closes nothing: there is no wall-clock close.)
 *
 * So the output is exactly: every pair of non-late records within the window, plus, for left/outer joins, the
 * non-late records of the outer side(s) that have no such pair. Lateness is judged on the record's own time, not
 * on the end of its window: a left record admitted until the watermark passed `tl + after + grace` could meet a
 * right record `before` ms earlier whose window had closed, already forwarded as unmatched; "every pair" and
 * "unmatched exactly once" could not both hold.
 *
 * The close index lives in memory, ordered by close time, and is rebuilt from the buffers in `init`. A record whose
 * processing fails is rolled back in the stores by the task (whether it failed here or in another branch); records
 * the index gave up while closing are taken back at the start of the next record or punctuation, if the store still
 * holds them.
 */
export function streamStreamJoinProcessor<K, VL, VR, VO>(spec: StreamStreamJoinSpec<K, VL, VR, VO>): ProcessorSupplier<K, SideValue<VL | VR>, K, VO> {
  return () => new StreamStreamJoin<K, VL, VR, VO>(spec);
}

class StreamStreamJoin<K, VL, VR, VO> implements Processor<K, SideValue<VL | VR>, K, VO> {
  readonly #spec: StreamStreamJoinSpec<K, VL, VR, VO>;
  readonly #open = new CloseIndex<K>();
  /** Records taken off the index by the last unit of work: if their closing was rolled back, they are open again. */
  #taken: Array<OpenRecord<K>> = [];
  #nextSeq = 0;
  #left!: KeyValueStore<K, RecordBuffer<VL>>;
  #right!: KeyValueStore<K, RecordBuffer<VR>>;

  constructor(spec: StreamStreamJoinSpec<K, VL, VR, VO>) {
    this.#spec = spec;
  }

  init(ctx: ProcessorContext<K, VO>): void | Promise<void> {
    this.#left = ctx.store(this.#spec.leftStore);
    this.#right = ctx.store(this.#spec.rightStore);
    // Stream time may also move on records that never reach this node (other inputs of the task): close then too.
    ctx.schedule(1, 'stream-time', () => this.#closeAsOneUnit(ctx.watermarkMs(), ctx));
    const reopen = (side: JoinSide) => (key: K, records: RecordBuffer<unknown>): void => {
      for (const record of records) {
        this.#open.push({ closeMs: this.#spec.windows.closeTime(side, record.timestamp), seq: record.seq, side, key });
        if (record.seq >= this.#nextSeq) this.#nextSeq = record.seq + 1;
      }
    };
    const left = this.#left.forEach(reopen('left'));
    const right = this.#right.forEach(reopen('right'));
    if (left === undefined && right === undefined) return;
    return Promise.all([left, right]).then(() => undefined);
  }

  process(record: StreamRecord<K, SideValue<VL | VR>>, ctx: ProcessorContext<K, VO>): void {
    if (isNullish(record.key)) throw nullKey(ctx.nodeName, 'a record without a key cannot be joined');
    const { graceMs } = this.#spec.windows;
    const watermark = ctx.watermarkMs();
    if (record.timestamp + graceMs < watermark) {
      throw new MillraceError(
        'MILLRACE_LATE_RECORD',
        `${ctx.nodeName}: ${record.value.side} record at ${record.timestamp} is late: the watermark ${watermark} passed its time + grace (${graceMs} ms), so the records it could join are closed`,
        { details: { reason: 'late', side: record.value.side, recordTimestamp: record.timestamp, watermark, streamTime: ctx.streamTimeMs(), graceMs } },
      );
    }
    this.#closeAsOneUnit(watermark, ctx, () => this.#join(record, ctx));
  }

  /**
   * One unit of work of this node: `work`, then closing what the watermark has passed. First, records whose closing
   * an earlier unit rolled back are taken back.
   */
  #closeAsOneUnit(watermark: number, ctx: ProcessorContext<K, VO>, work?: () => void): void {
    this.#retake();
    work?.();
    this.#close(watermark, ctx);
  }

  #emitsUnmatched(side: JoinSide): boolean {
    const { kind } = this.#spec;
    return kind === 'outer' || (kind === 'left' && side === 'left');
  }

  #join(record: StreamRecord<K, SideValue<VL | VR>>, ctx: ProcessorContext<K, VO>): void {
    const { windows, joiner } = this.#spec;
    const { key, timestamp } = record;
    const { side, value } = record.value;
    const own = (side === 'left' ? this.#left : this.#right) as KeyValueStore<K, RecordBuffer<unknown>>;
    const other = (side === 'left' ? this.#right : this.#left) as KeyValueStore<K, RecordBuffer<unknown>>;
    const from = side === 'left' ? timestamp - windows.beforeMs : timestamp - windows.afterMs;
    const to = side === 'left' ? timestamp + windows.afterMs : timestamp + windows.beforeMs;
    const partners = other.get(key) ?? [];
    const trackPartners = this.#emitsUnmatched(side === 'left' ? 'right' : 'left');
    let updated: Array<BufferedRecord<unknown>> | undefined;
    let matched = false;
    for (let i = firstAtOrAfter(partners, from); i < partners.length && partners[i]!.timestamp <= to; i++) {
      const partner = partners[i]!;
      matched = true;
      const joined = side === 'left'
        ? joiner(value as VL, partner.value as VR | null, key)
        : joiner(partner.value as VL | null, value as VR, key);
      ctx.forward({ key, value: joined, timestamp: Math.max(timestamp, partner.timestamp), headers: record.headers });
      if (trackPartners && !partner.matched) {
        updated ??= [...partners];
        updated[i] = { ...partner, matched: true };
      }
    }
    if (updated !== undefined) other.put(key, updated);
    const seq = this.#nextSeq++;
    const buffered = own.get(key) ?? [];
    // Sequences only grow, so the record goes after every buffered one with its timestamp.
    const at = firstAtOrAfter(buffered, timestamp + 1);
    own.put(key, [...buffered.slice(0, at), { timestamp, seq, matched, value: value ?? null }, ...buffered.slice(at)]);
    this.#open.push({ closeMs: windows.closeTime(side, timestamp), seq, side, key });
  }

  /** Drops the buffered records the watermark has closed, forwarding the unmatched ones of an outer side. */
  #close(watermark: number, ctx: ProcessorContext<K, VO>): void {
    const { windows, joiner } = this.#spec;
    for (let open = this.#open.peek(); open !== undefined && open.closeMs < watermark; open = this.#open.peek()) {
      this.#open.pop();
      this.#taken.push(open);
      const { side, key } = open;
      const store = (side === 'left' ? this.#left : this.#right) as KeyValueStore<K, RecordBuffer<unknown>>;
      const buffered = store.get(key);
      if (buffered === undefined) continue;
      // Closed: closeTime(side, t) < watermark, i.e. t < watermark − reach − grace; a prefix of the buffer.
      const closedCount = firstAtOrAfter(buffered, watermark - windows.reachAhead(side) - windows.graceMs);
      if (closedCount === 0) continue;
      if (closedCount === buffered.length) store.delete(key);
      else store.put(key, buffered.slice(closedCount));
      if (!this.#emitsUnmatched(side)) continue;
      for (const closed of buffered.slice(0, closedCount)) {
        if (closed.matched) continue;
        const joined = side === 'left' ? joiner(closed.value as VL | null, null, key) : joiner(null, closed.value as VR | null, key);
        ctx.forward({ key, value: joined, timestamp: closed.timestamp, headers: EMPTY_HEADERS });
      }
    }
  }

  /**
   * At the start of a unit of work, when every earlier one has committed or rolled back: records taken off the index
   * whose closing was rolled back (the store still holds them) are open again.
   */
  #retake(): void {
    const taken = this.#taken;
    this.#taken = [];
    for (const open of taken) {
      const store = (open.side === 'left' ? this.#left : this.#right) as KeyValueStore<K, RecordBuffer<unknown>>;
      if (store.get(open.key)?.some((r) => r.seq === open.seq) === true) this.#open.push(open);
    }
  }
}
