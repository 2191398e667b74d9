import type { Processor, ProcessorSupplier } from '../topology/processor.js';
import type { KeyValue, StreamRecord } from '../topology/record.js';

/**
 * Stateless operators as processors. Each is the smallest processor that does its job; the DSL names them.
 * A function that throws sends the record to the dead-letter topic (or fails the task, by policy).
 */

export function mapProcessor<K, V, K2, V2>(
  fn: (record: StreamRecord<K, V>) => KeyValue<K2, V2>,
): ProcessorSupplier<K, V, K2, V2> {
  return () => ({
    process(record, ctx) {
      const { key, value } = fn(record);
      ctx.forward({ key, value, timestamp: record.timestamp, headers: record.headers });
    },
  });
}

export function mapValuesProcessor<K, V, V2>(fn: (value: V, record: StreamRecord<K, V>) => V2): ProcessorSupplier<K, V, K, V2> {
  return () => ({
    process(record, ctx) {
      ctx.forward({ key: record.key, value: fn(record.value, record), timestamp: record.timestamp, headers: record.headers });
    },
  });
}

export function filterProcessor<K, V>(predicate: (record: StreamRecord<K, V>) => boolean): ProcessorSupplier<K, V, K, V> {
  return () => ({
    process(record, ctx) {
      if (predicate(record)) ctx.forward(record);
    },
  });
}

export function flatMapProcessor<K, V, K2, V2>(
  fn: (record: StreamRecord<K, V>) => Iterable<KeyValue<K2, V2>>,
): ProcessorSupplier<K, V, K2, V2> {
  return () => ({
    process(record, ctx) {
      // Collect first: if the function throws part-way, nothing of this record has been forwarded.
      const out = [...fn(record)];
      for (const { key, value } of out) ctx.forward({ key, value, timestamp: record.timestamp, headers: record.headers });
    },
  });
}

export function peekProcessor<K, V>(fn: (record: StreamRecord<K, V>) => void): ProcessorSupplier<K, V, K, V> {
  return () => ({
    process(record, ctx) {
      fn(record);
      ctx.forward(record);
    },
  });
}

export function foreachProcessor<K, V>(fn: (record: StreamRecord<K, V>) => void): ProcessorSupplier<K, V> {
  return () => ({
    process(record) {
      fn(record);
    },
  });
}

/** Sends each record to the first branch whose predicate holds (children are named after the branches). */
export function branchProcessor<K, V>(
  branches: ReadonlyArray<readonly [childName: string, predicate: (record: StreamRecord<K, V>) => boolean]>,
  defaultChild: string | undefined,
): ProcessorSupplier<K, V, K, V> {
  return () => ({
    process(record, ctx) {
      for (const [child, predicate] of branches) {
        if (predicate(record)) {
          ctx.forward(record, child);
          return;
        }
      }
      if (defaultChild !== undefined) ctx.forward(record, defaultChild);
    },
  });
}

/** Forwards everything: the node where several streams become one. */
export function passThroughProcessor<K, V>(): ProcessorSupplier<K, V, K, V> {
  return () => ({
    process(record, ctx) {
      ctx.forward(record);
    },
  });
}

export type { Processor };
