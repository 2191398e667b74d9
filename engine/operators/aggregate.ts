import { MillraceError } from '../errors.js';
import type { Serde } from '../serde/serde.js';
import { deserializationError } from '../serde/serde.js';
import type { ProcessorContext, ProcessorSupplier } from '../topology/processor.js';
import type { StreamRecord, Windowed } from '../topology/record.js';
import type { TypedKeyValueStore } from '../state/key-value-store.js';
import type { WindowSpec } from './windows.js';

export type Initializer<A> = () => A;
export type Aggregator<K, V, A> = (aggregate: A, value: V, record: StreamRecord<K, V>) => A;

function requireKeyAndValue(record: StreamRecord<unknown, unknown>, node: string): void {
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

/** A store key of a window store: window start first, so expired windows are one contiguous range. */
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

function startBound(start: number): Buffer {
  const bound = Buffer.allocUnsafe(8);
  bound.writeBigUInt64BE(BigInt(Math.max(0, start)), 0);
  return bound;
}

/**
 * Windowed aggregation in event time. A record whose window closed (window end + grace at or before stream time)
 * is late: it goes to the dead-letter topic with code `MILLRACE_LATE_RECORD`, never silently dropped.
 * Closed windows are removed from the store before each checkpoint.
 */
export function windowedAggregateProcessor<K, V, A>(
  storeName: string,
  windows: WindowSpec,
  initializer: Initializer<A>,
  aggregator: Aggregator<K, V, A>,
): ProcessorSupplier<K, V, Windowed<K>, A> {
  return () => ({
    init(ctx) {
      ctx.onCommit(() => {
        const watermark = ctx.watermarkMs();
        if (watermark < 0) return;
        // Windows that end at or before (watermark − grace) are closed: their start is below this bound.
        const bound = watermark - windows.graceMs - windows.sizeMs + 1;
        if (bound <= 0) return;
        const store = ctx.store(storeName) as TypedKeyValueStore<WindowKey<K>, A>;
        return store.cache.deleteRange({ lt: startBound(bound) });
      });
    },
    process(record: StreamRecord<K, V>, ctx: ProcessorContext<Windowed<K>, A>) {
      requireKeyAndValue(record, ctx.nodeName);
      const store = ctx.store<WindowKey<K>, A>(storeName);
      const watermark = ctx.watermarkMs();
      const closeBefore = watermark - windows.graceMs;
      const open = windows.windowsFor(record.timestamp).filter((w) => w.end > closeBefore);
      if (open.length === 0) {
        throw new MillraceError(
          'MILLRACE_LATE_RECORD',
          `${ctx.nodeName}: record at ${new Date(record.timestamp).toISOString()} is late: its window closed when the watermark passed its end + grace (watermark ${new Date(watermark).toISOString()}, grace ${windows.graceMs} ms)`,
          { details: { reason: 'late', recordTimestamp: record.timestamp, watermark, streamTime: ctx.streamTimeMs(), graceMs: windows.graceMs } },
        );
      }
      for (const window of open) {
        const storeKey = { start: window.start, key: record.key };
        const current = store.get(storeKey);
        const next = aggregator(current === undefined ? initializer() : current, record.value, record);
        store.put(storeKey, next);
        ctx.forward({ key: { key: record.key, window }, value: next, timestamp: record.timestamp, headers: record.headers });
      }
    },
  });
}
