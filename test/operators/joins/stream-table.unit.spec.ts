import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Serdes } from '../../../engine/serde/serde.js';
import type { VersionList } from '../../../engine/state/versioned.js';
import { TopologyTestDriver } from '../../../engine/testing/index.js';
import { StreamsBuilder } from '../../../engine/topology/builder.js';
import { streamTableJoin, table } from '../../../engine/topology/tables.js';
import { drain, keys, lateSet, sorted, timestamps, type Out } from './support.js';

interface Scenario {
  /** `null`: an unversioned table. */
  readonly historyRetentionMs: number | null;
  readonly left: boolean;
  readonly allowedLatenessMs: number;
  /** Table records (a `null` value is a tombstone) and stream records, in the order they are processed. */
  readonly records: ReadonlyArray<{ readonly to: 'prices' | 'orders'; readonly key: string; readonly timestamp: number; readonly tombstone: boolean }>;
}

const scenarios: fc.Arbitrary<Scenario> = fc.integer({ min: 0, max: 40 }).chain((n) =>
  fc
    .record({
      historyRetentionMs: fc.option(fc.integer({ min: 0, max: 40 }), { freq: 4 }),
      left: fc.boolean(),
      allowedLatenessMs: fc.integer({ min: 0, max: 15 }),
      to: fc.array(fc.constantFrom<'prices' | 'orders'>('prices', 'orders'), { minLength: n, maxLength: n }),
      keys: fc.array(keys, { minLength: n, maxLength: n }),
      times: timestamps(n),
      tombstones: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
    })
    .map(({ to, keys: ks, times, tombstones, ...rest }) => ({
      ...rest,
      // A tombstone about one table record in five.
      records: to.map((t, i) => ({ to: t, key: ks[i]!, timestamp: times[i]!, tombstone: t === 'prices' && tombstones[i]! && i % 5 < 2 })),
    })),
);

const show = (order: string, price: string | null): string => `${order}@${price ?? '-'}`;

function joinTopology(s: Pick<Scenario, 'historyRetentionMs' | 'left' | 'allowedLatenessMs'>, retention = s.historyRetentionMs) {
  const b = new StreamsBuilder('stj', { allowedLatenessMs: s.allowedLatenessMs });
  const prices = table<string, string>(b, 'prices', { name: 'price-table', ...(retention === null ? {} : { versioned: { historyRetentionMs: retention } }) });
  streamTableJoin<string, string, string, string, boolean>(b.stream<string, string>('orders'), prices, show, { name: 'priced', left: s.left }).to('out');
  prices.toStream('price-changes').to('changes');
  return b.build();
}

/**
 * The join from its definition, given the processing order: keep every accepted table version (no pruning); a stream
 * record joins the version valid at its timestamp (latest `validFrom ≤ t`) of a versioned table, or the latest value
 * of an unversioned one. Behind the history boundary (stream time − retention) a stream record is reported late and
 * joins nothing (left: `null`); a table version is refused as late.
 */
