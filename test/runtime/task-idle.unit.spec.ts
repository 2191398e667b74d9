/**
 * `maxTaskIdleMs`: a task with two inputs, one of them fed while the task runs (an upstream that is slower, as
 * scoring is behind feedback while a backlog drains), the other all there from the start. Without the wait the task
 * takes all of the ready input first, stream time runs ahead, and the slow input's records come late; with it, the
 * task waits for the dry input and takes both in timestamp order.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { JoinWindows } from '../../engine/operators/joins.js';
import { Serdes } from '../../engine/serde/serde.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import { Topology } from '../../engine/topology/topology.js';
import { caughtUp, readTopic, startRunner, tempDir } from '../support/runtime.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const N = 200;

interface Event {
  readonly i: number;
  readonly at: number;
}

function joinTopology(maxTaskIdleMs: number): Topology {
  const b = new StreamsBuilder('idle-join', { maxTaskIdleMs });
  const serde = Serdes.json<Event>();
  const left = b.stream<string, Event>('left', { valueSerde: serde, timestampExtractor: (r) => r.value.at });
  const right = b.stream<string, Event>('right', { valueSerde: serde, timestampExtractor: (r) => r.value.at });
  left
    .join('pair', right, (l, r) => ({ left: l.i, right: r.i }), JoinWindows.ofTimeDifference(60_000), { valueSerde: Serdes.json<{ left: number; right: number }>() })
    .to('joined');
  return b.build();
}

/**
 * Record `i` of a side: key `k<i>`, event time T0 + i s (right) or half a second later (left), so each left record
 * has one partner, the right record of its `i`, and comes after it in time.
 */
const record = (topic: 'left' | 'right', i: number) => {
  const at = T0 + i * 1_000 + (topic === 'left' ? 500 : 0);
  return { topic, key: Buffer.from(`k${i}`), value: Buffer.from(JSON.stringify({ i, at })), timestamp: at };
};

describe('a task with several inputs and maxTaskIdleMs', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let log: EmbeddedLog;
  beforeEach(async () => {
    dir = await tempDir();
    log = new EmbeddedLog({ path: dir.path });
    await log.open();
    for (const topic of ['left', 'right', 'joined']) await log.createTopic({ name: topic, partitions: 1 });
    await log.append(Array.from({ length: N }, (_, i) => record('right', i)));
  });
  afterEach(async () => {
    await log.close();
    await dir.remove();
  });

  it('waits for the dry input, so records of the slower one still join', async () => {
    const runner = startRunner(log, joinTopology(30_000));
    await runner.start();
    // The left side comes a record at a time while the task runs, the right side all there already.
    for (let i = 0; i < N; i++) {
      await log.append([record('left', i)]);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // The task cannot tell that a side has ended: with its last record in hand it waits for the other side, whose
    // next record could come before it. One more right record, much later, lets the last left one through.
    await log.append([{ ...record('right', N), timestamp: T0 + 10 * N * 1_000 }]);
    const deadline = Date.now() + 20_000;
    while ((await readTopic(log, 'joined')).length < N && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await runner.stop();
    const joined = (await readTopic(log, 'joined')).map((r) => JSON.parse(r.value!.toString()) as { left: number; right: number });
    expect(joined).toHaveLength(N);
    expect(joined.every((pair) => pair.left === pair.right)).toBe(true);
    expect(await readTopic(log, 'idle-join-late-records').catch(() => [])).toEqual([]);
  });

  it('without it (0, the default) takes the ready input first, and the other one is late', async () => {
    expect(joinTopology(0).maxTaskIdleMs).toBe(0);
    const runner = startRunner(log, joinTopology(0));
    await runner.start();
    await caughtUp(runner);
    await log.append(Array.from({ length: N }, (_, i) => record('left', i)));
    await caughtUp(runner);
    await runner.stop();
    // Stream time stands at the last right record: every left record before it is late; the last one joins.
    expect(await readTopic(log, 'joined')).toHaveLength(1);
    expect(await readTopic(log, 'idle-join-late-records')).toHaveLength(N - 1);
  });

  it('refuses a negative wait and shows a set one in the description', () => {
    expect(() => joinTopology(-1)).toThrow(/maxTaskIdleMs must be a non-negative integer/);
    expect(joinTopology(30_000).describe().maxTaskIdleMs).toBe(30_000);
    expect('maxTaskIdleMs' in joinTopology(0).describe()).toBe(false);
  });
});
