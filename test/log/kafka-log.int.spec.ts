import { randomUUID } from 'node:crypto';
import kafkajs from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMillraceError, type ErrorCode } from '../../engine/errors.js';
import { KafkaLog, type KafkaLogOptions } from '../../engine/log/kafka/kafka-log.js';
import { offset, type LogRecord, type Offset } from '../../engine/log/log.js';
import { runLogSuite } from '../conformance/log.js';
import { describeWithKafka } from '../support/kafka.js';

/** Topics of this suite roll a segment whenever records arrive this long after the segment's first. */
const SEGMENT_MS = 100;

const buf = (s: string): Buffer => Buffer.from(s, 'utf8');
const text = (b: Buffer | null): string | null => (b === null ? null : b.toString('utf8'));

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const outcome = await promise.then(
    () => 'succeeded',
    (err: unknown) => err,
  );
  if (!isMillraceError(outcome, code)) throw new Error(`expected ${code}, got ${String(outcome)}`, { cause: outcome });
}

describeWithKafka('KafkaLog', (brokers) => {
  const options: KafkaLogOptions = {
    brokers,
    clientId: 'millrace-conformance',
    // Segments roll quickly and the cleaner takes on any dirty segment: retention and compaction show within seconds.
    topicConfig: { 'segment.ms': String(SEGMENT_MS), 'min.cleanable.dirty.ratio': '0.01' },
  };
  const client = new kafkajs.Kafka({ brokers, clientId: 'millrace-test-writer', logLevel: kafkajs.logLevel.NOTHING });

  runLogSuite('KafkaLog', async () => {
    let log = new KafkaLog(options);
    await log.open();
    return {
      get log() {
        return log;
      },
      async reopen() {
        await log.close();
        log = new KafkaLog(options);
        await log.open();
        return log;
      },
      async close() {
        await log.close();
      },
      maintenanceTimeoutMs: 60_000,
      async closeActiveSegment(topic, partition) {
        // A write stamped more than segment.ms after the records rolls the segment; aborted, no reader sees it.
        await new Promise((resolve) => setTimeout(resolve, SEGMENT_MS + 50));
        const producer = client.producer({ transactionalId: `conformance-roll-${randomUUID()}`, idempotent: true, maxInFlightRequests: 1 });
        await producer.connect();
        try {
          const transaction = await producer.transaction();
          await transaction.send({ topic, messages: [{ partition, key: '~roll', value: 'never seen', timestamp: String(Date.now()) }] });
          await transaction.abort();
        } finally {
          await producer.disconnect();
        }
      },
    };
  });

  describe('Kafka specifics', () => {
    let log: KafkaLog;
    let other: KafkaLog;
    const unique = (label: string): string => `kafka-${label}-${randomUUID().slice(0, 8)}`;

    beforeAll(async () => {
      log = new KafkaLog(options);
      other = new KafkaLog({ ...options, clientId: 'millrace-other-process' });
      await Promise.all([log.open(), other.open()]);
    });
    afterAll(async () => {
      await Promise.allSettled([log?.close(), other?.close()]);
    });

    async function readAll(topic: string, from = 0, maxRecords = 1_000): Promise<{ records: LogRecord[]; reads: number; end: Offset }> {
      const records: LogRecord[] = [];
      let at = offset(from);
      for (let reads = 1; ; reads++) {
        const batch = await log.read(topic, 0, at, { maxRecords });
        records.push(...batch.records);
        if (batch.nextOffset >= batch.highWatermark) return { records, reads, end: batch.nextOffset };
        if (reads > 100) throw new Error(`reading ${topic} does not end: stuck at ${at}`);
        at = batch.nextOffset;
      }
    }

    it('commits offset metadata in transactions (TxnOffsetCommit carries it)', async () => {
      const topic = unique('tx-metadata');
      await log.createTopic({ name: topic, partitions: 2 });
      const group = unique('group');
      const tx = await log.beginTransaction({ transactionalId: unique('tx') });
      tx.commitOffsets(group, [
        { topic, partition: 0, offset: offset(0), metadata: '{"streamTimeMs":1700000000000,"watermarkFloorMs":1}' },
        { topic, partition: 1, offset: offset(0) },
      ]);
      await tx.commit();
      const metadata = await log.committedMetadata(group, topic);
      expect(metadata.get(0)).toBe('{"streamTimeMs":1700000000000,"watermarkFloorMs":1}');
      expect(metadata.has(1)).toBe(false);
      expect([...(await log.committedOffsets(group, topic))]).toEqual([
        [0, 0],
        [1, 0],
      ]);
    });

    it('steps over aborted records and transaction markers: a reader looping on nextOffset reaches the end', async () => {
      const topic = unique('markers');
      await log.createTopic({ name: topic, partitions: 1 });
      const producer = client.producer({ transactionalId: unique('aborting'), idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      try {
        // Offsets: a 0, x 1, y 2, then the abort marker and b (3 and 4, in the order they land), z 5, a marker 6.
        await log.append([{ topic, partition: 0, value: buf('a') }]);
        const first = await producer.transaction();
        await first.send({ topic, messages: [{ partition: 0, value: 'x' }, { partition: 0, value: 'y' }] });
        await first.abort();
        await log.append([{ topic, partition: 0, value: buf('b') }]);
        const second = await producer.transaction();
        await second.send({ topic, messages: [{ partition: 0, value: 'z' }] });
        await second.abort();
      } finally {
        await producer.disconnect();
      }
      await expect.poll(async () => (await log.partitionOffsets(topic))[0]!.end, { timeout: 10_000 }).toBe(7);
      for (const maxRecords of [1, 1_000]) {
        const { records, end } = await readAll(topic, 0, maxRecords);
        expect(records.map((r) => text(r.value))).toEqual(['a', 'b']);
        expect(records[0]!.offset).toBe(0);
        expect([3, 4]).toContain(records[1]!.offset);
        expect(end).toBe(7);
      }
      const fromAborted = await log.read(topic, 0, offset(1));
      expect(fromAborted.records.map((r) => text(r.value))).toEqual(['b']);
      const tail = await log.read(topic, 0, offset(5));
      expect(tail).toMatchObject({ records: [], nextOffset: 7, highWatermark: 7 });
    });

    it('fences a writer in another process when a new owner claims its transactional id', async () => {
      const topic = unique('cross-fence');
      await log.createTopic({ name: topic, partitions: 1 });
      const id = unique('writer');
      const before = await log.beginTransaction({ transactionalId: id });
      before.append([{ topic, partition: 0, value: buf('old owner') }]);
      await before.commit();
      await other.fenceWriters(id);
      const zombie = await log.beginTransaction({ transactionalId: id });
      zombie.append([{ topic, partition: 0, value: buf('zombie') }]);
      await expectCode(zombie.commit(), 'MILLRACE_TRANSACTION_FENCED');
      const successor = await other.beginTransaction({ transactionalId: id });
      successor.append([{ topic, partition: 0, value: buf('new owner') }]);
      await successor.commit();
      expect((await readAll(topic)).records.map((r) => text(r.value))).toEqual(['old owner', 'new owner']);
    });

    it('splits a large append into requests the broker accepts, with consecutive offsets; refuses a record too large', async () => {
      const topic = unique('large');
      await log.createTopic({ name: topic, partitions: 1 });
      const value = Buffer.alloc(100_000, 1);
      const results = await log.append(Array.from({ length: 40 }, (_, i) => ({ topic, partition: 0, key: buf(String(i)), value })));
      expect(results.map((r) => r.offset)).toEqual(Array.from({ length: 40 }, (_, i) => i));
      const { records } = await readAll(topic);
      expect(records.map((r) => text(r.key))).toEqual(Array.from({ length: 40 }, (_, i) => String(i)));
      expect(records.every((r) => r.value!.equals(value))).toBe(true);
      await expectCode(log.append([{ topic, partition: 0, value: Buffer.alloc(2 * 1024 * 1024) }]), 'MILLRACE_RECORD_INVALID');
    });

    it('waits at the end in bounded slices: a signal ends the wait at once, past the end answers empty', async () => {
      const topic = unique('wait');
      await log.createTopic({ name: topic, partitions: 1 });
      await log.append([{ topic, partition: 0, value: buf('only') }]);
      const controller = new AbortController();
      const started = Date.now();
      const pending = log.read(topic, 0, offset(1), { maxWaitMs: 20_000, signal: controller.signal });
      setTimeout(() => controller.abort(), 100);
      expect((await pending).records).toEqual([]);
      expect(Date.now() - started).toBeLessThan(2_000);
      const beyond = await log.read(topic, 0, offset(100), { maxWaitMs: 300 });
      expect(beyond).toMatchObject({ records: [], nextOffset: 100, highWatermark: 1 });
      await log.deleteRecords(topic, 0, offset(1));
      const below = await log.read(topic, 0, offset(0), { maxWaitMs: 0 });
      expect(below).toMatchObject({ records: [], nextOffset: 1, logStartOffset: 1 });
    });

    it("reads topic configs back and hides Kafka's own topics", async () => {
      const name = unique('configs');
      const info = await log.createTopic({ name, partitions: 2, cleanupPolicy: 'compact,delete', retentionMs: 86_400_000, retentionBytes: 1_000_000, deleteRetentionMs: 1_000 });
      expect(info).toEqual({
        name,
        partitions: 2,
        cleanupPolicy: 'compact,delete',
        retentionMs: 86_400_000,
        retentionBytes: 1_000_000,
        deleteRetentionMs: 1_000,
        internal: false,
      });
      expect(await other.describeTopic(name)).toEqual(info);
      const listed = await log.listTopics();
      expect(listed.find((t) => t.name === name)).toEqual(info);
      expect(listed.some((t) => t.name.startsWith('__'))).toBe(false);
      expect(await log.ensureTopic({ name: `${name}-changelog`, partitions: 1, cleanupPolicy: 'compact' })).toMatchObject({
        cleanupPolicy: 'compact',
        retentionMs: null,
        internal: true,
      });
    });
  });
});
