/**
 * Brute-force references for windowed aggregation, written straight from the definitions in
 * engine/operators/windows.ts, without the operator's store layouts, index or incremental updates: every value is
 * recomputed from the list of records a window holds.
 *
 * Records are numbered by offset; the value of record i is i. The three operations:
 * - count: how many records the window holds;
 * - reduce with (a, v) => a + v: the sum of their offsets;
 * - aggregate with (a, v) => [...a, v] (sessions merge by merging sorted lists): their offsets in arrival order.
 *
 * Time:
 * - stream time = the largest timestamp so far; watermark W = max(stream time − allowedLatenessMs, −1);
 * - a window with exclusive end e closes once e + grace ≤ W (sessions: last + 1 + gap + grace ≤ W);
 * - closes are checked after every record (the watermark moves only when stream time does).
 *
 * Output order: in 'update' mode, per record, the windows it changed: tumbling and hopping in start order, sliding
 * in end order, sessions the tombstones of replaced sessions in start order and then the new session. In 'final'
 * mode, per record, the windows that closed, by close time, then key, then start.
 */

export type Kind = 'tumbling' | 'hopping' | 'sliding' | 'session';
export type Emit = 'update' | 'final';
export type Op = 'count' | 'reduce' | 'aggregate';
export type Value = number | number[] | null;

export interface Scenario {
  readonly kind: Kind;
  readonly emit: Emit;
  readonly op: Op;
  /** Tumbling, hopping and sliding. */
  readonly sizeMs: number;
  /** Hopping (tumbling: the size). */
  readonly advanceMs: number;
  /** Sessions. */
  readonly gapMs: number;
  readonly graceMs: number;
  readonly allowedLatenessMs: number;
  readonly records: ReadonlyArray<{ readonly key: string; readonly timestamp: number }>;
}

export interface Emitted {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly value: Value;
}

export interface LateReport {
  readonly offset: number;
  /** The windows the record was late for. */
  readonly windows: ReadonlyArray<{ readonly start: number; readonly end: number }>;
  /** Late for some of its windows only (hopping): it still counts in the others. */
  readonly partial: boolean;
  /** The windows a partially late record still counts in. */
  readonly countedIn?: ReadonlyArray<{ readonly start: number; readonly end: number }>;
}

export interface Expected {
  /** What is forwarded after each record, in order. */
  readonly steps: Emitted[][];
  readonly late: LateReport[];
  /** The windows still open at the end (what the store holds), by key, start, end. */
  readonly open: Emitted[];
}

/** The aggregate of the records (offsets, in arrival order) a window holds. */
export function valueOf(op: Op, members: readonly number[]): number | number[] {
  switch (op) {
    case 'count':
      return members.length;
    case 'reduce':
      return members.reduce((a, b) => a + b, 0);
    case 'aggregate':
      return [...members].sort((a, b) => a - b);
  }
}

interface RefWindow {
  readonly key: string;
  start: number;
  end: number;
  closeTimeMs: number;
  members: number[];
  closed: boolean;
}

function byKeyStartEnd(a: Emitted, b: Emitted): number {
  return (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) || a.start - b.start || a.end - b.end;
}

function byCloseKeyStart(a: RefWindow, b: RefWindow): number {
  return a.closeTimeMs - b.closeTimeMs || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) || a.start - b.start;
}

