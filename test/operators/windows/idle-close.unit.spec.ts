import { describe, expect, it } from 'vitest';
import { SessionWindows, SlidingWindows, TimeWindows, type WindowSpec } from '../../../engine/operators/windows.js';
import type { EmitMode } from '../../../engine/operators/windowed-aggregate.js';
import { Serdes } from '../../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../../engine/testing/index.js';
import { StreamsBuilder, windowedSerde } from '../../../engine/topology/builder.js';

const seenTopic = { keySerde: windowedSerde(Serdes.string()), valueSerde: Serdes.json<string[] | null>() };

/** The values of each window into `seen`, closing windows after `idleCloseMs` without input. */
function idleDriver(windows: WindowSpec, idleCloseMs: number, emit: EmitMode = 'final'): TopologyTestDriver {
  const b = new StreamsBuilder('idle');
  const grouped = b.stream<string, string>('events', { valueSerde: Serdes.string() }).groupByKey('by-key');
  const options = { emit, idleCloseMs };
  const table =
    windows.kind === 'session'
      ? grouped.windowedBy(windows).aggregate<string[]>('seen', () => [], (a, v) => [...a, v], { ...options, merger: (l, r) => [...l, ...r] })
      : grouped.windowedBy(windows).aggregate<string[]>('seen', () => [], (a, v) => [...a, v], options);
  table.toStream('changes').to('seen');
  return new TopologyTestDriver(b.build());
}

const w = (key: string, start: number, end: number) => ({ key, window: { start, end } });

