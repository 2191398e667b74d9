import { describe, expect, it } from 'vitest';
import { Serdes } from '../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';

function countWithTtl(ttlMs: number): TopologyTestDriver {
  const b = new StreamsBuilder('ttl');
  b.stream<string, unknown>('events').groupByKey('by-key').count('counts', { ttlMs }).toStream('changes').to('counts', { valueSerde: Serdes.int64() });
  return new TopologyTestDriver(b.build());
}

describe('state TTL in event time', () => {
  it('forgets a key not written for ttlMs of stream time, and only that key', () => {
    const driver = countWithTtl(1_000);
    const input = driver.createInputTopic('events');
    const output = driver.createOutputTopic('counts', { valueSerde: Serdes.int64() });
    input.pipeInput('a', {}, 0);
    input.pipeInput('a', {}, 500); // a written at stream time 500
    input.pipeInput('b', {}, 1_400); // b written at 1400
    input.pipeInput('a', {}, 1_499); // 500 + 1000 > 1499: still alive
    input.pipeInput('b', {}, 2_000);
    input.pipeInput('a', {}, 2_499); // a last written at 1499: 1499 + 1000 ≤ 2499, expired
    expect(output.readKeyValuesToList()).toEqual([
      { key: 'a', value: 1 },
      { key: 'a', value: 2 },
      { key: 'b', value: 1 },
      { key: 'a', value: 3 },
      { key: 'b', value: 2 },
      { key: 'a', value: 1 },
    ]);
  });

  it('sweeps expired entries out of the store before checkpoints', () => {
    const driver = countWithTtl(1_000);
    const input = driver.createInputTopic('events');
    for (let i = 0; i < 10; i++) input.pipeInput(`k${i}`, {}, i);
    expect(driver.committedStoreEntries('counts')).toHaveLength(10);
    input.pipeInput('late-comer', {}, 5_000);
    expect(driver.committedStoreEntries('counts').map(([key]) => key.toString())).toEqual(['late-comer']);
    expect(driver.getKeyValueStore<string, number>('counts').get('k1')).toBeUndefined();
  });

  it('refuses a TTL that is not a positive integer', () => {
    const b = new StreamsBuilder('ttl-bad');
    expect(() => b.stream('events').groupByKey('g').count('c', { ttlMs: 0 })).toThrow(expect.objectContaining({ code: 'MILLRACE_TOPOLOGY_INVALID' }));
  });
});
