import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isMillraceError, type ErrorCode } from '../../engine/errors.js';
import { offset } from '../../engine/log/log.js';
import { LevelProjectionStore } from '../../engine/projections/level-store.js';
import { DEFAULT_PROJECTION_LIMITS, LIVE_NAMESPACE, type ProjectionStoreOptions } from '../../engine/projections/store.js';
import { runProjectionStoreSuite, type ProjectionStoreFixture } from '../conformance/projection-store.js';

interface LevelFixture extends ProjectionStoreFixture {
  readonly store: LevelProjectionStore;
  readonly path: string;
  reopen(): Promise<LevelProjectionStore>;
}

async function levelFixture(options: ProjectionStoreOptions): Promise<LevelFixture> {
  const path = await mkdtemp(join(tmpdir(), 'millrace-projections-'));
  let store = new LevelProjectionStore({ ...options, path });
  await store.open();
  return {
    path,
    get store() {
      return store;
    },
    async reopen() {
      await store.close();
      store = new LevelProjectionStore({ ...options, path });
      await store.open();
      return store;
    },
    async close() {
      await store.close();
      await rm(path, { recursive: true, force: true });
    },
  };
}

runProjectionStoreSuite('LevelProjectionStore', levelFixture);

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(isMillraceError(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
}

const live = { name: 'orders', namespace: LIVE_NAMESPACE };
const put = (key: string, value: number, timestampMs: number) => ({ type: 'put' as const, key, value, timestampMs });
const at = (nextOffset: number) => ({ topic: 'events', partition: 0, nextOffset: offset(nextOffset) });

/** Every raw key of the database, as hex. */
async function rawKeys(store: LevelProjectionStore): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of store.db.keys()) keys.push(key.toString('hex'));
  return keys;
}

describe('LevelProjectionStore', () => {
  const fixtures: LevelFixture[] = [];
  const open = async (options: Partial<ProjectionStoreOptions> = {}) => {
    const fixture = await levelFixture({ historyRetentionMs: 1_000, ...options });
    fixtures.push(fixture);
    return fixture;
  };
  afterEach(async () => {
    for (const fixture of fixtures.splice(0)) await fixture.close();
  });

  it('uses the default limits unless told otherwise, and refuses nonsense options as programmer errors', async () => {
    const { store, path } = await open();
    expect(store.limits).toEqual(DEFAULT_PROJECTION_LIMITS);
    expect(() => new LevelProjectionStore({ path, historyRetentionMs: -1 })).toThrow(RangeError);
    expect(() => new LevelProjectionStore({ path, historyRetentionMs: 1, limits: { maxScanLimit: 0 } })).toThrow(RangeError);
  });

  it('given a LevelDB write that fails, then the apply is refused and neither disk nor memory moved', async () => {
    const { store } = await open();
    await store.apply(live, { source: at(1), ops: [put('a', 1, 5_000)] });
    const original = store.db.batch.bind(store.db);
    (store.db as unknown as { batch: unknown }).batch = async () => {
      throw new Error('disk full');
    };
    const failed = await store.apply(live, { source: at(2), ops: [put('a', 2, 9_000)] }).then(() => undefined, (e: unknown) => e);
    expect(failed).toBeInstanceOf(Error);
    const failedNew = await store.apply({ name: 'other', namespace: LIVE_NAMESPACE }, { source: at(1), ops: [] }).then(() => undefined, (e: unknown) => e);
    expect(failedNew).toBeInstanceOf(Error);
    (store.db as unknown as { batch: unknown }).batch = original;
    // Stream time did not advance to 9 000: 4 500 is still retained.
    expect(await store.get(live, 'a', { asOfMs: 4_500 })).toEqual({ status: 'absent' });
    expect(await store.get(live, 'a')).toMatchObject({ value: 1 });
    expect((await store.positions(live))[0]!.nextOffset).toBe(1);
    expect((await store.list()).map((x) => x.name)).toEqual(['orders']);
    expect(await store.apply(live, { source: at(2), ops: [put('a', 3, 6_000)] })).toMatchObject({ status: 'applied' });
    // A projection first created after the failure does not reuse anything.
    expect(await store.apply({ name: 'other', namespace: LIVE_NAMESPACE }, { source: at(1), ops: [put('b', 1, 1)] })).toMatchObject({ status: 'applied' });
  });

  it('refuses a second store on the same directory with MILLRACE_LOG_LOCKED', async () => {
    const { path } = await open();
    const second = new LevelProjectionStore({ path, historyRetentionMs: 1 });
    await expectCode(second.open(), 'MILLRACE_LOG_LOCKED');
  });

  it('finishes a drop that a crash interrupted when it opens again', async () => {
    const fixture = await open();
    const store = fixture.store;
    await store.apply(live, { source: at(3), ops: [put('a', 1, 1), put('b', 2, 2)] });
    // The drop commits, then its housekeeping fails (as a crash would stop it).
    const original = store.db.clear.bind(store.db);
    (store.db as unknown as { clear: unknown }).clear = async () => {
      throw new Error('crash');
    };
    await expect(store.drop(live)).rejects.toThrow('crash');
    (store.db as unknown as { clear: unknown }).clear = original;
    expect(await store.get(live, 'a')).toEqual({ status: 'absent' });
    expect((await rawKeys(store)).some((k) => k.startsWith('03'))).toBe(true);
    const reopened = await fixture.reopen();
    const left = await rawKeys(reopened);
    expect(left.filter((k) => ['01', '02', '03', '06'].includes(k.slice(0, 2)))).toEqual([]);
    expect(await reopened.list()).toEqual([]);
  });

  it('stops a scan page early after maxScanEntries stored versions, with a cursor to go on', async () => {
    const { store } = await open({ limits: { maxScanEntries: 4 } });
    const ops = Array.from({ length: 10 }, (_, i) => put(`k${i}`, i, 1)).flatMap((op) => [op, { type: 'del' as const, key: op.key, timestampMs: 2 }]);
    await store.apply(live, { source: at(1), ops: [...ops, put('z', 1, 3)] });
    const first = await store.scan(live, { limit: 10 });
    expect(first).toMatchObject({ status: 'ok', items: [] });
    expect(first.status === 'ok' && first.nextCursor !== undefined).toBe(true);
    let cursor = first.status === 'ok' ? first.nextCursor : undefined;
    const seen: string[] = [];
    let pages = 1;
    while (cursor !== undefined) {
      const page = await store.scan(live, { limit: 10, cursor });
      if (page.status !== 'ok') throw new Error(page.status);
      seen.push(...page.items.map((i) => i.key));
      cursor = page.nextCursor;
      pages++;
    }
    expect(seen).toEqual(['z']);
    expect(pages).toBeGreaterThan(2);
  });

  it('keeps a key and all its versions together, in key then time order on disk', async () => {
    const { store } = await open();
    await store.apply(live, { source: at(1), ops: [put('ab', 1, 300), put('a', 1, 200), put('a', 2, 100), put('a\u0001', 3, 1)] });
    const versions: string[] = [];
    for await (const key of store.db.keys({ gte: Buffer.of(0x03), lt: Buffer.of(0x04) })) {
      versions.push(`${key.subarray(5, key.length - 9).toString('utf8')}@${key.readUInt32BE(key.length - 4)}`);
    }
    expect(versions).toEqual(['a@100', 'a@200', 'a\u0001@1', 'ab@300']);
  });
});
