import { describe, expect, it } from 'vitest';
import { Serdes } from '../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import type { ProcessorContext, PunctuationType } from '../../engine/topology/processor.js';
import { TopologyDraft } from '../../engine/topology/topology.js';

/** A processor that counts records into a store and, on each punctuation, forwards the count and resets it. */
function flushing(type: PunctuationType, intervalMs: number, options: { failAt?: number } = {}) {
  return new TopologyDraft('punct')
    .addStore({ name: 'pending', kind: 'key-value', keySerde: Serdes.string(), valueSerde: Serdes.int64(), changelog: false })
    .addSource('in', { topics: ['events'], keySerde: Serdes.string(), valueSerde: Serdes.json() })
    .addProcessor(
      'flush',
      () => ({
        init(ctx: ProcessorContext<string, number>) {
          ctx.schedule(intervalMs, type, (timestamp) => {
            const store = ctx.store<string, number>('pending');
            const n = store.get('n') ?? 0;
            store.put('n', 0);
            ctx.forward({ key: 'flush', value: n, timestamp, headers: {} });
            if (options.failAt === timestamp) throw new Error('punctuator broke');
          });
        },
        process(_record, ctx: ProcessorContext<string, number>) {
          const store = ctx.store<string, number>('pending');
          store.put('n', (store.get('n') ?? 0) + 1);
        },
      }),
      { parents: ['in'], stores: ['pending'] },
    )
    .addSink('out', 'flushes', { parents: ['flush'], keySerde: Serdes.string(), valueSerde: Serdes.int64() })
    .build();
}

describe('punctuation', () => {
  it('fires stream-time punctuators as stream time crosses each multiple of the interval, deterministically', () => {
    const driver = new TopologyTestDriver(flushing('stream-time', 100));
    const input = driver.createInputTopic('events');
    const output = driver.createOutputTopic('flushes', { valueSerde: Serdes.int64() });
    input.pipeInput('a', {}, 10); // first bucket 0: fires at once with the first record
    input.pipeInput('a', {}, 50);
    input.pipeInput('a', {}, 20); // out of order: stream time stays 50
    input.pipeInput('a', {}, 120); // crosses 100
    input.pipeInput('a', {}, 450); // crosses 200, 300, 400: fires once
    expect(output.readRecordsToList().map((r) => [r.timestamp, r.value])).toEqual([
      [10, 1],
      [120, 3],
      [450, 1],
    ]);
  });

  it('fires wall-clock punctuators as the wall clock advances, with no input at all', () => {
    const driver = new TopologyTestDriver(flushing('wall-clock', 1_000), { initialWallClockMs: 10_500 });
    const input = driver.createInputTopic('events');
    const output = driver.createOutputTopic('flushes', { valueSerde: Serdes.int64() });
    input.pipeInput('a', {}, 1);
    input.pipeInput('a', {}, 2);
    driver.advanceWallClockTime(400); // 10 900: not yet
    expect(output.isEmpty()).toBe(true);
    driver.advanceWallClockTime(100); // 11 000
    driver.advanceWallClockTime(1_000); // 12 000
    expect(output.readRecordsToList().map((r) => [r.timestamp, r.value])).toEqual([
      [11_000, 2],
      [12_000, 0],
    ]);
  });

  it('rolls back a punctuator that throws and goes on', () => {
    const driver = new TopologyTestDriver(flushing('wall-clock', 1_000, { failAt: 1_000 }), { initialWallClockMs: 0 });
    const input = driver.createInputTopic('events');
    const output = driver.createOutputTopic('flushes', { valueSerde: Serdes.int64() });
    input.pipeInput('a', {}, 1);
    driver.advanceWallClockTime(1_000); // throws after resetting the store and forwarding: both undone
    expect(output.isEmpty()).toBe(true);
    expect(driver.getKeyValueStore<string, number>('pending').get('n')).toBe(1);
    input.pipeInput('a', {}, 2);
    driver.advanceWallClockTime(1_000);
    expect(output.readValuesToList()).toEqual([2]);
  });

  it('fails the task instead under errorPolicy "fail"', () => {
    const driver = new TopologyTestDriver(flushing('wall-clock', 1_000, { failAt: 1_000 }), { initialWallClockMs: 0, errorPolicy: 'fail' });
    driver.createInputTopic('events').pipeInput('a', {}, 1);
    expect(() => driver.advanceWallClockTime(1_000)).toThrow(expect.objectContaining({ code: 'MILLRACE_TASK_FAILED' }));
  });
});