describe('idle close', () => {
  it.each([5_000, 300])('gives an idle key its final result idleCloseMs (%i) after the last input, and makes later records for it late', (idleCloseMs) => {
    // given
    const driver = idleDriver(TimeWindows.tumbling(10, { graceMs: 5 }), idleCloseMs);
    const input = driver.createInputTopic<string, string>('events', { valueSerde: Serdes.string() });
    const output = driver.createOutputTopic('seen', seenTopic);
    input.pipeInput('a', 'x', 3);
    input.pipeInput('b', 'y', 12);
    input.pipeInput('a', 'z', 4);
    // when: one ms short of idle
    driver.advanceWallClockTime(idleCloseMs - 1);
    // then
    expect(output.readKeyValuesToList()).toEqual([]);
    // when: idle
    driver.advanceWallClockTime(1);
    // then: every open window, by close time then key; the watermark passed them
    expect(output.readRecordsToList().map((r) => [r.key, r.value, r.timestamp])).toEqual([
      [w('a', 0, 10), ['x', 'z'], 9],
      [w('b', 10, 20), ['y'], 19],
    ]);
    expect(driver.clockOf('events').watermarkMs).toBe(25);
    expect(driver.committedStoreEntries('seen')).toEqual([]);
    // when: a record for a closed window, then one for a new window
    input.pipeInput('b', 'late', 19);
    input.pipeInput('b', 'new', 27);
    // then
    expect(driver.lateRecords().map((d) => [d.source.offset, d['recordTimestamp'], d['watermark'], d['windows']])).toEqual([[3, 19, 25, [{ start: 10, end: 20 }]]]);
    expect(output.readKeyValuesToList()).toEqual([]);
    driver.advanceWallClockTime(idleCloseMs);
    expect(output.readKeyValuesToList()).toEqual([{ key: w('b', 20, 30), value: ['new'] }]);
  });

  it('waits while input keeps coming, however long the wall clock runs', () => {
    const driver = idleDriver(TimeWindows.tumbling(10), 5_000);
    const input = driver.createInputTopic<string, string>('events', { valueSerde: Serdes.string() });
    const output = driver.createOutputTopic('seen', seenTopic);
    input.pipeInput('a', 'x', 1);
    for (let i = 0; i < 5; i++) {
      driver.advanceWallClockTime(4_000);
      input.pipeInput('b', `${i}`, 2);
    }
    expect(output.readKeyValuesToList()).toEqual([]);
    driver.advanceWallClockTime(5_000);
    expect(output.readKeyValuesToList()).toEqual([
      { key: w('a', 0, 10), value: ['x'] },
      { key: w('b', 0, 10), value: ['0', '1', '2', '3', '4'] },
    ]);
  });

  it('closes sessions, which then cannot grow', () => {
    const driver = idleDriver(SessionWindows.withGap(10, { graceMs: 100 }), 1_000);
    const input = driver.createInputTopic<string, string>('events', { valueSerde: Serdes.string() });
    const output = driver.createOutputTopic('seen', seenTopic);
    input.pipeInput('a', 'x', 50);
    input.pipeInput('a', 'y', 55);
    driver.advanceWallClockTime(1_000);
    expect(output.readKeyValuesToList()).toEqual([{ key: w('a', 50, 56), value: ['x', 'y'] }]);
    expect(driver.clockOf('events').watermarkMs).toBe(55 + 1 + 10 + 100);
    // watermark 166: a session [t, t] closes at t + 111, so one at 60 is open (171), though within the gap of the
    // closed [50, 55]: it starts a new session. One at 45 is closed (156) and cannot join [60, 60]: late.
    input.pipeInput('a', 'after', 60);
    input.pipeInput('a', 'too-late', 45);
    driver.advanceWallClockTime(1_000);
    expect(output.readKeyValuesToList()).toEqual([{ key: w('a', 60, 61), value: ['after'] }]);
    expect(driver.lateRecords().map((d) => d['recordTimestamp'])).toEqual([45]);
  });

  it('keeps the records a sliding window yet to come needs', () => {
    const driver = idleDriver(SlidingWindows.of(10), 1_000);
    const input = driver.createInputTopic<string, string>('events', { valueSerde: Serdes.string() });
    const output = driver.createOutputTopic('seen', seenTopic);
    input.pipeInput('a', 'p', 5);
    driver.advanceWallClockTime(1_000);
    expect(output.readKeyValuesToList()).toEqual([{ key: w('a', 0, 6), value: ['p'] }]);
    // watermark 6: a record at 8 is not late, and its window [0, 8] still holds p
    input.pipeInput('a', 'q', 8);
    input.pipeInput('a', 'r', 5);
    input.pipeInput('b', 's', 30);
    expect(output.readKeyValuesToList()).toEqual([{ key: w('a', 0, 9), value: ['p', 'q'] }]);
    expect(driver.lateRecords().map((d) => d['recordTimestamp'])).toEqual([5]);
  });

  it('in update mode forwards nothing more, but still closes the windows and raises the watermark', () => {
    const driver = idleDriver(TimeWindows.tumbling(10), 1_000, 'update');
    const input = driver.createInputTopic<string, string>('events', { valueSerde: Serdes.string() });
    const output = driver.createOutputTopic('seen', seenTopic);
    input.pipeInput('a', 'x', 3);
    expect(output.readKeyValuesToList()).toEqual([{ key: w('a', 0, 10), value: ['x'] }]);
    driver.advanceWallClockTime(1_000);
    expect(output.readKeyValuesToList()).toEqual([]);
    expect(driver.committedStoreEntries('seen')).toEqual([]);
    input.pipeInput('a', 'y', 4);
    expect(driver.lateRecords().map((d) => d.source.offset)).toEqual([1]);
  });

  it('rejects an idleCloseMs that is not a positive integer, and an unknown emit mode', () => {
    const windowed = new StreamsBuilder('idle').stream<string, string>('events').groupByKey('g').windowedBy(TimeWindows.tumbling(10));
    expect(() => windowed.count('a', { idleCloseMs: 0 })).toThrow(RangeError);
    expect(() => windowed.count('b', { idleCloseMs: 1.5 })).toThrow(RangeError);
    expect(() => windowed.count('c', { emit: 'eventually' as EmitMode })).toThrow(RangeError);
  });
});
