/**
 * The `Log` conformance suite. Every implementation proves itself with one line:
 *
 *   runLogSuite('EmbeddedLog', async () => embeddedFixture());
 *
 * Tests use fresh, uniquely named topics so that a shared broker can run them. Retention and compaction are asked
 * for with `runMaintenance()` and then awaited with `eventually`, because a broker applies them on its own schedule.
 * A broker also applies them to whole closed segments only: records whose retention is checked are appended one
 * request at a time (a broker-backed fixture creates topics with a short `segment.ms`, so each lands in a segment of
 * its own), and a compacted topic's active segment is closed through `closeActiveSegment` while a test waits.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMillraceError, type ErrorCode } from '../../engine/errors.js';
import { offset, type Log, type LogRecord, type Offset } from '../../engine/log/log.js';

export interface LogFixture {
  readonly log: Log;
  /** Closes the log and opens a new one on the same storage (a restart), returning it. */
  reopen(): Promise<Log>;
  close(): Promise<void>;
  /** How long `eventually` waits for retention and compaction (a broker needs longer). */
  readonly maintenanceTimeoutMs?: number;
  /**
   * Brokers compact closed segments only, close the active one when a later write comes, and drop a tombstone only in
   * a cleaning pass after the one that first saw it (which needs new data to clean). Called while a compaction test
   * waits, before each look: a broker-backed fixture writes what no reader of the log sees (an aborted transaction)
   * so that the segment holding the records closes and the cleaner has work again. Without it, nothing is done.
   */
  readonly closeActiveSegment?: (topic: string, partition: number) => Promise<void>;
}

/** Kafka's `UtilsTest.testMurmur2` vectors: key bytes → murmur2 as a signed 32-bit int. */
export const MURMUR2_VECTORS: ReadonlyArray<readonly [string, number]> = [
  ['21', -973932308],
  ['foobar', -790332482],
  ['a-little-bit-long-string', -985981536],
  ['a-little-bit-longer-string', -1486304829],
  ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
  ['abc', 479470107],
  ['', 275646681],
];

export function kafkaPartition(murmur2: number, partitions: number): number {
  return (murmur2 & 0x7fffffff) % partitions;
}

const buf = (s: string): Buffer => Buffer.from(s, 'utf8');
const text = (b: Buffer | null): string | null => (b === null ? null : b.toString('utf8'));

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  try {
    await promise;
  } catch (err) {
    if (isMillraceError(err, code)) return;
    throw new Error(`expected ${code}, got ${String(err)}`, { cause: err });
  }
  throw new Error(`expected ${code}, but it succeeded`);
}

async function eventually(check: () => Promise<void>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function readAll(log: Log, topic: string, partition: number, from = 0): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  let next = offset(from);
  for (;;) {
    const batch = await log.read(topic, partition, next, { maxRecords: 1000 });
    out.push(...batch.records);
    if (batch.nextOffset >= batch.highWatermark || batch.records.length === 0) return out;
    next = batch.nextOffset;
  }
}

