import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TimeWindows } from '../../engine/operators/windows.js';
import { Serdes } from '../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import { StreamsBuilder, windowedSerde } from '../../engine/topology/builder.js';
import type { Windowed } from '../../engine/topology/record.js';

const windowedKeys = { keySerde: windowedSerde(Serdes.string()), valueSerde: Serdes.int64() };

/** Counts per key in tumbling windows of `sizeMs` into `counts`. */
function windowedCount(sizeMs: number, graceMs?: number): TopologyTestDriver {
  const b = new StreamsBuilder('win');
  b.stream<string, number>('events')
    .groupByKey('by-key')
    .windowedBy(TimeWindows.tumbling(sizeMs, graceMs === undefined ? {} : { graceMs }))
    .count('per-window')
    .toStream('changes')
    .to('counts');
  return new TopologyTestDriver(b.build());
}

function windowed(key: string, start: number, end: number): Windowed<string> {
  return { key, window: { start, end } };
}

/** The window store's committed entries as [start, key, count] (store keys are start, then the key bytes). */
function committedWindows(driver: TopologyTestDriver, store = 'per-window'): Array<[number, string, number]> {
  return driver
    .committedStoreEntries(store)
    .map(([k, v]) => [Number(k.readBigUInt64BE(0)), k.subarray(8).toString('utf8'), Number(v.readBigInt64BE(0))]);
}

