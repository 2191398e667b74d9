import { MillraceError } from '../errors.js';
import { deserializationError, type Serde, type SerdeContext } from '../serde/serde.js';
import type { KeyValueStore } from '../state/key-value-store.js';
import type { Processor, ProcessorContext, ProcessorInspection, ProcessorSupplier } from '../topology/processor.js';
import { EMPTY_HEADERS, type StreamRecord, type TimeWindow, type Windowed } from '../topology/record.js';
import { requireKeyAndValue, type Aggregator, type Initializer, type Merger } from './aggregate.js';
import type { FixedWindows, SessionWindows, SlidingWindows, WindowSpec } from './windows.js';

/**
 * Windowed aggregation in event time, for every kind of window (see `windows.ts` for what the watermark, a closed
 * window and a late record are).
 *
 * Emission:
 * - `update` forwards every change as it happens, with the timestamp of the record that caused it. A session that
 *   a record extends or merges is replaced: a tombstone (value `null`) is forwarded for each replaced session, in
 *   start order, then the new one.
 * - `final` forwards each window exactly once, when it closes, with its final aggregate and the timestamp of the
 *   window's last instant (`end − 1`). Windows that close together are forwarded by close time, then by the bytes
 *   of the grouping key, then by window start.
 *
 * Closing is driven by stream time: a stream-time punctuator runs after every record that advances the task's
 * stream time (only then does the watermark move, apart from an idle close), so a replay closes the same windows at
 * the same records. Closed windows are removed from the store in both modes. With `idleCloseMs`, a wall-clock
 * punctuator closes every open window once the task has read nothing for that long, and raises the watermark to
 * the latest close time among them, so records for those windows are late from then on.
 *
 * Records are processed with synchronous `get`/`put`/`delete` only; the store is scanned once, in `init`, to
 * rebuild the in-memory index of when each store entry next has a window to close.
 */

export type EmitMode = 'update' | 'final';

export const EMIT_MODES: readonly EmitMode[] = ['update', 'final'];

/** How often, at most, an idle check runs: often enough that an idle close comes at most this late. */
export const IDLE_CHECK_MAX_INTERVAL_MS = 1_000;

export interface WindowedAggregateConfig<K, V, A> {
  readonly storeName: string;
  /** The grouping key's serde: orders windows that close together, by the key's bytes. */
  readonly keySerde: Serde<K>;
  readonly initializer: Initializer<A>;
  readonly aggregator: Aggregator<K, V, A>;
  /** Session windows only: combines the aggregates of sessions that a record merges. */
  readonly merger?: Merger<K, A>;
  readonly emit: EmitMode;
  /** Close every open window once the task has read nothing for this long (wall-clock ms). */
  readonly idleCloseMs?: number;
}

/** A processor that aggregates records into windows of the given kind. Its store must use `windowStoreSerdes`. */
export function windowedAggregateProcessor<K, V, A>(
  windows: WindowSpec,
  config: WindowedAggregateConfig<K, V, A>,
): ProcessorSupplier<K, V, Windowed<K>, A | null> {
  switch (windows.kind) {
    case 'tumbling':
    case 'hopping':
      return () => new FixedWindowAggregate<K, V, A>(windows, config);
    case 'sliding':
      return () => new SlidingWindowAggregate<K, V, A>(windows, config);
    case 'session': {
      const merger = config.merger;
      if (merger === undefined) throw new TypeError(`${config.storeName}: aggregating session windows needs a merger`);
      return () => new SessionWindowAggregate<K, V, A>(windows, config, merger);
    }
  }
}

/**
 * The serdes of a windowed aggregation's store. Tumbling and hopping windows: one entry per window, keyed
 * [start][key] (`windowKeySerde`). Sliding and session windows: one entry per grouping key holding that key's open
 * windows (and, for sliding windows, the records a window yet to come may still need).
 */
