import { describe, expect, it } from 'vitest';
import { Serdes } from '../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import type { StreamRecord } from '../../engine/topology/record.js';

interface Order {
  readonly item: string;
  readonly qty: number;
}

function driverFor(build: (b: StreamsBuilder) => void): TopologyTestDriver {
  const b = new StreamsBuilder('shop');
  build(b);
  return new TopologyTestDriver(b.build());
}

describe('map', () => {
  it('gives each record a new key and value, keeping its timestamp and headers', () => {
    // given
    const driver = driverFor((b) =>
      b.stream<string, Order>('orders').map('by-item', (r) => ({ key: r.value.item, value: { customer: r.key, qty: r.value.qty } })).to('out'),
    );
    // when
    driver.createInputTopic<string, Order>('orders').pipeInput('alice', { item: 'tea', qty: 2 }, 17, { trace: Buffer.from('t-1') });
    // then
    expect(driver.createOutputTopic('out').readRecordsToList()).toEqual([
      { key: 'tea', value: { customer: 'alice', qty: 2 }, timestamp: 17, headers: { trace: Buffer.from('t-1') } },
    ]);
  });
});

describe('mapValues', () => {
  it('replaces the value and keeps the key; the function also sees the whole record', () => {
    const driver = driverFor((b) =>
      b.stream<string, Order>('orders').mapValues('total', (v, r) => `${r.key}:${v.item}x${v.qty}@${r.timestamp}`, { valueSerde: Serdes.string() }).to('out'),
    );
    const input = driver.createInputTopic<string, Order>('orders');
    input.pipeInput('alice', { item: 'tea', qty: 2 }, 5);
    input.pipeInput('bob', { item: 'jam', qty: 1 }, 6);
    expect(driver.createOutputTopic('out', { valueSerde: Serdes.string() }).readKeyValuesToList()).toEqual([
      { key: 'alice', value: 'alice:teax2@5' },
      { key: 'bob', value: 'bob:jamx1@6' },
    ]);
  });
});

describe('filter and filterNot', () => {
  it('split the records between them: filter keeps the matching ones, filterNot the others, each in input order', () => {
    // given
    const driver = driverFor((b) => {
      const orders = b.stream<string, Order>('orders');
      orders.filter('big', (r) => r.value.qty >= 10).to('big');
      orders.filterNot('small', (r) => r.value.qty >= 10).to('small');
    });
    // when
    const input = driver.createInputTopic<string, Order>('orders');
    for (const [key, qty] of [['a', 1], ['b', 10], ['c', 3], ['d', 12], ['e', 9]] as const) input.pipeInput(key, { item: 'x', qty });
    // then
    expect(driver.createOutputTopic('big').readKeyValuesToList().map((kv) => kv.key)).toEqual(['b', 'd']);
    expect(driver.createOutputTopic('small').readKeyValuesToList().map((kv) => kv.key)).toEqual(['a', 'c', 'e']);
  });
});

describe('flatMap', () => {
  it('emits zero or more records per input, in the order the function returns them', () => {
    const driver = driverFor((b) =>
      b
        .stream<string, string>('lines', { valueSerde: Serdes.string() })
        .flatMap('words', (r) => r.value.split(' ').filter((w) => w !== '').map((w, i) => ({ key: w, value: i })))
        .to('words'),
    );
    const input = driver.createInputTopic<string, string>('lines', { valueSerde: Serdes.string() });
    input.pipeInput('l1', 'the cat', 1);
    input.pipeInput('l2', '   ', 2);
    input.pipeInput('l3', 'a b a', 3);
    expect(driver.createOutputTopic<string, number>('words').readRecordsToList().map((r) => [r.key, r.value, r.timestamp])).toEqual([
      ['the', 0, 1],
      ['cat', 1, 1],
      ['a', 0, 3],
      ['b', 1, 3],
      ['a', 2, 3],
    ]);
  });

  it('accepts any iterable, e.g. a generator', () => {
    const driver = driverFor((b) =>
      b
        .stream<string, number>('n')
        .flatMap('count-down', function* (r) {
          for (let i = r.value; i > 0; i--) yield { key: `${r.key}${i}`, value: i };
        })
        .to('out'),
    );
    driver.createInputTopic<string, number>('n').pipeInput('k', 3);
    expect(driver.createOutputTopic('out').readKeyValuesToList()).toEqual([
      { key: 'k3', value: 3 },
      { key: 'k2', value: 2 },
      { key: 'k1', value: 1 },
    ]);
  });
});

