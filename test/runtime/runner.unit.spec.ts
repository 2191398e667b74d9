import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { Serdes } from '../../engine/serde/serde.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
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
});