export function windowStoreSerdes<K, V, A>(
  windows: WindowSpec,
  keySerde: Serde<K>,
  valueSerde: Serde<V>,
  aggregateSerde: Serde<A>,
): { keySerde: Serde<unknown>; valueSerde: Serde<unknown> } {
  switch (windows.kind) {
    case 'tumbling':
    case 'hopping':
      return { keySerde: windowKeySerde(keySerde) as Serde<unknown>, valueSerde: aggregateSerde as Serde<unknown> };
    case 'sliding':
      return { keySerde: keySerde as Serde<unknown>, valueSerde: slidingStateSerde(valueSerde, aggregateSerde) as Serde<unknown> };
    case 'session':
      return { keySerde: keySerde as Serde<unknown>, valueSerde: sessionStateSerde(aggregateSerde) as Serde<unknown> };
  }
}

// ------------------------------------------------------------------------------------------------ store layouts

/** A store key of a tumbling or hopping window store: window start first, so windows sort by start. */
export interface WindowKey<K> {
  readonly start: number;
  readonly key: K;
}

export function windowKeySerde<K>(inner: Serde<K>): Serde<WindowKey<K>> {
  return {
    name: `window(${inner.name})`,
    serialize(value, context) {
      const key = inner.serialize(value.key, context);
      const out = Buffer.allocUnsafe(8 + key.length);
      out.writeBigUInt64BE(BigInt(value.start), 0);
      key.copy(out, 8);
      return out;
    },
    deserialize(bytes, context) {
      if (bytes.length < 8) throw deserializationError(context, 'window key shorter than 8 bytes');
      return { start: Number(bytes.readBigUInt64BE(0)), key: inner.deserialize(bytes.subarray(8), context) };
    },
  };
}

/** What a sliding-window store holds for one key. */
export interface SlidingState<V, A> {
  /** The key's records that an open window or one yet to come may still need, in arrival order. */
  readonly records: ReadonlyArray<{ readonly timestampMs: number; readonly value: V }>;
  /** The key's windows by anchoring timestamp, ascending: the window at t is [t − size, t]. */
  readonly windows: ReadonlyArray<{ readonly atMs: number; readonly aggregate: A }>;
}

/** What a session-window store holds for one key. */
export interface SessionState<A> {
  /** The key's sessions [firstMs, lastMs] (both inclusive) by first record. */
  readonly sessions: ReadonlyArray<{ readonly firstMs: number; readonly lastMs: number; readonly aggregate: A }>;
}

/** Count, then per record: timestamp, value; count, then per window: anchor, aggregate. Values via their serdes. */
export function slidingStateSerde<V, A>(valueSerde: Serde<V>, aggregateSerde: Serde<A>): Serde<SlidingState<V, A>> {
  return {
    name: `sliding(${valueSerde.name},${aggregateSerde.name})`,
    serialize(state, context) {
      const out = new ByteWriter();
      out.u32(state.records.length);
      for (const r of state.records) out.time(r.timestampMs).bytes(valueSerde.serialize(r.value, context));
      out.u32(state.windows.length);
      for (const w of state.windows) out.time(w.atMs).bytes(aggregateSerde.serialize(w.aggregate, context));
      return out.finish();
    },
    deserialize(bytes, context) {
      const input = new ByteReader(bytes, context);
      const records: Array<SlidingState<V, A>['records'][number]> = [];
      for (let n = input.u32(); n > 0; n--) {
        const timestampMs = input.time();
        records.push({ timestampMs, value: valueSerde.deserialize(input.bytes(), context) });
      }
      const windows: Array<SlidingState<V, A>['windows'][number]> = [];
      for (let n = input.u32(); n > 0; n--) {
        const atMs = input.time();
        windows.push({ atMs, aggregate: aggregateSerde.deserialize(input.bytes(), context) });
      }
      input.end();
      return { records, windows };
    },
  };
}

/** Count, then per session: first, last, aggregate (via its serde). */
export function sessionStateSerde<A>(aggregateSerde: Serde<A>): Serde<SessionState<A>> {
  return {
    name: `session(${aggregateSerde.name})`,
    serialize(state, context) {
      const out = new ByteWriter();
      out.u32(state.sessions.length);
      for (const s of state.sessions) out.time(s.firstMs).time(s.lastMs).bytes(aggregateSerde.serialize(s.aggregate, context));
      return out.finish();
    },
    deserialize(bytes, context) {
      const input = new ByteReader(bytes, context);
      const sessions: Array<SessionState<A>['sessions'][number]> = [];
      for (let n = input.u32(); n > 0; n--) {
        const firstMs = input.time();
        const lastMs = input.time();
        sessions.push({ firstMs, lastMs, aggregate: aggregateSerde.deserialize(input.bytes(), context) });
      }
      input.end();
      return { sessions };
    },
  };
}