function reference(s: Scenario) {
  const versioned = s.historyRetentionMs !== null;
  const history = new Map<string, Array<{ validFrom: number; value: string | null }>>();
  const latest = new Map<string, string>();
  const offsets = { prices: 0, orders: 0 };
  let streamTime = -1;
  const late: string[] = [];
  const joined: Out[][] = [];
  const changes: Out[][] = [];
  s.records.forEach((r, step) => {
    const offset = offsets[r.to]++;
    const value = r.tombstone ? null : `${r.to === 'prices' ? 'P' : 'O'}${step}`;
    streamTime = Math.max(streamTime, r.timestamp);
    const boundary = versioned ? streamTime - s.historyRetentionMs! : -Infinity;
    joined.push([]);
    changes.push([]);
    if (r.to === 'prices') {
      if (!versioned) {
        if (value === null) latest.delete(r.key);
        else latest.set(r.key, value);
        changes[step]!.push([r.key, value ?? '<null>', r.timestamp]);
        return;
      }
      if (r.timestamp < boundary) {
        late.push(`prices@${offset}`);
        return;
      }
      const versions = history.get(r.key) ?? [];
      const isLatest = versions.every((v) => v.validFrom <= r.timestamp);
      history.set(r.key, [...versions.filter((v) => v.validFrom !== r.timestamp), { validFrom: r.timestamp, value }]);
      if (isLatest) changes[step]!.push([r.key, value ?? '<null>', r.timestamp]);
      return;
    }
    let price: string | null;
    if (!versioned) {
      price = latest.get(r.key) ?? null;
    } else if (r.timestamp < boundary) {
      late.push(`orders@${offset}`);
      price = null;
    } else {
      const valid = (history.get(r.key) ?? []).filter((v) => v.validFrom <= r.timestamp).sort((a, b) => b.validFrom - a.validFrom)[0];
      price = valid?.value ?? null;
    }
    if (price !== null || s.left) joined[step]!.push([r.key, show(value!, price), r.timestamp]);
  });
  return { joined: joined.map(sorted), changes: changes.map(sorted), late: late.sort(), history, boundary: versioned ? streamTime - s.historyRetentionMs! : -Infinity };
}