export function runLogSuite(name: string, factory: () => Promise<LogFixture>): void {
  describe(`Log conformance: ${name}`, () => {
    let fixture: LogFixture;
    let log: Log;
    const topicName = (label: string): string => `conf-${label}-${randomUUID().slice(0, 8)}`;
    const maintenanceTimeout = (): number => fixture.maintenanceTimeoutMs ?? 2_000;

    beforeAll(async () => {
      fixture = await factory();
      log = fixture.log;
    });
    afterAll(async () => {
      await fixture?.close();
    });

    describe('topics', () => {
      it('creates, describes and lists a topic', async () => {
        const name = topicName('create');
        const info = await log.createTopic({ name, partitions: 3 });
        expect(info).toMatchObject({ name, partitions: 3, cleanupPolicy: 'delete' });
        expect(await log.describeTopic(name)).toMatchObject({ name, partitions: 3 });
        expect((await log.listTopics()).map((t) => t.name)).toContain(name);
      });

      it('refuses a duplicate topic and accepts ensureTopic on an existing one', async () => {
        const name = topicName('dup');
        await log.createTopic({ name, partitions: 2 });
        await expectCode(log.createTopic({ name, partitions: 2 }), 'MILLRACE_TOPIC_EXISTS');
        expect(await log.ensureTopic({ name, partitions: 2 })).toMatchObject({ name, partitions: 2 });
        await expectCode(log.ensureTopic({ name, partitions: 5 }), 'MILLRACE_TOPIC_CONFIG_INVALID');
      });

      it('reports unknown topics and partitions with stable codes', async () => {
        const name = topicName('unknown');
        await expectCode(log.describeTopic(name), 'MILLRACE_TOPIC_UNKNOWN');
        await expectCode(log.append([{ topic: name, value: buf('x') }]), 'MILLRACE_TOPIC_UNKNOWN');
        await expectCode(log.read(name, 0, offset(0)), 'MILLRACE_TOPIC_UNKNOWN');
        const known = topicName('known');
        await log.createTopic({ name: known, partitions: 2 });
        await expectCode(log.append([{ topic: known, partition: 2, value: buf('x') }]), 'MILLRACE_PARTITION_UNKNOWN');
        await expectCode(log.read(known, 7, offset(0)), 'MILLRACE_PARTITION_UNKNOWN');
      });

      it('refuses invalid topic names and partition counts', async () => {
        await expectCode(log.createTopic({ name: 'no spaces', partitions: 1 }), 'MILLRACE_TOPIC_NAME_INVALID');
        await expectCode(log.createTopic({ name: '', partitions: 1 }), 'MILLRACE_TOPIC_NAME_INVALID');
        await expectCode(log.createTopic({ name: topicName('zero'), partitions: 0 }), 'MILLRACE_TOPIC_CONFIG_INVALID');
      });

      it('deletes a topic', async () => {
        const name = topicName('delete');
        await log.createTopic({ name, partitions: 1 });
        await log.append([{ topic: name, value: buf('x') }]);
        await log.deleteTopic(name);
        await expectCode(log.describeTopic(name), 'MILLRACE_TOPIC_UNKNOWN');
        expect((await log.listTopics()).map((t) => t.name)).not.toContain(name);
      });
    });

    describe('append and read', () => {
      it('round-trips key, value, timestamp and headers, assigning consecutive offsets', async () => {
        const name = topicName('roundtrip');
        await log.createTopic({ name, partitions: 1 });
        const results = await log.append([
          { topic: name, key: buf('k1'), value: buf('v1'), timestamp: 1_700_000_000_000, headers: { trace: buf('abc') } },
          { topic: name, key: buf('k2'), value: buf('v2'), timestamp: 1_700_000_000_001 },
        ]);
        expect(results.map((r) => [r.partition, r.offset])).toEqual([[0, 0], [0, 1]]);
        const more = await log.append([{ topic: name, key: buf('k3'), value: buf('v3'), timestamp: 1_700_000_000_002 }]);
        expect(more[0]!.offset).toBe(2);
        const records = await readAll(log, name, 0);
        expect(records.map((r) => [r.offset, text(r.key), text(r.value), r.timestamp])).toEqual([
          [0, 'k1', 'v1', 1_700_000_000_000],
          [1, 'k2', 'v2', 1_700_000_000_001],
          [2, 'k3', 'v3', 1_700_000_000_002],
        ]);
        expect(text(records[0]!.headers['trace'] ?? null)).toBe('abc');
        expect(records.every((r) => r.topic === name && r.partition === 0)).toBe(true);
      });

      it('keeps null keys and null values (tombstones) distinct from empty ones', async () => {
        const name = topicName('nulls');
        await log.createTopic({ name, partitions: 1 });
        await log.append([
          { topic: name, partition: 0, key: null, value: buf('no key') },
          { topic: name, partition: 0, key: buf('k'), value: null },
          { topic: name, partition: 0, key: buf(''), value: buf('') },
        ]);
        const records = await readAll(log, name, 0);
        expect(records.map((r) => [text(r.key), text(r.value)])).toEqual([
          [null, 'no key'],
          ['k', null],
          ['', ''],
        ]);
      });

      it('stamps records without a timestamp with the append time', async () => {
        const name = topicName('stamp');
        await log.createTopic({ name, partitions: 1 });
        const before = Date.now();
        const [result] = await log.append([{ topic: name, value: buf('x') }]);
        const after = Date.now();
        const [record] = await readAll(log, name, 0);
        expect(record!.timestamp).toBe(result!.timestamp);
        expect(record!.timestamp).toBeGreaterThanOrEqual(before - 1_000);
        expect(record!.timestamp).toBeLessThanOrEqual(after + 1_000);
      });

      it('reads from an offset and pages with maxRecords and nextOffset', async () => {
        const name = topicName('paging');
        await log.createTopic({ name, partitions: 1 });
        await log.append(Array.from({ length: 25 }, (_, i) => ({ topic: name, partition: 0, value: buf(`v${i}`) })));
        const first = await log.read(name, 0, offset(5), { maxRecords: 10 });
        expect(first.records.map((r) => r.offset)).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
        expect(first.nextOffset).toBe(15);
        expect(first.highWatermark).toBe(25);
        const rest = await log.read(name, 0, first.nextOffset, { maxRecords: 100 });
        expect(rest.records.map((r) => text(r.value))).toEqual(Array.from({ length: 10 }, (_, i) => `v${15 + i}`));
        expect(rest.nextOffset).toBe(25);
        const atEnd = await log.read(name, 0, offset(25));
        expect(atEnd.records).toEqual([]);
        expect(atEnd.nextOffset).toBe(25);
      });

      it('keeps per-partition order under many concurrent appends', async () => {
        const name = topicName('order');
        await log.createTopic({ name, partitions: 4 });
        const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
        await Promise.all(
          Array.from({ length: 40 }, (_, batch) =>
            log.append(keys.map((k) => ({ topic: name, key: buf(k), value: buf(`${k}:${batch}`) }))),
          ),
        );
        const seen = new Map<string, number[]>();
        for (let p = 0; p < 4; p++) {
          const records = await readAll(log, name, p);
          expect(records.map((r) => r.offset)).toEqual(records.map((_, i) => i));
          for (const r of records) {
            const [k, n] = text(r.value)!.split(':');
            seen.set(k!, [...(seen.get(k!) ?? []), Number(n)]);
          }
        }
        // Appends are awaited in parallel, so batches may land in any order, but each key stays in one partition.
        for (const k of keys) expect([...seen.get(k)!].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
      });

      it('keeps the order of a sequence of awaited appends', async () => {
        const name = topicName('sequence');
        await log.createTopic({ name, partitions: 2 });
        for (let i = 0; i < 20; i++) await log.append([{ topic: name, key: buf('same'), value: buf(String(i)) }]);
        const all = [...(await readAll(log, name, 0)), ...(await readAll(log, name, 1))];
        expect(all.map((r) => Number(text(r.value)))).toEqual(Array.from({ length: 20 }, (_, i) => i));
      });
    });

    describe('partitioning', () => {
      it.each([1, 3, 7, 12, 50])('places keys by murmur2 exactly as Kafka does (%i partitions)', async (partitions) => {
        const name = topicName(`murmur-${partitions}`);
        await log.createTopic({ name, partitions });
        const results = await log.append(MURMUR2_VECTORS.map(([key]) => ({ topic: name, key: buf(key), value: buf(key) })));
        expect(results.map((r) => r.partition)).toEqual(MURMUR2_VECTORS.map(([, hash]) => kafkaPartition(hash, partitions)));
      });

      it('matches a known placement: "foobar" goes to partition 16 of 50', async () => {
        const name = topicName('foobar');
        await log.createTopic({ name, partitions: 50 });
        const [result] = await log.append([{ topic: name, key: buf('foobar'), value: buf('x') }]);
        expect(result!.partition).toBe(16);
      });

      it('honours an explicit partition over the key', async () => {
        const name = topicName('explicit');
        await log.createTopic({ name, partitions: 3 });
        const [result] = await log.append([{ topic: name, partition: 2, key: buf('21'), value: buf('x') }]);
        expect(result!.partition).toBe(2);
      });

      it('spreads records without a key over the partitions', async () => {
        const name = topicName('spread');
        await log.createTopic({ name, partitions: 3 });
        const results = await log.append(Array.from({ length: 30 }, () => ({ topic: name, value: buf('x') })));
        expect(new Set(results.map((r) => r.partition)).size).toBeGreaterThan(1);
      });
    });

    describe('offsets and time', () => {
      it('reports start and end offsets per partition', async () => {
        const name = topicName('offsets');
        await log.createTopic({ name, partitions: 2 });
        await log.append([
          { topic: name, partition: 0, value: buf('a') },
          { topic: name, partition: 0, value: buf('b') },
          { topic: name, partition: 1, value: buf('c') },
        ]);
        const offsets = await log.partitionOffsets(name);
        expect(offsets.map((o) => [o.partition, o.start, o.end])).toEqual([
          [0, 0, 2],
          [1, 0, 1],
        ]);
      });

      it('seeks by timestamp to the earliest record at or after it, even when timestamps go back', async () => {
        const name = topicName('time');
        await log.createTopic({ name, partitions: 1 });
        const base = 1_700_000_000_000;
        const stamps = [base, base + 10, base + 5, base + 20, base + 15, base + 30];
        await log.append(stamps.map((timestamp, i) => ({ topic: name, partition: 0, value: buf(String(i)), timestamp })));
        expect(await log.offsetForTimestamp(name, 0, base - 100)).toBe(0);
        expect(await log.offsetForTimestamp(name, 0, base)).toBe(0);
        expect(await log.offsetForTimestamp(name, 0, base + 1)).toBe(1);
        expect(await log.offsetForTimestamp(name, 0, base + 10)).toBe(1);
        expect(await log.offsetForTimestamp(name, 0, base + 11)).toBe(3);
        expect(await log.offsetForTimestamp(name, 0, base + 16)).toBe(3);
        expect(await log.offsetForTimestamp(name, 0, base + 21)).toBe(5);
        expect(await log.offsetForTimestamp(name, 0, base + 31)).toBeNull();
      });

      it('waits for new records when asked to, and answers empty after the wait', async () => {
        const name = topicName('wait');
        await log.createTopic({ name, partitions: 1 });
        const empty = await log.read(name, 0, offset(0), { maxWaitMs: 50 });
        expect(empty.records).toEqual([]);
        const pending = log.read(name, 0, offset(0), { maxWaitMs: 10_000 });
        await new Promise((resolve) => setTimeout(resolve, 50));
        await log.append([{ topic: name, partition: 0, value: buf('late') }]);
        const batch = await pending;
        expect(batch.records.map((r) => text(r.value))).toEqual(['late']);
      });
    });

    describe('consumer groups', () => {
      it('commits and fetches offsets per group, topic and partition', async () => {
        const name = topicName('groups');
        await log.createTopic({ name, partitions: 3 });
        await log.append(Array.from({ length: 9 }, (_, i) => ({ topic: name, partition: i % 3, value: buf(String(i)) })));
        const group = `g-${randomUUID().slice(0, 8)}`;
        expect((await log.committedOffsets(group, name)).size).toBe(0);
        await log.commitOffsets(group, [
          { topic: name, partition: 0, offset: offset(2) },
          { topic: name, partition: 2, offset: offset(1) },
        ]);
        await log.commitOffsets(group, [{ topic: name, partition: 0, offset: offset(3) }]);
        const committed = await log.committedOffsets(group, name);
        expect([...committed.entries()].sort()).toEqual([
          [0, 3],
          [2, 1],
        ]);
        expect((await log.committedOffsets(`${group}-other`, name)).size).toBe(0);
      });

      it('keeps the metadata committed with an offset', async () => {
        const name = topicName('metadata');
        await log.createTopic({ name, partitions: 2 });
        const group = `g-${randomUUID().slice(0, 8)}`;
        await log.commitOffsets(group, [
          { topic: name, partition: 0, offset: offset(0), metadata: '{"streamTime":1700000000000}' },
          { topic: name, partition: 1, offset: offset(0) },
        ]);
        const metadata = await log.committedMetadata(group, name);
        expect(metadata.get(0)).toBe('{"streamTime":1700000000000}');
        expect(metadata.get(1) ?? '').toBe('');
        await log.commitOffsets(group, [{ topic: name, partition: 0, offset: offset(0), metadata: 'later' }]);
        expect((await log.committedMetadata(group, name)).get(0)).toBe('later');
      });
    });

    describe('transactions', () => {
      it('makes appended records and committed offsets visible together', async () => {
        const input = topicName('tx-in');
        const output = topicName('tx-out');
        await log.createTopic({ name: input, partitions: 1 });
        await log.createTopic({ name: output, partitions: 2 });
        await log.append([{ topic: input, partition: 0, value: buf('in') }]);
        const group = `g-${randomUUID().slice(0, 8)}`;
        const tx = await log.beginTransaction({ transactionalId: `${group}-0` });
        tx.append([
          { topic: output, key: buf('a'), value: buf('1') },
          { topic: output, key: buf('b'), value: buf('2') },
        ]);
        tx.commitOffsets(group, [{ topic: input, partition: 0, offset: offset(1) }]);
        const results = await tx.commit();
        expect(results).toHaveLength(2);
        const out = [...(await readAll(log, output, 0)), ...(await readAll(log, output, 1))];
        expect(out.map((r) => text(r.value)).sort()).toEqual(['1', '2']);
        expect((await log.committedOffsets(group, input)).get(0)).toBe(1);
      });

      it('leaves nothing behind when aborted', async () => {
        const output = topicName('tx-abort');
        await log.createTopic({ name: output, partitions: 1 });
        const group = `g-${randomUUID().slice(0, 8)}`;
        const tx = await log.beginTransaction({ transactionalId: `${group}-0` });
        tx.append([{ topic: output, partition: 0, value: buf('never') }]);
        tx.commitOffsets(group, [{ topic: output, partition: 0, offset: offset(0) }]);
        await tx.abort();
        await log.append([{ topic: output, partition: 0, value: buf('after') }]);
        const out = await readAll(log, output, 0);
        expect(out.map((r) => text(r.value))).toEqual(['after']);
        expect((await log.committedOffsets(group, output)).size).toBe(0);
      });

      it('fences an older writer that uses the same transactional id', async () => {
        const output = topicName('tx-fence');
        await log.createTopic({ name: output, partitions: 1 });
        const id = `fence-${randomUUID().slice(0, 8)}`;
        const stale = await log.beginTransaction({ transactionalId: id });
        stale.append([{ topic: output, partition: 0, value: buf('stale') }]);
        const fresh = await log.beginTransaction({ transactionalId: id });
        fresh.append([{ topic: output, partition: 0, value: buf('fresh') }]);
        await fresh.commit();
        await expectCode(stale.commit(), 'MILLRACE_TRANSACTION_FENCED');
        const out = await readAll(log, output, 0);
        expect(out.map((r) => text(r.value))).toEqual(['fresh']);
      });

      it('fences an open transaction when a new owner claims its transactional id', async () => {
        const output = topicName('tx-claim');
        await log.createTopic({ name: output, partitions: 1 });
        const id = `claim-${randomUUID().slice(0, 8)}`;
        const stale = await log.beginTransaction({ transactionalId: id });
        stale.append([{ topic: output, partition: 0, value: buf('stale') }]);
        await log.fenceWriters(id);
        await expectCode(stale.commit(), 'MILLRACE_TRANSACTION_FENCED');
        const next = await log.beginTransaction({ transactionalId: id });
        next.append([{ topic: output, partition: 0, value: buf('next') }]);
        await next.commit();
        expect((await readAll(log, output, 0)).map((r) => text(r.value))).toEqual(['next']);
      });
    });

    describe('retention and compaction', () => {
      it('deletes records older than retentionMs and moves the start offset', async () => {
        const name = topicName('retain-time');
        await log.createTopic({ name, partitions: 1, retentionMs: 60_000 });
        const now = Date.now();
        for (const [value, timestamp] of [['old-1', now - 3_600_000], ['old-2', now - 3_500_000], ['new', now]] as const) {
          await log.append([{ topic: name, partition: 0, value: buf(value), timestamp }]);
        }
        await eventually(async () => {
          await log.runMaintenance();
          const [p] = await log.partitionOffsets(name);
          expect(p!.start).toBe(2);
          expect(p!.end).toBe(3);
        }, maintenanceTimeout());
        const fromZero = await log.read(name, 0, offset(0));
        expect(fromZero.records.map((r) => text(r.value))).toEqual(['new']);
        expect(fromZero.logStartOffset).toBe(2);
      });

      it('deletes records below an offset on request (deleteRecords)', async () => {
        const name = topicName('delete-records');
        await log.createTopic({ name, partitions: 1 });
        await log.append(Array.from({ length: 10 }, (_, i) => ({ topic: name, partition: 0, value: buf(String(i)) })));
        await log.deleteRecords(name, 0, offset(4));
        const [p] = await log.partitionOffsets(name);
        expect([p!.start, p!.end]).toEqual([4, 10]);
        const records = await readAll(log, name, 0);
        expect(records.map((r) => r.offset)).toEqual([4, 5, 6, 7, 8, 9]);
        await log.deleteRecords(name, 0, offset(2));
        expect((await log.partitionOffsets(name))[0]!.start).toBe(4);
      });

      it('deletes the oldest records beyond retentionBytes', async () => {
        const name = topicName('retain-size');
        await log.createTopic({ name, partitions: 1, retentionBytes: 10_000 });
        const big = Buffer.alloc(1_000, 7);
        const start = Date.now() - 60_000;
        for (let i = 0; i < 40; i++) await log.append([{ topic: name, partition: 0, value: big, timestamp: start + i * 1_000 }]);
        await eventually(async () => {
          await log.runMaintenance();
          const [p] = await log.partitionOffsets(name);
          expect(p!.start).toBeGreaterThan(0);
          expect(p!.end).toBe(40);
          const kept = (await readAll(log, name, 0)).length;
          expect(kept * 1_000).toBeLessThanOrEqual(10_000);
          expect(kept).toBeGreaterThan(0);
        }, maintenanceTimeout());
      });

      it('keeps the latest record per key on a compacted topic, at its original offset', async () => {
        const name = topicName('compact');
        await log.createTopic({ name, partitions: 1, cleanupPolicy: 'compact' });
        await log.append([
          { topic: name, partition: 0, key: buf('a'), value: buf('a1') },
          { topic: name, partition: 0, key: buf('b'), value: buf('b1') },
          { topic: name, partition: 0, key: buf('a'), value: buf('a2') },
          { topic: name, partition: 0, key: buf('c'), value: buf('c1') },
          { topic: name, partition: 0, key: buf('b'), value: buf('b2') },
          { topic: name, partition: 0, key: buf('a'), value: buf('a3') },
        ]);
        await eventually(async () => {
          await fixture.closeActiveSegment?.(name, 0);
          await log.runMaintenance();
          const records = await readAll(log, name, 0);
          expect(records.map((r) => [r.offset, text(r.key), text(r.value)])).toEqual([
            [3, 'c', 'c1'],
            [4, 'b', 'b2'],
            [5, 'a', 'a3'],
          ]);
        }, maintenanceTimeout());
      });

      it('removes tombstones from a compacted topic once deleteRetentionMs has passed', async () => {
        const name = topicName('tombstone');
        await log.createTopic({ name, partitions: 1, cleanupPolicy: 'compact', deleteRetentionMs: 0 });
        const old = Date.now() - 60_000;
        await log.append([
          { topic: name, partition: 0, key: buf('gone'), value: buf('x'), timestamp: old },
          { topic: name, partition: 0, key: buf('kept'), value: buf('y'), timestamp: old },
          { topic: name, partition: 0, key: buf('gone'), value: null, timestamp: old },
        ]);
        await eventually(async () => {
          await fixture.closeActiveSegment?.(name, 0);
          await log.runMaintenance();
          const records = await readAll(log, name, 0);
          expect(records.map((r) => text(r.key))).toEqual(['kept']);
        }, maintenanceTimeout());
      });

      it('refuses a record without a key on a compacted topic', async () => {
        const name = topicName('compact-nokey');
        await log.createTopic({ name, partitions: 1, cleanupPolicy: 'compact' });
        await expectCode(log.append([{ topic: name, partition: 0, value: buf('x') }]), 'MILLRACE_RECORD_INVALID');
      });
    });

    describe('durability', () => {
      it('keeps topics, records and committed offsets across a restart', async () => {
        const name = topicName('durable');
        await log.createTopic({ name, partitions: 2 });
        await log.append(Array.from({ length: 10 }, (_, i) => ({ topic: name, key: buf(`k${i}`), value: buf(`v${i}`) })));
        const group = `g-${randomUUID().slice(0, 8)}`;
        await log.commitOffsets(group, [{ topic: name, partition: 0, offset: offset(1) }]);
        const before = [...(await readAll(log, name, 0)), ...(await readAll(log, name, 1))];
        log = await fixture.reopen();
        expect(await log.describeTopic(name)).toMatchObject({ partitions: 2 });
        const after = [...(await readAll(log, name, 0)), ...(await readAll(log, name, 1))];
        expect(after.map((r) => [r.partition, r.offset, text(r.key), text(r.value)])).toEqual(
          before.map((r) => [r.partition, r.offset, text(r.key), text(r.value)]),
        );
        expect((await log.committedOffsets(group, name)).get(0)).toBe(1 as Offset);
        const [appended] = await log.append([{ topic: name, partition: 0, value: buf('next') }]);
        expect(appended!.offset).toBe(before.filter((r) => r.partition === 0).length);
      });
    });
  });
}