describe('tumbling windows', () => {
  it('assign a record at time t to [k·size, (k+1)·size) with k = floor(t / size)', () => {
    // given
    const driver = windowedCount(10, 1_000);
    const input = driver.createInputTopic<string, number>('events');
    // when
    for (const t of [0, 9, 10, 19, 20, 35]) input.pipeInput('a', 1, t);
    // then
    expect(driver.createOutputTopic('counts', windowedKeys).readKeyValuesToList()).toEqual([
      { key: windowed('a', 0, 10), value: 1 },
      { key: windowed('a', 0, 10), value: 2 },
      { key: windowed('a', 10, 20), value: 1 },
      { key: windowed('a', 10, 20), value: 2 },
      { key: windowed('a', 20, 30), value: 1 },
      { key: windowed('a', 30, 40), value: 1 },
    ]);
  });

  it('keep keys apart within one window', () => {
    const driver = windowedCount(100);
    const input = driver.createInputTopic<string, number>('events');
    input.pipeInput('a', 1, 5);
    input.pipeInput('b', 1, 6);
    input.pipeInput('a', 1, 7);
    expect(driver.createOutputTopic('counts', windowedKeys).readKeyValuesToList()).toEqual([
      { key: windowed('a', 0, 100), value: 1 },
      { key: windowed('b', 0, 100), value: 1 },
      { key: windowed('a', 0, 100), value: 2 },
    ]);
  });

  it('accept an out-of-order record within grace into the window it belongs to', () => {
    // given: size 10, grace 5
    const driver = windowedCount(10, 5);
    const input = driver.createInputTopic<string, number>('events');
    // when: stream time reaches 14, then records for [0, 10) arrive (it closes at stream time 15)
    input.pipeInput('a', 1, 12);
    input.pipeInput('a', 1, 3);
    input.pipeInput('a', 1, 14);
    input.pipeInput('a', 1, 9);
    // then
    expect(driver.createOutputTopic('counts', windowedKeys).readKeyValuesToList()).toEqual([
      { key: windowed('a', 10, 20), value: 1 },
      { key: windowed('a', 0, 10), value: 1 },
      { key: windowed('a', 10, 20), value: 2 },
      { key: windowed('a', 0, 10), value: 2 },
    ]);
    expect(driver.deadLetters('events')).toEqual([]);
  });

  it('turn a record whose window has closed (end ≤ stream time − grace) into a MILLRACE_LATE_RECORD dead letter', () => {
    // given
    const driver = windowedCount(10, 5);
    const input = driver.createInputTopic<string, number>('events');
    input.pipeInput('a', 1, 3);
    input.pipeInput('a', 1, 15); // stream time 15: [0, 10) closes, since 10 ≤ 15 − 5
    const output = driver.createOutputTopic('counts', windowedKeys);
    output.readRecordsToList();
    // when
    input.pipeInput('a', 1, 9, { id: Buffer.from('late-one') });
    input.pipeInput('a', 1, 16);
    // then: the late record changed nothing, and the next record was processed
    expect(output.readKeyValuesToList()).toEqual([{ key: windowed('a', 10, 20), value: 2 }]);
    expect(driver.lateRecords()).toEqual([
      expect.objectContaining({
        type: 'https://millrace.dev/problems/late-record',
        status: 422,
        code: 'MILLRACE_LATE_RECORD',
        reason: 'late',
        recordTimestamp: 9,
        watermark: 15,
        streamTime: 15,
        graceMs: 5,
        windows: [{ start: 0, end: 10 }],
        node: 'per-window',
        source: { topic: 'events', partition: 0, offset: 2, timestamp: '1970-01-01T00:00:00.009Z' },
        original: { key: Buffer.from('a').toString('base64'), value: Buffer.from('1').toString('base64'), encoding: 'base64', headers: { id: Buffer.from('late-one').toString('base64') } },
      }),
    ]);
  });

  it('close a window with no grace as soon as stream time reaches its end', () => {
    const driver = windowedCount(10);
    const input = driver.createInputTopic<string, number>('events');
    input.pipeInput('a', 1, 9);
    input.pipeInput('a', 1, 10);
    input.pipeInput('a', 1, 9);
    expect(driver.lateRecords().map((d) => [d.code, d.source.offset])).toEqual([['MILLRACE_LATE_RECORD', 2]]);
  });

  it('are not closed by a record that could not even be deserialised (it never reached the topology)', () => {
    // given
    const driver = windowedCount(10);
    const input = driver.createInputTopic<string, number>('events');
    input.pipeInput('a', 1, 5);
    // when: a corrupt record with a far-future timestamp, then a record for the open window
    input.pipeRawInput(Buffer.from('a'), Buffer.from('{corrupt'), 1_000_000);
    input.pipeInput('a', 1, 6);
    // then
    expect(driver.deadLetters('events').map((d) => d.code)).toEqual(['MILLRACE_DESERIALIZATION']);
    expect(driver.createOutputTopic('counts', windowedKeys).readKeyValuesToList()).toEqual([
      { key: windowed('a', 0, 10), value: 1 },
      { key: windowed('a', 0, 10), value: 2 },
    ]);
  });

  it('purge closed windows from the store at the checkpoint, and log their removal on the changelog', () => {
    // given
    const driver = windowedCount(10, 5);
    const input = driver.createInputTopic<string, number>('events');
    input.pipeInput('a', 1, 1);
    input.pipeInput('b', 1, 2);
    input.pipeInput('a', 1, 11);
    expect(committedWindows(driver)).toEqual([
      [0, 'a', 1],
      [0, 'b', 1],
      [10, 'a', 1],
    ]);
    const changelog = driver.createOutputTopic('win-per-window-changelog', { keySerde: Serdes.bytes(), valueSerde: Serdes.bytes() });
    changelog.readRecordsToList();
    // when: stream time 15 closes [0, 10)
    input.pipeInput('c', 1, 15);
    // then
    expect(committedWindows(driver)).toEqual([
      [10, 'a', 1],
      [10, 'c', 1],
    ]);
    const removed = changelog
      .readRecordsToList()
      .filter((r) => r.value === null)
      .map((r) => `${r.key!.readBigUInt64BE(0)}/${r.key!.subarray(8).toString()}`);
    expect(removed.sort()).toEqual(['0/a', '0/b']);
    // when: stream time 25 closes [10, 20) too
    input.pipeInput('c', 1, 25);
    expect(committedWindows(driver)).toEqual([[20, 'c', 1]]);
  });

  it('close when the watermark (stream time − allowedLatenessMs) reaches end + grace', () => {
    // given: allowed lateness 3 and grace 5 together hold [0, 10) open until stream time 18
    const b = new StreamsBuilder('win', { allowedLatenessMs: 3 });
    b.stream<string, number>('events').groupByKey('by-key').windowedBy(TimeWindows.tumbling(10, { graceMs: 5 })).count('per-window').toStream('changes').to('counts');
    const driver = new TopologyTestDriver(b.build());
    const input = driver.createInputTopic<string, number>('events');
    // when
    input.pipeInput('a', 1, 17);
    input.pipeInput('a', 1, 9);
    input.pipeInput('a', 1, 18);
    input.pipeInput('a', 1, 9);
    // then
    expect(driver.clockOf('events')).toEqual({ streamTimeMs: 18, watermarkMs: 15 });
    expect(driver.lateRecords().map((d) => [d.source.offset, d['watermark']])).toEqual([[3, 15]]);
  });

  it('with emit final forward each window once, when it closes, with its final count and its last instant as timestamp', () => {
    // given
    const b = new StreamsBuilder('win');
    b.stream<string, number>('events').groupByKey('by-key').windowedBy(TimeWindows.tumbling(10, { graceMs: 5 })).count('per-window', { emit: 'final' }).toStream('changes').to('counts');
    const driver = new TopologyTestDriver(b.build());
    const input = driver.createInputTopic<string, number>('events');
    const output = driver.createOutputTopic('counts', windowedKeys);
    // when
    for (const [k, t] of [['b', 1], ['a', 2], ['a', 12], ['a', 8], ['b', 14]] as const) input.pipeInput(k, 1, t);
    // then
    expect(output.readRecordsToList()).toEqual([]);
    input.pipeInput('c', 1, 15); // closes [0, 10)
    expect(output.readRecordsToList().map((r) => [r.key, r.value, r.timestamp])).toEqual([
      [windowed('a', 0, 10), 2, 9],
      [windowed('b', 0, 10), 1, 9],
    ]);
    expect(committedWindows(driver)).toEqual([
      [10, 'a', 1],
      [10, 'b', 1],
      [10, 'c', 1],
    ]);
    input.pipeInput('a', 1, 3);
    expect(driver.lateRecords().map((d) => d.source.offset)).toEqual([6]);
    expect(output.readRecordsToList()).toEqual([]);
  });

  it('reject a zero size or a negative grace as programmer errors', () => {
    expect(() => TimeWindows.tumbling(0)).toThrow(RangeError);
    expect(() => TimeWindows.tumbling(10, { graceMs: -1 })).toThrow(RangeError);
    expect(() => TimeWindows.tumbling(1.5)).toThrow(RangeError);
  });
});

