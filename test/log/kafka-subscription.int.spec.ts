import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import kafkajs from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMillraceError } from '../../engine/errors.js';
import { KafkaLog, type RebalanceEvent } from '../../engine/log/kafka/kafka-log.js';
import type { KafkaSubscription } from '../../engine/log/kafka/subscription.js';
import { assignTasks, compareIds, decodeClaim, encodeClaim, type MemberClaim } from '../../engine/log/kafka/task-assignor.js';
import { offset, type LogRecord, type Offset, type TopicPartition } from '../../engine/log/log.js';
import { describeWithKafka } from '../support/kafka.js';

const buf = (s: string): Buffer => Buffer.from(s, 'utf8');
const text = (b: Buffer | null): string | null => (b === null ? null : b.toString('utf8'));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

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

describe('task assignor', () => {
  const tasks = (n: number): string[] => Array.from({ length: n }, (_, i) => `0_${i}`);
  const owners = (assignment: Map<string, string[]>): string[] => [...assignment.values()].flat().sort(compareIds);

  it('gives every task to exactly one member, each member ⌊tasks/members⌋ or ⌈tasks/members⌉', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 40 }),
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.array(fc.integer({ min: 0, max: 45 }), { maxLength: 12 }), { maxLength: 8 }),
        (count, ids, claims) => {
          const all = tasks(count);
          const members: MemberClaim[] = ids.map((memberId, i) => ({ memberId, owned: (claims[i] ?? []).map((n) => `0_${n}`) }));
          const assignment = assignTasks(all, members);
          expect(owners(assignment)).toEqual(all);
          expect([...assignment.keys()].sort()).toEqual([...ids].sort());
          for (const owned of assignment.values()) {
            expect(owned.length).toBeGreaterThanOrEqual(Math.floor(count / ids.length));
            expect(owned.length).toBeLessThanOrEqual(Math.ceil(count / ids.length));
          }
        },
      ),
    );
  });

  it('is deterministic: the order members are listed in does not matter', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 30 }),
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.array(fc.integer({ min: 0, max: 35 }), { maxLength: 8 }), { maxLength: 6 }),
        (count, ids, claims) => {
          const members = ids.map((memberId, i) => ({ memberId, owned: (claims[i] ?? []).map((n) => `0_${n}`) }));
          const forward = assignTasks(tasks(count), members);
          const backward = assignTasks(tasks(count), [...members].reverse());
          expect(Object.fromEntries(backward)).toEqual(Object.fromEntries(forward));
        },
      ),
    );
  });

  it('keeps a task with its owner while the owner is within its share', () => {
    const before = assignTasks(tasks(6), [
      { memberId: 'a', owned: [] },
      { memberId: 'b', owned: [] },
    ]);
    const a = before.get('a')!;
    const b = before.get('b')!;
    expect([a.length, b.length]).toEqual([3, 3]);
    // A third member joins: a and b each give up one task and keep the other two.
    const after = assignTasks(tasks(6), [
      { memberId: 'a', owned: a },
      { memberId: 'b', owned: b },
      { memberId: 'c', owned: [] },
    ]);
    expect(after.get('a')).toEqual(a.slice(0, 2));
    expect(after.get('b')).toEqual(b.slice(0, 2));
    expect(after.get('c')!.sort(compareIds)).toEqual([a[2]!, b[2]!].sort(compareIds));
  });

  it('gives a returning member back the tasks moved away from it (the last acquired move first)', () => {
    const start = new Map([
      ['a', ['0_0', '0_1']],
      ['b', ['0_2', '0_3']],
      ['c', ['0_4', '0_5']],
    ]);
    // c leaves: its tasks go to a and b, appended after what they owned.
    const without = assignTasks(tasks(6), [
      { memberId: 'a', owned: start.get('a')! },
      { memberId: 'b', owned: start.get('b')! },
    ]);
    expect(without.get('a')!.slice(0, 2)).toEqual(['0_0', '0_1']);
    expect(without.get('b')!.slice(0, 2)).toEqual(['0_2', '0_3']);
    // A new member (c's successor) joins: a and b keep their original tasks, c's come back.
    const back = assignTasks(tasks(6), [
      { memberId: 'a', owned: without.get('a')! },
      { memberId: 'b', owned: without.get('b')! },
      { memberId: 'd', owned: [] },
    ]);
    expect(back.get('a')).toEqual(['0_0', '0_1']);
    expect(back.get('b')).toEqual(['0_2', '0_3']);
    expect(back.get('d')!.sort(compareIds)).toEqual(['0_4', '0_5']);
  });

  it('settles a task claimed by two members on the member whose id sorts first, and ignores unknown tasks', () => {
    const assignment = assignTasks(tasks(4), [
      { memberId: 'y', owned: ['0_0', '0_9'] },
      { memberId: 'x', owned: ['0_0', '0_1'] },
    ]);
    expect(assignment.get('x')).toEqual(['0_0', '0_1']);
    expect(assignment.get('y')).toEqual(['0_2', '0_3']);
  });

  it('orders task ids naturally, and round-trips claims', () => {
    expect(['1_10', '0_2', '1_2', '0_10', '0_1'].sort(compareIds)).toEqual(['0_1', '0_2', '0_10', '1_2', '1_10']);
    expect(decodeClaim(encodeClaim(['0_3', '0_1']))).toEqual(['0_3', '0_1']);
    expect(decodeClaim(Buffer.from('not json'))).toEqual([]);
    expect(decodeClaim(null)).toEqual([]);
  });
});

