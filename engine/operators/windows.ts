import type { TimeWindow } from '../topology/record.js';

/**
 * Event-time windows. Every kind shares one notion of time:
 *
 * - The **watermark** W is the task's `watermarkMs()`: stream time − the topology's `allowedLatenessMs`, raised
 *   further when an idle operator closes its windows (`advanceWatermark`).
 * - A window is written as a `TimeWindow` [start, end) with an exclusive `end`. It is **closed** once
 *   `closeTime <= W`, where `closeTime = end + graceMs` (sessions add their inactivity gap: see `SessionWindows`).
 *   A closed window never changes again: its final result is known.
 * - A record is **late** for a window that is closed when the record is processed.
 *
 * Windows never start before the epoch: event times are non-negative.
 */
export type WindowKind = 'tumbling' | 'hopping' | 'sliding' | 'session';

export interface GraceOptions {
  /** How long after a window ends (in watermark time) records for it are still accepted; default 0. */
  readonly graceMs?: number;
}

function requireSize(what: string, ms: number): void {
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new RangeError(`${what} must be a positive integer of ms, got ${ms}`);
}

function requireGrace(ms: number): void {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`grace must be a non-negative integer of ms, got ${ms}`);
}

/**
 * Windows of a fixed size aligned to the epoch: which windows a record belongs to follows from its timestamp alone.
 * Tumbling windows are hopping windows whose advance equals their size.
 */
export interface FixedWindows {
  readonly kind: 'tumbling' | 'hopping';
  readonly sizeMs: number;
  /** Distance between the starts of consecutive windows. */
  readonly advanceMs: number;
  readonly graceMs: number;
  /** The windows a record with this timestamp belongs to, in start order. */
  windowsFor(timestampMs: number): TimeWindow[];
  describe(): Record<string, unknown>;
}

/** Fixed-size, non-overlapping windows aligned to the epoch: [k·size, (k+1)·size). */
export class TumblingWindows implements FixedWindows {
  readonly kind = 'tumbling';
  readonly sizeMs: number;
  readonly graceMs: number;

  private constructor(sizeMs: number, graceMs: number) {
    requireSize('window size', sizeMs);
    requireGrace(graceMs);
    this.sizeMs = sizeMs;
    this.graceMs = graceMs;
  }

  static of(sizeMs: number, options: GraceOptions = {}): TumblingWindows {
    return new TumblingWindows(sizeMs, options.graceMs ?? 0);
  }

  get advanceMs(): number {
    return this.sizeMs;
  }

  windowsFor(timestampMs: number): TimeWindow[] {
    const start = timestampMs - (timestampMs % this.sizeMs);
    return [{ start, end: start + this.sizeMs }];
  }

  describe(): Record<string, unknown> {
    return { kind: this.kind, sizeMs: this.sizeMs, graceMs: this.graceMs };
  }
}

/**
 * Fixed-size windows that overlap: [k·advance, k·advance + size) for every k ≥ 0, so a record belongs to up to
 * ⌈size / advance⌉ windows (those whose range contains its timestamp). 0 < advance ≤ size.
 */
export class HoppingWindows implements FixedWindows {
  readonly kind = 'hopping';
  readonly sizeMs: number;
  readonly advanceMs: number;
  readonly graceMs: number;

  private constructor(sizeMs: number, advanceMs: number, graceMs: number) {
    requireSize('window size', sizeMs);
    requireSize('window advance', advanceMs);
    if (advanceMs > sizeMs) {
      throw new RangeError(`a hopping window's advance (${advanceMs} ms) must not exceed its size (${sizeMs} ms): records between windows would belong to none`);
    }
    requireGrace(graceMs);
    this.sizeMs = sizeMs;
    this.advanceMs = advanceMs;
    this.graceMs = graceMs;
  }

  static of(sizeMs: number, advanceMs: number, options: GraceOptions = {}): HoppingWindows {
    return new HoppingWindows(sizeMs, advanceMs, options.graceMs ?? 0);
  }

  windowsFor(timestampMs: number): TimeWindow[] {
    // The first window holding the timestamp starts at the smallest multiple of advance above timestamp − size.
    let start = Math.max(0, (Math.floor((timestampMs - this.sizeMs) / this.advanceMs) + 1) * this.advanceMs);
    const windows: TimeWindow[] = [];
    for (; start <= timestampMs; start += this.advanceMs) windows.push({ start, end: start + this.sizeMs });
    return windows;
  }

  describe(): Record<string, unknown> {
    return { kind: this.kind, sizeMs: this.sizeMs, advanceMs: this.advanceMs, graceMs: this.graceMs };
  }
}

