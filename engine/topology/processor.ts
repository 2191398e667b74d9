import type { KeyValueStore } from '../state/key-value-store.js';
import type { RecordMetadata, StreamRecord } from './record.js';

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
  /** Where the record being processed was read from. */
  recordMetadata(): RecordMetadata | undefined;
  /** Sends a record to every child node, or to the named child only. */
  forward(record: StreamRecord<KOut, VOut>, childName?: string): void;
  /** A state store this processor declared (`stores` when the node was added). */
  store<K, V>(name: string): KeyValueStore<K, V>;
  /** The largest event time the task has seen; -1 before its first record. */
  streamTimeMs(): number;
  wallClockMs(): number;
  /**
   * Work to do before each checkpoint, e.g. dropping expired windows. May return a promise, except under the
   * `TopologyTestDriver` with in-memory stores, which runs it synchronously.
   */
  onCommit(callback: () => void | Promise<void>): void;
}

/**
 * The low-level Processor API. `process` handles one record at a time, strictly in offset order per task; it may
 * return a promise (the task awaits it before the next record), but the synchronous path is the fast one.
 */
export interface Processor<KIn, VIn, KOut = never, VOut = never> {
  init?(context: ProcessorContext<KOut, VOut>): void;
  process(record: StreamRecord<KIn, VIn>, context: ProcessorContext<KOut, VOut>): void | Promise<void>;
  close?(): void;
}

/** A new processor instance per task: processors hold per-task state such as store handles. */
export type ProcessorSupplier<KIn, VIn, KOut = never, VOut = never> = () => Processor<KIn, VIn, KOut, VOut>;
