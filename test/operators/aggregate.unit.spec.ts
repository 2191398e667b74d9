import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Serdes } from '../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';

interface Stats {
  readonly n: number;
  readonly sum: number;
  readonly lastAt: number;
}

const initialStats = (): Stats => ({ n: 0, sum: 0, lastAt: -1 });

/** One grouped stream of amounts feeding count, reduce (sum) and aggregate (stats), each to its own topic. */
function aggregations(): TopologyTestDriver {
  const b = new StreamsBuilder('agg');
  const grouped = b.stream<string, number>('amounts').groupByKey('by-account');
  grouped.count('count').toStream('count-changes').to('count');
  grouped.reduce('sum', (a, v) => a + v).toStream('sum-changes').to('sum');
  grouped
    .aggregate<Stats>('stats', initialStats, (agg, v, r) => ({ n: agg.n + 1, sum: agg.sum + v, lastAt: r.timestamp }))
    .toStream('stats-changes')
    .to('stats');
  return new TopologyTestDriver(b.build());
}

describe('count', () => {
  it('forwards every update with the count so far for that key', () => {
    const driver = aggregations();
    const input = driver.createInputTopic<string, number>('amounts');
    for (const key of ['a', 'b', 'a', 'a', 'c', 'b']) input.pipeInput(key, 1);
    expect(driver.createOutputTopic('count', { valueSerde: Serdes.int64() }).readKeyValuesToList()).toEqual([
      { key: 'a', value: 1 },
      { key: 'b', value: 1 },
      { key: 'a', value: 2 },
      { key: 'a', value: 3 },
      { key: 'c', value: 1 },
      { key: 'b', value: 2 },
    ]);
    const store = driver.getKeyValueStore<string, number>('count');
    expect([store.get('a'), store.get('b'), store.get('c'), store.get('d')]).toEqual([3, 2, 1, undefined]);
  });

  it('keeps the timestamp and headers of the record that caused each update', () => {
    const driver = aggregations();
    driver.createInputTopic<string, number>('amounts').pipeInput('a', 1, 77, { h: Buffer.from('x') });
    expect(driver.createOutputTopic('count', { valueSerde: Serdes.int64() }).readRecord()).toEqual({
      key: 'a',
      value: 1,
      timestamp: 77,
      headers: { h: Buffer.from('x') },
    });
  });
});

describe('reduce', () => {
  it('starts from the first value, without calling the reducer, then combines each value into the aggregate', () => {
    const calls: Array<[number, number]> = [];
    const b = new StreamsBuilder('agg');
    b.stream<string, number>('amounts')
      .groupByKey('g')
      .reduce('max', (a, v) => {
        calls.push([a, v]);
        return Math.max(a, v);
      })
      .toStream('changes')
      .to('max');
    const driver = new TopologyTestDriver(b.build());
    const input = driver.createInputTopic<string, number>('amounts');
    for (const [k, v] of [['a', 5], ['a', 3], ['b', -1], ['a', 9]] as const) input.pipeInput(k, v);
    expect(driver.createOutputTopic('max').readKeyValuesToList()).toEqual([
      { key: 'a', value: 5 },
      { key: 'a', value: 5 },
      { key: 'b', value: -1 },
      { key: 'a', value: 9 },
    ]);
    expect(calls).toEqual([[5, 3], [5, 9]]);
  });
});

describe('aggregate', () => {
  it('starts each key from the initializer and passes the aggregator the whole record', () => {
    const driver = aggregations();
    const input = driver.createInputTopic<string, number>('amounts');
    input.pipeInput('a', 10, 1);
    input.pipeInput('b', 7, 2);
    input.pipeInput('a', -4, 3);
    expect(driver.createOutputTopic('stats').readKeyValuesToList()).toEqual([
      { key: 'a', value: { n: 1, sum: 10, lastAt: 1 } },
      { key: 'b', value: { n: 1, sum: 7, lastAt: 2 } },
      { key: 'a', value: { n: 2, sum: 6, lastAt: 3 } },
    ]);
    expect(driver.getKeyValueStore<string, Stats>('stats').get('a')).toEqual({ n: 2, sum: 6, lastAt: 3 });
  });

  it('stores the aggregate with the value serde it is given', () => {
    const b = new StreamsBuilder('agg');
    const table = b
      .stream<string, number>('amounts')
      .groupByKey('g')
      .aggregate('total', () => 0, (a, v) => a + v, { valueSerde: Serdes.float64() });
    expect(table.storeName).toBe('total');
    table.toStream('changes').to('totals');
    const driver = new TopologyTestDriver(b.build());
    driver.createInputTopic<string, number>('amounts').pipeInput('a', 0.25);
    expect(driver.committedStoreEntries('total')).toEqual([[Buffer.from('a'), Buffer.from([0x3f, 0xd0, 0, 0, 0, 0, 0, 0])]]);
    expect(driver.createOutputTopic('totals', { valueSerde: Serdes.float64() }).readValuesToList()).toEqual([0.25]);
  });
});

