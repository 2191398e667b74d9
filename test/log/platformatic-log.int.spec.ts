import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { Producer } from '@platformatic/kafka';
import kafkajs from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchRunner } from '../../benchmarks/runner.js';
import { isMillraceError, type ErrorCode } from '../../engine/errors.js';
import { KafkaLog } from '../../engine/log/kafka/kafka-log.js';
import { compareIds } from '../../engine/log/kafka/task-assignor.js';
import { PlatformaticKafkaLog, type PlatformaticKafkaLogOptions } from '../../engine/log/kafka-platformatic/platformatic-log.js';
import { visibleRecords } from '../../engine/log/kafka-platformatic/reader.js';
import { offset, type LogRecord, type Offset, type Subscription, type TopicPartition } from '../../engine/log/log.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import { runLogSuite } from '../conformance/log.js';
import { describeWithKafka } from '../support/kafka.js';

/** Topics of this suite roll a segment whenever records arrive this long after the segment's first. */
const SEGMENT_MS = 100;

const buf = (s: string): Buffer => Buffer.from(s, 'utf8');
const text = (b: Buffer | null): string | null => (b === null ? null : b.toString('utf8'));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const outcome = await promise.then(
    () => 'succeeded',
    (err: unknown) => err,
  );
  if (!isMillraceError(outcome, code)) throw new Error(`expected ${code}, got ${String(outcome)}`, { cause: outcome });
}

