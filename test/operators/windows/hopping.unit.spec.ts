import { describe, expect, it } from 'vitest';
import { HoppingWindows, TimeWindows } from '../../../engine/operators/windows.js';
import { Serdes } from '../../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../../engine/testing/index.js';
import { StreamsBuilder, windowedSerde } from '../../../engine/topology/builder.js';
import type { EmitMode } from '../../../engine/operators/windowed-aggregate.js';

const counts = { keySerde: windowedSerde(Serdes.string()), valueSerde: Serdes.int64() };

function hoppingCount(emit: EmitMode = 'update'): TopologyTestDriver {
  const b = new StreamsBuilder('hop');
  b.stream<string, number>('events')
    .groupByKey('by-key')
    .windowedBy(TimeWindows.hopping(10, 5))
    .count('per-window', { emit })
    .toStream('changes')
    .to('counts');
  return new TopologyTestDriver(b.build());
}

const w = (key: string, start: number, end: number) => ({ key, window: { start, end } });

describe('hopping windows', () => {
  it('put a record in every window [k·advance, k·advance + size) that holds its timestamp, none before the epoch', () => {
    const windows = HoppingWindows.of(10, 5);
    expect(windows.windowsFor(3)).toEqual([{ start: 0, end: 10 }]);
    expect(windows.windowsFor(5)).toEqual([{ start: 0, end: 10 }, { start: 5, end: 15 }]);
    expect(windows.windowsFor(12)).toEqual([{ start: 5, end: 15 }, { start: 10, end: 20 }]);
    expect(HoppingWindows.of(10, 3).windowsFor(10)).toEqual([{ start: 3, end: 13 }, { start: 6, end: 16 }, { start: 9, end: 19 }]);
    expect(HoppingWindows.of(10, 10).windowsFor(10)).toEqual([{ start: 10, end: 20 }]);
  });

  it('count into each window and forward every update in start order', () => {
    const driver = hoppingCount();
    const input = driver.createInputTopic<string, number>('events');
    input.pipeInput('a', 1, 3);
    input.pipeInput('a', 1, 7);
    expect(driver.createOutputTopic('counts', counts).readKeyValuesToList()).toEqual([
      { key: w('a', 0, 10), value: 1 },
      { key: w('a', 0, 10), value: 2 },
      { key: w('a', 5, 15), value: 1 },
    ]);
  });

  it('report a record late for some of its windows on the late-records topic, naming them, and count it in the others', () => {
    // given: stream time 12 closed [0, 10)
    const driver = hoppingCount();
    const input = driver.createInputTopic<string, number>('events');
    input.pipeInput('a', 1, 3);
    input.pipeInput('a', 1, 12);
    const output = driver.createOutputTopic('counts', counts);
    output.readRecordsToList();
    // when: 7 belongs to [0, 10) (closed) and [5, 15) (open)
    input.pipeInput('a', 1, 7);
    // then
    expect(output.readKeyValuesToList()).toEqual([{ key: w('a', 5, 15), value: 2 }]);
    expect(driver.lateRecords()).toEqual([
      expect.objectContaining({
        code: 'MILLRACE_LATE_RECORD',
        reason: 'late',
        node: 'per-window',
        recordTimestamp: 7,
        watermark: 12,
        streamTime: 12,
        graceMs: 0,
        windows: [{ start: 0, end: 10 }],
        countedIn: [{ start: 5, end: 15 }],
        source: expect.objectContaining({ topic: 'events', offset: 2 }),
      }),
    ]);
    expect(driver.deadLetters('events')).toEqual([]);
  });

  it('treat a record all of whose windows closed as late: it changes nothing', () => {
    const driver = hoppingCount();
    const input = driver.createInputTopic<string, number>('events');
    input.pipeInput('a', 1, 3);
    input.pipeInput('a', 1, 22); // closes [0, 10), [5, 15) and [10, 20)
    const output = driver.createOutputTopic('counts', counts);
    output.readRecordsToList();
    input.pipeInput('a', 1, 9);
    expect(output.readKeyValuesToList()).toEqual([]);
    expect(driver.lateRecords()).toEqual([
      expect.objectContaining({ reason: 'late', recordTimestamp: 9, watermark: 22, graceMs: 0, windows: [{ start: 0, end: 10 }, { start: 5, end: 15 }] }),
    ]);
    expect(driver.lateRecords()[0]).not.toHaveProperty('countedIn');
  });

  it('in final mode forward each window once, when the watermark passes end + grace', () => {
    const driver = hoppingCount('final');
    const input = driver.createInputTopic<string, number>('events');
    const output = driver.createOutputTopic('counts', counts);
    input.pipeInput('a', 1, 3);
    input.pipeInput('b', 1, 6);
    input.pipeInput('a', 1, 9);
    expect(output.readKeyValuesToList()).toEqual([]);
    input.pipeInput('a', 1, 10); // closes [0, 10)
    expect(output.readKeyValuesToList()).toEqual([
      { key: w('a', 0, 10), value: 2 },
      { key: w('b', 0, 10), value: 1 },
    ]);
    input.pipeInput('a', 1, 100); // closes [5, 15) and [10, 20)
    expect(output.readRecordsToList().map((r) => [r.key, r.value, r.timestamp])).toEqual([
      [w('a', 5, 15), 2, 14],
      [w('b', 5, 15), 1, 14],
      [w('a', 10, 20), 1, 19],
    ]);
  });

  it('reject an advance of zero or above the size as programmer errors', () => {
    expect(() => TimeWindows.hopping(10, 0)).toThrow(RangeError);
    expect(() => TimeWindows.hopping(10, 11)).toThrow(RangeError);
    expect(() => TimeWindows.hopping(10, 2.5)).toThrow(RangeError);
    expect(() => TimeWindows.hopping(10, 5, { graceMs: -1 })).toThrow(RangeError);
  });
});