describe('stream–table join as of the stream record’s time, against its definition over random out-of-order input', () => {
  it('joins the same values, forwards the same table changes and reports the same late records as the reference', () => {
    fc.assert(
      fc.property(scenarios, (s) => {
        const driver = new TopologyTestDriver(joinTopology(s));
        const inputs = { prices: driver.createInputTopic<string, string>('prices'), orders: driver.createInputTopic<string, string>('orders') };
        const out = driver.createOutputTopic<string, string>('out');
        const changes = driver.createOutputTopic<string, string>('changes');
        const actual = { joined: [] as Out[][], changes: [] as Out[][] };
        s.records.forEach((r, step) => {
          inputs[r.to].pipeInput(r.key, r.tombstone ? null : `${r.to === 'prices' ? 'P' : 'O'}${step}`, r.timestamp);
          actual.joined.push(sorted(drain(out)));
          actual.changes.push(sorted(drain(changes)));
        });
        const want = reference(s);
        expect(actual.joined).toEqual(want.joined);
        expect(actual.changes).toEqual(want.changes);
        expect(lateSet(driver)).toEqual(want.late);
        expect(driver.deadLetters('orders')).toEqual([]);
        expect(driver.deadLetters('prices')).toEqual([]);
        if (s.historyRetentionMs === null) return;
        // What the store kept, pruned, answers every lookup the join may still make as the full history does.
        const store = driver.getKeyValueStore<string, VersionList<string>>('price-table');
        for (const key of ['a', 'b', 'c']) {
          const kept = store.get(key) ?? [];
          const full = want.history.get(key) ?? [];
          const lastTime = Math.max(0, ...full.map((v) => v.validFrom)) + 1;
          for (let t = Math.max(0, want.boundary); t <= lastTime; t++) {
            const fromKept = kept.filter((v) => v.validFrom <= t).at(-1)?.value ?? null;
            const fromFull = full.filter((v) => v.validFrom <= t).sort((x, y) => x.validFrom - y.validFrom).at(-1)?.value ?? null;
            expect(fromKept, `${key} as of ${t}`).toEqual(fromFull);
          }
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe('stream–table join', () => {
  function setUp(options: { historyRetentionMs?: number | null; left?: boolean } = {}) {
    const driver = new TopologyTestDriver(joinTopology({ historyRetentionMs: options.historyRetentionMs === undefined ? 1_000 : options.historyRetentionMs, left: options.left ?? false, allowedLatenessMs: 0 }));
    return {
      driver,
      prices: driver.createInputTopic<string, string>('prices'),
      orders: driver.createInputTopic<string, string>('orders'),
      out: driver.createOutputTopic<string, string>('out'),
      changes: driver.createOutputTopic<string, string>('changes'),
    };
  }

  it('looks the table up as of the stream record’s timestamp, also for a record that arrives late', () => {
    const { prices, orders, out } = setUp({ left: true });
    prices.pipeInput('k', 'p10', 10);
    prices.pipeInput('k', 'p20', 20);
    orders.pipeInput('k', 'o15', 15);
    orders.pipeInput('k', 'o25', 25);
    orders.pipeInput('k', 'o5', 5); // before the first version
    orders.pipeInput('k', 'o12', 12); // processed after p20, joins p10 all the same
    orders.pipeInput('k', 'o20', 20); // a version is valid from its own time on
    expect(drain(out)).toEqual([
      ['k', 'o15@p10', 15],
      ['k', 'o25@p20', 25],
      ['k', 'o5@-', 5],
      ['k', 'o12@p10', 12],
      ['k', 'o20@p20', 20],
    ]);
  });

  it('does not revisit a stream record joined before a version of an earlier time arrived', () => {
    const { prices, orders, out, changes } = setUp();
    prices.pipeInput('k', 'p10', 10);
    prices.pipeInput('k', 'p20', 20);
    orders.pipeInput('k', 'o30', 30);
    drain(changes);
    // when: a version valid from 25 arrives after o30 was joined with p20
    prices.pipeInput('k', 'p25', 25);
    // then: no correction is forwarded, and later lookups see p25 where it is valid
    orders.pipeInput('k', 'o27', 27);
    orders.pipeInput('k', 'o22', 22);
    orders.pipeInput('k', 'o31', 31);
    expect(drain(out)).toEqual([
      ['k', 'o30@p20', 30],
      ['k', 'o27@p25', 27],
      ['k', 'o22@p20', 22],
      ['k', 'o31@p25', 31],
    ]);
    // p25 became the latest version and was forwarded; p15, landing behind later versions, is not.
    prices.pipeInput('k', 'p15', 15);
    expect(drain(changes)).toEqual([['k', 'p25', 25]]);
  });

  it('treats a tombstone as the end of the key’s value from its time on (versioned), or deletes it (unversioned)', () => {
    const versioned = setUp({ left: true });
    versioned.prices.pipeInput('k', 'p10', 10);
    versioned.prices.pipeInput('k', null, 30);
    versioned.orders.pipeInput('k', 'o35', 35);
    versioned.orders.pipeInput('k', 'o28', 28);
    versioned.prices.pipeInput('k', 'p40', 40);
    versioned.orders.pipeInput('k', 'o41', 41);
    versioned.orders.pipeInput('k', 'o33', 33);
    expect(drain(versioned.out)).toEqual([
      ['k', 'o35@-', 35],
      ['k', 'o28@p10', 28],
      ['k', 'o41@p40', 41],
      ['k', 'o33@-', 33],
    ]);
    expect(drain(versioned.changes)).toEqual([
      ['k', 'p10', 10],
      ['k', '<null>', 30],
      ['k', 'p40', 40],
    ]);

    const latest = setUp({ historyRetentionMs: null });
    latest.prices.pipeInput('k', 'p10', 10);
    latest.orders.pipeInput('k', 'o5', 5); // unversioned: the latest value, whatever the time
    latest.prices.pipeInput('k', null, 20);
    latest.orders.pipeInput('k', 'o15', 15);
    expect(drain(latest.out)).toEqual([['k', 'o5@p10', 5]]);
    expect(latest.driver.getKeyValueStore('price-table').get('k')).toBeUndefined();
    expect(drain(latest.changes)).toEqual([
      ['k', 'p10', 10],
      ['k', '<null>', 20],
    ]);
  });

  it('prunes history beyond the retention but keeps the version valid at the boundary; older lookups are reported late', () => {
    // given: 10 ms of history
    const { driver, prices, orders, out } = setUp({ historyRetentionMs: 10, left: true });
    const store = driver.getKeyValueStore<string, VersionList<string>>('price-table');
    prices.pipeInput('k', 'p10', 10);
    prices.pipeInput('k', 'p20', 20);
    prices.pipeInput('gone', 'g15', 15);
    prices.pipeInput('gone', null, 18);
    prices.pipeInput('k', 'p30', 30);
    // stream time 30, boundary 20: p10 answers nothing at or after 20
    expect(store.get('k')).toEqual([{ validFrom: 20, value: 'p20' }, { validFrom: 30, value: 'p30' }]);
    // when: stream time moves to 45 (boundary 35) on another key
    orders.pipeInput('other', 'o45', 45);
    // then: the commit's sweep pruned k to the version valid at 35, and dropped `gone`, deleted before the boundary
    expect(store.get('k')).toEqual([{ validFrom: 30, value: 'p30' }]);
    expect(store.get('gone')).toBeUndefined();
    expect(driver.committedStoreEntries('price-table').map(([key]) => key.toString())).toEqual(['k']);
    orders.pipeInput('k', 'o35', 35); // at the boundary: joins the version valid then
    orders.pipeInput('k', 'o34', 34); // behind it: joined as missing, and reported
    prices.pipeInput('k', 'p33', 33); // a version behind it: refused, and reported
    expect(drain(out)).toEqual([
      ['other', 'o45@-', 45],
      ['k', 'o35@p30', 35],
      ['k', 'o34@-', 34],
    ]);
    expect(driver.lateRecords().map((d) => [d.source.topic, d.source.offset, d.reason, d.recordTimestamp, d.historyBoundaryMs, d.historyRetentionMs])).toEqual([
      ['orders', 2, 'behind-history-retention', 34, 35, 10],
      ['prices', 5, 'behind-history-retention', 33, 35, 10],
    ]);
    expect(store.get('k')).toEqual([{ validFrom: 30, value: 'p30' }]);
  });

  it('sends stream and table records without a key to the dead-letter topic', () => {
    const { driver, prices, orders, out } = setUp({ left: true });
    prices.pipeInput(null, 'p', 10);
    orders.pipeInput(null, 'o', 10);
    expect(driver.deadLetters('prices').map((d) => [d.code, d.reason, d.node])).toEqual([['MILLRACE_PROCESSING', 'null-key', 'price-table']]);
    expect(driver.deadLetters('orders').map((d) => [d.code, d.reason, d.node])).toEqual([['MILLRACE_PROCESSING', 'null-key', 'priced']]);
    expect(drain(out)).toEqual([]);
  });

  it('repartitions a stream whose key changed upstream, by the table’s key serde, and joins tables of aggregations', () => {
    const b = new StreamsBuilder('stj');
    const rates = table<string, number>(b, 'rates', { name: 'rate-table', valueSerde: Serdes.json<number>() });
    const payments = b.stream<string, { currency: string; amount: number }>('payments');
    streamTableJoin(payments.map('by-currency', (r) => ({ key: r.value.currency, value: r.value.amount })), rates, (amount, rate) => amount * rate, { name: 'converted' })
      .to('converted', { valueSerde: Serdes.json<number>() });
    const counts = payments.groupBy('by-currency-count', (r) => r.value.currency).count('payment-counts');
    streamTableJoin(b.stream<string, string>('queries'), counts, (q, n) => `${q}:${n ?? 0}`, { name: 'answers', left: true }).to('answers');
    const topology = b.build();
    expect(topology.internalTopics.has('stj-converted-repartition')).toBe(true);
    const driver = new TopologyTestDriver(topology);
    driver.createInputTopic<string, number>('rates').pipeInput('EUR', 2, 1);
    driver.createInputTopic<string, { currency: string; amount: number }>('payments').pipeInput('p1', { currency: 'EUR', amount: 21 }, 2);
    driver.createInputTopic<string, string>('queries').pipeInput('EUR', 'q', 3);
    expect(driver.createOutputTopic<string, number>('converted', { valueSerde: Serdes.json<number>() }).readKeyValuesToList()).toEqual([{ key: 'EUR', value: 42 }]);
    expect(drain(driver.createOutputTopic('answers'))).toEqual([['EUR', 'q:1', 3]]);
  });
});
