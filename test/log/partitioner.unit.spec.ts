import fc from 'fast-check';
import kafkajs from 'kafkajs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { Partitioner, murmur2 } from '../../engine/log/partitioner.js';

// kafkajs's own murmur2 (64-bit long emulation), the reference the 32-bit one must equal.
const kafkajsMurmur2 = createRequire(import.meta.url)('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer) => number;

describe('the partitioner', () => {
  it("computes murmur2 as kafkajs (and Kafka's Java client) does, for any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const key = Buffer.from(bytes);
        expect(murmur2(key)).toBe(kafkajsMurmur2(key));
      }),
      { numRuns: 5_000 },
    );
  });

  it("matches Kafka's published values", () => {
    // From org.apache.kafka.common.utils.UtilsTest#testMurmur2.
    const cases: Array<[string, number]> = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ];
    for (const [key, hash] of cases) expect(murmur2(Buffer.from(key))).toBe(hash);
    expect(murmur2(Buffer.from([97, 98, 99]))).toBe(479470107);
  });

  it("chooses the partition kafkajs's default partitioner chooses for a keyed record", () => {
    const reference = kafkajs.Partitioners.DefaultPartitioner();
    const partitioner = new Partitioner();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 1, max: 64 }), (bytes, partitions) => {
        const key = Buffer.from(bytes);
        const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionErrorCode: 0, partitionId, leader: 0, replicas: [0], isr: [0], offlineReplicas: [] }));
        expect(partitioner.partition('t', partitions, key)).toBe(reference({ topic: 't', partitionMetadata, message: { key, value: null } }));
      }),
      { numRuns: 2_000 },
    );
  });

  it('spreads records without a key over every partition', () => {
    const partitioner = new Partitioner();
    const seen = new Set(Array.from({ length: 40 }, () => partitioner.partition('t', 4, null)));
    expect([...seen].sort()).toEqual([0, 1, 2, 3]);
  });
});