/** What count, reduce (sum) and aggregate (stats) must produce, computed the slow and obvious way. */
function reference(records: ReadonlyArray<{ key: string | null; value: number | null }>) {
  const counts = new Map<string, number>();
  const sums = new Map<string, number>();
  const stats = new Map<string, Stats>();
  const out = { count: [] as unknown[], sum: [] as unknown[], stats: [] as unknown[], deadLetterOffsets: [] as number[] };
  records.forEach(({ key, value }, offset) => {
    if (key === null || value === null) {
      out.deadLetterOffsets.push(offset);
      return;
    }
    counts.set(key, (counts.get(key) ?? 0) + 1);
    sums.set(key, sums.has(key) ? sums.get(key)! + value : value);
    const previous = stats.get(key) ?? initialStats();
    stats.set(key, { n: previous.n + 1, sum: previous.sum + value, lastAt: offset });
    out.count.push({ key, value: counts.get(key) });
    out.sum.push({ key, value: sums.get(key) });
    out.stats.push({ key, value: stats.get(key) });
  });
  return { ...out, counts, sums };
}

const recordsArbitrary = fc.array(
  fc.record({
    key: fc.oneof({ weight: 9, arbitrary: fc.constantFrom('a', 'b', 'c', 'd', 'é') }, { weight: 1, arbitrary: fc.constant(null) }),
    value: fc.oneof({ weight: 9, arbitrary: fc.integer({ min: -1_000, max: 1_000 }) }, { weight: 1, arbitrary: fc.constant(null) }),
  }),
  { maxLength: 60 },
);

describe('aggregations against a brute-force reference', () => {
  it('count, reduce and aggregate forward every update and accumulate per key; bad records become dead letters', () => {
    fc.assert(
      fc.property(recordsArbitrary, (records) => {
        // given
        const driver = aggregations();
        const input = driver.createInputTopic<string, number | null>('amounts');
        // when: the offset doubles as the timestamp, so the reference knows it
        records.forEach(({ key, value }, offset) => input.pipeInput(key, value, offset));
        // then
        const expected = reference(records);
        expect(driver.createOutputTopic('count', { valueSerde: Serdes.int64() }).readKeyValuesToList()).toEqual(expected.count);
        expect(driver.createOutputTopic('sum').readKeyValuesToList()).toEqual(expected.sum);
        expect(driver.createOutputTopic('stats').readKeyValuesToList()).toEqual(expected.stats);
        expect(driver.deadLetters('amounts').map((d) => d.source.offset)).toEqual(expected.deadLetterOffsets);
        const countStore = driver.getKeyValueStore<string, number>('count');
        const sumStore = driver.getKeyValueStore<string, number>('sum');
        for (const key of ['a', 'b', 'c', 'd', 'é']) {
          expect(countStore.get(key)).toBe(expected.counts.get(key));
          expect(sumStore.get(key)).toBe(expected.sums.get(key));
        }
        const committedCounts = driver.committedStoreEntries('count').map(([k, v]) => [k.toString('utf8'), Number(v.readBigInt64BE(0))]);
        expect(new Map(committedCounts as Array<[string, number]>)).toEqual(expected.counts);
      }),
      { numRuns: 150 },
    );
  });

  it('counting after groupBy (through a repartition topic) matches counting the derived keys directly', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 60 }), (values) => {
        // given: counts per value modulo 4, keyed as a string
        const b = new StreamsBuilder('agg');
        b.stream<string, number>('values')
          .groupBy('by-bucket', (r) => `bucket-${r.value % 4}`)
          .count('per-bucket')
          .toStream('changes')
          .to('counts');
        const driver = new TopologyTestDriver(b.build());
        // when
        const input = driver.createInputTopic<string, number>('values');
        values.forEach((v, i) => input.pipeInput(`k${i}`, v));
        // then
        const counts = new Map<string, number>();
        const expected = values.map((v) => {
          const key = `bucket-${v % 4}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
          return { key, value: counts.get(key) };
        });
        expect(driver.createOutputTopic('counts', { valueSerde: Serdes.int64() }).readKeyValuesToList()).toEqual(expected);
      }),
      { numRuns: 100 },
    );
  });
});
