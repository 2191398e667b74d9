/**
 * The `ProjectionStore` conformance suite. Every implementation proves itself with one line:
 *
 *   runProjectionStoreSuite('LevelProjectionStore', async (options) => levelFixture(options));
 *
 * Tests use fresh, uniquely named projections, so a shared server can run them. The factory is given the history
 * retention and the (small) limits the suite tests against; it may be called more than once.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMillraceError, type ErrorCode } from '../../engine/errors.js';
import { offset } from '../../engine/log/log.js';
import {
  LIVE_NAMESPACE,
  ProjectionErrorCodes,
  type GetResult,
  type JsonValue,
  type ProjectionBatch,
  type ProjectionId,
  type ProjectionItem,
  type ProjectionLimits,
  type ProjectionOp,
  type ProjectionStore,
  type ProjectionStoreOptions,
  type ReadOptions,
  type ScanOptions,
} from '../../engine/projections/store.js';

export interface ProjectionStoreFixture {
  readonly store: ProjectionStore;
  /** Closes the store and opens a new one on the same storage (a restart), returning it. */
  reopen(): Promise<ProjectionStore>;
  /** Closes the store (if still open) and removes its storage. */
  close(): Promise<void>;
}

export type ProjectionStoreFactory = (options: ProjectionStoreOptions) => Promise<ProjectionStoreFixture>;

export const SUITE_RETENTION_MS = 1_000;

/** Small, so that every limit is cheap to reach. */
export const SUITE_LIMITS: ProjectionLimits = {
  maxKeyBytes: 64,
  maxValueBytes: 512,
  maxOpsPerBatch: 50,
  maxBatchBytes: 8_192,
  maxScanLimit: 100,
  maxScanEntries: 200,
};

// ---------------------------------------------------------------- helpers

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  try {
    await promise;
  } catch (err) {
    if (isMillraceError(err, code)) return;
    throw new Error(`expected ${code}, got ${String(err)}`, { cause: err });
  }
  throw new Error(`expected ${code}, but it succeeded`);
}

const put = (key: string, value: JsonValue, timestampMs: number): ProjectionOp => ({ type: 'put', key, value, timestampMs });
const del = (key: string, timestampMs: number): ProjectionOp => ({ type: 'del', key, timestampMs });

function batch(nextOffset: number, ops: readonly ProjectionOp[], source: { topic?: string; partition?: number } = {}): ProjectionBatch {
  return { source: { topic: source.topic ?? 'events', partition: source.partition ?? 0, nextOffset: offset(nextOffset) }, ops };
}

/** The key order stores use: UTF-8 bytes. */
const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/** Every page of a scan, following cursors; stops the test if a store never finishes. */
async function scanPages(store: ProjectionStore, projection: ProjectionId, options: Omit<ScanOptions, 'cursor'>): Promise<ProjectionItem[][]> {
  const pages: ProjectionItem[][] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 10_000; i++) {
    const page = await store.scan(projection, cursor === undefined ? options : { ...options, cursor });
    if (page.status !== 'ok') throw new Error(`scan answered ${page.status}`);
    expect(page.items.length).toBeLessThanOrEqual(options.limit);
    pages.push([...page.items]);
    if (page.nextCursor === undefined) return pages;
    cursor = page.nextCursor;
  }
  throw new Error('scan did not finish in 10 000 pages');
}

async function scanAll(store: ProjectionStore, projection: ProjectionId, options: Omit<ScanOptions, 'cursor' | 'limit'> & { limit?: number } = {}): Promise<Array<[string, JsonValue]>> {
  const pages = await scanPages(store, projection, { limit: 100, ...options });
  return pages.flat().map((item) => [item.key, item.value]);
}

const valueOf = (result: GetResult): JsonValue | undefined | 'not-retained' =>
  result.status === 'found' ? result.value : result.status === 'absent' ? undefined : 'not-retained';

// ---------------------------------------------------------------- the reference model

/** What a projection must answer, built the simplest way: every version kept, answers by linear search. */
export class ReferenceProjection {
  readonly #versions = new Map<string, Map<number, { value: JsonValue } | null>>();
  readonly #positions = new Map<string, number>();
  #streamTimeMs = -1;

  constructor(readonly historyRetentionMs: number) {}

  get boundaryMs(): number {
    return this.#streamTimeMs < 0 ? -Infinity : this.#streamTimeMs - this.historyRetentionMs;
  }

