import { describe, expect, it } from 'vitest';
import { SlidingWindows, TimeWindows } from '../../../engine/operators/windows.js';
import type { EmitMode } from '../../../engine/operators/windowed-aggregate.js';
import { Serdes } from '../../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../../engine/testing/index.js';
import { StreamsBuilder, windowedSerde } from '../../../engine/topology/builder.js';

/** The values seen in each sliding window of 10 ms (grace 5) into `seen`. */
function slidingSeen(emit: EmitMode = 'update'): TopologyTestDriver {
  const b = new StreamsBuilder('slide');
  b.stream<string, string>('events', { valueSerde: Serdes.string() })
    .groupByKey('by-key')
    .windowedBy(SlidingWindows.of(10, { graceMs: 5 }))
    .aggregate<string[]>('seen', () => [], (a, v) => [...a, v], { emit })
    .toStream('changes')
    .to('seen');
  return new TopologyTestDriver(b.build());
}

const seenTopic = { keySerde: windowedSerde(Serdes.string()), valueSerde: Serdes.json<string[]>() };
/** The sliding window anchored at t: [t − 10, t] both inclusive, i.e. [t − 10, t + 1). */
const at = (key: string, t: number) => ({ key, window: { start: Math.max(0, t - 10), end: t + 1 } });

describe('sliding windows', () => {
  it('give each record the window [t − size, t] over the records of its key, forwarded with end t + 1', () => {
    const driver = slidingSeen();
    const input = driver.createInputTopic<string, string>('events', { valueSerde: Serdes.string() });
    input.pipeInput('a', 'p', 4);
    input.pipeInput('a', 'q', 10);
    input.pipeInput('b', 'x', 12);
    input.pipeInput('a', 'r', 15); // [5, 15]: p at 4 is out
    expect(driver.createOutputTopic('seen', seenTopic).readKeyValuesToList()).toEqual([
      { key: at('a', 4), value: ['p'] },
      { key: at('a', 10), value: ['p', 'q'] },
      { key: at('b', 12), value: ['x'] },
      { key: at('a', 15), value: ['q', 'r'] },
    ]);
  });

  it('re-emit the later windows an out-of-order record also belongs to, and share one window per timestamp', () => {
    // given
    const driver = slidingSeen();
    const input = driver.createInputTopic<string, string>('events', { valueSerde: Serdes.string() });
    const output = driver.createOutputTopic('seen', seenTopic);
    input.pipeInput('a', 'p', 10);
    input.pipeInput('a', 'q', 20);
    input.pipeInput('a', 'z', 26);
    output.readRecordsToList();
    // when, at watermark 26: the window at 17 closed at 17 + 1 + 5 = 23, so that record is late; the one at 21 (closes
    // at 27) is not: it gets the window [11, 21] and joins those anchored in [21, 31], i.e. at 26 (not the one at 20)
    input.pipeInput('a', 'r', 17);
    input.pipeInput('a', 's', 21);
    input.pipeInput('a', 't', 21); // same timestamp: the same window
    // then
    expect(output.readKeyValuesToList()).toEqual([
      { key: at('a', 21), value: ['q', 's'] },
      { key: at('a', 26), value: ['q', 'z', 's'] },
      { key: at('a', 21), value: ['q', 's', 't'] },
      { key: at('a', 26), value: ['q', 'z', 's', 't'] },
    ]);
    expect(driver.lateRecords().map((d) => [d.source.offset, d['recordTimestamp'], d['windows']])).toEqual([[3, 17, [{ start: 7, end: 18 }]]]);
  });

  it('in final mode forward each window once, when t + 1 + grace ≤ watermark, by close time then key', () => {
    const driver = slidingSeen('final');
    const input = driver.createInputTopic<string, string>('events', { valueSerde: Serdes.string() });
    const output = driver.createOutputTopic('seen', seenTopic);
    input.pipeInput('a', 'p', 10);
    input.pipeInput('b', 'x', 12);
    input.pipeInput('a', 'q', 14);
    input.pipeInput('a', 'r', 11); // out of order: a window of its own at 11, and joins the one at 14
    expect(output.readKeyValuesToList()).toEqual([]);
    input.pipeInput('c', 'y', 19); // closes windows with t + 6 ≤ 19: a@10 (16), a@11 (17), b@12 (18)
    expect(output.readRecordsToList().map((r) => [r.key, r.value, r.timestamp])).toEqual([
      [at('a', 10), ['p'], 10],
      [at('a', 11), ['p', 'r'], 11],
      [at('b', 12), ['x'], 12],
    ]);
    input.pipeInput('c', 'y', 100);
    expect(output.readKeyValuesToList()).toEqual([
      { key: at('a', 14), value: ['p', 'q', 'r'] },
      { key: at('c', 19), value: ['y'] },
    ]);
  });

  it('keep only the records a window may still need, and only open windows, in one store entry per key', () => {
    const driver = slidingSeen();
    const input = driver.createInputTopic<string, string>('events', { valueSerde: Serdes.string() });
    for (const [v, t] of [['p', 1], ['q', 5], ['r', 20], ['s', 30]] as const) input.pipeInput('a', v, t);
    // watermark 30: windows close at t + 6 ≤ 30 (1, 5, 20); records go at t + 10 + 5 + 1 ≤ 30 (1, 5)
    const entries = [...driver.getKeyValueStore<string, unknown>('seen').rangeSync()];
    expect(entries).toEqual([
      {
        key: 'a',
        value: {
          records: [{ timestampMs: 20, value: 'r' }, { timestampMs: 30, value: 's' }],
          windows: [{ atMs: 30, aggregate: ['r', 's'] }],
        },
      },
    ]);
    expect(driver.createOutputTopic('seen', seenTopic).readKeyValuesToList().at(-1)).toEqual({ key: at('a', 30), value: ['r', 's'] });
  });

  it('are also TimeWindows.sliding, and reject a zero size', () => {
    expect(TimeWindows.sliding(10, { graceMs: 2 }).describe()).toEqual({ kind: 'sliding', sizeMs: 10, graceMs: 2 });
    expect(() => SlidingWindows.of(0)).toThrow(RangeError);
    expect(() => SlidingWindows.of(10, { graceMs: -5 })).toThrow(RangeError);
  });
});
