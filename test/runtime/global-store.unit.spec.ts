import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { Serdes } from '../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import { TopologyDraft, type Topology } from '../../engine/topology/topology.js';
import { caughtUp, readTopic, startRunner, tempDir } from '../support/runtime.js';

/** Orders enriched with the routing table, a global store fed by every partition of `routes`. */
function enrich(): Topology {
  return new TopologyDraft('enrich')
    .addGlobalStore({ name: 'routes', topic: 'routes', keySerde: Serdes.string(), valueSerde: Serdes.json<{ model: string }>() })
    .addSource('orders', { topics: ['orders'], keySerde: Serdes.string(), valueSerde: Serdes.json<{ route: string }>() })
    .addProcessor(
      'lookup',
      () => ({
        process(record, ctx) {
          const route = ctx.globalStore<string, { model: string }>('routes').get((record.value as { route: string }).route);
          ctx.forward({ ...record, value: { ...(record.value as object), model: route?.model ?? null } });
        },
      }),
      { parents: ['orders'] },
    )
    .addSink('out', 'enriched', { parents: ['lookup'], keySerde: Serdes.string(), valueSerde: Serdes.json() })
    .build();
}

describe('global stores', () => {
  it('answer lookups in the TopologyTestDriver as soon as their topic gets a record', () => {
    const driver = new TopologyTestDriver(enrich());
    const routes = driver.createInputTopic<string, { model: string } | null>('routes');
    const orders = driver.createInputTopic<string, { route: string }>('orders');
    const out = driver.createOutputTopic('enriched');
    orders.pipeInput('o1', { route: 'eu' });
    routes.pipeInput('eu', { model: 'fraud-v1' });
    orders.pipeInput('o2', { route: 'eu' });
    routes.pipeInput('eu', null);
    orders.pipeInput('o3', { route: 'eu' });
    expect(out.readValuesToList()).toEqual([
      { route: 'eu', model: null },
      { route: 'eu', model: 'fraud-v1' },
      { route: 'eu', model: null },
    ]);
    expect(() => new TopologyDraft('bad').addGlobalStore({ name: 'g', topic: 'x', keySerde: Serdes.string(), valueSerde: Serdes.string() })
      .addSource('s', { topics: ['x'], keySerde: Serdes.string(), valueSerde: Serdes.string() })
      .addSink('k', 'y', { parents: ['s'], keySerde: Serdes.string(), valueSerde: Serdes.string() })
      .build()).toThrow(expect.objectContaining({ code: 'MILLRACE_TOPOLOGY_INVALID' }));
    expect(enrich().describe().globalStores).toEqual([{ name: 'routes', topic: 'routes', keySerde: 'string', valueSerde: 'json' }]);
  });

  describe('in the runtime', () => {
    let dir: Awaited<ReturnType<typeof tempDir>>;
    let log: EmbeddedLog;
    beforeEach(async () => {
      dir = await tempDir();
      log = new EmbeddedLog({ path: dir.path });
      await log.open();
      await log.createTopic({ name: 'routes', partitions: 3, cleanupPolicy: 'compact' });
      await log.createTopic({ name: 'orders', partitions: 2 });
      await log.createTopic({ name: 'enriched', partitions: 2 });
    });
    afterEach(async () => {
      await log.close();
      await dir.remove();
    });

    const route = (key: string, model: string | null) => ({ topic: 'routes', key: Buffer.from(key), value: model === null ? null : Buffer.from(JSON.stringify({ model })) });
    const order = (id: string, to: string) => ({ topic: 'orders', key: Buffer.from(id), value: Buffer.from(JSON.stringify({ route: to })) });
    const models = async () => new Map((await readTopic(log, 'enriched')).map((r) => [r.key!.toString(), (JSON.parse(r.value!.toString()) as { model: string | null }).model]));

    it('sees every partition of its topic before the first record, follows updates, and resumes after a restart', async () => {
      await log.append([route('eu', 'm-eu'), route('us', 'm-us'), route('apac', 'm-apac'), route('bad', null)]);
      await log.append([{ topic: 'routes', key: Buffer.from('broken'), value: Buffer.from('not json') }]);
      await log.append(['eu', 'us', 'apac'].map((r, i) => order(`o${i}`, r)));
      const first = startRunner(log, enrich());
      await first.start();
      await caughtUp(first);
      expect(Object.fromEntries(await models())).toEqual({ o0: 'm-eu', o1: 'm-us', o2: 'm-apac' });
      const [update] = await log.append([route('eu', 'm-eu-2')]);
      // Wait until the global store has taken the update, then send an order that needs it.
      while (((await log.committedOffsets('enrich-global', 'routes')).get(update!.partition) ?? 0) <= update!.offset) {
        await new Promise((r) => setTimeout(r, 5));
      }
      await log.append([order('o3', 'eu')]);
      await caughtUp(first);
      expect((await models()).get('o3')).toBe('m-eu-2');
      await first.stop();
      await log.append([route('us', 'm-us-2'), order('o4', 'us'), order('o5', 'broken')]);
      const second = startRunner(log, enrich());
      await second.start();
      await caughtUp(second);
      await second.stop();
      expect((await models()).get('o4')).toBe('m-us-2');
      // The undecodable routing record never reached the store.
      expect((await models()).get('o5')).toBeNull();
    });

    it('follows a key that appears after a lookup found it missing, and one deleted after a lookup found it', async () => {
      await log.append([route('eu', 'm-eu')]);
      const runner = startRunner(log, enrich());
      await runner.start();
      const applied = async (records: Array<ReturnType<typeof route>>): Promise<void> => {
        const results = await log.append(records);
        for (const r of results) {
          while (((await log.committedOffsets('enrich-global', 'routes')).get(r.partition) ?? 0) <= r.offset) await new Promise((resolve) => setTimeout(resolve, 5));
        }
      };
      try {
        await log.append([order('o1', 'new'), order('o2', 'eu')]);
        await caughtUp(runner);
        await applied([route('new', 'm-new'), route('eu', null)]);
        await log.append([order('o3', 'new'), order('o4', 'eu')]);
        await caughtUp(runner);
      } finally {
        await runner.stop();
      }
      expect(Object.fromEntries(await models())).toEqual({ o1: null, o2: 'm-eu', o3: 'm-new', o4: null });
    });
  });
});
