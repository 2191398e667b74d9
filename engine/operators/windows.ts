import type { TimeWindow } from '../topology/record.js';

/** A way of assigning records to time windows by event time. */
export interface WindowSpec {
  readonly kind: string;
  readonly sizeMs: number;
  /** How long after a window ends records for it are still accepted (measured in stream time). */
  readonly graceMs: number;
  /** The windows a record with this timestamp belongs to, in start order. */
  windowsFor(timestampMs: number): TimeWindow[];
  describe(): Record<string, unknown>;
}

/** Fixed-size, non-overlapping windows aligned to the epoch: [k·size, (k+1)·size). */
export class TumblingWindows implements WindowSpec {
  readonly kind = 'tumbling';
  readonly sizeMs: number;
  readonly graceMs: number;

  private constructor(sizeMs: number, graceMs: number) {
    if (!Number.isSafeInteger(sizeMs) || sizeMs <= 0) throw new RangeError(`window size must be a positive integer of ms, got ${sizeMs}`);
    if (!Number.isSafeInteger(graceMs) || graceMs < 0) throw new RangeError(`grace must be a non-negative integer of ms, got ${graceMs}`);
    this.sizeMs = sizeMs;
    this.graceMs = graceMs;
  }

  static of(sizeMs: number, options: { graceMs?: number } = {}): TumblingWindows {
    return new TumblingWindows(sizeMs, options.graceMs ?? 0);
  }

  windowsFor(timestampMs: number): TimeWindow[] {
    const start = timestampMs - (timestampMs % this.sizeMs);
    return [{ start, end: start + this.sizeMs }];
  }

  describe(): Record<string, unknown> {
    return { kind: this.kind, sizeMs: this.sizeMs, graceMs: this.graceMs };
  }
}

export const TimeWindows = {
  tumbling: (sizeMs: number, options: { graceMs?: number } = {}): WindowSpec => TumblingWindows.of(sizeMs, options),
} as const;
