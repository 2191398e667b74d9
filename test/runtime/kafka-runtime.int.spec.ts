/**
 * The runtime on a real Kafka broker, in-process: global stores (fed from every partition, checkpointed locally)
 * and event-time state (stream time committed as offset metadata) survive a restart.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { KafkaLog } from '../../engine/log/kafka/kafka-log.js';
import { silentLogger } from '../../engine/logger.js';
import { Metrics } from '../../engine/metrics/metrics.js';
import { TimeWindows } from '../../engine/operators/windows.js';
import { TopologyRunner } from '../../engine/runtime/runner.js';
import { Serdes } from '../../engine/serde/serde.js';
import { LevelBackend } from '../../engine/state/backend.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import { TopologyDraft, type Topology } from '../../engine/topology/topology.js';
import { describeWithKafka } from '../support/kafka.js';
import { FAST_RUNNER_CONFIG, readTopic, tempDir } from '../support/runtime.js';

describeWithKafka('the runtime on Kafka', (brokers) => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let log: KafkaLog;
  let state: ClassicLevel<Buffer, Buffer>;
  const id = randomUUID().slice(0, 8);

  beforeAll(async () => {
    dir = await tempDir('millrace-kafka-runtime-');
    log = new KafkaLog({ brokers, clientId: 'runtime-test' });
    await log.open();
    state = new ClassicLevel<Buffer, Buffer>(join(dir.path, 'state'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await state.open();
  });
  afterAll(async () => {
    await state?.close();
    await log?.close();
    await dir?.remove();
  });

  function runner(topology: Topology): TopologyRunner {
    return new TopologyRunner({
      log,
      topology,
      config: FAST_RUNNER_CONFIG,
      metrics: new Metrics({ defaultMetrics: false }),
      logger: silentLogger(),
      openBackend: (store, partition) => new LevelBackend(state, `${topology.applicationId}/${store.name}`, partition),
      localState: { write: async (writes) => void (writes.length > 0 && (await state.batch(writes.map((w) => ({ ...w }))))) },
    });
  }

  async function committedAll(group: string, topic: string): Promise<void> {
    for (;;) {
      const ends = await log.partitionOffsets(topic);
      const committed = await log.committedOffsets(group, topic);
      if (ends.every((p) => (committed.get(p.partition) ?? 0) >= p.end)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('keeps a global store from every partition, across a restart', { timeout: 120_000 }, async () => {
    const routes = `routes-${id}`;
    const orders = `orders-${id}`;
    const enriched = `enriched-${id}`;
    await log.createTopic({ name: routes, partitions: 3, cleanupPolicy: 'compact' });
    await log.createTopic({ name: orders, partitions: 2 });
    await log.createTopic({ name: enriched, partitions: 2 });
    const topology = new TopologyDraft(`global-${id}`)
      .addGlobalStore({ name: 'routes', topic: routes, keySerde: Serdes.string(), valueSerde: Serdes.json<{ model: string }>() })
      .addSource('orders', { topics: [orders], keySerde: Serdes.string(), valueSerde: Serdes.json<{ route: string }>() })
      .addProcessor(
        'lookup',
        () => ({
          process(record, ctx) {
            const route = ctx.globalStore<string, { model: string }>('routes').get((record.value as { route: string }).route);
            ctx.forward({ ...record, value: route?.model ?? null });
          },
        }),
        { parents: ['orders'] },
      )
      .addSink('out', enriched, { parents: ['lookup'], keySerde: Serdes.string(), valueSerde: Serdes.json() })
      .build();
    const route = (key: string, model: string) => ({ topic: routes, key: Buffer.from(key), value: Buffer.from(JSON.stringify({ model })) });
    const order = (key: string, to: string) => ({ topic: orders, key: Buffer.from(key), value: Buffer.from(JSON.stringify({ route: to })) });
    await log.append([route('eu', 'm1'), route('us', 'm2'), route('apac', 'm3')]);
    await log.append([order('o1', 'eu'), order('o2', 'us'), order('o3', 'apac')]);
    const first = runner(topology);
    await first.start();
    await committedAll(`global-${id}`, orders);
    await first.stop();
    await log.append([route('eu', 'm1-b'), order('o4', 'eu')]);
    const second = runner(topology);
    await second.start();
    await committedAll(`global-${id}`, orders);
    await second.stop();
    const models = new Map((await readTopic(log, enriched)).map((r) => [r.key!.toString(), JSON.parse(r.value!.toString()) as string]));
    expect(Object.fromEntries(models)).toEqual({ o1: 'm1', o2: 'm2', o3: 'm3', o4: 'm1-b' });
  });

  it('resumes stream time from offset metadata, so lateness is decided as without the restart', { timeout: 120_000 }, async () => {
    const events = `win-events-${id}`;
    const out = `win-out-${id}`;
    await log.createTopic({ name: events, partitions: 1 });
    await log.createTopic({ name: out, partitions: 1 });
    const build = () => {
      const b = new StreamsBuilder(`win-${id}`);
      b.stream<string, unknown>(events)
        .groupByKey('by-key')
        .windowedBy(TimeWindows.tumbling(1_000))
        .count('per-second', { emit: 'final' })
        .toStream('closed')
        .map('flat', (r) => ({ key: `${r.key.key}@${r.key.window.start}`, value: r.value }))
        .to(out, { valueSerde: Serdes.json<number>() });
      return b.build();
    };
    const record = (ts: number) => ({ topic: events, partition: 0, key: Buffer.from('k'), value: Buffer.from('{}'), timestamp: Date.UTC(2026, 0, 1) + ts });
    await log.append([record(100), record(900), record(1_500)]);
    const first = runner(build());
    await first.start();
    await committedAll(`win-${id}`, events);
    await first.stop();
    await log.append([record(950), record(2_100)]);
    const second = runner(build());
    await second.start();
    await committedAll(`win-${id}`, events);
    await second.stop();
    const outputs = (await readTopic(log, out)).map((r) => [r.key!.toString().split('@')[1], JSON.parse(r.value!.toString())]);
    const start = Date.UTC(2026, 0, 1);
    expect(outputs).toEqual([[String(start), 2], [String(start + 1_000), 1]]);
    const late = await readTopic(log, `win-${id}-late-records`);
    expect(late.map((r) => JSON.parse(r.value!.toString()).code)).toEqual(['MILLRACE_LATE_RECORD']);
  });
});
