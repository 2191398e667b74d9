import { describe, expect, it } from 'vitest';
import { Serdes } from '../../engine/serde/serde.js';
import { MemoryBackend } from '../../engine/state/backend.js';
import { CachingStore, RecordJournal } from '../../engine/state/caching-store.js';
import { TypedKeyValueStore, type KeyValueEntry } from '../../engine/state/key-value-store.js';

function typedStore(): TypedKeyValueStore<string, number> {
  const cache = new CachingStore(new MemoryBackend('scores', 0), { maxBytes: 1 << 20, journal: new RecordJournal() });
  return new TypedKeyValueStore('scores', cache, Serdes.string(), Serdes.int64());
}

async function collect<T>(entries: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const entry of entries) out.push(entry);
  return out;
}

describe('TypedKeyValueStore', () => {
  it('serialises keys and values on the way into the cache and back', () => {
    // given
    const store = typedStore();
    // when
    store.put('ann', 3);
    store.put('bob', -1);
    store.delete('bob');
    // then
    expect([store.get('ann'), store.get('bob'), store.get('cat')]).toEqual([3, undefined, undefined]);
    const dirty = store.cache.takeDirty().map(([k, v]) => [k.toString(), v === null ? null : Number(v.readBigInt64BE(0))]);
    expect(dirty.sort()).toEqual([['ann', 3], ['bob', null]]);
  });

  it('counts reads and writes for metrics', () => {
    const store = typedStore();
    store.put('a', 1);
    store.delete('a');
    store.get('a');
    expect({ reads: store.reads, writes: store.writes }).toEqual({ reads: 1, writes: 2 });
  });

  it('iterates a range [from, to) in key byte order, asynchronously and synchronously', async () => {
    // given
    const store = typedStore();
    for (const [k, v] of [['d', 4], ['a', 1], ['c', 3], ['b', 2]] as const) store.put(k, v);
    // then
    const everything: Array<KeyValueEntry<string, number>> = [
      { key: 'a', value: 1 },
      { key: 'b', value: 2 },
      { key: 'c', value: 3 },
      { key: 'd', value: 4 },
    ];
    expect(await collect(store.all())).toEqual(everything);
    expect(await collect(store.range('b', 'd'))).toEqual(everything.slice(1, 3));
    expect(await collect(store.range('c'))).toEqual(everything.slice(2));
    expect([...store.rangeSync(undefined, 'b')]).toEqual(everything.slice(0, 1));
  });
});