describe('flatMapValues', () => {
  it('emits each value under the input key', () => {
    const driver = driverFor((b) => b.stream<string, number[]>('batches').flatMapValues('each', (v) => v.map((n) => n * 10)).to('out'));
    const input = driver.createInputTopic<string, number[]>('batches');
    input.pipeInput('a', [1, 2]);
    input.pipeInput('b', []);
    input.pipeInput('c', [3]);
    expect(driver.createOutputTopic('out').readKeyValuesToList()).toEqual([
      { key: 'a', value: 10 },
      { key: 'a', value: 20 },
      { key: 'c', value: 30 },
    ]);
  });
});

describe('peek and foreach', () => {
  it('peek sees every record and passes it on unchanged', () => {
    const seen: Array<StreamRecord<string, Order>> = [];
    const driver = driverFor((b) => b.stream<string, Order>('orders').peek('audit', (r) => seen.push(r)).to('out'));
    driver.createInputTopic<string, Order>('orders').pipeInput('alice', { item: 'tea', qty: 2 }, 9);
    expect(seen).toEqual([{ key: 'alice', value: { item: 'tea', qty: 2 }, timestamp: 9, headers: {} }]);
    expect(driver.createOutputTopic('out').readKeyValuesToList()).toEqual([{ key: 'alice', value: { item: 'tea', qty: 2 } }]);
  });

  it('foreach runs a side effect per record and writes nothing', () => {
    const seen: string[] = [];
    const driver = driverFor((b) => b.stream<string, Order>('orders').foreach('log', (r) => seen.push(`${r.key}/${r.value.item}`)));
    const input = driver.createInputTopic<string, Order>('orders');
    input.pipeInput('alice', { item: 'tea', qty: 2 });
    input.pipeInput('bob', { item: 'jam', qty: 1 });
    expect(seen).toEqual(['alice/tea', 'bob/jam']);
    expect(driver.deadLetters('orders')).toEqual([]);
  });
});

describe('branch', () => {
  function branched(defaultBranch?: string): TopologyTestDriver {
    return driverFor((b) => {
      const parts = b.stream<string, number>('nums').branch(
        'size',
        { huge: (r) => r.value >= 100, big: (r) => r.value >= 10, even: (r) => r.value % 2 === 0 },
        defaultBranch === undefined ? {} : { defaultBranch },
      );
      parts['huge']!.to('huge');
      parts['big']!.to('big');
      parts['even']!.to('even');
      if (defaultBranch !== undefined) parts[defaultBranch]!.to('rest');
    });
  }

  it('sends each record to the first branch whose predicate holds, in declaration order', () => {
    const driver = branched('other');
    const input = driver.createInputTopic<string, number>('nums');
    // 200 matches huge, big and even: only huge gets it; 12 matches big and even: only big.
    for (const n of [200, 12, 4, 7, 150, 11, 3]) input.pipeInput(String(n), n);
    expect(driver.createOutputTopic('huge').readValuesToList()).toEqual([200, 150]);
    expect(driver.createOutputTopic('big').readValuesToList()).toEqual([12, 11]);
    expect(driver.createOutputTopic('even').readValuesToList()).toEqual([4]);
    expect(driver.createOutputTopic('rest').readValuesToList()).toEqual([7, 3]);
  });

  it('drops records that match no branch when there is no default branch', () => {
    const driver = branched();
    const input = driver.createInputTopic<string, number>('nums');
    for (const n of [7, 12, 3]) input.pipeInput(String(n), n);
    expect(driver.createOutputTopic('big').readValuesToList()).toEqual([12]);
    expect(driver.createOutputTopic('even').readValuesToList()).toEqual([]);
    expect(driver.deadLetters('nums')).toEqual([]);
  });

  it('returns one stream per branch, named <name>-<branch>', () => {
    const b = new StreamsBuilder('shop');
    const parts = b.stream<string, number>('nums').branch('size', { big: (r) => r.value >= 10 }, { defaultBranch: 'small' });
    expect(Object.keys(parts).sort()).toEqual(['big', 'small']);
    expect(parts['big']!.nodeName).toBe('size-big');
    expect(parts['small']!.nodeName).toBe('size-small');
  });
});

