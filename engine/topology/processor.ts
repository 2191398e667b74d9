import type { KeyValueStore, ReadOnlyKeyValueStore } from '../state/key-value-store.js';
import type { RecordMetadata, StreamRecord } from './record.js';

/**
 * When a punctuator fires: as stream time (the largest event time the task has seen) passes each multiple of the
 * interval, or as the wall clock does. Stream-time punctuation is deterministic (a replay fires it at the same
 * records); wall-clock punctuation also fires while no records arrive.
 */
export type PunctuationType = 'stream-time' | 'wall-clock';

export interface Cancellable {
  cancel(): void;
}

/**
 * What a processor sees of its task. One context per processor node per task; it is only valid inside `init`,
 * `process` and the callbacks it registers.
 */
export interface ProcessorContext<KOut, VOut> {
  readonly applicationId: string;
  /** `<subtopology>_<partition>`, as in Kafka Streams. */
  readonly taskId: string;
  readonly partition: number;
  /** The name of the node this context belongs to. */
  readonly nodeName: string;
  /** Where the record being processed was read from; `undefined` inside a punctuator. */
  recordMetadata(): RecordMetadata | undefined;
  /** Sends a record to every child node, or to the named child only. */
  forward(record: StreamRecord<KOut, VOut>, childName?: string): void;
  /** A state store this processor declared (`stores` when the node was added). */
  store<K, V>(name: string): KeyValueStore<K, V>;
  /** A global store of the topology: every key of its topic, whichever partition; read-only. */
  globalStore<K, V>(name: string): ReadOnlyKeyValueStore<K, V>;
  /** The largest event time the task has read; -1 before its first record. */
  streamTimeMs(): number;
  /**
   * Event time up to which the task considers its input complete: stream time − `allowedLatenessMs`, raised further
   * when an idle task closes its windows (`advanceWatermark`). -1 before the first record.
   */
  watermarkMs(): number;
  /**
   * Raises the watermark of the whole task to at least `ms` (never lowers it). Committed with the checkpoint.
   * Windowed operators use it to close windows of an idle task: records behind it are then late.
   */
  advanceWatermark(ms: number): void;
  wallClockMs(): number;
  /** Wall-clock time of the last record the task read (its start time before any record). */
  lastInputWallClockMs(): number;
  /**
   * Calls `callback` every `intervalMs` of stream time or of wall-clock time. Inside the callback the processor
   * may read and write its stores and forward records (give them a timestamp); its effects commit like a record's,
   * and are rolled back if it throws.
   */
  schedule(intervalMs: number, type: PunctuationType, callback: (timestampMs: number) => void): Cancellable;
  /**
   * Sends the record being processed to the application's late-records topic with the reason, while processing
   * goes on (e.g. a record that is late for one of its hopping windows but not for the others). Throwing a
   * `MillraceError` with code `MILLRACE_LATE_RECORD` does the same and drops the record's other effects.
   */
  reportLate(reason: string, details?: Record<string, unknown>): void;
  /**
   * Work to do before each checkpoint, e.g. dropping expired state. May return a promise, except under the
   * `TopologyTestDriver` with in-memory stores, which runs it synchronously.
   */
  onCommit(callback: () => void | Promise<void>): void;
}

/**
 * The low-level Processor API. `process` handles one record at a time, strictly in offset order per task; it may
 * return a promise (the task awaits it before the next record), but the synchronous path is the fast one.
 * `init` may return a promise too (e.g. to rebuild an in-memory index from a store with `forEach`); under the
 * `TopologyTestDriver` it must complete synchronously, which stores there allow.
 */
export interface Processor<KIn, VIn, KOut = never, VOut = never> {
  init?(context: ProcessorContext<KOut, VOut>): void | Promise<void>;
  process(record: StreamRecord<KIn, VIn>, context: ProcessorContext<KOut, VOut>): void | Promise<void>;
  close?(): void;
  /** What the processor holds that an operator wants to see (status and the console); cheap, read-only. */
  inspect?(): ProcessorInspection;
}

/** A processor's view of itself for status: windowed operators tell how many windows are waiting to close. */
export interface ProcessorInspection {
  /** Store entries with windows still open (one per key and window, or per key for sliding and session windows). */
  readonly openWindows?: number;
  /** Event time (ms) at which the next of them may close; null when none is open. */
  readonly nextWindowCloseMs?: number | null;
}

/** A new processor instance per task: processors hold per-task state such as store handles. */
export type ProcessorSupplier<KIn, VIn, KOut = never, VOut = never> = () => Processor<KIn, VIn, KOut, VOut>;
