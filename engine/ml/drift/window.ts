import { MillraceError } from '../../errors.js';
import { deserializationError, Serdes, type Serde } from '../../serde/serde.js';
import type { KeyValueStore } from '../../state/key-value-store.js';

/**
 * The sliding window of a drift detector: a ring buffer of the last `capacityRows` rows, each row `rowWidth`
 * doubles (the event time, then one value per column), and a small header of counters. The detector reads and
 * writes it through `DriftWindowStorage`, so the same logic runs over memory (`MemoryDriftWindow`, whose state is
 * one serialisable value) and over a state store (`StoreDriftWindow`, one entry per row, so that each record
 * writes one small row and the header rather than the whole window).
 */

export const DRIFT_WINDOW_FORMAT = 1;

/** Counters and cursor of a window: small, JSON-safe. */
export interface DriftWindowHeader {
  readonly format: typeof DRIFT_WINDOW_FORMAT;
  readonly capacityRows: number;
  /** Doubles per row: the event time, then the columns. */
  readonly rowWidth: number;
  /** Rows held, ≤ capacityRows. They are in slots 0 … size − 1. */
  readonly size: number;
  /** The slot the next row goes to; when the window is full, also its oldest row. */
  readonly next: number;
  readonly rowsSeen: number;
  readonly rowsSinceEvaluation: number;
  /** Rows still to see before another verdict may be emitted (the cool-down). */
  readonly cooldownRows: number;
  readonly evaluations: number;
  /** Verdicts emitted. */
  readonly events: number;
  /** Evaluations skipped because there was no reference for the version. */
  readonly missingReference: number;
  /** Event time of the latest row (ms since the epoch). */
  readonly lastTimestampMs: number;
}

export function emptyWindowHeader(capacityRows: number, rowWidth: number): DriftWindowHeader {
  return {
    format: DRIFT_WINDOW_FORMAT,
    capacityRows,
    rowWidth,
    size: 0,
    next: 0,
    rowsSeen: 0,
    rowsSinceEvaluation: 0,
    cooldownRows: 0,
    evaluations: 0,
    events: 0,
    missingReference: 0,
    lastTimestampMs: -1,
  };
}

/** Where a window lives. Reads of slots not written are a programmer error. */
export interface DriftWindowStorage {
  readHeader(): DriftWindowHeader | undefined;
  writeHeader(header: DriftWindowHeader): void;
  /** Copies the row in `slot` into `into` (`rowWidth` doubles). */
  readRow(slot: number, into: Float64Array): void;
  writeRow(slot: number, row: Float64Array): void;
  /** Forgets the window described by `header` (every row and the header). */
  clear(header: DriftWindowHeader): void;
}

/** A window's whole state as one value: the header and rows 0 … size − 1, `rowWidth` doubles each. */
export interface DriftWindowState {
  readonly header: DriftWindowHeader;
  readonly rows: Float64Array;
}

/** A window in memory. `snapshot()` and `MemoryDriftWindow.restore` move its state in and out as one value. */
export class MemoryDriftWindow implements DriftWindowStorage {
  #header: DriftWindowHeader | undefined;
  #rows = new Float64Array(0);

  static restore(state: DriftWindowState): MemoryDriftWindow {
    checkState(state);
    const window = new MemoryDriftWindow();
    window.#header = state.header;
    window.#rows = new Float64Array(state.header.capacityRows * state.header.rowWidth);
    window.#rows.set(state.rows);
    return window;
  }

