import { describe, expect, it } from 'vitest';
import { Serdes } from '../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';

interface Click {
  readonly user: string;
  readonly page: string;
}

const clicks: ReadonlyArray<[session: string, click: Click]> = [
  ['s1', { user: 'ann', page: '/a' }],
  ['s2', { user: 'bob', page: '/a' }],
  ['s1', { user: 'ann', page: '/b' }],
  ['s3', { user: 'ann', page: '/a' }],
];

function pipeClicks(driver: TopologyTestDriver): void {
  const input = driver.createInputTopic<string, Click>('clicks');
  for (const [session, click] of clicks) input.pipeInput(session, click);
}

describe('keyBy', () => {
  it('re-keys through the <app>-<name>-repartition topic, visible in the driver', () => {
    // given
    const b = new StreamsBuilder('web');
    b.stream<string, Click>('clicks').keyBy('by-page', (r) => r.value.page).to('by-page');
    const topology = b.build();
    const driver = new TopologyTestDriver(topology);
    // when
    pipeClicks(driver);
    // then
    const expected = clicks.map(([, click]) => ({ key: click.page, value: click }));
    expect(driver.createOutputTopic('web-by-page-repartition').readKeyValuesToList()).toEqual(expected);
    expect(driver.createOutputTopic('by-page').readKeyValuesToList()).toEqual(expected);
    expect(topology.describe().internalTopics).toEqual([{ name: 'web-by-page-repartition', kind: 'repartition', partitions: null }]);
  });

  it('splits the topology into a sub-topology writing the repartition topic and one reading it', () => {
    const b = new StreamsBuilder('web');
    b.stream<string, Click>('clicks').keyBy('by-page', (r) => r.value.page, { partitions: 6 }).to('by-page');
    const description = b.build().describe();
    expect(description.subtopologies.map((s) => [s.sourceTopics, s.sinkTopics, s.nodes.map((n) => n.name)])).toEqual([
      [['clicks'], ['web-by-page-repartition'], ['source-clicks', 'by-page', 'by-page-repartition-sink']],
      [['web-by-page-repartition'], ['by-page'], ['by-page-repartition-source', 'to-by-page']],
    ]);
    expect(description.internalTopics).toEqual([{ name: 'web-by-page-repartition', kind: 'repartition', partitions: 6 }]);
  });

  it('uses the key serde it is given on the repartition topic and after it', () => {
    const b = new StreamsBuilder('web');
    b.stream<string, Click>('clicks').keyBy('by-length', (r) => r.value.page.length, { keySerde: Serdes.int64() }).to('by-length');
    const driver = new TopologyTestDriver(b.build());
    pipeClicks(driver);
    const int64Keys = { keySerde: Serdes.int64() };
    expect(driver.createOutputTopic('web-by-length-repartition', int64Keys).readKeyValuesToList().map((kv) => kv.key)).toEqual([2, 2, 2, 2]);
    expect(driver.createOutputTopic('by-length', int64Keys).readKeyValuesToList().map((kv) => kv.key)).toEqual([2, 2, 2, 2]);
  });
});

describe('groupByKey', () => {
  it('without an earlier key change counts in place, with no repartition topic', () => {
    // given
    const b = new StreamsBuilder('web');
    b.stream<string, Click>('clicks').groupByKey('by-session').count('per-session').toStream('changes').to('counts');
    const topology = b.build();
    const driver = new TopologyTestDriver(topology);
    // when
    pipeClicks(driver);
    // then
    expect(driver.createOutputTopic('counts', { valueSerde: Serdes.int64() }).readKeyValuesToList()).toEqual([
      { key: 's1', value: 1 },
      { key: 's2', value: 1 },
      { key: 's1', value: 2 },
      { key: 's3', value: 1 },
    ]);
    expect(driver.createOutputTopic('web-by-session-repartition').isEmpty()).toBe(true);
    expect(topology.subtopologies).toHaveLength(1);
    expect(topology.describe().internalTopics.filter((t) => t.kind === 'repartition')).toEqual([]);
  });

  it('after a key change repartitions through <app>-<name>-repartition first', () => {
    // given
    const b = new StreamsBuilder('web');
    b.stream<string, Click>('clicks')
      .map('user-key', (r) => ({ key: r.value.user, value: r.value.page }))
      .groupByKey('by-user')
      .count('per-user')
      .toStream('changes')
      .to('counts');
    const topology = b.build();
    const driver = new TopologyTestDriver(topology);
    // when
    pipeClicks(driver);
    // then
    expect(driver.createOutputTopic('web-by-user-repartition').readKeyValuesToList()).toEqual([
      { key: 'ann', value: '/a' },
      { key: 'bob', value: '/a' },
      { key: 'ann', value: '/b' },
      { key: 'ann', value: '/a' },
    ]);
    expect(driver.createOutputTopic('counts', { valueSerde: Serdes.int64() }).readKeyValuesToList()).toEqual([
      { key: 'ann', value: 1 },
      { key: 'bob', value: 1 },
      { key: 'ann', value: 2 },
      { key: 'ann', value: 3 },
    ]);
    expect(topology.subtopologies.map((s) => s.sourceTopics)).toEqual([['clicks'], ['web-by-user-repartition']]);
  });

  it('repartitions after flatMap and process too, but not after mapValues, filter or peek', () => {
    const b = new StreamsBuilder('web');
    const source = b.stream<string, Click>('clicks');
    source.mapValues('page', (v) => v.page).filter('some', () => true).peek('look', () => {}).groupByKey('kept').count('c1');
    source.flatMap('fm', (r) => [{ key: r.value.user, value: 1 }]).groupByKey('after-flat-map').count('c2');
    source.process('pr', () => ({ process(r, ctx) { ctx.forward(r); } })).groupByKey('after-process').count('c3');
    const repartitions = b.build().describe().internalTopics.filter((t) => t.kind === 'repartition').map((t) => t.name);
    expect(repartitions).toEqual(['web-after-flat-map-repartition', 'web-after-process-repartition']);
  });
});

describe('groupBy', () => {
  it('is keyBy then groupByKey: one repartition topic named after the step', () => {
    // given
    const b = new StreamsBuilder('web');
    b.stream<string, Click>('clicks')
      .groupBy('by-page', (r) => r.value.page)
      .count('per-page')
      .toStream('changes')
      .to('counts');
    const topology = b.build();
    const driver = new TopologyTestDriver(topology);
    // when
    pipeClicks(driver);
    // then
    expect(driver.createOutputTopic('web-by-page-repartition').readKeyValuesToList().map((kv) => kv.key)).toEqual(['/a', '/a', '/b', '/a']);
    expect(driver.createOutputTopic('counts', { valueSerde: Serdes.int64() }).readKeyValuesToList()).toEqual([
      { key: '/a', value: 1 },
      { key: '/a', value: 2 },
      { key: '/b', value: 1 },
      { key: '/a', value: 3 },
    ]);
    expect(topology.describe().internalTopics.map((t) => t.name)).toEqual(['web-by-page-repartition', 'web-per-page-changelog']);
  });
});
