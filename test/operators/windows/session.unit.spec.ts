import { describe, expect, it } from 'vitest';
import { SessionWindows } from '../../../engine/operators/windows.js';
import type { EmitMode } from '../../../engine/operators/windowed-aggregate.js';
import { Serdes } from '../../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../../engine/testing/index.js';
import { StreamsBuilder, windowedSerde } from '../../../engine/topology/builder.js';

const counts = { keySerde: windowedSerde(Serdes.string()), valueSerde: Serdes.int64() };
/** The session [first, last] as a window [first, last + 1). */
const session = (key: string, first: number, last: number) => ({ key, window: { start: first, end: last + 1 } });

function sessionCount(options: { gapMs: number; graceMs: number; emit?: EmitMode }): TopologyTestDriver {
  const b = new StreamsBuilder('sess');
  b.stream<string, number>('events')
    .groupByKey('by-key')
    .windowedBy(SessionWindows.withGap(options.gapMs, { graceMs: options.graceMs }))
    .count('sessions', { emit: options.emit ?? 'update' })
    .toStream('changes')
    .to('sessions');
  return new TopologyTestDriver(b.build());
}

describe('session windows', () => {
  it('replace a session a record extends or merges: a tombstone for each replaced session, then the new one', () => {
    // given: gap 5, grace 20 (nothing closes here)
    const driver = sessionCount({ gapMs: 5, graceMs: 20 });
    const input = driver.createInputTopic<string, number>('events');
    const output = driver.createOutputTopic('sessions', counts);
    // when / then
    input.pipeInput('a', 1, 0);
    expect(output.readKeyValuesToList()).toEqual([{ key: session('a', 0, 0), value: 1 }]);
    input.pipeInput('a', 1, 3); // extends [0, 0]
    expect(output.readKeyValuesToList()).toEqual([
      { key: session('a', 0, 0), value: null },
      { key: session('a', 0, 3), value: 2 },
    ]);
    input.pipeInput('a', 1, 12); // 9 away from 3: a session of its own
    input.pipeInput('b', 1, 10);
    expect(output.readKeyValuesToList()).toEqual([
      { key: session('a', 12, 12), value: 1 },
      { key: session('b', 10, 10), value: 1 },
    ]);
    input.pipeInput('a', 1, 8); // within 5 of 3 and of 12: merges both
    expect(output.readKeyValuesToList()).toEqual([
      { key: session('a', 0, 3), value: null },
      { key: session('a', 12, 12), value: null },
      { key: session('a', 0, 12), value: 4 },
    ]);
    input.pipeInput('a', 1, 5); // inside [0, 12]: the same session, no tombstone
    expect(output.readKeyValuesToList()).toEqual([{ key: session('a', 0, 12), value: 5 }]);
  });

  it('in final mode forward each session once, when watermark − grace > last + gap, and no tombstones', () => {
    const driver = sessionCount({ gapMs: 5, graceMs: 20, emit: 'final' });
    const input = driver.createInputTopic<string, number>('events');
    const output = driver.createOutputTopic('sessions', counts);
    for (const t of [0, 3, 12, 8, 5]) input.pipeInput('a', 1, t);
    input.pipeInput('b', 1, 10);
    input.pipeInput('c', 1, 35);
    expect(output.readKeyValuesToList()).toEqual([]);
    input.pipeInput('c', 1, 37); // [10, 10] closes at 10 + 1 + 5 + 20 = 36
    expect(output.readRecordsToList().map((r) => [r.key, r.value, r.timestamp])).toEqual([[session('b', 10, 10), 1, 10]]);
    input.pipeInput('c', 1, 38); // [0, 12] at 38
    expect(output.readRecordsToList().map((r) => [r.key, r.value, r.timestamp])).toEqual([[session('a', 0, 12), 5, 12]]);
  });

  it('take a record as late only if it can neither join nor form an open session', () => {
    // given: gap 5, no grace
    const driver = sessionCount({ gapMs: 5, graceMs: 0 });
    const input = driver.createInputTopic<string, number>('events');
    const output = driver.createOutputTopic('sessions', counts);
    input.pipeInput('a', 1, 0);
    input.pipeInput('a', 1, 20); // watermark 20 closes [0, 0] (0 + 1 + 5 ≤ 20)
    output.readRecordsToList();
    // when
    input.pipeInput('a', 1, 16); // alone it closes at 22 > 20: not late; joins [20, 20]
    input.pipeInput('a', 1, 14); // alone it would be closed (20 ≤ 20), but it joins the open [16, 20]
    input.pipeInput('a', 1, 3); // within 5 of the closed [0, 0] only: late
    // then
    expect(output.readKeyValuesToList()).toEqual([
      { key: session('a', 20, 20), value: null },
      { key: session('a', 16, 20), value: 2 },
      { key: session('a', 16, 20), value: null },
      { key: session('a', 14, 20), value: 3 },
    ]);
    expect(driver.lateRecords()).toEqual([
      expect.objectContaining({ reason: 'late', recordTimestamp: 3, watermark: 20, graceMs: 0, inactivityGapMs: 5, windows: [{ start: 3, end: 4 }] }),
    ]);
  });

  it('aggregate with the merger given, earlier session first, then the record', () => {
    const b = new StreamsBuilder('sess');
    b.stream<string, string>('events', { valueSerde: Serdes.string() })
      .groupByKey('by-key')
      .windowedBy(SessionWindows.withGap(5, { graceMs: 100 }))
      .aggregate('words', () => '', (a, v) => a + v, { merger: (left, right) => `${left}|${right}`, emit: 'final' })
      .toStream('changes')
      .to('words', { valueSerde: Serdes.string() });
    const driver = new TopologyTestDriver(b.build());
    const input = driver.createInputTopic<string, string>('events', { valueSerde: Serdes.string() });
    input.pipeInput('k', 'b', 10);
    input.pipeInput('k', 'a', 0);
    input.pipeInput('k', 'c', 5);
    input.pipeInput('z', '.', 1_000);
    expect(driver.createOutputTopic('words', { keySerde: windowedSerde(Serdes.string()), valueSerde: Serdes.string() }).readKeyValuesToList()).toEqual([
      { key: session('k', 0, 10), value: 'a|bc' },
    ]);
  });

  it('reduce merges sessions with the reducer itself', () => {
    const b = new StreamsBuilder('sess');
    b.stream<string, number>('events')
      .groupByKey('by-key')
      .windowedBy(SessionWindows.withGap(5, { graceMs: 10 }))
      .reduce('sum', (a, v) => a + v)
      .toStream('changes')
      .to('sums');
    const driver = new TopologyTestDriver(b.build());
    const input = driver.createInputTopic<string, number>('events');
    input.pipeInput('k', 1, 10);
    input.pipeInput('k', 10, 16);
    input.pipeInput('k', 100, 13); // 6 apart, 10 and 16 are two sessions; 13 bridges them
    const out = driver.createOutputTopic('sums', { keySerde: windowedSerde(Serdes.string()), valueSerde: Serdes.json<number | null>() }).readKeyValuesToList();
    expect(out.at(-1)).toEqual({ key: session('k', 10, 16), value: 111 });
  });

  it('need a merger to aggregate, and a positive gap', () => {
    const grouped = new StreamsBuilder('sess').stream<string, number>('events').groupByKey('g').windowedBy(SessionWindows.withGap(5));
    const noMerger = { emit: 'update' } as unknown as Parameters<typeof grouped.aggregate<number>>[3];
    expect(() => grouped.aggregate('x', () => 0, (a) => a, noMerger)).toThrow(TypeError);
    expect(() => SessionWindows.withGap(0)).toThrow(RangeError);
    expect(() => SessionWindows.withGap(5, { graceMs: -1 })).toThrow(RangeError);
  });
});
