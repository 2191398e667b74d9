import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LevelBackend, MemoryBackend, type KeyRange, type KeyValueBackend } from '../../engine/state/backend.js';
import { CachingStore, RecordJournal } from '../../engine/state/caching-store.js';

type Changes = Array<[Buffer, Buffer | null]>;

/** A backend under test and the way its writes are committed (the checkpoint's role). */
interface BackendKind {
  readonly name: string;
  readonly synchronous: boolean;
  setUp(): Promise<void>;
  tearDown(): Promise<void>;
  open(storeName: string): KeyValueBackend;
  commit(backend: KeyValueBackend, changes: Changes): Promise<void>;
}

const memoryKind: BackendKind = {
  name: 'MemoryBackend',
  synchronous: true,
  async setUp() {},
  async tearDown() {},
  open: (storeName) => new MemoryBackend(storeName, 0),
  async commit(backend, changes) {
    backend.apply!(backend.writesFor(changes));
  },
};

function levelKind(): BackendKind {
  let dir = '';
  let db: ClassicLevel<Buffer, Buffer> | undefined;
  return {
    name: 'LevelBackend',
    synchronous: false,
    async setUp() {
      dir = await mkdtemp(join(tmpdir(), 'millrace-caching-store-'));
      db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
      await db.open();
    },
    async tearDown() {
      await db?.close();
      await rm(dir, { recursive: true, force: true });
    },
    open: (storeName) => new LevelBackend(db!, storeName, 0),
    async commit(backend, changes) {
      const writes = backend.writesFor(changes);
      await db!.batch(writes.map((w) => (w.type === 'put' ? { type: 'put' as const, key: w.key, value: w.value } : { type: 'del' as const, key: w.key })));
    },
  };
}

const b = (text: string): Buffer => Buffer.from(text, 'latin1');
const text = (bytes: Buffer | undefined): string | undefined => bytes?.toString('latin1');
const sortChanges = (changes: Changes): Array<[string, string | null]> =>
  changes.map(([k, v]): [string, string | null] => [k.toString('latin1'), v === null ? null : v.toString('latin1')]).sort((x, y) => (x[0] < y[0] ? -1 : 1));

/** Bytes a cache entry costs: key, value and a fixed overhead of 64. */
const entryBytes = (key: string, value: string | null): number => key.length + (value?.length ?? 0) + 64;

let storeCounter = 0;