describe('windowed reduce and aggregate', () => {
  it('reduce combines the values of each key and window', () => {
    const b = new StreamsBuilder('win');
    b.stream<string, number>('events', { valueSerde: Serdes.int64() })
      .groupByKey('g')
      .windowedBy(TimeWindows.tumbling(60, { graceMs: 60 }))
      .reduce('max', (a, v) => Math.max(a, v))
      .toStream('changes')
      .to('max');
    const driver = new TopologyTestDriver(b.build());
    const input = driver.createInputTopic<string, number>('events', { valueSerde: Serdes.int64() });
    for (const [k, v, t] of [['a', 3, 0], ['a', 7, 30], ['a', 1, 61], ['b', 2, 59], ['a', 5, 10]] as const) input.pipeInput(k, v, t);
    expect(driver.createOutputTopic('max', windowedKeys).readKeyValuesToList()).toEqual([
      { key: windowed('a', 0, 60), value: 3 },
      { key: windowed('a', 0, 60), value: 7 },
      { key: windowed('a', 60, 120), value: 1 },
      { key: windowed('b', 0, 60), value: 2 },
      { key: windowed('a', 0, 60), value: 7 },
    ]);
  });

  it('aggregate starts each window from the initializer', () => {
    const b = new StreamsBuilder('win');
    b.stream<string, string>('events', { valueSerde: Serdes.string() })
      .groupByKey('g')
      .windowedBy(TimeWindows.tumbling(10, { graceMs: 100 }))
      .aggregate<string[]>('seen', () => [], (a, v) => [...a, v])
      .toStream('changes')
      .to('seen');
    const driver = new TopologyTestDriver(b.build());
    const input = driver.createInputTopic<string, string>('events', { valueSerde: Serdes.string() });
    input.pipeInput('k', 'x', 1);
    input.pipeInput('k', 'y', 11);
    input.pipeInput('k', 'z', 2);
    expect(driver.createOutputTopic('seen', { keySerde: windowedSerde(Serdes.string()) }).readKeyValuesToList()).toEqual([
      { key: windowed('k', 0, 10), value: ['x'] },
      { key: windowed('k', 10, 20), value: ['y'] },
      { key: windowed('k', 0, 10), value: ['x', 'z'] },
    ]);
  });

  it('after groupBy counts per derived key through the repartition topic', () => {
    const b = new StreamsBuilder('win');
    b.stream<string, { user: string }>('events')
      .groupBy('by-user', (r) => r.value.user)
      .windowedBy(TimeWindows.tumbling(10))
      .count('per-user')
      .toStream('changes')
      .to('counts');
    const driver = new TopologyTestDriver(b.build());
    const input = driver.createInputTopic<string, { user: string }>('events');
    input.pipeInput('s1', { user: 'ann' }, 1);
    input.pipeInput('s2', { user: 'ann' }, 2);
    input.pipeInput('s3', { user: 'bob' }, 12);
    input.pipeInput('s4', { user: 'ann' }, 3);
    expect(driver.createOutputTopic('counts', windowedKeys).readKeyValuesToList()).toEqual([
      { key: windowed('ann', 0, 10), value: 1 },
      { key: windowed('ann', 0, 10), value: 2 },
      { key: windowed('bob', 10, 20), value: 1 },
    ]);
    // The late record is dead-lettered against the topic the windowed step reads: the repartition topic.
    expect(driver.lateRecords().map((d) => [d.code, d.source.offset])).toEqual([['MILLRACE_LATE_RECORD', 3]]);
  });
});

