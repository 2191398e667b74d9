import { describe, expect, it } from 'vitest';
import { isMillraceError } from '../../../engine/errors.js';
import { DriftDetector } from '../../../engine/ml/drift/detector.js';
import { buildReferenceDistribution, driftReference } from '../../../engine/ml/drift/reference.js';
import {
  StoreDriftWindow,
  driftRowSerde,
  driftWindowHeaderSerde,
  emptyWindowHeader,
  type DriftWindowHeader,
  type DriftWindowStores,
} from '../../../engine/ml/drift/window.js';
import type { Serde } from '../../../engine/serde/serde.js';
import type { KeyValueStore } from '../../../engine/state/key-value-store.js';

/** A store that holds bytes, as real stores do: values go through their serde on every write and read. */
function bytesStore<V>(name: string, serde: Serde<V>): KeyValueStore<string, V> & { readonly size: number } {
  const entries = new Map<string, Buffer>();
  const context = { topic: `store:${name}`, isKey: false };
  return {
    name,
    get size() {
      return entries.size;
    },
    get: (key) => {
      const bytes = entries.get(key);
      return bytes === undefined ? undefined : serde.deserialize(bytes, context);
    },
    put: (key, value) => void entries.set(key, serde.serialize(value, context)),
    delete: (key) => void entries.delete(key),
    range: () => {
      throw new TypeError('not used');
    },
    all: () => {
      throw new TypeError('not used');
    },
    forEach: () => {
      throw new TypeError('not used');
    },
  };
}

describe('StoreDriftWindow', () => {
  const columns = ['x', 'y'];
  const reference = driftReference(
    [...columns, 'score'].map((name, k) => buildReferenceDistribution(name, Array.from({ length: 500 }, (_, i) => ((i * (7 + k)) % 101) / 10))),
  );
  const rows = Array.from({ length: 700 }, (_, i) => ({
    timestampMs: 1_000 * i,
    // From row 400 on, x moves up: reported, and again a window (the cool-down) later.
    features: { x: ((i * 7) % 101) / 10 + (i >= 400 ? 6 : 0), y: ((i * 8) % 101) / 10 },
    score: ((i * 9) % 101) / 10,
  }));
  const options = { windowRows: 200, evaluateEveryRows: 50 };

  it('gives the verdicts a window in memory gives, and clear() forgets every row', () => {
    const stores = { headers: bytesStore('h', driftWindowHeaderSerde), rows: bytesStore('r', driftRowSerde) };
    const inStores = new DriftDetector({ model: 'm', version: 'v', features: columns, reference, options, window: new StoreDriftWindow(stores as DriftWindowStores, 'm') });
    const inMemory = new DriftDetector({ model: 'm', version: 'v', features: columns, reference, options });
    const verdicts = rows.map((r) => inStores.observe(r));
    expect(verdicts).toEqual(rows.map((r) => inMemory.observe(r)));
    expect(verdicts.filter((v) => v !== null).map((v) => v!.drifted_features)).toEqual([['x'], ['x']]);
    expect(stores.rows.size).toBe(200);
    inStores.window.clear(inStores.header!);
    expect(stores.rows.size).toBe(0);
    expect(inStores.header).toBeUndefined();
  });

  it('reads back only headers that describe a window', () => {
    const context = { topic: 'store:h', isKey: false };
    const header: DriftWindowHeader = { ...emptyWindowHeader(10, 3), size: 4, next: 4, rowsSeen: 4, lastTimestampMs: 1_234.5 };
    expect(driftWindowHeaderSerde.deserialize(driftWindowHeaderSerde.serialize(header, context), context)).toEqual(header);
    for (const bad of ['[]', 'null', JSON.stringify({ ...header, size: 11 }), JSON.stringify({ ...header, format: 2 }), '{']) {
      let code: string | undefined;
      try {
        driftWindowHeaderSerde.deserialize(Buffer.from(bad), context);
      } catch (err) {
        code = isMillraceError(err) ? err.code : 'other';
      }
      expect(code, bad).toBe('MILLRACE_DESERIALIZATION');
    }
  });
});