describeWithKafka('KafkaLog subscriptions', (brokers) => {
  let log: KafkaLog;
  const rebalances: RebalanceEvent[] = [];
  const opened: KafkaSubscription[] = [];
  const unique = (label: string): string => `sub-${label}-${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    log = new KafkaLog({
      brokers,
      clientId: 'millrace-subscription-test',
      sessionTimeoutMs: 6_000,
      heartbeatIntervalMs: 300,
      rebalanceTimeoutMs: 15_000,
      consumerMaxWaitMs: 200,
      onRebalance: (event) => rebalances.push(event),
    });
    await log.open();
  });
  afterAll(async () => {
    await Promise.allSettled(opened.map((s) => s.close()));
    await log?.close();
  });

  /** Two co-partitioned topics read together: task `0_p` owns partition p of both. */
  async function setup(partitions: number): Promise<{ group: string; topics: [string, string]; tasks: Map<string, TopicPartition[]> }> {
    const topics: [string, string] = [unique('left'), unique('right')];
    for (const name of topics) await log.createTopic({ name, partitions });
    const tasks = new Map<string, TopicPartition[]>();
    for (let p = 0; p < partitions; p++) tasks.set(`0_${p}`, topics.map((topic) => ({ topic, partition: p })));
    return { group: unique('group'), topics, tasks };
  }

  interface Member {
    readonly subscription: KafkaSubscription;
    readonly calls: Array<{ owned: string[]; previous: string[]; startedAt: number; endedAt: number }>;
  }

  async function join(group: string, topics: readonly string[], tasks: Map<string, TopicPartition[]>, delayMs = 0): Promise<Member> {
    const calls: Member['calls'] = [];
    const subscription = (await log.subscribe({
      group,
      topics,
      taskGroups: { tasks },
      onAssignment: async (owned, previous) => {
        const call = { owned: [...owned], previous: [...previous], startedAt: performance.now(), endedAt: 0 };
        calls.push(call);
        if (delayMs > 0) await sleep(delayMs);
        call.endedAt = performance.now();
      },
    })) as KafkaSubscription;
    opened.push(subscription);
    return { subscription, calls };
  }

  function expectPartitioned(members: readonly Member[], taskCount: number): void {
    const all = members.flatMap((m) => m.subscription.owned());
    expect([...all].sort(compareIds)).toEqual(Array.from({ length: taskCount }, (_, p) => `0_${p}`));
    for (const m of members) {
      expect(m.subscription.owned().length).toBeGreaterThanOrEqual(Math.floor(taskCount / members.length));
      expect(m.subscription.owned().length).toBeLessThanOrEqual(Math.ceil(taskCount / members.length));
    }
  }

  async function readAll(subscription: KafkaSubscription, topic: string, partition: number, from: number, count: number): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    let at = offset(from);
    const deadline = Date.now() + 20_000;
    while (out.length < count && Date.now() < deadline) {
      const batch = await subscription.read(topic, partition, at, { maxWaitMs: 500 });
      out.push(...batch.records);
      at = batch.nextOffset;
    }
    return out;
  }

  it('shares tasks between two and then three members, each task owned exactly once, tasks that stay never moving', async () => {
    const { group, topics, tasks } = await setup(6);
    const a = await join(group, topics, tasks);
    expect([...a.subscription.owned()].sort(compareIds)).toEqual([...tasks.keys()]);

    const b = await join(group, topics, tasks);
    await eventually(() => expectPartitioned([a, b], 6));
    const aTwo = [...a.subscription.owned()];
    const bTwo = [...b.subscription.owned()];
    expect(aTwo.length).toBe(3);

    const c = await join(group, topics, tasks);
    await eventually(() => expectPartitioned([a, b, c], 6));
    // Stickiness: what a and b own now they owned before c joined.
    for (const t of a.subscription.owned()) expect(aTwo).toContain(t);
    for (const t of b.subscription.owned()) expect(bTwo).toContain(t);

    // Every member reads exactly its own tasks' partitions.
    const notMine = [...tasks.keys()].find((t) => !a.subscription.owned().includes(t))!;
    const partition = Number(notMine.split('_')[1]);
    await expect(a.subscription.read(topics[0], partition, offset(0))).rejects.toSatisfy((err: unknown) =>
      isMillraceError(err, 'MILLRACE_PARTITION_UNKNOWN'),
    );
    const mine = Number(a.subscription.owned()[0]!.split('_')[1]);
    expect((await a.subscription.read(topics[1], mine, offset(0))).records).toEqual([]);

    await Promise.all([a, b, c].map((m) => m.subscription.close()));
  });

  it('moves the tasks of a member that leaves, and gives a returning member its tasks back', async () => {
    const { group, topics, tasks } = await setup(6);
    const a = await join(group, topics, tasks);
    const b = await join(group, topics, tasks);
    const c = await join(group, topics, tasks);
    await eventually(() => expectPartitioned([a, b, c], 6));
    const before = new Map([a, b, c].map((m) => [m, [...m.subscription.owned()]]));

    await c.subscription.close();
    await eventually(() => expectPartitioned([a, b], 6));
    for (const m of [a, b]) for (const t of before.get(m)!) expect(m.subscription.owned()).toContain(t);

    const back = await join(group, topics, tasks);
    await eventually(() => expectPartitioned([a, b, back], 6));
    expect([...back.subscription.owned()].sort(compareIds)).toEqual([...before.get(c)!].sort(compareIds));
    expect([...a.subscription.owned()].sort(compareIds)).toEqual([...before.get(a)!].sort(compareIds));
    expect([...b.subscription.owned()].sort(compareIds)).toEqual([...before.get(b)!].sort(compareIds));

    await Promise.all([a, b, back].map((m) => m.subscription.close()));
  });

  it('calls onAssignment once per assignment, one at a time, each call starting from what the last one handed out', async () => {
    const { group, topics, tasks } = await setup(4);
    const seen = rebalances.length;
    const a = await join(group, topics, tasks, 300);
    expect(a.calls).toHaveLength(1);
    expect(a.calls[0]).toMatchObject({ previous: [], owned: ['0_0', '0_1', '0_2', '0_3'] });

    const b = await join(group, topics, tasks, 300);
    await eventually(() => expectPartitioned([a, b], 4));
    const c = await join(group, topics, tasks, 300);
    await eventually(() => expectPartitioned([a, b, c], 4));
    await b.subscription.close();
    await eventually(() => expectPartitioned([a, c], 4));

    for (const { calls, subscription } of [a, c]) {
      for (let i = 1; i < calls.length; i++) {
        expect(calls[i]!.previous).toEqual(calls[i - 1]!.owned);
        expect(calls[i]!.startedAt).toBeGreaterThanOrEqual(calls[i - 1]!.endedAt);
      }
      expect(calls[calls.length - 1]!.owned).toEqual(subscription.owned());
      expect(subscription.lastRebalancePauseMs).toBeGreaterThanOrEqual(300);
    }
    // Each rebalance was reported with the pause it caused, held back at least as long as onAssignment ran.
    const reported = rebalances.slice(seen).filter((e) => e.group === group);
    expect(reported.length).toBeGreaterThanOrEqual(a.calls.length + c.calls.length);
    expect(reported.every((e) => e.pauseMs >= 300 && e.pauseMs < 30_000)).toBe(true);

    await Promise.all([a, c].map((m) => m.subscription.close()));
  });

  it('hands out no record of a new task before its onAssignment has returned', async () => {
    const { group, topics, tasks } = await setup(2);
    await log.append([
      { topic: topics[0], partition: 0, value: buf('p0') },
      { topic: topics[0], partition: 1, value: buf('p1') },
    ]);
    const a = await join(group, topics, tasks);
    let b: KafkaSubscription | undefined;
    const earlyReads: Array<{ task: string; records: number }> = [];
    b = (await log.subscribe({
      group,
      topics,
      taskGroups: { tasks },
      onAssignment: async (owned, previous) => {
        for (const task of owned.filter((t) => !previous.includes(t))) {
          if (b === undefined) continue;
          // A task starting inside onAssignment reads at once: it waits, and gets nothing yet.
          const early = await b.read(topics[0], Number(task.split('_')[1]), offset(0), { maxWaitMs: 300 });
          earlyReads.push({ task, records: early.records.length });
        }
        await sleep(300);
      },
    })) as KafkaSubscription;
    opened.push(b);
    const member = b;
    await eventually(() => expect(a.subscription.owned().length + member.owned().length).toBe(2));
    const gained = a.subscription.owned()[0]!;
    await a.subscription.close();
    await eventually(() => expect([...member.owned()].sort(compareIds)).toEqual(['0_0', '0_1']));
    expect(earlyReads).toEqual([{ task: gained, records: 0 }]);
    const records = await readAll(member, topics[0], Number(gained.split('_')[1]), 0, 1);
    expect(records.map((r) => text(r.value))).toEqual([`p${gained.split('_')[1]}`]);
    await member.close();
  });

  it('steps over the commit marker that ends a partition: a reader resuming at it reaches the end offset', async () => {
    const { group, topics, tasks } = await setup(1);
    const [topic] = topics;
    const tx = await log.beginTransaction({ transactionalId: unique('tx') });
    tx.append([{ topic, partition: 0, value: buf('only') }]);
    tx.commitOffsets(group, [{ topic, partition: 0, offset: offset(1) }]);
    await tx.commit();
    const end = (await log.partitionOffsets(topic))[0]!.end;
    // The record and its commit marker; the group resumes at the marker, where a fetch finds no record.
    expect(end).toBe(2);
    const member = await join(group, topics, tasks);
    let at = offset(1);
    const deadline = Date.now() + 20_000;
    while (at < end && Date.now() < deadline) {
      const batch = await member.subscription.read(topic, 0, at, { maxWaitMs: 500 });
      expect(batch.records).toEqual([]);
      at = batch.nextOffset;
    }
    expect(at).toBe(end);
    await member.subscription.close();
  });

  it('reads only committed records: aborted transactions never show, open ones show once committed', async () => {
    const { group, topics, tasks } = await setup(1);
    const [topic] = topics;
    const client = new kafkajs.Kafka({ brokers, logLevel: kafkajs.logLevel.NOTHING });
    const producer = client.producer({ transactionalId: unique('writer'), idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    try {
      await log.append([{ topic, partition: 0, value: buf('plain-1') }]);
      const aborted = await producer.transaction();
      await aborted.send({ topic, messages: [{ partition: 0, value: 'aborted-1' }, { partition: 0, value: 'aborted-2' }] });
      await aborted.abort();
      const committed = await log.beginTransaction({ transactionalId: unique('tx') });
      committed.append([{ topic, partition: 0, value: buf('committed-1') }]);
      await committed.commit();
      const open = await producer.transaction();
      await open.send({ topic, messages: [{ partition: 0, value: 'open-1' }] });

      const member = await join(group, topics, tasks);
      const first = await readAll(member.subscription, topic, 0, 0, 2);
      expect(first.map((r) => text(r.value))).toEqual(['plain-1', 'committed-1']);
      // Nothing more while the transaction is open.
      const next = first[first.length - 1]!.offset + 1;
      const nothing = await member.subscription.read(topic, 0, offset(next), { maxWaitMs: 1_000 });
      expect(nothing.records).toEqual([]);

      await open.commit();
      const rest = await readAll(member.subscription, topic, 0, nothing.nextOffset, 1);
      expect(rest.map((r) => text(r.value))).toEqual(['open-1']);
      // Random-access reads of the log agree.
      const all: string[] = [];
      let at: Offset = offset(0);
      for (;;) {
        const batch = await log.read(topic, 0, at, { maxWaitMs: 0 });
        all.push(...batch.records.map((r) => text(r.value)!));
        if (batch.nextOffset >= batch.highWatermark) break;
        at = batch.nextOffset;
      }
      expect(all).toEqual(['plain-1', 'committed-1', 'open-1']);
      await member.subscription.close();
    } finally {
      await producer.disconnect();
    }
  });

  it('after a rebalance, hands out only records at or after the offset asked for, though Kafka re-fetches from the committed offset', async () => {
    const { group, topics, tasks } = await setup(2);
    const [topic] = topics;
    await log.append(Array.from({ length: 10 }, (_, i) => ({ topic, partition: 0, value: buf(`v${i}`) })));
    await log.append(Array.from({ length: 10 }, (_, i) => ({ topic, partition: 1, value: buf(`w${i}`) })));
    const a = await join(group, topics, tasks);
    const firstRead = await readAll(a.subscription, topic, 0, 0, 10);
    expect(firstRead.map((r) => r.offset)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // The task checkpoints at 3 (as if it had processed only that far when it last committed).
    const checkpoint = await log.beginTransaction({ transactionalId: `${group}-0_0` });
    checkpoint.commitOffsets(group, [
      { topic, partition: 0, offset: offset(3) },
      { topic, partition: 1, offset: offset(3) },
    ]);
    await checkpoint.commit();

    const b = await join(group, topics, tasks);
    await eventually(() => expectPartitioned([a, b], 2));
    const kept = a.subscription.owned()[0]!;
    const moved = b.subscription.owned()[0]!;
    const keptPartition = Number(kept.split('_')[1]);
    const movedPartition = Number(moved.split('_')[1]);

    // The member that kept its task goes on from where it was: nothing before that comes again.
    await log.append([{ topic, partition: keptPartition, value: buf('after') }]);
    const keptFrom = keptPartition === 0 ? 10 : 0;
    const keptRecords = await readAll(a.subscription, topic, keptPartition, keptFrom, keptPartition === 0 ? 1 : 11);
    expect(keptRecords[0]!.offset).toBe(keptFrom);
    expect(new Set(keptRecords.map((r) => r.offset)).size).toBe(keptRecords.length);

    // The new owner of the other task resumes at 6 although the group's committed offset is 3.
    const movedRecords = await readAll(b.subscription, topic, movedPartition, 6, 4);
    expect(movedRecords.map((r) => r.offset)).toEqual([6, 7, 8, 9]);
    // And a read further back than its buffer reaches is still answered, from the log.
    const back = await b.subscription.read(topic, movedPartition, offset(1), { maxRecords: 2 });
    expect(back.records.map((r) => r.offset)).toEqual([1, 2]);

    await Promise.all([a, b].map((m) => m.subscription.close()));
  });

  it('hands out every record exactly once, in order, over many reads of a busy partition', async () => {
    const { group, topics, tasks } = await setup(2);
    const [topic] = topics;
    const value = Buffer.alloc(64, 2);
    for (let b = 0; b < 30; b++) {
      await log.append(Array.from({ length: 1_000 }, (_, i) => ({ topic, partition: i % 2, key: buf(`${b}-${i}`), value })));
    }
    const ends = await log.partitionOffsets(topic);
    const member = await join(group, topics, tasks);
    await Promise.all(
      ends.map(async ({ partition, end }) => {
        const offsets: number[] = [];
        let at = offset(0);
        let reads = 0;
        while (at < end) {
          // Odd sizes, so that reads end inside fetched batches and the buffer is compacted along the way.
          const batch = await member.subscription.read(topic, partition, at, { maxRecords: 777, maxBytes: 40_000, maxWaitMs: 5_000 });
          expect(batch.records.length).toBeGreaterThan(0);
          for (const r of batch.records) offsets.push(r.offset);
          expect(batch.nextOffset).toBe(batch.records[batch.records.length - 1]!.offset + 1);
          at = batch.nextOffset;
          reads++;
        }
        expect(offsets).toEqual(Array.from({ length: end }, (_, i) => i));
        expect(reads).toBeGreaterThan(15_000 / 777);
      }),
    );
    await member.subscription.close();
  });

  it('bounds a partition buffer, pausing the partition until the task has read from it', async () => {
    const bounded = new KafkaLog({
      brokers,
      clientId: 'millrace-subscription-bounded',
      maxBufferedRecordsPerPartition: 50,
      maxBufferedBytesPerPartition: 8 * 1024,
      consumerMaxWaitMs: 100,
    });
    await bounded.open();
    try {
      const { group, topics, tasks } = await setup(1);
      const [topic] = topics;
      for (let i = 0; i < 10; i++) await bounded.append(Array.from({ length: 100 }, (_, j) => ({ topic, partition: 0, value: buf(`${i}-${j}`) })));
      const subscription = (await bounded.subscribe({ group, topics, taskGroups: { tasks }, onAssignment: async () => undefined })) as KafkaSubscription;
      // Let the member fetch while the task reads nothing: the buffer fills up to its bound and the partition pauses.
      await eventually(() => expect(subscription.buffered()[0]?.paused).toBe(true));
      await sleep(500);
      const held = subscription.buffered()[0]!.records;
      // The bound is checked after each fetched batch, so it can be passed by at most one fetch.
      expect(held).toBeGreaterThanOrEqual(50);
      expect(held).toBeLessThan(1_000);
      const records: LogRecord[] = [];
      let at = offset(0);
      while (records.length < 1_000) {
        const batch = await subscription.read(topic, 0, at, { maxWaitMs: 2_000, maxRecords: 70 });
        expect(batch.records.length).toBeLessThanOrEqual(70);
        if (batch.records.length === 0) break;
        records.push(...batch.records);
        at = batch.nextOffset;
      }
      expect(records.map((r) => r.offset)).toEqual(Array.from({ length: 1_000 }, (_, i) => i));
      expect(subscription.pauses).toBeGreaterThan(1);
      await subscription.close();
    } finally {
      await bounded.close();
    }
  });
});
