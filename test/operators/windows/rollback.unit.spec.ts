import { describe, expect, it } from 'vitest';
import { SessionWindows, TimeWindows, type WindowSpec } from '../../../engine/operators/windows.js';
import { Serdes } from '../../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../../engine/testing/index.js';
import { StreamsBuilder, windowedSerde } from '../../../engine/topology/builder.js';
import type { Windowed } from '../../../engine/topology/record.js';

/**
 * A final result whose forwarding fails is rolled back with the rest of its unit of work: the window is back in the
 * store, so the operator must close it again at the next chance, not forget it.
 */
function flakyDownstream(windows: WindowSpec, failures: { left: number }): TopologyTestDriver {
  const b = new StreamsBuilder('flaky');
  const grouped = b.stream<string, number>('events').groupByKey('by-key');
  grouped
    .windowedBy(windows)
    .count('counts', { emit: 'final' })
    .toStream('changes')
    .process<Windowed<string>, number>('sometimes-fails', () => ({
      process(record, ctx) {
        if (failures.left > 0) {
          failures.left--;
          throw new Error('downstream unavailable');
        }
        ctx.forward(record);
      },
    }), { keySerde: windowedSerde(Serdes.string()), valueSerde: Serdes.int64() })
    .to('counts');
  return new TopologyTestDriver(b.build());
}

describe('a final result that could not be forwarded', () => {
  it.each([
    ['tumbling', TimeWindows.tumbling(10), { key: 'a', window: { start: 0, end: 10 } }],
    ['session', SessionWindows.withGap(3), { key: 'a', window: { start: 1, end: 3 } }],
  ] as const)('is forwarded once, at the next close pass (%s)', (_kind, windows, expected) => {
    const failures = { left: 1 };
    const driver = flakyDownstream(windows, failures);
    const input = driver.createInputTopic<string, number>('events');
    const output = driver.createOutputTopic('counts', { keySerde: windowedSerde(Serdes.string()), valueSerde: Serdes.int64() });
    input.pipeInput('a', 1, 1);
    input.pipeInput('a', 1, 2);
    input.pipeInput('b', 1, 50); // closes a's window; forwarding it fails and is rolled back
    expect(failures.left).toBe(0);
    expect(output.readKeyValuesToList()).toEqual([]);
    expect(driver.committedStoreEntries('counts')).toHaveLength(2);
    input.pipeInput('b', 1, 51); // the next close pass
    expect(output.readKeyValuesToList()).toEqual([{ key: expected, value: 2 }]);
    input.pipeInput('b', 1, 100);
    expect(output.readKeyValuesToList().map((r) => r.key?.key)).toEqual(['b']);
  });
});