describe.each([memoryKind, levelKind()])('CachingStore over $name', (kind) => {
  beforeAll(() => kind.setUp());
  afterAll(() => kind.tearDown());

  function fresh(maxBytes = 1 << 20): { store: CachingStore; backend: KeyValueBackend; journal: RecordJournal } {
    const backend = kind.open(`store-${storeCounter++}`);
    const journal = new RecordJournal();
    return { store: new CachingStore(backend, { maxBytes, journal }), backend, journal };
  }

  /** Takes the dirty entries, commits them to the backend and releases the pins: one whole checkpoint. */
  async function checkpoint(store: CachingStore): Promise<Changes> {
    const changes = store.takeDirty();
    await kind.commit(store.backend, changes);
    store.releasePinned();
    return changes;
  }

  async function entries(store: CachingStore, range: KeyRange = {}): Promise<Array<[string, string]>> {
    const out: Array<[string, string]> = [];
    for await (const [k, v] of store.entries(range)) out.push([k.toString('latin1'), v.toString('latin1')]);
    return out;
  }

  /** Writes straight to the backend, as an earlier run of the task would have. */
  async function seed(backend: KeyValueBackend, values: Record<string, string>): Promise<void> {
    await kind.commit(backend, Object.entries(values).map(([k, v]) => [b(k), b(v)]));
  }

  describe('get, put and delete', () => {
    it('reads what was written, serving dirty entries from the cache before any commit', () => {
      // given
      const { store, backend } = fresh();
      // when
      store.put(b('a'), b('1'));
      store.put(b('b'), b('2'));
      store.put(b('b'), b('3'));
      store.put(b('a'), null);
      // then
      expect([text(store.get(b('a'))), text(store.get(b('b'))), text(store.get(b('c')))]).toEqual([undefined, '3', undefined]);
      expect(backend.getSync(b('b'))).toBeUndefined();
    });

    it('reads through to the backend on a miss and then serves the key from memory', async () => {
      const { store, backend } = fresh();
      await seed(backend, { a: '1' });
      expect(text(store.get(b('a')))).toBe('1');
      expect(text(store.get(b('a')))).toBe('1');
      expect(text(store.get(b('zz')))).toBeUndefined();
      expect(text(store.get(b('zz')))).toBeUndefined();
      expect({ hits: store.hits, misses: store.misses }).toEqual({ hits: 2, misses: 2 });
    });

    it('lets a delete hide a value the backend still holds, until the commit removes it there too', async () => {
      const { store, backend } = fresh();
      await seed(backend, { a: '1' });
      store.put(b('a'), null);
      expect(store.get(b('a'))).toBeUndefined();
      expect(text(backend.getSync(b('a')))).toBe('1');
      await checkpoint(store);
      expect(backend.getSync(b('a'))).toBeUndefined();
    });
  });

  describe('takeDirty', () => {
    it('returns exactly the changed keys, once each with the last value, and null for a delete', async () => {
      // given
      const { store, backend } = fresh();
      await seed(backend, { gone: 'x', read: 'y' });
      // when
      store.put(b('a'), b('1'));
      store.put(b('a'), b('2'));
      store.put(b('b'), b('1'));
      store.put(b('gone'), null);
      store.get(b('read'));
      store.get(b('never'));
      // then
      expect(store.dirtyCount).toBe(3);
      expect(sortChanges(store.takeDirty())).toEqual([['a', '2'], ['b', '1'], ['gone', null]]);
      expect(store.dirtyCount).toBe(0);
      expect(store.takeDirty()).toEqual([]);
    });

    it('returns a key again after it changes again, and not before', async () => {
      const { store } = fresh();
      store.put(b('a'), b('1'));
      await checkpoint(store);
      expect(store.takeDirty()).toEqual([]);
      store.put(b('a'), b('2'));
      expect(sortChanges(store.takeDirty())).toEqual([['a', '2']]);
    });
  });

  describe('eviction', () => {
    it('evicts clean entries beyond maxBytes, least recently used first, and re-reads them from the backend', async () => {
      // given: room for two one-byte entries
      const { store, backend } = fresh(2 * entryBytes('a', '1') + 10);
      await seed(backend, { a: '1', b: '2', c: '3' });
      // when: a is read again after b, so b is the least recently used when c comes in
      store.get(b('a'));
      store.get(b('b'));
      store.get(b('a'));
      store.get(b('c'));
      // then
      expect(store.sizeBytes).toBe(2 * entryBytes('a', '1'));
      const missesBefore = store.misses;
      expect(text(store.get(b('a')))).toBe('1');
      expect(store.misses).toBe(missesBefore);
      expect(text(store.get(b('b')))).toBe('2');
      expect(store.misses).toBe(missesBefore + 1);
    });

    it('never evicts dirty entries, and asks for a flush when they alone exceed maxBytes', () => {
      // given
      const { store } = fresh(3 * entryBytes('a', '1'));
      // when
      store.put(b('a'), b('1'));
      store.put(b('b'), b('1'));
      store.put(b('c'), b('1'));
      expect(store.wantsFlush).toBe(false);
      store.put(b('d'), b('1'));
      // then
      expect(store.wantsFlush).toBe(true);
      expect(['a', 'b', 'c', 'd'].map((k) => text(store.get(b(k))))).toEqual(['1', '1', '1', '1']);
      expect(sortChanges(store.takeDirty()).map(([k]) => k)).toEqual(['a', 'b', 'c', 'd']);
      expect(store.wantsFlush).toBe(false);
    });

    it('keeps pinned entries (taken by a checkpoint not yet durable) under a tiny maxBytes until releasePinned', async () => {
      // given: a write taken by a checkpoint whose commit has not happened yet
      const { store, backend } = fresh(1);
      store.put(b('a'), b('1'));
      const changes = store.takeDirty();
      // when: other reads push the cache over its budget
      for (const k of ['x', 'y', 'z']) store.get(b(k));
      // then: the pinned entry is still served, though the backend does not hold it
      expect(backend.getSync(b('a'))).toBeUndefined();
      expect(text(store.get(b('a')))).toBe('1');
      expect(store.sizeBytes).toBe(entryBytes('a', '1'));
      // when: the commit is durable and the pins are released
      await kind.commit(backend, changes);
      store.releasePinned();
      // then: the entry is evicted and read back from the backend
      expect(store.sizeBytes).toBe(0);
      const missesBefore = store.misses;
      expect(text(store.get(b('a')))).toBe('1');
      expect(store.misses).toBe(missesBefore + 1);
    });
  });

  describe('rollback with the RecordJournal', () => {
    it('restores the previous value of every key the failed record wrote, including deletes and new keys', async () => {
      // given: a committed a=1 and a dirty b=1 from an earlier record
      const { store, journal } = fresh();
      store.put(b('a'), b('1'));
      await checkpoint(store);
      store.put(b('b'), b('1'));
      journal.clear();
      const bytesBefore = store.sizeBytes;
      // when: the next record writes and then fails
      store.put(b('a'), b('2'));
      store.put(b('a'), null);
      store.put(b('b'), b('2'));
      store.put(b('c'), b('1'));
      journal.rollback();
      // then
      expect(store.sizeBytes).toBe(bytesBefore);
      expect(store.dirtyCount).toBe(1);
      expect(['a', 'b', 'c'].map((k) => text(store.get(b(k))))).toEqual(['1', '1', undefined]);
      expect(sortChanges(store.takeDirty())).toEqual([['b', '1']]);
    });

    it('restores a pinned entry to its pinned value, which still survives eviction', async () => {
      // given: a=1 taken by a checkpoint that is not durable yet
      const { store, backend, journal } = fresh(1);
      store.put(b('a'), b('1'));
      const changes = store.takeDirty();
      journal.clear();
      // when: a record overwrites it, then fails
      store.put(b('a'), b('2'));
      journal.rollback();
      for (const k of ['x', 'y']) store.get(b(k));
      // then
      expect(text(store.get(b('a')))).toBe('1');
      expect(store.dirtyCount).toBe(0);
      expect(store.takeDirty()).toEqual([]);
      await kind.commit(backend, changes);
      store.releasePinned();
      expect(text(store.get(b('a')))).toBe('1');
    });

    it('does nothing after clear: a rollback only undoes the current record', () => {
      const { store, journal } = fresh();
      store.put(b('a'), b('1'));
      journal.clear();
      journal.rollback();
      expect(text(store.get(b('a')))).toBe('1');
    });
  });

  describe('entries', () => {
    it('merges dirty and pinned cache entries over the backend, in key order, within the range', async () => {
      // given: the backend holds a..e; the cache changes b, deletes c, adds bb and f, and pins g
      const { store, backend } = fresh();
      await seed(backend, { a: '1', b: '1', c: '1', d: '1', e: '1' });
      store.put(b('g'), b('pinned'));
      store.takeDirty();
      store.put(b('b'), b('2'));
      store.put(b('c'), null);
      store.put(b('bb'), b('new'));
      store.put(b('f'), b('new'));
      // when / then
      const all: Array<[string, string]> = [['a', '1'], ['b', '2'], ['bb', 'new'], ['d', '1'], ['e', '1'], ['f', 'new'], ['g', 'pinned']];
      expect(await entries(store)).toEqual(all);
      expect(await entries(store, { gte: b('b'), lt: b('e') })).toEqual([['b', '2'], ['bb', 'new'], ['d', '1']]);
      expect(await entries(store, { gte: b('e') })).toEqual([['e', '1'], ['f', 'new'], ['g', 'pinned']]);
      expect(await entries(store, { lt: b('b') })).toEqual([['a', '1']]);
      if (kind.synchronous) {
        expect([...store.entriesSync({})].map(([k, v]) => [k.toString('latin1'), v.toString('latin1')])).toEqual(all);
      }
    });

    it('iterates synchronously only where the backend can', () => {
      const { store } = fresh();
      expect(store.iteratesSynchronously).toBe(kind.synchronous);
      if (!kind.synchronous) expect(() => [...store.entriesSync({})]).toThrow(TypeError);
    });

    it('match a Map reference for any sequence of records (committed or rolled back) and checkpoints', async () => {
      const key = fc.uint8Array({ minLength: 1, maxLength: 3, max: 4 }).map((bytes) => Buffer.from(bytes).toString('latin1'));
      const write = fc.oneof(
        fc.record({ type: fc.constant('put' as const), key, value: fc.string({ maxLength: 3 }) }),
        fc.record({ type: fc.constant('delete' as const), key }),
        fc.record({ type: fc.constant('get' as const), key }),
      );
      const step = fc.oneof(
        { weight: 4, arbitrary: fc.record({ type: fc.constant('record' as const), writes: fc.array(write, { minLength: 1, maxLength: 4 }), fails: fc.boolean() }) },
        { weight: 1, arbitrary: fc.record({ type: fc.constant('take' as const) }) },
        { weight: 1, arbitrary: fc.record({ type: fc.constant('commit' as const) }) },
      );
      const range = fc.record({ gte: fc.option(key, { nil: undefined }), lt: fc.option(key, { nil: undefined }) });
      await fc.assert(
        fc.asyncProperty(fc.array(step, { maxLength: 25 }), fc.array(range, { maxLength: 3 }), fc.integer({ min: 1, max: 600 }), async (steps, ranges, maxBytes) => {
          // given
          const { store, backend, journal } = fresh(maxBytes);
          let reference = new Map<string, string>();
          /** Changes taken by checkpoints whose commit has not happened yet. */
          const pending: Changes[] = [];
          // when
          for (const s of steps) {
            if (s.type === 'take') {
              pending.push(store.takeDirty());
            } else if (s.type === 'commit') {
              for (const changes of pending.splice(0)) await kind.commit(backend, changes);
              store.releasePinned();
            } else {
              const before = new Map(reference);
              for (const w of s.writes) {
                if (w.type === 'put') {
                  store.put(b(w.key), b(w.value));
                  reference.set(w.key, w.value);
                } else if (w.type === 'delete') {
                  store.put(b(w.key), null);
                  reference.delete(w.key);
                } else {
                  expect(text(store.get(b(w.key)))).toBe(reference.get(w.key));
                }
              }
              if (s.fails) {
                journal.rollback();
                reference = before;
              } else {
                journal.clear();
              }
            }
          }
          // then
          for (const [k, v] of reference) expect(text(store.get(b(k)))).toBe(v);
          for (const r of [{ gte: undefined, lt: undefined }, ...ranges]) {
            const keyRange: KeyRange = { ...(r.gte === undefined ? {} : { gte: b(r.gte) }), ...(r.lt === undefined ? {} : { lt: b(r.lt) }) };
            const expected = [...reference.entries()]
              .filter(([k]) => (r.gte === undefined || Buffer.compare(b(k), b(r.gte)) >= 0) && (r.lt === undefined || Buffer.compare(b(k), b(r.lt)) < 0))
              .sort(([x], [y]) => Buffer.compare(b(x), b(y)));
            expect(await entries(store, keyRange)).toEqual(expected);
            if (kind.synchronous) {
              expect([...store.entriesSync(keyRange)].map(([k, v]) => [k.toString('latin1'), v.toString('latin1')])).toEqual(expected);
            }
          }
          // and what a final checkpoint leaves in the backend is the reference too
          for (const changes of pending.splice(0)) await kind.commit(backend, changes);
          await checkpoint(store);
          const committed: Array<[string, string]> = [];
          const source = backend.entries({});
          for await (const [k, v] of source as AsyncIterable<[Buffer, Buffer]>) committed.push([k.toString('latin1'), v.toString('latin1')]);
          expect(new Map(committed)).toEqual(reference);
        }),
        { numRuns: 200 },
      );
    });
  });

  describe('deleteRange', () => {
    it('turns every entry in the range, cached or in the backend, into a dirty tombstone', async () => {
      // given
      const { store, backend } = fresh();
      await seed(backend, { a: '1', b: '1', c: '1', d: '1' });
      store.put(b('bb'), b('new'));
      store.put(b('c'), null);
      // when
      const result = store.deleteRange({ gte: b('b'), lt: b('d') });
      if (kind.synchronous) expect(result).toBeUndefined();
      else expect(result).toBeInstanceOf(Promise);
      await result;
      // then
      expect(await entries(store)).toEqual([['a', '1'], ['d', '1']]);
      expect(sortChanges(store.takeDirty())).toEqual([['b', null], ['bb', null], ['c', null]]);
    });

    it('with only an upper bound deletes from the start (as purging closed windows does)', async () => {
      const { store, backend } = fresh();
      await seed(backend, { '\x00\x01': '1', '\x00\x02': '1', '\x01\x00': '1' });
      await store.deleteRange({ lt: b('\x00\x02') });
      await checkpoint(store);
      expect(await entries(store)).toEqual([['\x00\x02', '1'], ['\x01\x00', '1']]);
    });
  });
});

describe('LevelBackend', () => {
  it('keeps stores and partitions apart in one database', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'millrace-level-backend-'));
    const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    try {
      await db.open();
      const one = new LevelBackend(db, 'counts', 0);
      const otherPartition = new LevelBackend(db, 'counts', 1);
      const otherStore = new LevelBackend(db, 'counts2', 0);
      await db.batch(one.writesFor([[b('k'), b('v')]]).map((w) => ({ type: 'put' as const, key: w.key, value: (w as { value: Buffer }).value })));
      expect(text(one.getSync(b('k')))).toBe('v');
      expect(otherPartition.getSync(b('k'))).toBeUndefined();
      expect(otherStore.getSync(b('k'))).toBeUndefined();
      const seen: string[] = [];
      for await (const [k] of otherStore.entries({})) seen.push(k.toString());
      expect(seen).toEqual([]);
    } finally {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
