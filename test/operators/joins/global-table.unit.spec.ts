import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TopologyTestDriver } from '../../../engine/testing/index.js';
import { StreamsBuilder } from '../../../engine/topology/builder.js';
import { globalTable, streamGlobalTableJoin } from '../../../engine/topology/tables.js';
import { drain, keys, lateSet, sorted, timestamps, type Out } from './support.js';

interface Order {
  readonly route: string;
  readonly id: string;
}

interface Scenario {
  readonly left: boolean;
  readonly allowedLatenessMs: number;
  /** Routing table records (`null` value: a tombstone) and orders, in the order they are piped. */
  readonly records: ReadonlyArray<{ readonly to: 'routes' | 'orders'; readonly key: string; readonly timestamp: number; readonly tombstone: boolean }>;
}

const scenarios: fc.Arbitrary<Scenario> = fc.integer({ min: 0, max: 40 }).chain((n) =>
  fc
    .record({
      left: fc.boolean(),
      allowedLatenessMs: fc.integer({ min: 0, max: 15 }),
      to: fc.array(fc.constantFrom<'routes' | 'orders'>('routes', 'orders'), { minLength: n, maxLength: n }),
      keys: fc.array(keys, { minLength: n, maxLength: n }),
      times: timestamps(n),
      tombstones: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: n, maxLength: n }),
    })
    .map(({ to, keys: ks, times, tombstones, ...rest }) => ({
      ...rest,
      records: to.map((t, i) => ({ to: t, key: ks[i]!, timestamp: times[i]!, tombstone: t === 'routes' && tombstones[i] === 0 })),
    })),
);

const show = (order: Order, model: string | null): string => `${order.id}>${model ?? '-'}`;

function enrich(s: Pick<Scenario, 'left' | 'allowedLatenessMs'>) {
  const b = new StreamsBuilder('gtj', { allowedLatenessMs: s.allowedLatenessMs });
  const routes = globalTable<string, string>(b, 'routes', { name: 'route-table' });
  // Orders are keyed by order id; the lookup is by the route in the value.
  streamGlobalTableJoin<string, Order, string, string, string, boolean>(b.stream<string, Order>('orders'), routes, (r) => r.value.route, show, { name: 'routed', left: s.left }).to('out');
  return new TopologyTestDriver(b.build());
}

describe('stream–global-table join, against its definition over random out-of-order input', () => {
  it('joins each order with the routing table as it stands when the order is processed; nothing is late', () => {
    fc.assert(
      fc.property(scenarios, (s) => {
        const driver = enrich(s);
        const routes = driver.createInputTopic<string, string>('routes');
        const orders = driver.createInputTopic<string, Order>('orders');
        const out = driver.createOutputTopic<string, string>('out');
        const table = new Map<string, string>();
        s.records.forEach((r, step) => {
          const expected: Out[] = [];
          if (r.to === 'routes') {
            const model = r.tombstone ? null : `m${step}`;
            routes.pipeInput(r.key, model, r.timestamp);
            if (model === null) table.delete(r.key);
            else table.set(r.key, model);
          } else {
            const order = { route: r.key, id: `o${step}` };
            orders.pipeInput(order.id, order, r.timestamp);
            const model = table.get(r.key) ?? null;
            if (model !== null || s.left) expected.push([order.id, show(order, model), r.timestamp]);
          }
          expect(sorted(drain(out))).toEqual(expected);
        });
        expect(lateSet(driver)).toEqual([]);
        expect(driver.deadLetters('orders')).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });
});

describe('stream–global-table join', () => {
  it('needs no co-partitioning: the stream keeps its own key and its own sub-topology', () => {
    const b = new StreamsBuilder('gtj');
    const routes = globalTable<string, string>(b, 'routes', { name: 'route-table' });
    streamGlobalTableJoin(b.stream<string, Order>('orders'), routes, (r) => r.value.route, show, { name: 'routed' }).to('out');
    const topology = b.build();
    expect(topology.subtopologies.map((s) => s.sourceTopics)).toEqual([['orders']]);
    expect(topology.internalTopics.size).toBe(0);
  });

  it('sends a record whose lookup key is missing to the dead-letter topic, for inner and left joins', () => {
    for (const left of [false, true]) {
      const driver = enrich({ left, allowedLatenessMs: 0 });
      driver.createInputTopic<string, string>('routes').pipeInput('eu', 'm1', 1);
      const orders = driver.createInputTopic<string, Partial<Order>>('orders');
      orders.pipeInput('o1', { id: 'o1' }, 2);
      orders.pipeInput(null, { id: 'o2', route: 'eu' }, 3); // a stream record without a key is fine here
      expect(driver.deadLetters('orders').map((d) => [d.code, d.reason, d.source.offset])).toEqual([['MILLRACE_PROCESSING', 'null-key', 0]]);
      expect(drain(driver.createOutputTopic('out'))).toEqual([['<null>', 'o2>m1', 3]]);
    }
  });
});