describe('readKeyValuesToMap on windowed keys', () => {
  it('keeps the latest value per key and window (keys compare as their serialised bytes)', () => {
    const driver = windowedCount(10, 100);
    const input = driver.createInputTopic<string, number>('events');
    for (const t of [1, 2, 11, 3]) input.pipeInput('a', 1, t);
    const latest = driver.createOutputTopic('counts', windowedKeys).readKeyValuesToMap();
    expect([...latest.entries()]).toEqual([
      [windowed('a', 0, 10), 3],
      [windowed('a', 10, 20), 1],
    ]);
  });
});

describe('windowed count against a brute-force reference', () => {
  it('matches the reference for any records, including late ones', () => {
    const scenario = fc.record({
      sizeMs: fc.integer({ min: 1, max: 30 }),
      graceMs: fc.integer({ min: 0, max: 30 }),
      records: fc.array(fc.record({ key: fc.constantFrom('a', 'b', 'c'), timestamp: fc.integer({ min: 0, max: 200 }) }), { maxLength: 50 }),
    });
    fc.assert(
      fc.property(scenario, ({ sizeMs, graceMs, records }) => {
        // given
        const driver = windowedCount(sizeMs, graceMs);
        const input = driver.createInputTopic<string, number>('events');
        // when
        for (const { key, timestamp } of records) input.pipeInput(key, 1, timestamp);
        // then
        const counts = new Map<string, number>();
        const outputs: unknown[] = [];
        const late: number[] = [];
        let streamTime = -1;
        records.forEach(({ key, timestamp }, offset) => {
          streamTime = Math.max(streamTime, timestamp);
          const start = Math.floor(timestamp / sizeMs) * sizeMs;
          if (start + sizeMs <= streamTime - graceMs) {
            late.push(offset);
            return;
          }
          const id = `${start}/${key}`;
          counts.set(id, (counts.get(id) ?? 0) + 1);
          outputs.push({ key: windowed(key, start, start + sizeMs), value: counts.get(id) });
        });
        expect(driver.createOutputTopic('counts', windowedKeys).readKeyValuesToList()).toEqual(outputs);
        expect(driver.lateRecords().map((d) => [d.code, d.source.offset])).toEqual(late.map((o) => ['MILLRACE_LATE_RECORD', o]));
        const open = [...counts.entries()]
          .map(([id, n]) => [Number(id.split('/')[0]), id.split('/')[1]!, n] as [number, string, number])
          .filter(([start]) => start + sizeMs > streamTime - graceMs)
          .sort((x, y) => x[0] - y[0] || (x[1] < y[1] ? -1 : 1));
        expect(committedWindows(driver)).toEqual(open);
      }),
      { numRuns: 200 },
    );
  });
});
