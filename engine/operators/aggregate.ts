import { MillraceError } from '../errors.js';
import type { ProcessorContext, ProcessorSupplier } from '../topology/processor.js';
import type { StreamRecord } from '../topology/record.js';

export type Initializer<A> = () => A;
export type Aggregator<K, V, A> = (aggregate: A, value: V, record: StreamRecord<K, V>) => A;
/** Combines the aggregates of two session windows that a record bridged, the earlier session's first. */
export type Merger<K, A> = (left: A, right: A, key: K) => A;

/** Grouping needs a key, aggregating a value: either missing is a processing error (the record is dead-lettered). */
export function requireKeyAndValue(record: StreamRecord<unknown, unknown>, node: string): void {
  if (record.key === null || record.key === undefined) {
    throw new MillraceError('MILLRACE_PROCESSING', `${node}: a record without a key cannot be grouped`, {
      details: { reason: 'null-key' },
    });
  }
  if (record.value === null || record.value === undefined) {
    throw new MillraceError('MILLRACE_PROCESSING', `${node}: a record without a value (tombstone) cannot be aggregated`, {
      details: { reason: 'null-value' },
    });
  }
}

/** The core of `count`, `reduce` and `aggregate`: one store entry per key, every update forwarded. */
export function aggregateProcessor<K, V, A>(
  storeName: string,
  initializer: Initializer<A>,
  aggregator: Aggregator<K, V, A>,
): ProcessorSupplier<K, V, K, A> {
  return () => ({
    process(record: StreamRecord<K, V>, ctx: ProcessorContext<K, A>) {
      requireKeyAndValue(record, ctx.nodeName);
      const store = ctx.store<K, A>(storeName);
      const current = store.get(record.key);
      const next = aggregator(current === undefined ? initializer() : current, record.value, record);
      store.put(record.key, next);
      ctx.forward({ key: record.key, value: next, timestamp: record.timestamp, headers: record.headers });
    },
  });
}