async function eventually(check: () => void | Promise<void>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

describe('PlatformaticKafkaLog record decoding', () => {
  const data = (batches: unknown[]): Parameters<typeof visibleRecords>[2] => ({
    errorCode: 0,
    highWatermark: 10,
    lastStableOffset: 10,
    logStartOffset: 0,
    abortedTransactions: [],
    batches: batches as Parameters<typeof visibleRecords>[2]['batches'],
  });
  const good = {
    firstOffset: 0n,
    length: 0,
    partitionLeaderEpoch: 0,
    magic: 2,
    crc: 0,
    attributes: 0,
    lastOffsetDelta: 1,
    firstTimestamp: 1_000n,
    maxTimestamp: 1_001n,
    producerId: -1n,
    producerEpoch: -1,
    firstSequence: -1,
    records: [
      { length: 0, attributes: 0, timestampDelta: 0n, offsetDelta: 0, key: buf('k'), value: buf('a'), headers: [[buf('h'), buf('1')]] },
      { length: 0, attributes: 0, timestampDelta: 1n, offsetDelta: 1, key: null, value: null, headers: [] },
    ],
  };

  it('decodes offsets, timestamps, keys, values and headers', () => {
    const { records, next } = visibleRecords('t', 0, data([good]), 0);
    expect(next).toBe(2);
    expect(records.map((r) => [r.offset, r.timestamp, text(r.key), text(r.value), Object.keys(r.headers)])).toEqual([
      [0, 1_000, 'k', 'a', ['h']],
      [1, 1_001, null, null, []],
    ]);
  });

  it('turns bytes that are no well-formed batch into an error, never into records', () => {
    const hostile = [
      { ...good, magic: 1 },
      { ...good, lastOffsetDelta: -5 },
      { ...good, firstOffset: 2n ** 60n },
      { ...good, records: [good.records[0], { ...good.records[1], offsetDelta: 7 }] },
      { ...good, records: [good.records[0], good.records[0]] },
      { ...good, firstTimestamp: 2n ** 62n },
    ];
    for (const batch of hostile) {
      let caught: unknown;
      try {
        visibleRecords('t', 0, data([batch]), 0);
      } catch (err) {
        caught = err;
      }
      expect(isMillraceError(caught, 'MILLRACE_INTERNAL')).toBe(true);
    }
  });
});

describeWithKafka('PlatformaticKafkaLog', (brokers) => {
  const options: PlatformaticKafkaLogOptions = {
    brokers,
    clientId: 'millrace-platformatic-conformance',
    topicConfig: { 'segment.ms': String(SEGMENT_MS), 'min.cleanable.dirty.ratio': '0.01' },
  };
  const client = new kafkajs.Kafka({ brokers, clientId: 'millrace-test-writer', logLevel: kafkajs.logLevel.NOTHING });

  runLogSuite('PlatformaticKafkaLog', async () => {
    let log = new PlatformaticKafkaLog(options);
    await log.open();
    return {
      get log() {
        return log;
      },
      async reopen() {
        await log.close();
        log = new PlatformaticKafkaLog(options);
        await log.open();
        return log;
      },
      async close() {
        await log.close();
      },
      maintenanceTimeoutMs: 60_000,
      async closeActiveSegment(topic, partition) {
        // A write stamped more than segment.ms after the records rolls the segment; aborted, no reader sees it.
        await sleep(SEGMENT_MS + 50);
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

  describe('@platformatic/kafka specifics', () => {
    let log: PlatformaticKafkaLog;
    let other: PlatformaticKafkaLog;
    let kafkajsLog: KafkaLog;
    const opened: Subscription[] = [];
    const unique = (label: string): string => `plat-${label}-${randomUUID().slice(0, 8)}`;

    beforeAll(async () => {
      log = new PlatformaticKafkaLog({ ...options, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 300, rebalanceTimeoutMs: 15_000 });
      other = new PlatformaticKafkaLog({ ...options, clientId: 'millrace-other-process' });
      kafkajsLog = new KafkaLog({ brokers, clientId: 'millrace-kafkajs-compare' });
      await Promise.all([log.open(), other.open(), kafkajsLog.open()]);
    });
    afterAll(async () => {
      await Promise.allSettled(opened.map((s) => s.close()));
      await Promise.allSettled([log?.close(), other?.close(), kafkajsLog?.close()]);
    });

    async function readAll(topic: string, partition = 0, from = 0, maxRecords = 1_000): Promise<{ records: LogRecord[]; end: Offset }> {
      const records: LogRecord[] = [];
      let at = offset(from);
      for (let reads = 1; ; reads++) {
        const batch = await log.read(topic, partition, at, { maxRecords });
        records.push(...batch.records);
        if (batch.nextOffset >= batch.highWatermark) return { records, end: batch.nextOffset };
        if (reads > 1_000) throw new Error(`reading ${topic} does not end: stuck at ${at}`);
        at = batch.nextOffset;
      }
    }

    it('places keyed records in the partitions KafkaLog chooses, and each log reads what the other wrote', async () => {
      const mine = unique('placement-a');
      const theirs = unique('placement-b');
      await log.createTopic({ name: mine, partitions: 7 });
      await log.createTopic({ name: theirs, partitions: 7 });
      const keys = Array.from({ length: 200 }, (_, i) => `user-${i * 7919}`);
      const headers = { trace: buf('t-1'), empty: Buffer.alloc(0) };
      const a = await log.append(keys.map((k, i) => ({ topic: mine, key: buf(k), value: buf(`v${i}`), timestamp: 1_700_000_000_000 + i, headers })));
      const b = await kafkajsLog.append(keys.map((k, i) => ({ topic: theirs, key: buf(k), value: buf(`v${i}`), timestamp: 1_700_000_000_000 + i, headers })));
      expect(a.map((r) => r.partition)).toEqual(b.map((r) => r.partition));
      expect(new Set(a.map((r) => r.partition)).size).toBeGreaterThan(1);
      for (let p = 0; p < 7; p++) {
        const viaPlatformatic = (await readAll(theirs, p)).records;
        const viaKafkajs: LogRecord[] = [];
        let at = offset(0);
        for (;;) {
          const batch = await kafkajsLog.read(mine, p, at, { maxRecords: 1_000 });
          viaKafkajs.push(...batch.records);
          if (batch.nextOffset >= batch.highWatermark) break;
          at = batch.nextOffset;
        }
        const shape = (r: LogRecord): unknown => [r.offset, text(r.key), text(r.value), r.timestamp, text(r.headers.trace ?? null), r.headers.empty?.length];
        expect(viaPlatformatic.map(shape)).toEqual(viaKafkajs.map(shape));
      }
    });

    it('drops every aborted transaction of a producer, also two in one fetch, and steps over markers', async () => {
      const topic = unique('markers');
      await log.createTopic({ name: topic, partitions: 1 });
      const producer = client.producer({ transactionalId: unique('aborting'), idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      try {
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
        const { records, end } = await readAll(topic, 0, 0, maxRecords);
        expect(records.map((r) => text(r.value))).toEqual(['a', 'b']);
        expect(end).toBe(7);
      }
    });

    it('reads records that producers compressed with gzip, snappy or lz4', async () => {
      const topic = unique('compressed');
      await log.createTopic({ name: topic, partitions: 1 });
      const producer = new Producer({ clientId: 'millrace-test-compressing', bootstrapBrokers: brokers });
      try {
        for (const compression of ['gzip', 'snappy', 'lz4'] as const) {
          await producer.send({
            compression,
            messages: Array.from({ length: 3 }, (_, i) => ({ topic, partition: 0, key: buf(`${compression}-${i}`), value: buf('x'.repeat(200)) })),
          });
        }
      } finally {
        await producer.close();
      }
      const { records } = await readAll(topic);
      expect(records.map((r) => text(r.key))).toEqual(['gzip', 'snappy', 'lz4'].flatMap((c) => [0, 1, 2].map((i) => `${c}-${i}`)));
      expect(records.every((r) => text(r.value) === 'x'.repeat(200))).toBe(true);
    });

    it('commits offsets with metadata in a transaction, visible once commit returns', async () => {
      const input = unique('tx-in');
      const output = unique('tx-out');
      await log.createTopic({ name: input, partitions: 2 });
      await log.createTopic({ name: output, partitions: 3 });
      const group = unique('group');
      const tx = await log.beginTransaction({ transactionalId: unique('tx') });
      tx.append(Array.from({ length: 30 }, (_, i) => ({ topic: output, key: buf(`k${i}`), value: buf(`o${i}`) })));
      tx.commitOffsets(group, [
        { topic: input, partition: 0, offset: offset(5), metadata: '{"streamTimeMs":1700000000000}' },
        { topic: input, partition: 1, offset: offset(7) },
      ]);
      const results = await tx.commit();
      expect(results).toHaveLength(30);
      expect([...(await log.committedOffsets(group, input))].sort()).toEqual([
        [0, 5],
        [1, 7],
      ]);
      expect((await log.committedMetadata(group, input)).get(0)).toBe('{"streamTimeMs":1700000000000}');
      expect((await log.committedMetadata(group, input)).has(1)).toBe(false);
      const ends = await log.partitionOffsets(output);
      expect(ends.reduce((sum, p) => sum + p.end, 0)).toBeGreaterThanOrEqual(30);
      const seen: string[] = [];
      for (let p = 0; p < 3; p++) seen.push(...(await readAll(output, p)).records.map((r) => text(r.value)!));
      expect(seen.sort()).toEqual(Array.from({ length: 30 }, (_, i) => `o${i}`).sort());
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

    it('ends a waiting read on its signal at once; past the end answers empty with the bounds', async () => {
      const topic = unique('wait');
      await log.createTopic({ name: topic, partitions: 1 });
      await log.append([{ topic, partition: 0, value: buf('only') }]);
      const controller = new AbortController();
      const started = Date.now();
      const pending = log.read(topic, 0, offset(1), { maxWaitMs: 20_000, signal: controller.signal });
      setTimeout(() => controller.abort(), 100);
      expect((await pending).records).toEqual([]);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(await log.read(topic, 0, offset(100), { maxWaitMs: 300 })).toMatchObject({ records: [], nextOffset: 100, highWatermark: 1 });
    });

    describe('subscriptions', () => {
      async function setup(partitions: number): Promise<{ group: string; topics: [string, string]; tasks: Map<string, TopicPartition[]> }> {
        const topics: [string, string] = [unique('left'), unique('right')];
        for (const name of topics) await log.createTopic({ name, partitions });
        const tasks = new Map<string, TopicPartition[]>();
        for (let p = 0; p < partitions; p++) tasks.set(`0_${p}`, topics.map((topic) => ({ topic, partition: p })));
        return { group: unique('group'), topics, tasks };
      }

      async function join(group: string, topics: readonly string[], tasks: Map<string, TopicPartition[]>) {
        const calls: Array<{ owned: string[]; previous: string[] }> = [];
        const subscription = await log.subscribe({
          group,
          topics,
          taskGroups: { tasks },
          onAssignment: async (owned, previous) => void calls.push({ owned: [...owned], previous: [...previous] }),
        });
        opened.push(subscription);
        return { subscription, calls };
      }

      function expectPartitioned(members: ReadonlyArray<{ subscription: Subscription }>, taskCount: number): void {
        const all = members.flatMap((m) => m.subscription.owned());
        expect([...all].sort(compareIds)).toEqual(Array.from({ length: taskCount }, (_, p) => `0_${p}`));
        for (const m of members) {
          expect(m.subscription.owned().length).toBeGreaterThanOrEqual(Math.floor(taskCount / members.length));
          expect(m.subscription.owned().length).toBeLessThanOrEqual(Math.ceil(taskCount / members.length));
        }
      }

      it('gives one member every task, then splits them with a second (no task owned twice), and reads only owned partitions', async () => {
        const { group, topics, tasks } = await setup(4);
        await log.append(Array.from({ length: 8 }, (_, i) => ({ topic: topics[0], partition: i % 4, value: buf(`r${i}`) })));
        const a = await join(group, topics, tasks);
        expect([...a.subscription.owned()].sort(compareIds)).toEqual([...tasks.keys()]);
        expect(a.calls).toEqual([{ owned: ['0_0', '0_1', '0_2', '0_3'], previous: [] }]);
        const first = await a.subscription.read(topics[0], 2, offset(0), { maxWaitMs: 1_000 });
        expect(first.records.map((r) => text(r.value))).toEqual(['r2', 'r6']);

        const b = await join(group, topics, tasks);
        await eventually(() => expectPartitioned([a, b], 4));
        expect(a.subscription.owned().filter((t) => b.subscription.owned().includes(t))).toEqual([]);
        // onAssignment ran once per assignment, each from what the last one handed out.
        for (let i = 1; i < a.calls.length; i++) expect(a.calls[i]!.previous).toEqual(a.calls[i - 1]!.owned);

        const notMine = [...tasks.keys()].find((t) => !a.subscription.owned().includes(t))!;
        await expectCode(a.subscription.read(topics[0], Number(notMine.split('_')[1]), offset(0)), 'MILLRACE_PARTITION_UNKNOWN');
        const mine = Number(b.subscription.owned()[0]!.split('_')[1]);
        const read = await b.subscription.read(topics[0], mine, offset(0), { maxWaitMs: 1_000 });
        expect(read.records.map((r) => text(r.value))).toEqual([`r${mine}`, `r${mine + 4}`]);

        // The first member leaves: the second gets every task back.
        await a.subscription.close();
        await eventually(() => expect([...b.subscription.owned()].sort(compareIds)).toEqual([...tasks.keys()]));
        await b.subscription.close();
      });

      it('shares one group with a kafkajs member: same assignor protocol, whole tasks, none owned twice', async () => {
        const { group, topics, tasks } = await setup(4);
        const viaKafkajs = await kafkajsLog.subscribe({ group, topics, taskGroups: { tasks }, onAssignment: async () => undefined });
        opened.push(viaKafkajs);
        const viaPlatformatic = await join(group, topics, tasks);
        const members = [{ subscription: viaKafkajs }, viaPlatformatic];
        await eventually(() => expectPartitioned(members, 4));
        expect(viaKafkajs.owned().filter((t) => viaPlatformatic.subscription.owned().includes(t))).toEqual([]);
        await viaKafkajs.close();
        await eventually(() => expect([...viaPlatformatic.subscription.owned()].sort(compareIds)).toEqual([...tasks.keys()]));
        await viaPlatformatic.subscription.close();
      });
    });

    /** A runner of `app`'s stateless topology on `on`, with its own state directory. */
    async function startRunner(on: PlatformaticKafkaLog, app: string, input: string, output: string): Promise<{ stop(): Promise<void>; applicationId: string }> {
      const builder = new StreamsBuilder(app);
      builder.stream<string, { seq: number; amount: number }>(input).mapValues('enrich', (v) => ({ ...v, cents: Math.round(v.amount * 100) })).to(output);
      const topology = builder.build();
      const dir = await mkdtemp(join(tmpdir(), 'millrace-platformatic-'));
      const state = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
      await state.open();
      const runner = benchRunner(on, topology, state, {
        localState: { write: async (writes) => void (writes.length > 0 && (await state.batch(writes.map((w) => ({ ...w }))))) },
      });
      await runner.start();
      return {
        applicationId: topology.applicationId,
        async stop() {
          await runner.stop();
          await state.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    }

    async function outputsOf(output: string, partitions: number): Promise<Array<{ seq: number; cents: number; key: string | null }>> {
      const outputs: Array<{ seq: number; cents: number; key: string | null }> = [];
      for (let p = 0; p < partitions; p++) {
        for (const r of (await readAll(output, p)).records) outputs.push({ ...(JSON.parse(text(r.value)!) as { seq: number; cents: number }), key: text(r.key) });
      }
      return outputs;
    }

    it('keeps exactly once while tasks move: a second runner joins, then the first leaves, input flowing all along', async () => {
      const input = unique('move-in');
      const output = unique('move-out');
      const partitions = 6;
      await log.createTopic({ name: input, partitions });
      await log.createTopic({ name: output, partitions });
      const app = unique('move-app');
      let sent = 0;
      const produce = async (batches: number): Promise<void> => {
        for (let b = 0; b < batches; b++) {
          await log.append(Array.from({ length: 250 }, (_, j) => ({ topic: input, key: buf(`user-${(sent + j) % 89}`), value: buf(JSON.stringify({ seq: sent + j, amount: (sent + j) / 10 })) })));
          sent += 250;
          await sleep(20);
        }
      };
      const first = await startRunner(log, app, input, output);
      await produce(8);
      const second = await startRunner(other, app, input, output);
      await produce(8);
      await first.stop();
      await produce(8);
      try {
        await eventually(async () => {
          const committed = await log.committedOffsets(first.applicationId, input);
          expect([...committed.values()].reduce((sum, o) => sum + o, 0)).toBe(sent);
        }, 90_000);
      } finally {
        await second.stop();
      }
      const outputs = await outputsOf(output, partitions);
      expect(outputs).toHaveLength(sent);
      expect(outputs.map((o) => o.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: sent }, (_, i) => i));
    }, 120_000);

    it('runs a stateless topology end to end, exactly once: every input gives exactly one output', async () => {
      const input = unique('run-in');
      const output = unique('run-out');
      const partitions = 3;
      const events = 2_000;
      await log.createTopic({ name: input, partitions });
      await log.createTopic({ name: output, partitions });
      await log.append(
        Array.from({ length: events }, (_, i) => ({
          topic: input,
          key: buf(`user-${i % 97}`),
          value: buf(JSON.stringify({ seq: i, amount: i / 10 })),
        })),
      );
      const builder = new StreamsBuilder(unique('app'));
      builder.stream<string, { seq: number; amount: number }>(input).mapValues('enrich', (v) => ({ ...v, cents: Math.round(v.amount * 100) })).to(output);
      const topology = builder.build();
      const dir = await mkdtemp(join(tmpdir(), 'millrace-platformatic-'));
      const state = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
      await state.open();
      const runner = benchRunner(log, topology, state, {
        localState: { write: async (writes) => void (writes.length > 0 && (await state.batch(writes.map((w) => ({ ...w }))))) },
      });
      try {
        await runner.start();
        await eventually(async () => {
          const committed = await log.committedOffsets(topology.applicationId, input);
          expect([...committed.values()].reduce((sum, o) => sum + o, 0)).toBe(events);
        }, 60_000);
      } finally {
        await runner.stop();
        await state.close();
        await rm(dir, { recursive: true, force: true });
      }
      const outputs: Array<{ seq: number; cents: number; key: string | null; partition: number }> = [];
      for (let p = 0; p < partitions; p++) {
        for (const r of (await readAll(output, p)).records) outputs.push({ ...(JSON.parse(text(r.value)!) as { seq: number; cents: number }), key: text(r.key), partition: p });
      }
      expect(outputs).toHaveLength(events);
      expect(outputs.map((o) => o.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: events }, (_, i) => i));
      for (const o of outputs) {
        expect(o.cents).toBe(Math.round((o.seq / 10) * 100));
        expect(o.key).toBe(`user-${o.seq % 97}`);
      }
    });
  });
});