export function reference(s: Scenario): Expected {
  const steps: Emitted[][] = [];
  const late: LateReport[] = [];
  let streamTime = -1;
  const all: RefWindow[] = [];
  const accepted: Array<{ key: string; timestamp: number; offset: number }> = [];
  const emitted = (w: RefWindow, value: Value = valueOf(s.op, w.members)): Emitted => ({ key: w.key, start: w.start, end: w.end, value });

  s.records.forEach(({ key, timestamp: t }, offset) => {
    streamTime = Math.max(streamTime, t);
    const watermark = Math.max(streamTime - s.allowedLatenessMs, -1);
    const out: Emitted[] = [];
    const isOpen = (w: RefWindow): boolean => !w.closed && w.closeTimeMs > watermark;

    if (s.kind === 'tumbling' || s.kind === 'hopping') {
      const advance = s.kind === 'tumbling' ? s.sizeMs : s.advanceMs;
      const mine: Array<{ start: number; end: number }> = [];
      for (let start = 0; start <= t; start += advance) if (t < start + s.sizeMs) mine.push({ start, end: start + s.sizeMs });
      const closed = mine.filter((w) => w.end + s.graceMs <= watermark);
      const open = mine.filter((w) => w.end + s.graceMs > watermark);
      if (closed.length > 0) late.push({ offset, windows: closed, partial: open.length > 0, ...(open.length > 0 ? { countedIn: open } : {}) });
      for (const { start, end } of open) {
        let w = all.find((x) => x.key === key && x.start === start);
        if (w === undefined) {
          w = { key, start, end, closeTimeMs: end + s.graceMs, members: [], closed: false };
          all.push(w);
        }
        w.members.push(offset);
        if (s.emit === 'update') out.push(emitted(w));
      }
    } else if (s.kind === 'sliding') {
      const windowAt = (e: number): { start: number; end: number } => ({ start: Math.max(0, e - s.sizeMs), end: e + 1 });
      if (t + 1 + s.graceMs <= watermark) {
        late.push({ offset, windows: [windowAt(t)], partial: false });
      } else {
        accepted.push({ key, timestamp: t, offset });
        // Every distinct timestamp of the key's accepted records anchors a window; recompute the changed ones.
        const anchors = [...new Set(accepted.filter((r) => r.key === key).map((r) => r.timestamp))].sort((a, b) => a - b);
        for (const e of anchors) {
          let w = all.find((x) => x.key === key && x.end === e + 1);
          if (w === undefined) {
            w = { key, ...windowAt(e), closeTimeMs: e + 1 + s.graceMs, members: [], closed: false };
            all.push(w);
          }
          if (!isOpen(w)) continue;
          w.members = accepted.filter((r) => r.key === key && r.timestamp >= e - s.sizeMs && r.timestamp <= e).map((r) => r.offset);
          if (s.emit === 'update' && e >= t && e <= t + s.sizeMs) out.push(emitted(w));
        }
      }
    } else {
      const timestampOf = (o: number): number => s.records[o]!.timestamp;
      const joined = all
        .filter((w) => w.key === key && isOpen(w) && w.members.some((m) => Math.abs(timestampOf(m) - t) <= s.gapMs))
        .sort((a, b) => a.start - b.start);
      if (joined.length === 0 && t + 1 + s.gapMs + s.graceMs <= watermark) {
        late.push({ offset, windows: [{ start: t, end: t + 1 }], partial: false });
      } else {
        const members = [...joined.flatMap((w) => w.members), offset];
        const first = Math.min(...members.map(timestampOf));
        const last = Math.max(...members.map(timestampOf));
        for (const w of joined) {
          all.splice(all.indexOf(w), 1);
          if (s.emit === 'update' && (w.start !== first || w.end !== last + 1)) out.push(emitted(w, null));
        }
        const session: RefWindow = { key, start: first, end: last + 1, closeTimeMs: last + 1 + s.gapMs + s.graceMs, members, closed: false };
        all.push(session);
        if (s.emit === 'update') out.push(emitted(session));
      }
    }

    const closing = all.filter((w) => !w.closed && w.closeTimeMs <= watermark).sort(byCloseKeyStart);
    for (const w of closing) {
      w.closed = true;
      if (s.emit === 'final') out.push(emitted(w));
    }
    steps.push(out);
  });

  const open = all.filter((w) => !w.closed).map((w) => emitted(w)).sort(byKeyStartEnd);
  return { steps, late, open };
}

export function sortWindows(list: Emitted[]): Emitted[] {
  return [...list].sort(byKeyStartEnd);
}
