import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { Serdes } from '../../engine/serde/serde.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import { TimeWindows } from '../../engine/operators/windows.js';
import { LevelBackend } from '../../engine/state/backend.js';
import type { ProcessorContext } from '../../engine/topology/processor.js';
import { TopologyDraft } from '../../engine/topology/topology.js';
import { caughtUp, readTopic, startRunner, tempDir } from '../support/runtime.js';

function keyedCount() {
  const b = new StreamsBuilder('kc');
  b.stream<string, { n: number }>('events').groupByKey('by-key').count('counts').toStream('changes').to('counts', { valueSerde: Serdes.json<number>() });
  return b.build();
}

describe('TopologyRunner on the embedded log', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let log: EmbeddedLog;
  beforeEach(async () => {
    dir = await tempDir();
    log = new EmbeddedLog({ path: dir.path });
    await log.open();
    await log.createTopic({ name: 'events', partitions: 3 });
    await log.createTopic({ name: 'counts', partitions: 3 });
  });
  afterEach(async () => {
    await log.close();
    await dir.remove();
  });

  it('counts per key, commits, and resumes after a restart', async () => {
    const runner = startRunner(log, keyedCount());
    await runner.start();
    const keys = ['a', 'b', 'c', 'd', 'e'];
    await log.append(Array.from({ length: 500 }, (_, i) => ({ topic: 'events', key: Buffer.from(keys[i % 5]!), value: Buffer.from(JSON.stringify({ n: i })) })));
    await caughtUp(runner);
    await runner.stop();
    const runner2 = startRunner(log, keyedCount());
    await runner2.start();
    await log.append(Array.from({ length: 50 }, (_, i) => ({ topic: 'events', key: Buffer.from(keys[i % 5]!), value: Buffer.from('{}') })));
    await caughtUp(runner2);
    await runner2.stop();
    const out = await readTopic(log, 'counts');
    const byKey = new Map<string, number[]>();
    for (const r of out.sort((x, y) => x.offset - y.offset)) {
      const k = r.key!.toString();
      byKey.set(k, [...(byKey.get(k) ?? []), JSON.parse(r.value!.toString()) as number]);
    }
    for (const k of keys) expect(byKey.get(k)).toEqual(Array.from({ length: 110 }, (_, i) => i + 1));
  });

  it('sends records it cannot process to <topic>.dlq and keeps going', async () => {
    const runner = startRunner(log, keyedCount());
    await runner.start();
    await log.append([
      { topic: 'events', key: Buffer.from('a'), value: Buffer.from('{}') },
      { topic: 'events', key: Buffer.from('a'), value: Buffer.from('not json') },
      { topic: 'events', key: null, value: Buffer.from('{}') , partition: 0 },
      { topic: 'events', key: Buffer.from('a'), value: Buffer.from('{}') },
    ]);
    await caughtUp(runner);
    await runner.stop();
    const dlq = await readTopic(log, 'events.dlq');
    expect(dlq.map((r) => JSON.parse(r.value!.toString()).code).sort()).toEqual(['MILLRACE_DESERIALIZATION', 'MILLRACE_PROCESSING']);
    const counts = await readTopic(log, 'counts');
    expect(counts.map((r) => JSON.parse(r.value!.toString()))).toEqual([1, 2]);
  });

  it('repartitions by a new key through an internal topic', async () => {
    const b = new StreamsBuilder('rk');
    b.stream<string, { user: string }>('events')
      .groupBy('by-user', (r) => r.value.user)
      .count('per-user')
      .toStream('changes')
      .to('counts', { valueSerde: Serdes.json<number>() });
    const runner = startRunner(log, b.build());
    await runner.start();
    await log.append(Array.from({ length: 300 }, (_, i) => ({ topic: 'events', key: Buffer.from(`k${i}`), value: Buffer.from(JSON.stringify({ user: `u${i % 7}` })) })));
    await caughtUp(runner);
    await caughtUp(runner);
    await runner.stop();
    const out = await readTopic(log, 'counts');
    const finals = new Map<string, number>();
    for (const r of out) finals.set(r.key!.toString(), Math.max(finals.get(r.key!.toString()) ?? 0, JSON.parse(r.value!.toString()) as number));
    expect([...finals.values()].reduce((a, b) => a + b)).toBe(300);
    expect(finals.get('u0')).toBe(43);
  });

  it('restores a store from its changelog when its local state is gone', async () => {
    const keys = ['a', 'b', 'c'];
    const produce = (n: number) =>
      log.append(Array.from({ length: n }, (_, i) => ({ topic: 'events', key: Buffer.from(keys[i % 3]!), value: Buffer.from('{}') })));
    const first = startRunner(log, keyedCount());
    await first.start();
    await produce(300);
    await caughtUp(first);
    await first.stop();
    // Lose every task's local copy of the store, and the marker saying it was there.
    for (let partition = 0; partition < 3; partition++) {
      await new LevelBackend(log.db, 'kc/counts', partition).clear();
      await new LevelBackend(log.db, 'kc/counts~checkpoint', partition).clear();
      expect([...(await collect(new LevelBackend(log.db, 'kc/counts', partition).entries({})))]).toEqual([]);
    }
    const second = startRunner(log, keyedCount());
    await second.start();
    await produce(30);
    await caughtUp(second);
    await second.stop();
    const finals = new Map<string, number>();
    for (const r of await readTopic(log, 'counts')) finals.set(r.key!.toString(), JSON.parse(r.value!.toString()) as number);
    expect(Object.fromEntries(finals)).toEqual({ a: 110, b: 110, c: 110 });
  });

  it('resumes stream time after a restart, so a record that was late before is late after', async () => {
    const b = new StreamsBuilder('win');
    b.stream<string, unknown>('events')
      .groupByKey('by-key')
      .windowedBy(TimeWindows.tumbling(1_000, { graceMs: 0 }))
      .count('per-second')
      .toStream('changes')
      .mapValues('plain', (v) => v)
      .map('unwindow', (r) => ({ key: `${r.key.key}@${r.key.window.start}`, value: r.value }))
      .to('counts', { valueSerde: Serdes.json<number>() });
    const topology = b.build();
    const record = (ts: number) => ({ topic: 'events', partition: 0, key: Buffer.from('k'), value: Buffer.from('{}'), timestamp: ts });
    const first = startRunner(log, topology);
    await first.start();
    await log.append([record(10_500), record(12_200)]);
    await caughtUp(first);
    await first.stop();
    const second = startRunner(log, b.build());
    await second.start();
    await log.append([record(10_700), record(12_300)]); // window [10s, 11s) closed at stream time 12.2 s
    await caughtUp(second);
    await second.stop();
    const late = await readTopic(log, 'win-late-records');
    expect(late.map((r) => JSON.parse(r.value!.toString()).code)).toEqual(['MILLRACE_LATE_RECORD']);
    expect(await readTopic(log, 'events.dlq')).toEqual([]);
    const out = (await readTopic(log, 'counts'))
      .sort((x, y) => x.key!.compare(y.key!) || x.offset - y.offset)
      .map((r) => [r.key!.toString(), JSON.parse(r.value!.toString())]);
    expect(out).toEqual([['k@10000', 1], ['k@12000', 1], ['k@12000', 2]]);
  });

  it('fires wall-clock punctuators while a task has no input', async () => {
    await log.createTopic({ name: 'ticks', partitions: 3 });
    const topology = new TopologyDraft('ticker')
      .addSource('in', { topics: ['events'], keySerde: Serdes.string(), valueSerde: Serdes.json() })
      .addProcessor(
        'tick',
        () => ({
          init(ctx: ProcessorContext<string, number>) {
            ctx.schedule(20, 'wall-clock', (now) => ctx.forward({ key: 'tick', value: now, timestamp: now, headers: {} }));
          },
          process() {},
        }),
        { parents: ['in'] },
      )
      .addSink('out', 'ticks', { parents: ['tick'], keySerde: Serdes.string(), valueSerde: Serdes.json() })
      .build();
    const runner = startRunner(log, topology);
    await runner.start();
    const deadline = Date.now() + 10_000;
    while ((await readTopic(log, 'ticks')).length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await runner.stop();
    const ticks = (await readTopic(log, 'ticks')).map((r) => JSON.parse(r.value!.toString()) as number);
    expect(ticks.length).toBeGreaterThanOrEqual(6);
    // Each of the three tasks ticks, at the wall-clock time it fired.
    expect(new Set((await readTopic(log, 'ticks')).map((r) => r.partition)).size).toBeGreaterThanOrEqual(1);
    expect(ticks.every((t) => t > 1_700_000_000_000)).toBe(true);
  });
});

async function collect<T>(iterable: Iterable<T> | AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}