  apply(b: ProjectionBatch): 'applied' | 'skipped' {
    const sources = b.sources ?? [b.source!];
    if (sources.some((s) => s.nextOffset <= (this.#positions.get(`${s.topic}\u0000${s.partition}`) ?? 0))) return 'skipped';
    const boundaryBefore = this.boundaryMs;
    for (const op of b.ops) {
      if (op.timestampMs < boundaryBefore) continue;
      const versions = this.#versions.get(op.key) ?? new Map();
      this.#versions.set(op.key, versions);
      versions.set(op.timestampMs, op.type === 'put' ? { value: op.value } : null);
    }
    for (const op of b.ops) this.#streamTimeMs = Math.max(this.#streamTimeMs, op.timestampMs);
    for (const s of sources) this.#positions.set(`${s.topic}\u0000${s.partition}`, s.nextOffset);
    return 'applied';
  }

  get(key: string, asOfMs?: number): GetResult {
    if (asOfMs !== undefined && asOfMs < this.boundaryMs) return { status: 'not-retained', retainedFromMs: this.boundaryMs };
    const versions = [...(this.#versions.get(key) ?? new Map<number, { value: JsonValue } | null>())]
      .filter(([time]) => asOfMs === undefined || time <= asOfMs)
      .sort(([a], [b]) => a - b);
    const last = versions.at(-1);
    if (last === undefined || last[1] === null) return { status: 'absent' };
    return { status: 'found', value: last[1].value, timestampMs: last[0] };
  }

  scan(asOfMs?: number, prefix = ''): Array<[string, JsonValue]> {
    return [...this.#versions.keys()]
      .filter((key) => key.startsWith(prefix))
      .sort(byteOrder)
      .flatMap((key): Array<[string, JsonValue]> => {
        const found = this.get(key, asOfMs);
        return found.status === 'found' ? [[key, found.value]] : [];
      });
  }
}

// ---------------------------------------------------------------- the suite

export function runProjectionStoreSuite(name: string, factory: ProjectionStoreFactory): void {
  describe(`ProjectionStore conformance: ${name}`, () => {
    let fixture: ProjectionStoreFixture;
    const store = (): ProjectionStore => fixture.store;
    const options: ProjectionStoreOptions = { historyRetentionMs: SUITE_RETENTION_MS, limits: SUITE_LIMITS };
    const projection = (label: string, namespace = LIVE_NAMESPACE): ProjectionId => ({
      name: `p-${label}-${randomUUID().slice(0, 8)}`,
      namespace,
    });

    beforeAll(async () => {
      fixture = await factory(options);
    });
    afterAll(async () => {
      await fixture?.close();
    });

    it('reports the retention and limits it was given', () => {
      expect(store().historyRetentionMs).toBe(SUITE_RETENTION_MS);
      expect(store().limits).toEqual(SUITE_LIMITS);
    });

    describe('apply and positions', () => {
      it('given an empty projection, when a batch applies, then its values and position are there', async () => {
        const p = projection('apply');
        expect(await store().positions(p)).toEqual([]);
        const result = await store().apply(p, batch(3, [put('a', { n: 1 }, 10), put('b', 'two', 11), del('c', 12)]));
        expect(result).toEqual({ status: 'applied', position: 3, expiredOps: 0 });
        expect(await store().get(p, 'a')).toEqual({ status: 'found', value: { n: 1 }, timestampMs: 10 });
        expect(await store().get(p, 'b')).toEqual({ status: 'found', value: 'two', timestampMs: 11 });
        expect(await store().get(p, 'c')).toEqual({ status: 'absent' });
        expect(await store().positions(p)).toEqual([{ topic: 'events', partition: 0, nextOffset: 3, maxTimestampMs: 12 }]);
      });

      it('round-trips JSON values, and a null value is a value, not a delete', async () => {
        const p = projection('json');
        const values: JsonValue[] = [null, true, false, 0, -1.5, 1e21, '', 'ünï ☃ 😀', [], [1, [2, { x: null }]], {}, { nested: { deep: ['a', 1, true] } }];
        await store().apply(p, batch(1, values.map((value, i) => put(`k${i}`, value, 1))));
        for (const [i, value] of values.entries()) {
          expect(await store().get(p, `k${i}`)).toEqual({ status: 'found', value, timestampMs: 1 });
        }
      });

      it('given an applied batch, when it or an older one is applied again, then it is skipped and changes nothing', async () => {
        const p = projection('idempotent');
        await store().apply(p, batch(5, [put('a', 'first', 100)]));
        // A replay after a crash may carry different values (non-deterministic code); it must not be applied.
        expect(await store().apply(p, batch(5, [put('a', 'replayed', 100), put('z', 'new', 100)]))).toEqual({ status: 'skipped', position: 5 });
        expect(await store().apply(p, batch(2, [put('a', 'older', 100)]))).toEqual({ status: 'skipped', position: 5 });
        expect(await store().get(p, 'a')).toMatchObject({ value: 'first' });
        expect(await store().get(p, 'z')).toEqual({ status: 'absent' });
        expect((await store().positions(p)).map((x) => x.nextOffset)).toEqual([5]);
        expect(await store().apply(p, batch(6, [put('a', 'next', 101)]))).toMatchObject({ status: 'applied', position: 6 });
        expect(await store().get(p, 'a')).toMatchObject({ value: 'next' });
      });

      it('skips a batch at offset 0 on a new projection without creating it', async () => {
        const p = projection('zero');
        expect(await store().apply(p, batch(0, [put('a', 1, 1)]))).toEqual({ status: 'skipped', position: 0 });
        expect((await store().list()).some((x) => x.name === p.name)).toBe(false);
        expect(await store().get(p, 'a')).toEqual({ status: 'absent' });
      });

      it('keeps one position per topic and partition, each advancing on its own', async () => {
        const p = projection('positions');
        await store().apply(p, batch(10, [put('a', 1, 1)], { partition: 0 }));
        await store().apply(p, batch(3, [put('b', 2, 2)], { partition: 1 }));
        await store().apply(p, batch(7, [put('c', 3, 3)], { topic: 'other', partition: 1 }));
        await store().apply(p, batch(4, [], { topic: 'other', partition: 0 }));
        // Behind partition 0, but beyond partition 1: applied.
        expect(await store().apply(p, batch(4, [put('d', 4, 4)], { partition: 1 }))).toMatchObject({ status: 'applied' });
        expect(await store().apply(p, batch(9, [put('e', 5, 5)], { partition: 0 }))).toMatchObject({ status: 'skipped' });
        expect(await store().positions(p)).toEqual([
          { topic: 'events', partition: 0, nextOffset: 10, maxTimestampMs: 1 },
          { topic: 'events', partition: 1, nextOffset: 4, maxTimestampMs: 4 },
          { topic: 'other', partition: 0, nextOffset: 4, maxTimestampMs: -1 },
          { topic: 'other', partition: 1, nextOffset: 7, maxTimestampMs: 3 },
        ]);
        expect(await store().get(p, 'e')).toEqual({ status: 'absent' });
      });

      it('a batch without ops advances the position only', async () => {
        const p = projection('empty');
        await store().apply(p, batch(1, [put('a', 1, 1)]));
        expect(await store().apply(p, batch(9, []))).toMatchObject({ status: 'applied', position: 9 });
        expect((await store().positions(p))[0]).toMatchObject({ nextOffset: 9, maxTimestampMs: 1 });
        expect(await store().get(p, 'a')).toMatchObject({ value: 1 });
      });

      it('applies a batch of several sources with all their positions, or skips it whole when any is not beyond', async () => {
        const p = projection('sources');
        const at = (partition: number, nextOffset: number, topic = 'events') => ({ topic, partition, nextOffset: offset(nextOffset) });
        expect(await store().apply(p, { sources: [at(0, 4), at(1, 2), at(0, 9, 'other')], ops: [put('a', 1, 10), put('b', 2, 20)] })).toMatchObject({ status: 'applied' });
        expect(await store().positions(p)).toEqual([
          { topic: 'events', partition: 0, nextOffset: 4, maxTimestampMs: 20 },
          { topic: 'events', partition: 1, nextOffset: 2, maxTimestampMs: 20 },
          { topic: 'other', partition: 0, nextOffset: 9, maxTimestampMs: 20 },
        ]);
        // Beyond on partition 0, not on partition 1: nothing is written, no position moves.
        expect(await store().apply(p, { sources: [at(0, 6), at(1, 2)], ops: [put('a', 'no', 30)] })).toMatchObject({ status: 'skipped' });
        expect(await store().get(p, 'a')).toEqual({ status: 'found', value: 1, timestampMs: 10 });
        expect((await store().positions(p)).map((x) => x.nextOffset)).toEqual([4, 2, 9]);
        // A new partition among old ones.
        expect(await store().apply(p, { sources: [at(0, 5), at(2, 1)], ops: [put('c', 3, 25)] })).toMatchObject({ status: 'applied' });
        expect((await store().positions(p)).map((x) => `${x.topic}/${x.partition}@${x.nextOffset}`)).toEqual(['events/0@5', 'events/1@2', 'events/2@1', 'other/0@9']);
        await expectCode(store().apply(p, { sources: [at(0, 7), at(0, 8)], ops: [] }), ProjectionErrorCodes.invalidBatch);
        await expectCode(store().apply(p, { source: at(0, 7), sources: [at(1, 8)], ops: [] }), ProjectionErrorCodes.invalidBatch);
        await expectCode(store().apply(p, { sources: [], ops: [] }), ProjectionErrorCodes.invalidBatch);
        expect((await store().positions(p)).map((x) => x.nextOffset)).toEqual([5, 2, 1, 9]);
      });

      it('given concurrent batches of one partition in any order, then each applies once or is skipped', async () => {
        const p = projection('concurrent');
        const offsets = [7, 3, 12, 1, 20, 15, 2, 19, 11, 5, 8, 4, 16, 6, 10, 9, 13, 18, 14, 17];
        const results = await Promise.all(offsets.map((n) => store().apply(p, batch(n, [put('k', `v${n}`, n), put(`only-${n}`, n, n)]))));
        const applied = offsets.filter((_, i) => results[i]!.status === 'applied');
        // Applied in completion order, each beyond the one before.
        expect(applied).toContain(20);
        expect((await store().positions(p))[0]!.nextOffset).toBe(20);
        expect(await store().get(p, 'k')).toEqual({ status: 'found', value: 'v20', timestampMs: 20 });
        for (const n of offsets) {
          expect((await store().get(p, `only-${n}`)).status).toBe(applied.includes(n) ? 'found' : 'absent');
        }
      });
    });

    describe('atomicity', () => {
      const invalidOps: Array<[string, ProjectionOp]> = [
        ['a key over the limit', put('x'.repeat(SUITE_LIMITS.maxKeyBytes + 1), 1, 1)],
        ['a value over the limit', put('big', 'x'.repeat(SUITE_LIMITS.maxValueBytes), 1)],
        ['a value JSON cannot hold', put('fn', (() => 1) as unknown as JsonValue, 1)],
        ['a cyclic value', put('cycle', (() => { const o: Record<string, unknown> = {}; o['self'] = o; return o as JsonValue; })(), 1)],
        ['a negative time', put('neg', 1, -1)],
        ['a fractional time', put('frac', 1, 1.5)],
        ['an empty key', put('', 1, 1)],
        ['a key holding U+0000', put('a\u0000b', 1, 1)],
        ['a lone surrogate', put('a\ud800', 1, 1)],
        ['an unknown op type', { type: 'upsert', key: 'u', value: 1, timestampMs: 1 } as unknown as ProjectionOp],
      ];

      it.each(invalidOps)('given a batch ending in %s, then it is refused and leaves nothing', async (_label, bad) => {
        const p = projection('atomic');
        await store().apply(p, batch(1, [put('before', 'kept', 1)]));
        await expectCode(store().apply(p, batch(2, [put('before', 'changed', 2), put('new', 'x', 2), del('before', 3), bad])), ProjectionErrorCodes.invalidBatch);
        expect(await store().get(p, 'before')).toEqual({ status: 'found', value: 'kept', timestampMs: 1 });
        expect(await store().get(p, 'new')).toEqual({ status: 'absent' });
        expect(await store().positions(p)).toEqual([{ topic: 'events', partition: 0, nextOffset: 1, maxTimestampMs: 1 }]);
        // The refused offset is still free.
        expect(await store().apply(p, batch(2, [put('new', 'y', 2)]))).toMatchObject({ status: 'applied' });
      });

      it('a refused first batch does not create the projection', async () => {
        const p = projection('atomic-new');
        await expectCode(store().apply(p, batch(1, [put('a', 1, 1), put('b', 1, -5)])), ProjectionErrorCodes.invalidBatch);
        expect((await store().list()).some((x) => x.name === p.name)).toBe(false);
        expect(await store().positions(p)).toEqual([]);
      });

      it('refuses invalid source positions', async () => {
        const p = projection('source');
        await expectCode(store().apply(p, { source: { topic: 'events', partition: 0, nextOffset: -1 as never }, ops: [] }), ProjectionErrorCodes.invalidPosition);
        await expectCode(store().apply(p, { source: { topic: 'events', partition: 0, nextOffset: 1.5 as never }, ops: [] }), ProjectionErrorCodes.invalidPosition);
        await expectCode(store().apply(p, batch(1, [], { partition: -1 })), ProjectionErrorCodes.invalidBatch);
        await expectCode(store().apply(p, batch(1, [], { topic: 'no spaces' })), ProjectionErrorCodes.invalidBatch);
        await expectCode(store().apply(p, batch(1, [], { topic: '' })), ProjectionErrorCodes.invalidBatch);
        expect(await store().positions(p)).toEqual([]);
      });
    });

    describe('versions', () => {
      it('answers as of any moment, a delete answering absent until the next put', async () => {
        const p = projection('asof');
        await store().apply(p, batch(1, [put('k', 'v100', 100), put('k', 'v200', 200)]));
        await store().apply(p, batch(2, [del('k', 300)]));
        await store().apply(p, batch(3, [put('k', 'v400', 400)]));
        const at = async (asOfMs: number): Promise<GetResult> => store().get(p, 'k', { asOfMs });
        expect(await at(99)).toEqual({ status: 'absent' });
        expect(await at(100)).toEqual({ status: 'found', value: 'v100', timestampMs: 100 });
        expect(await at(199)).toEqual({ status: 'found', value: 'v100', timestampMs: 100 });
        expect(await at(250)).toEqual({ status: 'found', value: 'v200', timestampMs: 200 });
        expect(await at(300)).toEqual({ status: 'absent' });
        expect(await at(399)).toEqual({ status: 'absent' });
        expect(await at(400)).toEqual({ status: 'found', value: 'v400', timestampMs: 400 });
        expect(await at(10_000)).toEqual({ status: 'found', value: 'v400', timestampMs: 400 });
        expect(await store().get(p, 'k')).toEqual({ status: 'found', value: 'v400', timestampMs: 400 });
        expect(await store().get(p, 'never', { asOfMs: 400 })).toEqual({ status: 'absent' });
      });

      it('the latest is the version with the greatest time: an out-of-order event goes into history', async () => {
        const p = projection('order');
        await store().apply(p, batch(1, [put('k', 'late-time', 500)]));
        await store().apply(p, batch(2, [put('k', 'early-time', 300)]));
        await store().apply(p, batch(3, [del('d', 500)]));
        await store().apply(p, batch(4, [put('d', 'before the delete', 400)]));
        expect(await store().get(p, 'k')).toMatchObject({ value: 'late-time', timestampMs: 500 });
        expect(await store().get(p, 'k', { asOfMs: 400 })).toMatchObject({ value: 'early-time', timestampMs: 300 });
        expect(await store().get(p, 'd')).toEqual({ status: 'absent' });
        expect(await store().get(p, 'd', { asOfMs: 450 })).toMatchObject({ value: 'before the delete' });
      });

      it('a later write at the same key and time replaces the earlier, within a batch and across batches', async () => {
        const p = projection('same-time');
        await store().apply(p, batch(1, [put('k', 'a', 10), put('k', 'b', 10), put('j', 'x', 10), del('j', 10)]));
        expect(await store().get(p, 'k')).toMatchObject({ value: 'b', timestampMs: 10 });
        expect(await store().get(p, 'j')).toEqual({ status: 'absent' });
        await store().apply(p, batch(2, [put('k', 'a', 10), put('j', 'back', 10)]));
        expect(await store().get(p, 'k', { asOfMs: 10 })).toMatchObject({ value: 'a' });
        expect(await store().get(p, 'j')).toMatchObject({ value: 'back' });
      });

      it('answers "not retained" for a moment before the retained history, before and after pruning', async () => {
        const p = projection('retention');
        await store().apply(p, batch(1, [put('k', 'old', 1_000), put('k', 'mid', 3_000)]));
        await store().apply(p, batch(2, [put('k', 'new', 5_000)]));
        const retainedFromMs = 5_000 - SUITE_RETENTION_MS;
        for (const pruned of [false, true]) {
          if (pruned) await store().prune(p);
          expect(await store().get(p, 'k', { asOfMs: retainedFromMs - 1 })).toEqual({ status: 'not-retained', retainedFromMs });
          expect(await store().get(p, 'never', { asOfMs: 0 })).toEqual({ status: 'not-retained', retainedFromMs });
          expect(await store().scan(p, { limit: 10, asOfMs: retainedFromMs - 1 })).toEqual({ status: 'not-retained', retainedFromMs });
          expect(await store().get(p, 'k', { asOfMs: retainedFromMs })).toEqual({ status: 'found', value: 'mid', timestampMs: 3_000 });
          expect(await store().get(p, 'k')).toMatchObject({ value: 'new' });
        }
      });

      it('stream time is the greatest time over all partitions', async () => {
        const p = projection('stream-time');
        await store().apply(p, batch(1, [put('k', 'a', 2_000)], { partition: 0 }));
        await store().apply(p, batch(1, [put('j', 'b', 9_000)], { partition: 1 }));
        expect(await store().get(p, 'k', { asOfMs: 7_999 })).toEqual({ status: 'not-retained', retainedFromMs: 8_000 });
        await store().apply(p, batch(2, [put('k', 'c', 3_000)], { partition: 0 }));
        expect(await store().get(p, 'k', { asOfMs: 8_000 })).toEqual({ status: 'found', value: 'a', timestampMs: 2_000 });
      });

      it('drops ops older than the boundary before their batch, but never one op of a batch for another', async () => {
        const p = projection('expired');
        const first = await store().apply(p, batch(1, [put('old', 'kept', 0), put('k', 'v', 5_000)]));
        expect(first).toMatchObject({ status: 'applied', expiredOps: 0 });
        expect(await store().get(p, 'old')).toMatchObject({ value: 'kept', timestampMs: 0 });
        const second = await store().apply(p, batch(2, [put('late', 'x', 3_999), put('k', 'late', 3_000), put('edge', 'y', 4_000)]));
        expect(second).toMatchObject({ status: 'applied', expiredOps: 2 });
        expect(await store().get(p, 'late')).toEqual({ status: 'absent' });
        expect(await store().get(p, 'k', { asOfMs: 4_500 })).toEqual({ status: 'absent' });
        expect(await store().get(p, 'edge')).toMatchObject({ value: 'y', timestampMs: 4_000 });
      });

      it('prune removes what no retained moment needs and changes no answer', async () => {
        const p = projection('prune');
        await store().apply(p, batch(1, [
          put('a', 1, 100), put('a', 2, 200), put('a', 3, 4_500), // 2 answers at the boundary: 1 goes
          put('b', 1, 100), del('b', 300), // a tombstone at the boundary: both go
          put('c', 1, 4_100), put('c', 2, 4_200), // all after the boundary: nothing goes
          put('d', 1, 100), // the only version: it answers at the boundary, so it stays
        ]));
        await store().apply(p, batch(2, [put('e', 'x', 5_000)]));
        const keys = ['a', 'b', 'c', 'd', 'e'];
        const moments = [undefined, 4_000, 4_050, 4_150, 4_250, 4_600, 5_000, 9_999];
        const answers = async (): Promise<unknown[]> => {
          const out: unknown[] = [];
          for (const key of keys) for (const asOfMs of moments) out.push(await store().get(p, key, { asOfMs }));
          for (const asOfMs of moments) out.push(await scanAll(store(), p, { asOfMs, limit: 2 }));
          return out;
        };
        const before = await answers();
        expect(await store().prune(p)).toEqual({ versionsRemoved: 3 });
        expect(await answers()).toEqual(before);
        expect(await store().prune(p)).toEqual({ versionsRemoved: 0 });
        // Writes after a prune are answered as if nothing had been pruned.
        await store().apply(p, batch(3, [put('b', 'again', 4_000)]));
        expect(await store().get(p, 'b')).toMatchObject({ value: 'again', timestampMs: 4_000 });
        expect(await store().prune(projection('never-applied'))).toEqual({ versionsRemoved: 0 });
      });

      it('answers as the reference model does at random moments (property)', async () => {
        const keys = ['a', 'b', 'ab', 'a/1', 'é', 'z'];
        const op = fc.record({
          del: fc.boolean(),
          key: fc.constantFrom(...keys),
          timestampMs: fc.integer({ min: 0, max: 3_000 }),
          value: fc.integer({ min: 0, max: 9 }),
        });
        const step = fc.oneof(
          { weight: 9, arbitrary: fc.record({ kind: fc.constant('apply' as const), partition: fc.integer({ min: 0, max: 1 }), nextOffset: fc.integer({ min: 0, max: 12 }), ops: fc.array(op, { maxLength: 6 }) }) },
          { weight: 1, arbitrary: fc.record({ kind: fc.constant('prune' as const) }) },
        );
        await fc.assert(
          fc.asyncProperty(
            fc.array(step, { minLength: 1, maxLength: 20 }),
            fc.array(fc.integer({ min: 0, max: 3_500 }), { minLength: 1, maxLength: 8 }),
            fc.integer({ min: 1, max: 4 }),
            async (steps, moments, limit) => {
              const p = projection('property');
              const reference = new ReferenceProjection(SUITE_RETENTION_MS);
              for (const s of steps) {
                if (s.kind === 'prune') {
                  await store().prune(p);
                  continue;
                }
                const b = batch(s.nextOffset, s.ops.map((o) => (o.del ? del(o.key, o.timestampMs) : put(o.key, o.value, o.timestampMs))), { partition: s.partition });
                const expected = reference.apply(b);
                expect((await store().apply(p, b)).status).toBe(expected);
              }
              // Moments at the versions' own times too, where an off-by-one would show.
              const opTimes = steps.flatMap((s) => (s.kind === 'apply' ? s.ops.map((o) => o.timestampMs) : [])).slice(-6);
              for (const asOfMs of [undefined, ...moments, ...opTimes]) {
                for (const key of keys) expect(await store().get(p, key, { asOfMs })).toEqual(reference.get(key, asOfMs));
                const expected = reference.scan(asOfMs);
                if (asOfMs !== undefined && asOfMs < reference.boundaryMs) {
                  expect((await store().scan(p, { limit, asOfMs })).status).toBe('not-retained');
                } else {
                  expect(await scanAll(store(), p, { asOfMs, limit })).toEqual(expected);
                  expect(await scanAll(store(), p, { asOfMs, limit, prefix: 'a' })).toEqual(reference.scan(asOfMs, 'a'));
                }
              }
              await store().drop(p);
            },
          ),
          { numRuns: 40 },
        );
      });
    });

    describe('scans', () => {
      it('returns keys in UTF-8 byte order, latest values, deleted keys left out', async () => {
        const p = projection('order');
        const keys = ['b', 'a', 'ab', 'a\u0001', 'a/b', 'A', 'é', '\uffff', '😀', 'a b', '0'];
        await store().apply(p, batch(1, [...keys.map((k, i) => put(k, i, 10)), put('gone', 1, 5), del('gone', 6)]));
        const items = await scanAll(store(), p);
        expect(items.map(([k]) => k)).toEqual([...keys].sort(byteOrder));
        expect(items.find(([k]) => k === 'é')).toEqual(['é', keys.indexOf('é')]);
        expect(items.some(([k]) => k === 'gone')).toBe(false);
      });

      it('pages with a cursor: every key exactly once, in order, and the last page has no cursor', async () => {
        const p = projection('paging');
        const keys = Array.from({ length: 57 }, (_, i) => `key-${String(i).padStart(3, '0')}`);
        await store().apply(p, batch(1, keys.slice(0, 40).map((k) => put(k, k, 1))));
        await store().apply(p, batch(2, keys.slice(40).map((k) => put(k, k, 1))));
        const pages = await scanPages(store(), p, { limit: 10 });
        expect(pages.flat().map((i) => i.key)).toEqual(keys);
        expect(pages.length).toBeGreaterThanOrEqual(6);
        const whole = await store().scan(p, { limit: 57 });
        expect(whole).toMatchObject({ status: 'ok' });
        expect(whole.status === 'ok' && whole.items.length === 57 && whole.nextCursor === undefined).toBe(true);
        const empty = await store().scan(projection('no-such'), { limit: 5 });
        expect(empty).toEqual({ status: 'ok', items: [] });
      });

      it('given writes between pages, then keys behind the cursor are not repeated and keys ahead are seen', async () => {
        const p = projection('stable');
        const keys = Array.from({ length: 40 }, (_, i) => `k${String(i).padStart(2, '0')}`);
        await store().apply(p, batch(1, keys.map((k) => put(k, 'v1', 10))));
        const first = await store().scan(p, { limit: 10 });
        if (first.status !== 'ok' || first.nextCursor === undefined) throw new Error('expected a first page with a cursor');
        expect(first.items.map((i) => i.key)).toEqual(keys.slice(0, 10));
        await store().apply(p, batch(2, [
          put('k05x', 'behind', 11), put('k03', 'v2', 11), // behind the cursor
          put('k25x', 'ahead', 11), put('k15', 'v2', 11), del('k30', 11), // ahead of it
        ]));
        const rest: ProjectionItem[] = [];
        let cursor: string | undefined = first.nextCursor;
        while (cursor !== undefined) {
          const page = await store().scan(p, { limit: 10, cursor });
          if (page.status !== 'ok') throw new Error(page.status);
          rest.push(...page.items);
          cursor = page.nextCursor;
          // Writes after the cursor keep coming while paging.
          if (cursor !== undefined) await store().apply(p, batch(3 + rest.length, [put('k39', `v${rest.length}`, 12 + rest.length)]));
        }
        const seen = [...first.items, ...rest].map((i) => i.key);
        expect(new Set(seen).size).toBe(seen.length);
        expect(seen).toEqual([...keys.filter((k) => k !== 'k30'), 'k25x'].sort(byteOrder));
        expect(rest.find((i) => i.key === 'k15')?.value).toBe('v2');
      });

      it('scans by prefix, with paging, and refuses a cursor of another prefix', async () => {
        const p = projection('prefix');
        const keys = ['use', 'user', 'user/1', 'user/2', 'user/10', 'user0', 'users', 'user/é', 'usf', 'u'];
        await store().apply(p, batch(1, keys.map((k) => put(k, k, 1))));
        expect((await scanAll(store(), p, { prefix: 'user/' })).map(([k]) => k)).toEqual(['user/1', 'user/10', 'user/2', 'user/é']);
        expect((await scanAll(store(), p, { prefix: 'user', limit: 2 })).map(([k]) => k)).toEqual(['user', 'user/1', 'user/10', 'user/2', 'user/é', 'user0', 'users']);
        expect(await scanAll(store(), p, { prefix: 'nothing' })).toEqual([]);
        expect((await scanAll(store(), p, { prefix: '' })).length).toBe(keys.length);
        const page = await store().scan(p, { prefix: 'user', limit: 2 });
        if (page.status !== 'ok' || page.nextCursor === undefined) throw new Error('expected a cursor');
        await expectCode(store().scan(p, { prefix: 'use', limit: 2, cursor: page.nextCursor }), ProjectionErrorCodes.invalidRequest);
        await expectCode(store().scan(p, { limit: 2, cursor: page.nextCursor }), ProjectionErrorCodes.invalidRequest);
        await expectCode(store().scan(p, { prefix: 'user', limit: 2, cursor: 'not a cursor' }), ProjectionErrorCodes.invalidRequest);
        await expectCode(store().scan(p, { prefix: 'user', limit: 2, cursor: Buffer.from('{"v":2}').toString('base64url') }), ProjectionErrorCodes.invalidRequest);
      });

      it('scans as of a moment', async () => {
        const p = projection('scan-asof');
        await store().apply(p, batch(1, [put('a', 1, 100), put('b', 1, 200), put('c', 1, 300)]));
        await store().apply(p, batch(2, [put('a', 2, 250), del('b', 260)]));
        expect(await scanAll(store(), p, { asOfMs: 150 })).toEqual([['a', 1]]);
        expect(await scanAll(store(), p, { asOfMs: 255, limit: 1 })).toEqual([['a', 2], ['b', 1]]);
        expect(await scanAll(store(), p, { asOfMs: 300 })).toEqual([['a', 2], ['c', 1]]);
        expect(await scanAll(store(), p)).toEqual([['a', 2], ['c', 1]]);
      });

      it('answers keys with long histories (a counter updated by every event) with their latest or as-of version', async () => {
        const p = projection('long-history');
        // `count` has 60 versions, `gone` 40 then a delete, `short` 2; their versions interleave in time.
        for (let i = 1; i <= 60; i++) {
          const ops = [put('count', i, 10 * i)];
          if (i <= 40) ops.push(put('gone', i, 10 * i + 1));
          if (i === 41) ops.push(del('gone', 10 * i + 1));
          if (i <= 2) ops.push(put('short', i, 10 * i + 2));
          await store().apply(p, batch(i, ops));
        }
        expect(await scanAll(store(), p)).toEqual([['count', 60], ['short', 2]]);
        expect(await scanAll(store(), p, { limit: 1 })).toEqual([['count', 60], ['short', 2]]);
        expect(await scanAll(store(), p, { asOfMs: 255 })).toEqual([['count', 25], ['gone', 25], ['short', 2]]);
        expect(await scanAll(store(), p, { asOfMs: 405 })).toEqual([['count', 40], ['gone', 40], ['short', 2]]);
        expect(await scanAll(store(), p, { asOfMs: 415 })).toEqual([['count', 41], ['short', 2]]);
        expect(await scanAll(store(), p, { asOfMs: 5 })).toEqual([]);
        expect(await scanAll(store(), p, { prefix: 'g' })).toEqual([]);
      });

      it('finishes through long runs of deleted keys and history, each page within its limit', async () => {
        const p = projection('tombstones');
        const dead = Array.from({ length: 3 * SUITE_LIMITS.maxScanEntries }, (_, i) => `d${String(i).padStart(4, '0')}`);
        for (let i = 0; i < dead.length; i += 25) {
          await store().apply(p, batch(1 + i, dead.slice(i, i + 25).flatMap((k) => [put(k, 1, 1), del(k, 2)])));
        }
        await store().apply(p, batch(dead.length + 10, [put('a-live', 1, 3), put('z-live', 1, 3)]));
        const pages = await scanPages(store(), p, { limit: 1 });
        expect(pages.flat().map((i) => i.key)).toEqual(['a-live', 'z-live']);
      });
    });

    describe('namespaces', () => {
      it('keeps namespaces and names apart: values and positions', async () => {
        const live = projection('ns');
        const rebuild = { name: live.name, namespace: 'gen-2' };
        const other = projection('ns-other');
        await store().apply(live, batch(10, [put('k', 'live', 1)]));
        await store().apply(rebuild, batch(2, [put('k', 'rebuild', 1), put('only-rebuild', 1, 1)]));
        await store().apply(other, batch(1, [put('k', 'other', 1)]));
        expect(await store().get(live, 'k')).toMatchObject({ value: 'live' });
        expect(await store().get(rebuild, 'k')).toMatchObject({ value: 'rebuild' });
        expect(await store().get(other, 'k')).toMatchObject({ value: 'other' });
        expect(await store().get(live, 'only-rebuild')).toEqual({ status: 'absent' });
        expect((await store().positions(live))[0]!.nextOffset).toBe(10);
        expect((await store().positions(rebuild))[0]!.nextOffset).toBe(2);
        expect(await scanAll(store(), rebuild)).toEqual([['k', 'rebuild'], ['only-rebuild', 1]]);
        // A namespace's retention follows its own stream time.
        await store().apply(rebuild, batch(3, [put('k', 'later', 50_000)]));
        expect(await store().get(live, 'k', { asOfMs: 1 })).toMatchObject({ status: 'found' });
      });

      it('lists projections, and activating a rebuild switches the active namespace', async () => {
        const live = projection('switch');
        const rebuild = { name: live.name, namespace: 'gen-2' };
        expect(await store().active(live.name)).toBeUndefined();
        await expectCode(store().activate(live), ProjectionErrorCodes.unknownProjection);
        await store().apply(live, batch(1, [put('k', 1, 1)]));
        await store().activate(live);
        expect(await store().active(live.name)).toBe(LIVE_NAMESPACE);
        await store().apply(rebuild, batch(1, [put('k', 2, 1)]));
        const mine = (await store().list()).filter((x) => x.name === live.name);
        expect(mine).toEqual([
          { name: live.name, namespace: 'gen-2', active: false },
          { name: live.name, namespace: LIVE_NAMESPACE, active: true },
        ]);
        await store().activate(rebuild);
        expect(await store().active(live.name)).toBe('gen-2');
        const all = await store().list();
        const sorted = [...all].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0));
        expect(all).toEqual(sorted);
        // The old generation goes once nothing reads it.
        await store().drop(live);
        expect((await store().list()).filter((x) => x.name === live.name)).toEqual([{ name: live.name, namespace: 'gen-2', active: true }]);
      });

      it('drop removes one namespace entirely, and a new projection of the same name starts empty', async () => {
        const sandbox = projection('drop', 'sandbox-1');
        const live = { name: sandbox.name, namespace: LIVE_NAMESPACE };
        await store().apply(live, batch(5, [put('k', 'live', 1)]));
        await store().apply(sandbox, batch(5, [put('k', 'sandbox', 1), put('j', 1, 2)]));
        await store().apply(sandbox, batch(2, [put('k', 'p1', 3)], { partition: 1 }));
        await store().activate(sandbox);
        await store().drop(sandbox);
        expect(await store().get(sandbox, 'k')).toEqual({ status: 'absent' });
        expect(await store().get(sandbox, 'k', { asOfMs: 1 })).toEqual({ status: 'absent' });
        expect(await store().scan(sandbox, { limit: 10 })).toEqual({ status: 'ok', items: [] });
        expect(await store().positions(sandbox)).toEqual([]);
        expect(await store().active(sandbox.name)).toBeUndefined();
        expect((await store().list()).filter((x) => x.name === sandbox.name)).toEqual([{ name: sandbox.name, namespace: LIVE_NAMESPACE, active: false }]);
        expect(await store().get(live, 'k')).toMatchObject({ value: 'live' });
        expect((await store().positions(live))[0]!.nextOffset).toBe(5);
        // Re-created: offsets start over and no old key or stream time shows through.
        expect(await store().apply(sandbox, batch(1, [put('new', 1, 0)]))).toMatchObject({ status: 'applied' });
        expect(await scanAll(store(), sandbox)).toEqual([['new', 1]]);
        expect(await store().get(sandbox, 'new', { asOfMs: 0 })).toMatchObject({ status: 'found' });
        await store().drop(projection('never-existed'));
      });
    });

    describe('limits', () => {
      it('accepts keys and values at their limits and refuses one byte more', async () => {
        const p = projection('limits');
        const key = 'é'.repeat(SUITE_LIMITS.maxKeyBytes / 2); // two bytes each
        const value = 'x'.repeat(SUITE_LIMITS.maxValueBytes - 2); // plus the JSON quotes
        await store().apply(p, batch(1, [put(key, value, 1)]));
        expect(await store().get(p, key)).toMatchObject({ value });
        await expectCode(store().apply(p, batch(2, [put(key + 'x', 1, 1)])), ProjectionErrorCodes.invalidBatch);
        await expectCode(store().apply(p, batch(2, [put('v', value + 'x', 1)])), ProjectionErrorCodes.invalidBatch);
        await expectCode(store().get(p, key + 'x'), ProjectionErrorCodes.invalidRequest);
        await expectCode(store().get(p, ''), ProjectionErrorCodes.invalidRequest);
        await expectCode(store().scan(p, { limit: 1, prefix: key + 'x' }), ProjectionErrorCodes.invalidRequest);
      });

      it('bounds the ops and bytes of a batch', async () => {
        const p = projection('batch-limits');
        const ops = (n: number, valueBytes: number): ProjectionOp[] => Array.from({ length: n }, (_, i) => put(`k${i}`, 'x'.repeat(valueBytes - 2), 1));
        await store().apply(p, batch(1, ops(SUITE_LIMITS.maxOpsPerBatch, 10)));
        await expectCode(store().apply(p, batch(2, ops(SUITE_LIMITS.maxOpsPerBatch + 1, 10))), ProjectionErrorCodes.invalidBatch);
        const perOp = SUITE_LIMITS.maxValueBytes;
        const count = Math.ceil(SUITE_LIMITS.maxBatchBytes / perOp) + 1;
        await expectCode(store().apply(p, batch(2, ops(count, perOp))), ProjectionErrorCodes.invalidBatch);
        expect((await store().positions(p))[0]!.nextOffset).toBe(1);
      });

      it('bounds scans and refuses invalid reads', async () => {
        const p = projection('read-limits');
        await store().apply(p, batch(1, [put('a', 1, 1)]));
        for (const limit of [0, -1, 1.5, SUITE_LIMITS.maxScanLimit + 1, Number.NaN]) {
          await expectCode(store().scan(p, { limit }), ProjectionErrorCodes.invalidRequest);
        }
        expect(await store().scan(p, { limit: SUITE_LIMITS.maxScanLimit })).toMatchObject({ status: 'ok' });
        const bad: ReadOptions[] = [{ asOfMs: -1 }, { asOfMs: 1.5 }, { asOfMs: Number.POSITIVE_INFINITY }];
        for (const options of bad) {
          await expectCode(store().get(p, 'a', options), ProjectionErrorCodes.invalidRequest);
          await expectCode(store().scan(p, { limit: 1, ...options }), ProjectionErrorCodes.invalidRequest);
        }
      });

      it('refuses invalid projection names and namespaces', async () => {
        for (const id of [{ name: '', namespace: 'live' }, { name: 'a b', namespace: 'live' }, { name: 'ok', namespace: '' }, { name: 'ok', namespace: 'a/b' }, { name: 'x'.repeat(201), namespace: 'live' }]) {
          await expectCode(store().apply(id, batch(1, [])), ProjectionErrorCodes.invalidRequest);
          await expectCode(store().get(id, 'k'), ProjectionErrorCodes.invalidRequest);
          await expectCode(store().scan(id, { limit: 1 }), ProjectionErrorCodes.invalidRequest);
          await expectCode(store().positions(id), ProjectionErrorCodes.invalidRequest);
          await expectCode(store().drop(id), ProjectionErrorCodes.invalidRequest);
          await expectCode(store().activate(id), ProjectionErrorCodes.invalidRequest);
        }
        await expectCode(store().active('a b'), ProjectionErrorCodes.invalidRequest);
      });
    });

    describe('restart', () => {
      it('given a closed and reopened store, then values, history, positions, namespaces and retention are all there', async () => {
        const p = projection('reopen');
        const rebuild = { name: p.name, namespace: 'gen-2' };
        const dropped = projection('reopen-dropped');
        await store().apply(p, batch(4, [put('a', 1, 1_000), put('a', 2, 2_000), del('b', 2_000), put('c', { deep: [1] }, 2_500)]));
        await store().apply(p, batch(9, [put('b', 'p1', 1_500)], { partition: 1 }));
        await store().apply(rebuild, batch(1, [put('a', 'rebuild', 1)]));
        await store().activate(rebuild);
        await store().apply(dropped, batch(1, [put('x', 1, 1)]));
        await store().drop(dropped);
        const snapshot = async (): Promise<unknown> => ({
          latest: await scanAll(store(), p),
          asOf: [await store().get(p, 'a', { asOfMs: 1_600 }), await store().get(p, 'b', { asOfMs: 1_600 }), await store().get(p, 'a', { asOfMs: 1_000 })],
          positions: await store().positions(p),
          rebuild: await scanAll(store(), rebuild),
          active: await store().active(p.name),
          listed: (await store().list()).filter((x) => x.name === p.name || x.name === dropped.name),
        });
        const before = await snapshot();
        await fixture.reopen();
        expect(await snapshot()).toEqual(before);
        expect(await store().get(p, 'a', { asOfMs: 1_499 })).toEqual({ status: 'not-retained', retainedFromMs: 1_500 });
        expect(await store().apply(p, batch(4, [put('a', 'replayed', 3_000)]))).toMatchObject({ status: 'skipped' });
        expect(await store().apply(p, batch(5, [put('a', 'next', 3_000)]))).toMatchObject({ status: 'applied' });
        expect(await store().get(dropped, 'x')).toEqual({ status: 'absent' });
      });

      it('refuses every call once closed', async () => {
        const own = await factory(options);
        try {
          const p = projection('closed');
          await own.store.apply(p, batch(1, [put('a', 1, 1)]));
          await own.store.close();
          await expectCode(own.store.get(p, 'a'), ProjectionErrorCodes.closed);
          await expectCode(own.store.apply(p, batch(2, [])), ProjectionErrorCodes.closed);
          await expectCode(own.store.scan(p, { limit: 1 }), ProjectionErrorCodes.closed);
          await expectCode(own.store.list(), ProjectionErrorCodes.closed);
        } finally {
          await own.close();
        }
      });
    });
  });
}