  /** A copy of the state, or `undefined` before the first row. */
  snapshot(): DriftWindowState | undefined {
    const header = this.#header;
    if (header === undefined) return undefined;
    return { header, rows: this.#rows.slice(0, header.size * header.rowWidth) };
  }

  readHeader(): DriftWindowHeader | undefined {
    return this.#header;
  }

  writeHeader(header: DriftWindowHeader): void {
    const length = header.capacityRows * header.rowWidth;
    if (this.#rows.length !== length) {
      const rows = new Float64Array(length);
      rows.set(this.#rows.subarray(0, Math.min(length, this.#rows.length)));
      this.#rows = rows;
    }
    this.#header = header;
  }

  readRow(slot: number, into: Float64Array): void {
    const width = into.length;
    into.set(this.#rows.subarray(slot * width, slot * width + width));
  }

  writeRow(slot: number, row: Float64Array): void {
    if ((slot + 1) * row.length > this.#rows.length) {
      const rows = new Float64Array(Math.max((slot + 1) * row.length, this.#rows.length * 2));
      rows.set(this.#rows);
      this.#rows = rows;
    }
    this.#rows.set(row, slot * row.length);
  }

  clear(): void {
    this.#header = undefined;
    this.#rows = new Float64Array(0);
  }
}

/**
 * The stores a `StoreDriftWindow` lives in: headers by window key, rows by `<window key>/<slot>`. Both should be
 * changelogged, so that a restored task resumes its windows exactly.
 */
export interface DriftWindowStores {
  readonly headers: KeyValueStore<string, DriftWindowHeader>;
  readonly rows: KeyValueStore<string, Float64Array>;
}

/**
 * A window in state stores, one entry per row and one for the header: each observed row writes one row of
 * `rowWidth` doubles and the small header, not the whole window. Several windows share the stores, each under its
 * own key (a model name, say).
 */
export class StoreDriftWindow implements DriftWindowStorage {
  readonly key: string;
  readonly #stores: DriftWindowStores;

  constructor(stores: DriftWindowStores, key: string) {
    this.#stores = stores;
    this.key = key;
  }

  readHeader(): DriftWindowHeader | undefined {
    return this.#stores.headers.get(this.key);
  }

  writeHeader(header: DriftWindowHeader): void {
    this.#stores.headers.put(this.key, header);
  }

  readRow(slot: number, into: Float64Array): void {
    const row = this.#stores.rows.get(this.#rowKey(slot));
    if (row === undefined || row.length !== into.length) {
      throw new RangeError(`drift window ${this.key}: slot ${slot} holds ${row === undefined ? 'no row' : `${row.length} values`}, expected ${into.length}`);
    }
    into.set(row);
  }

  writeRow(slot: number, row: Float64Array): void {
    // The store serialises at once, so the caller may reuse `row`.
    this.#stores.rows.put(this.#rowKey(slot), row);
  }

  clear(header: DriftWindowHeader): void {
    for (let slot = 0; slot < header.size; slot++) this.#stores.rows.delete(this.#rowKey(slot));
    this.#stores.headers.delete(this.key);
  }

  /** Slots are integers, so `<key>/<slot>` never collides across keys, even keys holding `/`. */
  #rowKey(slot: number): string {
    return `${this.key}/${slot}`;
  }
}

function headerProblem(h: DriftWindowHeader): string | undefined {
  const counter = (value: unknown): boolean => Number.isSafeInteger(value) && (value as number) >= 0;
  const ok =
    typeof h === 'object' && h !== null &&
    h.format === DRIFT_WINDOW_FORMAT &&
    Number.isSafeInteger(h.capacityRows) && h.capacityRows > 0 &&
    Number.isSafeInteger(h.rowWidth) && h.rowWidth > 0 &&
    Number.isSafeInteger(h.size) && h.size >= 0 && h.size <= h.capacityRows &&
    Number.isSafeInteger(h.next) && h.next >= 0 && h.next < h.capacityRows &&
    counter(h.rowsSeen) && counter(h.rowsSinceEvaluation) && counter(h.cooldownRows) &&
    counter(h.evaluations) && counter(h.events) && counter(h.missingReference) &&
    typeof h.lastTimestampMs === 'number' && Number.isFinite(h.lastTimestampMs);
  return ok ? undefined : `not a drift window header: ${JSON.stringify(h)}`;
}

function checkState(state: DriftWindowState): void {
  const h = state.header;
  const problem = headerProblem(h) ?? (state.rows.length === h.size * h.rowWidth ? undefined : `a drift window of ${h.size} rows of ${h.rowWidth} cannot hold ${state.rows.length} values`);
  if (problem !== undefined) throw new RangeError(problem);
}

/** A window's header as JSON (its numbers round-trip exactly), checked when read back. */
export const driftWindowHeaderSerde: Serde<DriftWindowHeader> = {
  name: 'drift-window-header',
  serialize(header, context) {
    return Serdes.json<DriftWindowHeader>().serialize(header, context);
  },
  deserialize(bytes, context) {
    if (bytes.length > 64 * 1024) throw deserializationError(context, `a drift window header of ${bytes.length} bytes`);
    const header = Serdes.json<DriftWindowHeader>().deserialize(bytes, context);
    const problem = headerProblem(header);
    if (problem !== undefined) throw deserializationError(context, problem);
    return header;
  },
};

/** Largest window state the serde reads back: bounded, as every deserialiser must be. */
export const MAX_WINDOW_STATE_BYTES = 256 * 1024 * 1024;

/**
 * A window's state as bytes: format byte, header length (uint32 BE), the header as JSON, then the rows as
 * little-endian doubles. Doubles round-trip exactly, so a restored window continues exactly where it was.
 */
export const driftWindowStateSerde: Serde<DriftWindowState> = {
  name: 'drift-window-state',
  serialize(state, context) {
    try {
      checkState(state);
    } catch (err) {
      throw new MillraceError('MILLRACE_SERIALIZATION', `cannot serialise the drift window for ${context.topic}: ${(err as Error).message}`, { cause: err });
    }
    const header = Buffer.from(JSON.stringify(state.header), 'utf8');
    const out = Buffer.allocUnsafe(5 + header.length + state.rows.length * 8);
    out.writeUInt8(DRIFT_WINDOW_FORMAT, 0);
    out.writeUInt32BE(header.length, 1);
    header.copy(out, 5);
    writeDoubles(out, 5 + header.length, state.rows);
    return out;
  },
  deserialize(bytes, context) {
    if (bytes.length < 5 || bytes.length > MAX_WINDOW_STATE_BYTES) throw deserializationError(context, `a drift window state of ${bytes.length} bytes`);
    if (bytes.readUInt8(0) !== DRIFT_WINDOW_FORMAT) throw deserializationError(context, `unknown drift window format ${bytes.readUInt8(0)}`);
    const headerLength = bytes.readUInt32BE(1);
    const rowsAt = 5 + headerLength;
    if (rowsAt > bytes.length || (bytes.length - rowsAt) % 8 !== 0) throw deserializationError(context, 'truncated drift window state');
    let header: DriftWindowHeader;
    try {
      header = JSON.parse(bytes.toString('utf8', 5, rowsAt)) as DriftWindowHeader;
    } catch (err) {
      throw deserializationError(context, 'the drift window header is not JSON', err);
    }
    const state = { header, rows: readDoubles(bytes, rowsAt, (bytes.length - rowsAt) / 8) };
    try {
      checkState(state);
    } catch (err) {
      throw deserializationError(context, (err as Error).message, err);
    }
    return state;
  },
};

/** One row as bytes: little-endian doubles. */
export const driftRowSerde: Serde<Float64Array> = {
  name: 'drift-row',
  serialize(row) {
    const out = Buffer.allocUnsafe(row.length * 8);
    writeDoubles(out, 0, row);
    return out;
  },
  deserialize(bytes, context) {
    if (bytes.length % 8 !== 0 || bytes.length > 64 * 1024) throw deserializationError(context, `a drift row of ${bytes.length} bytes`);
    return readDoubles(bytes, 0, bytes.length / 8);
  },
};

function writeDoubles(out: Buffer, at: number, values: Float64Array): void {
  for (let i = 0; i < values.length; i++) out.writeDoubleLE(values[i]!, at + i * 8);
}

function readDoubles(bytes: Buffer, at: number, count: number): Float64Array {
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = bytes.readDoubleLE(at + i * 8);
  return out;
}