describe('merge', () => {
  it('interleaves several streams as their records arrive, keeping each input in its own order', () => {
    // given
    const driver = driverFor((b) => {
      const web = b.stream<string, string>('web', { valueSerde: Serdes.string() });
      const app = b.stream<string, string>('app', { valueSerde: Serdes.string() });
      const pos = b.stream<string, string>('pos', { valueSerde: Serdes.string() });
      web.merge('all', app, pos).to('all', { valueSerde: Serdes.string() });
    });
    const web = driver.createInputTopic<string, string>('web', { valueSerde: Serdes.string() });
    const app = driver.createInputTopic<string, string>('app', { valueSerde: Serdes.string() });
    const pos = driver.createInputTopic<string, string>('pos', { valueSerde: Serdes.string() });
    // when
    web.pipeInput('k', 'w1');
    app.pipeInput('k', 'a1');
    web.pipeInput('k', 'w2');
    pos.pipeInput('k', 'p1');
    app.pipeInput('k', 'a2');
    web.pipeInput('k', 'w3');
    // then
    const merged = driver.createOutputTopic('all', { valueSerde: Serdes.string() }).readValuesToList();
    expect(merged).toEqual(['w1', 'a1', 'w2', 'p1', 'a2', 'w3']);
  });

  it('merges two branches of one stream back into one (a diamond), each record once per path', () => {
    const driver = driverFor((b) => {
      const nums = b.stream<string, number>('nums');
      const doubled = nums.mapValues('double', (v) => v * 2);
      const negated = nums.mapValues('negate', (v) => -v);
      doubled.merge('both', negated).to('out');
    });
    const input = driver.createInputTopic<string, number>('nums');
    input.pipeInput('a', 1);
    input.pipeInput('b', 5);
    expect(driver.createOutputTopic('out').readKeyValuesToList()).toEqual([
      { key: 'a', value: 2 },
      { key: 'a', value: -1 },
      { key: 'b', value: 10 },
      { key: 'b', value: -5 },
    ]);
  });
});

describe('tombstones (null values) through stateless steps', () => {
  it('pass through filter, filterNot, peek, branch and merge as nulls', () => {
    // given
    const peeked: unknown[] = [];
    const driver = driverFor((b) => {
      const parts = b
        .stream<string, Order | null>('orders')
        .filter('not-test', (r) => r.key !== 'test')
        .filterNot('not-internal', (r) => r.key === 'internal')
        .peek('see', (r) => peeked.push(r.value))
        .branch('route', { vip: (r) => r.key.startsWith('vip-') }, { defaultBranch: 'plain' });
      parts['vip']!.merge('joined', parts['plain']!).to('out');
    });
    const input = driver.createInputTopic<string, Order | null>('orders');
    // when
    input.pipeInput('vip-1', null, 1);
    input.pipeInput('test', null, 2);
    input.pipeInput('bob', { item: 'tea', qty: 1 }, 3);
    input.pipeInput('bob', null, 4);
    // then
    expect(peeked).toEqual([null, { item: 'tea', qty: 1 }, null]);
    expect(driver.createOutputTopic('out').readRecordsToList().map((r) => [r.key, r.value, r.timestamp])).toEqual([
      ['vip-1', null, 1],
      ['bob', { item: 'tea', qty: 1 }, 3],
      ['bob', null, 4],
    ]);
  });

  it('reach map, mapValues and flatMapValues as null, which may keep them null', () => {
    const driver = driverFor((b) =>
      b
        .stream<string, number | null>('nums')
        .mapValues('inc', (v) => (v === null ? null : v + 1))
        .map('tag', (r) => ({ key: `k-${r.key}`, value: r.value }))
        .flatMapValues('twice', (v) => [v, v])
        .to('out'),
    );
    driver.createInputTopic<string, number | null>('nums').pipeInput('a', null);
    expect(driver.createOutputTopic('out').readKeyValuesToList()).toEqual([
      { key: 'k-a', value: null },
      { key: 'k-a', value: null },
    ]);
  });

  it('keep a null key null on the way to the sink', () => {
    const driver = driverFor((b) => b.stream<string | null, number>('nums').mapValues('inc', (v) => v + 1).to('out'));
    driver.createInputTopic<string, number>('nums').pipeInput(null, 1);
    expect(driver.createOutputTopic('out').readKeyValuesToList()).toEqual([{ key: null, value: 2 }]);
  });
});