/**
 * Rolling windows anchored at records ("the sum over the last 10 minutes at each event"). Per key, every record
 * with timestamp t defines the window [t − size, t], both ends inclusive, holding every record of that key with a
 * timestamp in that range; records with equal timestamps share one window.
 *
 * - As a `TimeWindow` it is [max(0, t − size), t + 1): `end − 1` is the anchoring timestamp, and the exclusive end
 *   t + 1 is what closing uses: the window closes once t + 1 + grace ≤ watermark.
 * - An out-of-order record at t′ that is not late also joins the existing windows anchored at the key's records in
 *   [t′, t′ + size] (they are all still open, since they end no earlier than its own).
 * - A record is late iff its own window is closed; a late record changes nothing.
 */
export class SlidingWindows {
  readonly kind = 'sliding';
  readonly sizeMs: number;
  readonly graceMs: number;

  private constructor(sizeMs: number, graceMs: number) {
    requireSize('window size', sizeMs);
    requireGrace(graceMs);
    this.sizeMs = sizeMs;
    this.graceMs = graceMs;
  }

  static of(sizeMs: number, options: GraceOptions = {}): SlidingWindows {
    return new SlidingWindows(sizeMs, options.graceMs ?? 0);
  }

  /** The window anchored at a record with this timestamp. */
  windowAt(timestampMs: number): TimeWindow {
    return { start: Math.max(0, timestampMs - this.sizeMs), end: timestampMs + 1 };
  }

  /** When the window anchored at `timestampMs` closes (in watermark time). */
  closeTimeMs(timestampMs: number): number {
    return timestampMs + 1 + this.graceMs;
  }

  describe(): Record<string, unknown> {
    return { kind: this.kind, sizeMs: this.sizeMs, graceMs: this.graceMs };
  }
}

/**
 * Activity sessions. Per key, records whose timestamps are at most the inactivity gap apart (|t1 − t2| ≤ gap) join
 * one session spanning [first, last], both inclusive; a record that bridges several sessions merges them.
 *
 * - As a `TimeWindow` a session is [first, last + 1).
 * - A session can no longer grow once watermark − grace > last + gap: that is its close, i.e. it closes once
 *   last + 1 + gap + grace ≤ watermark.
 * - A record is late iff it can neither join a session that is still open nor form one: on its own it would be
 *   the session [t, t], closed once t + 1 + gap + grace ≤ watermark. A record that is not late but lies within the
 *   gap of a closed session starts a new session: the closed one has already been emitted.
 */
export class SessionWindows {
  readonly kind = 'session';
  readonly inactivityGapMs: number;
  readonly graceMs: number;

  private constructor(inactivityGapMs: number, graceMs: number) {
    requireSize('inactivity gap', inactivityGapMs);
    requireGrace(graceMs);
    this.inactivityGapMs = inactivityGapMs;
    this.graceMs = graceMs;
  }

  static withGap(inactivityGapMs: number, options: GraceOptions = {}): SessionWindows {
    return new SessionWindows(inactivityGapMs, options.graceMs ?? 0);
  }

  /** The session spanning [firstMs, lastMs]. */
  windowOf(firstMs: number, lastMs: number): TimeWindow {
    return { start: firstMs, end: lastMs + 1 };
  }

  /** When a session whose last record is at `lastMs` closes (in watermark time). */
  closeTimeMs(lastMs: number): number {
    return lastMs + 1 + this.inactivityGapMs + this.graceMs;
  }

  describe(): Record<string, unknown> {
    return { kind: this.kind, inactivityGapMs: this.inactivityGapMs, graceMs: this.graceMs };
  }
}

/** Windows whose windowed stream is a `TimeWindowedKStream`. */
export type TimeWindowSpec = TumblingWindows | HoppingWindows | SlidingWindows;

/** Any way of windowing a grouped stream: `groupByKey(...).windowedBy(spec)`. */
export type WindowSpec = TimeWindowSpec | SessionWindows;

export const TimeWindows = {
  /** [k·size, (k+1)·size). */
  tumbling: (sizeMs: number, options: GraceOptions = {}): TumblingWindows => TumblingWindows.of(sizeMs, options),
  /** [k·advance, k·advance + size), 0 < advance ≤ size. */
  hopping: (sizeMs: number, advanceMs: number, options: GraceOptions = {}): HoppingWindows => HoppingWindows.of(sizeMs, advanceMs, options),
  /** [t − size, t] at each record: see `SlidingWindows`. */
  sliding: (sizeMs: number, options: GraceOptions = {}): SlidingWindows => SlidingWindows.of(sizeMs, options),
} as const;