class ByteWriter {
  readonly #chunks: Buffer[] = [];

  u32(n: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(n, 0);
    this.#chunks.push(b);
    return this;
  }

  time(ms: number): this {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleBE(ms, 0);
    this.#chunks.push(b);
    return this;
  }

  bytes(bytes: Buffer): this {
    this.u32(bytes.length);
    this.#chunks.push(bytes);
    return this;
  }

  finish(): Buffer {
    return Buffer.concat(this.#chunks);
  }
}

/** Reads what `ByteWriter` wrote; never trusts a count or length beyond the bytes that are there. */
class ByteReader {
  readonly #bytes: Buffer;
  readonly #context: SerdeContext;
  #at = 0;

  constructor(bytes: Buffer, context: SerdeContext) {
    this.#bytes = bytes;
    this.#context = context;
  }

  u32(): number {
    this.#need(4);
    const n = this.#bytes.readUInt32BE(this.#at);
    this.#at += 4;
    return n;
  }

  time(): number {
    this.#need(8);
    const ms = this.#bytes.readDoubleBE(this.#at);
    this.#at += 8;
    if (!Number.isSafeInteger(ms) || ms < 0) throw deserializationError(this.#context, `window state holds an invalid time ${ms}`);
    return ms;
  }

  bytes(): Buffer {
    const length = this.u32();
    this.#need(length);
    const out = this.#bytes.subarray(this.#at, this.#at + length);
    this.#at += length;
    return out;
  }

  end(): void {
    if (this.#at !== this.#bytes.length) throw deserializationError(this.#context, `window state has ${this.#bytes.length - this.#at} trailing bytes`);
  }

  #need(n: number): void {
    if (this.#bytes.length - this.#at < n) throw deserializationError(this.#context, 'window state is truncated');
  }
}

// ------------------------------------------------------------------------------------------------ close index

/** "At `atMs`, store entry `slot` may have a window to close." */
interface Hint<S> {
  readonly atMs: number;
  /** The grouping key's bytes as a latin1 string: compares in byte order. */
  readonly keyId: string;
  readonly start: number;
  readonly id: string;
  readonly slot: S;
}

function compareHints<S>(a: Hint<S>, b: Hint<S>): number {
  return a.atMs - b.atMs || (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0) || a.start - b.start;
}

/**
 * When each store entry next has work, as a min-heap by (time, key bytes, start). A hint may be early (the entry
 * is checked and rescheduled) but never late: each entry's scheduled time only goes down until it is taken.
 * A hint superseded by an earlier one for the same entry stays in the heap and is skipped when it comes up.
 */
class CloseIndex<S> {
  readonly #heap: Array<Hint<S>> = [];
  readonly #scheduled = new Map<string, number>();

  schedule(hint: Hint<S>): void {
    const current = this.#scheduled.get(hint.id);
    if (current !== undefined && current <= hint.atMs) return;
    this.#scheduled.set(hint.id, hint.atMs);
    const heap = this.#heap;
    heap.push(hint);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (compareHints(heap[parent]!, hint) <= 0) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = hint;
  }

  /** The earliest hint due at or before `limitMs`, taken out of the index. */
  takeDue(limitMs: number): Hint<S> | undefined {
    while (this.#heap.length > 0) {
      const top = this.#heap[0]!;
      if (top.atMs > limitMs) return undefined;
      this.#pop();
      if (this.#scheduled.get(top.id) !== top.atMs) continue;
      this.#scheduled.delete(top.id);
      return top;
    }
    return undefined;
  }

  /** Entries with work scheduled, and the earliest time of it (a linear pass: for status reads only). */
  pending(): { count: number; nextMs: number | null } {
    let next = Number.POSITIVE_INFINITY;
    for (const atMs of this.#scheduled.values()) if (atMs < next) next = atMs;
    return { count: this.#scheduled.size, nextMs: Number.isFinite(next) ? next : null };
  }

    /** Every hint, in order, leaving the index empty. */
  drain(): Array<Hint<S>> {
    const out: Array<Hint<S>> = [];
    for (let hint = this.takeDue(Infinity); hint !== undefined; hint = this.takeDue(Infinity)) out.push(hint);
    return out;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && compareHints(heap[right]!, heap[left]!) < 0 ? right : left;
      if (compareHints(heap[child]!, last) >= 0) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
  }
}

// ------------------------------------------------------------------------------------------------ operators

interface ClosedWindow<A> {
  readonly window: TimeWindow;
  readonly closeTimeMs: number;
  readonly aggregate: A;
}

interface SlotClose<SV, A> {
  /** Closed windows in start order. */
  readonly closed: Array<ClosedWindow<A>>;
  /** What the entry holds afterwards: the same object if nothing changed, `undefined` to delete it. */
  readonly remaining: SV | undefined;
}

type Context<K, A> = ProcessorContext<Windowed<K>, A | null>;

function iso(ms: number): string {
  return Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : String(ms);
}

function lateDetails(ctx: Context<unknown, unknown>, record: StreamRecord<unknown, unknown>, graceMs: number, windows: readonly TimeWindow[], extra: Record<string, unknown>): Record<string, unknown> {
  return {
    recordTimestamp: record.timestamp,
    watermark: ctx.watermarkMs(),
    streamTime: ctx.streamTimeMs(),
    graceMs,
    ...extra,
    windows: windows.map((w) => ({ start: w.start, end: w.end })),
  };
}

/** All of the record's windows are closed: it goes to the late-records topic and changes nothing. */
function lateError(ctx: Context<unknown, unknown>, record: StreamRecord<unknown, unknown>, graceMs: number, windows: readonly TimeWindow[], extra: Record<string, unknown> = {}): MillraceError {
  return new MillraceError(
    'MILLRACE_LATE_RECORD',
    `${ctx.nodeName}: record at ${iso(record.timestamp)} is late: ${windows.length === 1 ? 'its window' : `all ${windows.length} of its windows`} closed when the watermark passed end + grace (watermark ${iso(ctx.watermarkMs())}, grace ${graceMs} ms)`,
    { details: { reason: 'late', ...lateDetails(ctx, record, graceMs, windows, extra) } },
  );
}

/**
 * What every window kind shares: the store handle, the close index and its rebuild, closing as stream time passes
 * and on idleness, and final emission. Subclasses say how records land in store entries ("slots") and how a slot's
 * windows close.
 *
 * The index lives outside the task's rollback: if a unit of work that closed windows is rolled back (a downstream
 * node threw), the store gets those windows back but the index has let them go. So every slot a close touched is
 * checked again at the start of the next close pass, and rescheduled if it still holds windows.
 */
abstract class WindowAggregateBase<K, V, A, SK, SV> implements Processor<K, V, Windowed<K>, A | null> {
  protected readonly config: WindowedAggregateConfig<K, V, A>;
  readonly #keyContext: SerdeContext;
  readonly #index = new CloseIndex<SK>();
  #touched: SK[] = [];
  #context: Context<K, A> | undefined;
  #store: KeyValueStore<SK, SV> | undefined;

  constructor(config: WindowedAggregateConfig<K, V, A>) {
    this.config = config;
    this.#keyContext = { topic: `store:${config.storeName}`, isKey: true };
  }

  protected get store(): KeyValueStore<SK, SV> {
    return this.#store!;
  }

  init(ctx: Context<K, A>): void | Promise<void> {
    this.#context = ctx;
    this.#store = ctx.store<SK, SV>(this.config.storeName);
    // Interval 1: fires after every record that moves stream time, whichever node it reached.
    ctx.schedule(1, 'stream-time', () => {
      this.#reconcile();
      this.#closeUpTo(ctx.watermarkMs());
    });
    const idleCloseMs = this.config.idleCloseMs;
    if (idleCloseMs !== undefined) {
      ctx.schedule(Math.min(idleCloseMs, IDLE_CHECK_MAX_INTERVAL_MS), 'wall-clock', () => this.#onWallClock(idleCloseMs));
    }
    return this.#store.forEach((slot, value) => this.scheduleSlot(slot, value));
  }

  abstract process(record: StreamRecord<K, V>, ctx: Context<K, A>): void;

  inspect(): ProcessorInspection {
    const { count, nextMs } = this.#index.pending();
    return { openWindows: count, nextWindowCloseMs: nextMs };
  }

  /** The grouping key a slot belongs to. */
  protected abstract keyOf(slot: SK): K;
  /** The window start of a one-window slot; `undefined` for a slot holding all of a key's windows. */
  protected abstract startOf(slot: SK): number | undefined;
  /** When the slot next has a window to close or a record to let go; `undefined` if never. */
  protected abstract nextEventMs(slot: SK, value: SV): number | undefined;
  /** Closes the slot's windows whose close time is at most `closeUpToMs`, and drops what `watermarkMs` lets go. */
  protected abstract closeSlot(slot: SK, value: SV, closeUpToMs: number, watermarkMs: number): SlotClose<SV, A>;

  /** Makes sure the index checks the slot no later than its next event. */
  protected scheduleSlot(slot: SK, value: SV): void {
    const atMs = this.nextEventMs(slot, value);
    if (atMs === undefined) return;
    const keyId = this.config.keySerde.serialize(this.keyOf(slot), this.#keyContext).toString('latin1');
    const start = this.startOf(slot);
    this.#index.schedule({ atMs, keyId, start: start ?? 0, id: start === undefined ? keyId : `${start}/${keyId}`, slot });
  }

  /** Re-checks the slots the previous close touched, in case its unit of work was rolled back. */
  #reconcile(): void {
    if (this.#touched.length === 0) return;
    const touched = this.#touched;
    this.#touched = [];
    for (const slot of touched) {
      const value = this.store.get(slot);
      if (value !== undefined) this.scheduleSlot(slot, value);
    }
  }

  /** Closes every window whose close time is at most the watermark, in (close time, key bytes, start) order. */
  #closeUpTo(watermarkMs: number): void {
    for (let hint = this.#index.takeDue(watermarkMs); hint !== undefined; hint = this.#index.takeDue(watermarkMs)) {
      // Only windows closing at the hint's time: a later one of the same slot waits for its turn in the heap.
      for (const closed of this.#closeOne(hint.slot, hint.atMs, watermarkMs)) this.#emitFinal(hint.slot, closed);
    }
  }

  #closeOne(slot: SK, closeUpToMs: number, watermarkMs: number): Array<ClosedWindow<A>> {
    this.#touched.push(slot);
    const value = this.store.get(slot);
    if (value === undefined) return [];
    const { closed, remaining } = this.closeSlot(slot, value, closeUpToMs, watermarkMs);
    if (remaining === undefined) {
      this.store.delete(slot);
    } else {
      if (remaining !== value) this.store.put(slot, remaining);
      this.scheduleSlot(slot, remaining);
    }
    return closed;
  }

  #emitFinal(slot: SK, closed: ClosedWindow<A>): void {
    if (this.config.emit !== 'final') return;
    this.#context!.forward({
      key: { key: this.keyOf(slot), window: closed.window },
      value: closed.aggregate,
      timestamp: closed.window.end - 1,
      headers: EMPTY_HEADERS,
    });
  }

  /**
   * Idle close: once the task has read nothing for `idleCloseMs`, every open window closes now and the watermark
   * rises to the latest close time among them. Otherwise, windows the watermark closed meanwhile (another
   * operator's idle close raised it) close as after a record.
   */
  #onWallClock(idleCloseMs: number): void {
    const ctx = this.#context!;
    this.#reconcile();
    if (ctx.wallClockMs() - ctx.lastInputWallClockMs() < idleCloseMs) {
      this.#closeUpTo(ctx.watermarkMs());
      return;
    }
    const watermarkMs = ctx.watermarkMs();
    const closed: Array<{ hint: Hint<SK>; window: ClosedWindow<A> }> = [];
    for (const hint of this.#index.drain()) {
      for (const window of this.#closeOne(hint.slot, Infinity, watermarkMs)) closed.push({ hint, window });
    }
    if (closed.length === 0) return;
    closed.sort((a, b) => a.window.closeTimeMs - b.window.closeTimeMs || (a.hint.keyId < b.hint.keyId ? -1 : a.hint.keyId > b.hint.keyId ? 1 : 0) || a.window.window.start - b.window.window.start);
    let latestMs = -1;
    for (const { hint, window } of closed) {
      this.#emitFinal(hint.slot, window);
      latestMs = Math.max(latestMs, window.closeTimeMs);
    }
    ctx.advanceWatermark(latestMs);
    // What the raised watermark lets go (records a sliding window no longer needs).
    this.#closeUpTo(ctx.watermarkMs());
  }
}

/** Tumbling and hopping windows: one store entry per (window start, key) holding the aggregate. */
class FixedWindowAggregate<K, V, A> extends WindowAggregateBase<K, V, A, WindowKey<K>, A> {
  readonly #windows: FixedWindows;

  constructor(windows: FixedWindows, config: WindowedAggregateConfig<K, V, A>) {
    super(config);
    this.#windows = windows;
  }

  /**
   * Aggregates the record into each of its windows that is open. If some are closed and some open, the record
   * still counts in the open ones and is reported on the late-records topic naming the closed ones; if all are
   * closed it is late.
   */
  process(record: StreamRecord<K, V>, ctx: Context<K, A>): void {
    requireKeyAndValue(record, ctx.nodeName);
    const { graceMs } = this.#windows;
    const watermarkMs = ctx.watermarkMs();
    const open: TimeWindow[] = [];
    const closed: TimeWindow[] = [];
    for (const window of this.#windows.windowsFor(record.timestamp)) (window.end + graceMs <= watermarkMs ? closed : open).push(window);
    if (open.length === 0) throw lateError(ctx, record, graceMs, closed);
    if (closed.length > 0) {
      ctx.reportLate(
        `record at ${iso(record.timestamp)} is late for ${closed.length} of its ${closed.length + open.length} windows, which closed when the watermark passed end + grace; it counts in the others`,
        lateDetails(ctx, record, graceMs, closed, { countedIn: open.map((w) => ({ start: w.start, end: w.end })) }),
      );
    }
    const { initializer, aggregator } = this.config;
    for (const window of open) {
      const slot = { start: window.start, key: record.key };
      const current = this.store.get(slot);
      const next = aggregator(current === undefined ? initializer() : current, record.value, record);
      this.store.put(slot, next);
      if (current === undefined) this.scheduleSlot(slot, next);
      if (this.config.emit === 'update') ctx.forward({ key: { key: record.key, window }, value: next, timestamp: record.timestamp, headers: record.headers });
    }
  }

  protected keyOf(slot: WindowKey<K>): K {
    return slot.key;
  }

  protected startOf(slot: WindowKey<K>): number {
    return slot.start;
  }

  protected nextEventMs(slot: WindowKey<K>): number {
    return slot.start + this.#windows.sizeMs + this.#windows.graceMs;
  }

  protected closeSlot(slot: WindowKey<K>, value: A, closeUpToMs: number): SlotClose<A, A> {
    const end = slot.start + this.#windows.sizeMs;
    const closeTimeMs = end + this.#windows.graceMs;
    if (closeTimeMs > closeUpToMs) return { closed: [], remaining: value };
    return { closed: [{ window: { start: slot.start, end }, closeTimeMs, aggregate: value }], remaining: undefined };
  }
}

/**
 * Sliding windows: one store entry per key holding its windows (by anchoring timestamp) and the records a window
 * yet to come may still need. A record at t′ that is not late creates the window at t′ (if none is anchored there)
 * from the buffered records in [t′ − size, t′], then itself; and joins every existing window anchored in
 * [t′, t′ + size]. Buffered records are folded in arrival order, with their key, value and timestamp (not their
 * headers).
 *
 * A buffered record at r is let go once r + size + grace + 1 ≤ watermark: any record not late from then on has
 * t′ ≥ watermark − grace, so its window starts after r.
 */
class SlidingWindowAggregate<K, V, A> extends WindowAggregateBase<K, V, A, K, SlidingState<V, A>> {
  readonly #windows: SlidingWindows;

  constructor(windows: SlidingWindows, config: WindowedAggregateConfig<K, V, A>) {
    super(config);
    this.#windows = windows;
  }

  process(record: StreamRecord<K, V>, ctx: Context<K, A>): void {
    requireKeyAndValue(record, ctx.nodeName);
    const { sizeMs, graceMs } = this.#windows;
    const t = record.timestamp;
    const watermarkMs = ctx.watermarkMs();
    if (this.#windows.closeTimeMs(t) <= watermarkMs) throw lateError(ctx, record, graceMs, [this.#windows.windowAt(t)]);
    const { initializer, aggregator } = this.config;
    const state = this.store.get(record.key);
    const records = (state?.records ?? []).filter((r) => !this.#letGo(r.timestampMs, watermarkMs));
    const windows: Array<SlidingState<V, A>['windows'][number]> = [];
    const changed: Array<SlidingState<V, A>['windows'][number]> = [];
    let own = false;
    for (const window of state?.windows ?? []) {
      if (window.atMs < t || window.atMs > t + sizeMs) {
        windows.push(window);
        continue;
      }
      own ||= window.atMs === t;
      const updated = { atMs: window.atMs, aggregate: aggregator(window.aggregate, record.value, record) };
      windows.push(updated);
      changed.push(updated);
    }
    if (!own) {
      let aggregate = initializer();
      for (const r of records) {
        if (r.timestampMs < t - sizeMs || r.timestampMs > t) continue;
        aggregate = aggregator(aggregate, r.value, { key: record.key, value: r.value, timestamp: r.timestampMs, headers: EMPTY_HEADERS });
      }
      const created = { atMs: t, aggregate: aggregator(aggregate, record.value, record) };
      windows.push(created);
      windows.sort((a, b) => a.atMs - b.atMs);
      changed.unshift(created);
    }
    records.push({ timestampMs: t, value: record.value });
    const next: SlidingState<V, A> = { records, windows };
    this.store.put(record.key, next);
    this.scheduleSlot(record.key, next);
    if (this.config.emit === 'update') {
      for (const window of changed) {
        ctx.forward({ key: { key: record.key, window: this.#windows.windowAt(window.atMs) }, value: window.aggregate, timestamp: t, headers: record.headers });
      }
    }
  }

  #letGo(timestampMs: number, watermarkMs: number): boolean {
    return timestampMs + this.#windows.sizeMs + this.#windows.graceMs + 1 <= watermarkMs;
  }

  protected keyOf(slot: K): K {
    return slot;
  }

  protected startOf(): undefined {
    return undefined;
  }

  protected nextEventMs(_slot: K, state: SlidingState<V, A>): number | undefined {
    let next = Infinity;
    for (const w of state.windows) next = Math.min(next, this.#windows.closeTimeMs(w.atMs));
    for (const r of state.records) next = Math.min(next, r.timestampMs + this.#windows.sizeMs + this.#windows.graceMs + 1);
    return next === Infinity ? undefined : next;
  }

  protected closeSlot(_slot: K, state: SlidingState<V, A>, closeUpToMs: number, watermarkMs: number): SlotClose<SlidingState<V, A>, A> {
    const closed: Array<ClosedWindow<A>> = [];
    const windows: Array<SlidingState<V, A>['windows'][number]> = [];
    for (const w of state.windows) {
      const closeTimeMs = this.#windows.closeTimeMs(w.atMs);
      if (closeTimeMs <= closeUpToMs) closed.push({ window: this.#windows.windowAt(w.atMs), closeTimeMs, aggregate: w.aggregate });
      else windows.push(w);
    }
    const records = state.records.filter((r) => !this.#letGo(r.timestampMs, watermarkMs));
    if (windows.length === 0 && records.length === 0) return { closed, remaining: undefined };
    if (closed.length === 0 && records.length === state.records.length) return { closed, remaining: state };
    return { closed, remaining: { records, windows } };
  }
}

/**
 * Session windows: one store entry per key holding its sessions. A record joins every open session it is within
 * the gap of (first − gap ≤ t ≤ last + gap); several are merged with the merger, earliest first, and the record is
 * then aggregated into the result. A session the watermark has closed is never joined, even before the close pass
 * has taken it out of the store.
 */
class SessionWindowAggregate<K, V, A> extends WindowAggregateBase<K, V, A, K, SessionState<A>> {
  readonly #windows: SessionWindows;
  readonly #merger: Merger<K, A>;

  constructor(windows: SessionWindows, config: WindowedAggregateConfig<K, V, A>, merger: Merger<K, A>) {
    super(config);
    this.#windows = windows;
    this.#merger = merger;
  }

  process(record: StreamRecord<K, V>, ctx: Context<K, A>): void {
    requireKeyAndValue(record, ctx.nodeName);
    const { inactivityGapMs: gapMs, graceMs } = this.#windows;
    const t = record.timestamp;
    const watermarkMs = ctx.watermarkMs();
    const sessions = this.store.get(record.key)?.sessions ?? [];
    const joined: Array<SessionState<A>['sessions'][number]> = [];
    const kept: Array<SessionState<A>['sessions'][number]> = [];
    for (const session of sessions) {
      const open = this.#windows.closeTimeMs(session.lastMs) > watermarkMs;
      (open && session.firstMs - gapMs <= t && t <= session.lastMs + gapMs ? joined : kept).push(session);
    }
    if (joined.length === 0 && this.#windows.closeTimeMs(t) <= watermarkMs) {
      throw lateError(ctx, record, graceMs, [this.#windows.windowOf(t, t)], { inactivityGapMs: gapMs });
    }
    const { initializer, aggregator } = this.config;
    let aggregate: A;
    let firstMs = t;
    let lastMs = t;
    if (joined.length === 0) {
      aggregate = aggregator(initializer(), record.value, record);
    } else {
      let merged = joined[0]!.aggregate;
      for (const session of joined.slice(1)) merged = this.#merger(merged, session.aggregate, record.key);
      aggregate = aggregator(merged, record.value, record);
      for (const s of joined) {
        firstMs = Math.min(firstMs, s.firstMs);
        lastMs = Math.max(lastMs, s.lastMs);
      }
    }
    const session = { firstMs, lastMs, aggregate };
    const next: SessionState<A> = { sessions: [...kept, session].sort((a, b) => a.firstMs - b.firstMs) };
    this.store.put(record.key, next);
    this.scheduleSlot(record.key, next);
    if (this.config.emit === 'update') {
      for (const replaced of joined) {
        if (replaced.firstMs === firstMs && replaced.lastMs === lastMs) continue;
        ctx.forward({ key: { key: record.key, window: this.#windows.windowOf(replaced.firstMs, replaced.lastMs) }, value: null, timestamp: t, headers: record.headers });
      }
      ctx.forward({ key: { key: record.key, window: this.#windows.windowOf(firstMs, lastMs) }, value: aggregate, timestamp: t, headers: record.headers });
    }
  }

  protected keyOf(slot: K): K {
    return slot;
  }

  protected startOf(): undefined {
    return undefined;
  }

  protected nextEventMs(_slot: K, state: SessionState<A>): number | undefined {
    let next = Infinity;
    for (const s of state.sessions) next = Math.min(next, this.#windows.closeTimeMs(s.lastMs));
    return next === Infinity ? undefined : next;
  }

  protected closeSlot(_slot: K, state: SessionState<A>, closeUpToMs: number): SlotClose<SessionState<A>, A> {
    const closed: Array<ClosedWindow<A>> = [];
    const sessions: Array<SessionState<A>['sessions'][number]> = [];
    for (const s of state.sessions) {
      const closeTimeMs = this.#windows.closeTimeMs(s.lastMs);
      if (closeTimeMs <= closeUpToMs) closed.push({ window: this.#windows.windowOf(s.firstMs, s.lastMs), closeTimeMs, aggregate: s.aggregate });
      else sessions.push(s);
    }
    if (sessions.length === 0) return { closed, remaining: undefined };
    return { closed, remaining: closed.length === 0 ? state : { sessions } };
  }
}
