import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JoinKind, RecordBuffer } from '../../../engine/operators/joins.js';
import { TopologyTestDriver } from '../../../engine/testing/index.js';
import { StreamsBuilder } from '../../../engine/topology/builder.js';
import { JoinWindows, streamStreamJoin, streamTableJoin, table } from '../../../engine/topology/tables.js';
import { drain, keys, lateSet, sorted, timestamps, watermarks, type Out } from './support.js';

type Side = 'left' | 'right';

interface Scenario {
  readonly beforeMs: number;
  readonly afterMs: number;
  readonly graceMs: number;
  readonly allowedLatenessMs: number;
  readonly records: ReadonlyArray<{ readonly side: Side; readonly key: string; readonly timestamp: number }>;
}

const scenarios: fc.Arbitrary<Scenario> = fc.integer({ min: 0, max: 40 }).chain((n) =>
  fc
    .record({
      beforeMs: fc.integer({ min: 0, max: 20 }),
      afterMs: fc.integer({ min: 0, max: 20 }),
      graceMs: fc.integer({ min: 0, max: 15 }),
      allowedLatenessMs: fc.integer({ min: 0, max: 15 }),
      sides: fc.array(fc.constantFrom<Side>('left', 'right'), { minLength: n, maxLength: n }),
      keys: fc.array(keys, { minLength: n, maxLength: n }),
      times: timestamps(n),
    })
    .map(({ sides, keys: ks, times, ...windows }) => ({
      ...windows,
      records: sides.map((side, i) => ({ side, key: ks[i]!, timestamp: times[i]! })),
    })),
);

const show = (left: string | null, right: string | null): string => `${left ?? '-'}|${right ?? '-'}`;

function joinDriver(kind: JoinKind, s: Pick<Scenario, 'beforeMs' | 'afterMs' | 'graceMs' | 'allowedLatenessMs'>): TopologyTestDriver {
  const b = new StreamsBuilder('ssj', { allowedLatenessMs: s.allowedLatenessMs });
  const windows = JoinWindows.of(s.beforeMs, s.afterMs, { graceMs: s.graceMs });
  streamStreamJoin<string, string, string, string, JoinKind>(b.stream<string, string>('left'), b.stream<string, string>('right'), show, windows, { name: 'j', kind }).to('out');
  return new TopologyTestDriver(b.build());
}

/**
 * The join from its definition, given the processing order: a record is late when its time + grace is behind the
 * watermark; every pair of non-late records within the window is forwarded when the second of them is processed;
 * for an outer side, a non-late record without a pair is forwarded with `null` at the first step whose watermark
 * passes its time + reach + grace. Also gives the records still buffered at the end.
 */
function reference(kind: JoinKind, s: Scenario) {
  const marks = watermarks(s.records.map((r) => r.timestamp), s.allowedLatenessMs);
  const offsets = { left: 0, right: 0 };
  const records = s.records.map((r, step) => ({
    ...r,
    step,
    value: `${r.side === 'left' ? 'L' : 'R'}${step}`,
    offset: offsets[r.side]++,
    late: r.timestamp + s.graceMs < marks[step]!,
    matched: false,
  }));
  const expected: Out[][] = records.map(() => []);
  const live = records.filter((r) => !r.late);
  for (const l of live.filter((r) => r.side === 'left')) {
    for (const r of live.filter((x) => x.side === 'right' && x.key === l.key)) {
      if (l.timestamp - s.beforeMs <= r.timestamp && r.timestamp <= l.timestamp + s.afterMs) {
        expected[Math.max(l.step, r.step)]!.push([l.key, show(l.value, r.value), Math.max(l.timestamp, r.timestamp)]);
        l.matched = true;
        r.matched = true;
      }
    }
  }
  const outer = (side: Side): boolean => kind === 'outer' || (kind === 'left' && side === 'left');
  const closeOf = (r: { side: Side; timestamp: number }): number => r.timestamp + (r.side === 'left' ? s.afterMs : s.beforeMs) + s.graceMs;
  for (const r of live) {
    if (r.matched || !outer(r.side)) continue;
    const at = marks.findIndex((w, step) => step >= r.step && w > closeOf(r));
    if (at >= 0) expected[at]!.push([r.key, r.side === 'left' ? show(r.value, null) : show(null, r.value), r.timestamp]);
  }
  const finalMark = marks[marks.length - 1] ?? -1;
  const open = (side: Side) => sorted(live.filter((r) => r.side === side && closeOf(r) >= finalMark).map((r) => [r.key, r.value, r.timestamp] as const));
  return {
    expected: expected.map(sorted),
    late: records.filter((r) => r.late).map((r) => `${r.side}@${r.offset}`).sort(),
    open: { left: open('left'), right: open('right') },
    unmatchedOpen: live.filter((r) => outer(r.side) && !r.matched && closeOf(r) >= finalMark).map((r) => r.value).sort(),
  };
}

function buffered(driver: TopologyTestDriver, side: Side): { entries: Out[]; unmatched: string[] } {
  const entries: Out[] = [];
  const unmatched: string[] = [];
  for (const { key, value } of driver.getKeyValueStore<string, RecordBuffer<string>>(`j-${side}-buffer`).rangeSync()) {
    for (const r of value) {
      entries.push([key, r.value!, r.timestamp]);
      if (!r.matched) unmatched.push(r.value!);
    }
  }
  return { entries: sorted(entries), unmatched };
}

function check(kind: JoinKind, s: Scenario): void {
  const driver = joinDriver(kind, s);
  const inputs = { left: driver.createInputTopic<string, string>('left'), right: driver.createInputTopic<string, string>('right') };
  const out = driver.createOutputTopic<string, string>('out');
  const actual = s.records.map((r, step) => {
    inputs[r.side].pipeInput(r.key, `${r.side === 'left' ? 'L' : 'R'}${step}`, r.timestamp);
    return sorted(drain(out));
  });
  const want = reference(kind, s);
  expect(actual).toEqual(want.expected);
  expect(lateSet(driver)).toEqual(want.late);
  expect(driver.deadLetters('left')).toEqual([]);
  expect(driver.deadLetters('right')).toEqual([]);
  // The buffers hold exactly the records whose window is still open, and know which of them never matched.
  const left = buffered(driver, 'left');
  const right = buffered(driver, 'right');
  expect(left.entries).toEqual(want.open.left);
  expect(right.entries).toEqual(want.open.right);
  const tracked = [...(kind === 'inner' ? [] : left.unmatched), ...(kind === 'outer' ? right.unmatched : [])].sort();
  expect(tracked).toEqual(want.unmatchedOpen);
}

describe('stream–stream windowed join, against its definition over random out-of-order input', () => {
  for (const kind of ['inner', 'left', 'outer'] as const) {
    it(`${kind}: the same pairs, unmatched emissions (at the same step) and late records as the reference`, () => {
      fc.assert(fc.property(scenarios, (s) => check(kind, s)), { numRuns: 300 });
    });
  }
});

describe('stream–stream windowed join', () => {
  const windows = { beforeMs: 5, afterMs: 10, graceMs: 0, allowedLatenessMs: 0 };

  function setUp(kind: JoinKind, options: Partial<typeof windows> = {}) {
    const driver = joinDriver(kind, { ...windows, ...options });
    return {
      driver,
      left: driver.createInputTopic<string, string>('left'),
      right: driver.createInputTopic<string, string>('right'),
      out: driver.createOutputTopic<string, string>('out'),
    };
  }

  it('pairs a left record at tl with right records at tl − before ≤ tr ≤ tl + after, at max(tl, tr)', () => {
    const { left, right, out } = setUp('inner', { graceMs: 100 });
    left.pipeInput('k', 'L', 100);
    for (const [value, t] of [['r94', 94], ['r95', 95], ['r100', 100], ['r110', 110], ['r111', 111]] as const) right.pipeInput('k', value, t);
    right.pipeInput('other', 'x', 100);
    expect(drain(out)).toEqual([
      ['k', 'L|r95', 100],
      ['k', 'L|r100', 100],
      ['k', 'L|r110', 110],
    ]);
    // A left record arriving after the right ones joins those buffered, in time order.
    left.pipeInput('k', 'L2', 101);
    expect(drain(out)).toEqual([
      ['k', 'L2|r100', 101],
      ['k', 'L2|r110', 110],
      ['k', 'L2|r111', 111],
    ]);
  });

  it('left join: forwards a left record that never matched once, when the watermark passes tl + after + grace', () => {
    const { left, right, out, driver } = setUp('left', { graceMs: 3 });
    left.pipeInput('k', 'L1', 100); // closes when the watermark passes 100 + 10 + 3
    left.pipeInput('k', 'L2', 101); // … passes 114
    left.pipeInput('k', 'L3', 105); // … passes 118
    right.pipeInput('k', 'R', 111); // L2 and L3 only: 111 > 100 + 10
    expect(drain(out)).toEqual([
      ['k', 'L2|R', 111],
      ['k', 'L3|R', 111],
    ]);
    right.pipeInput('other', 'x', 113);
    expect(drain(out)).toEqual([]);
    right.pipeInput('other', 'y', 114); // passes 113: L1 closes unmatched
    expect(drain(out)).toEqual([['k', 'L1|-', 100]]);
    left.pipeInput('k2', 'L4', 112); // closes after 125
    right.pipeInput('other', 'z', 125); // L2 and L3 close, matched: nothing to forward
    expect(drain(out)).toEqual([]);
    expect(driver.getKeyValueStore('j-left-buffer').get('k')).toBeUndefined();
    expect(driver.getKeyValueStore<string, RecordBuffer<string>>('j-left-buffer').get('k2')!.map((r) => r.value)).toEqual(['L4']);
    right.pipeInput('other', 'w', 500);
    expect(drain(out)).toEqual([['k2', 'L4|-', 112]]);
    right.pipeInput('other', 'v', 600);
    expect(drain(out)).toEqual([]);
    expect(driver.getKeyValueStore('j-left-buffer').get('k2')).toBeUndefined();
  });

  it('outer join: forwards unmatched records of both sides, each once', () => {
    const { left, right, out } = setUp('outer');
    right.pipeInput('k', 'R1', 10); // closes after 10 + before 5
    left.pipeInput('k', 'L1', 30);
    expect(drain(out)).toEqual([['k', '-|R1', 10]]);
    left.pipeInput('k', 'L2', 41); // closes L1 (30 + 10)
    expect(drain(out)).toEqual([['k', 'L1|-', 30]]);
  });

  it('sends a record more than grace behind the watermark to the late-records topic, with the reason', () => {
    const { left, right, out, driver } = setUp('left', { graceMs: 4, allowedLatenessMs: 2 });
    right.pipeInput('k', 'R', 50); // watermark 48
    left.pipeInput('k', 'ok', 44); // 44 + 4 = 48: not behind
    left.pipeInput('k', 'late', 43); // 43 + 4 < 48: late
    expect(drain(out)).toEqual([['k', 'ok|R', 50]]);
    expect(driver.lateRecords()).toEqual([
      expect.objectContaining({
        code: 'MILLRACE_LATE_RECORD',
        reason: 'late',
        side: 'left',
        recordTimestamp: 43,
        watermark: 48,
        streamTime: 50,
        graceMs: 4,
        node: 'j',
        source: expect.objectContaining({ topic: 'left', offset: 1 }),
      }),
    ]);
    expect(driver.getKeyValueStore<string, RecordBuffer<string>>('j-left-buffer').get('k')!.map((r) => r.value)).toEqual(['ok']);
  });

  it('sends records without a key to the dead-letter topic', () => {
    const { left, right, driver, out } = setUp('outer');
    left.pipeInput(null, 'no-key', 10);
    right.pipeInput(null, 'no-key', 10);
    expect(driver.deadLetters('left').map((d) => [d.code, d.reason])).toEqual([['MILLRACE_PROCESSING', 'null-key']]);
    expect(driver.deadLetters('right').map((d) => [d.code, d.reason])).toEqual([['MILLRACE_PROCESSING', 'null-key']]);
    right.pipeInput('k', 'R', 100);
    expect(drain(out)).toEqual([]);
  });

  it('rolls back a record that fails downstream: what it closed is forwarded once, when stream time next moves', () => {
    // given: a step after the join that fails once on the first unmatched emission, and a sibling of the join on
    // the right input that fails once after the join has run
    const b = new StreamsBuilder('ssj');
    const leftStream = b.stream<string, string>('left');
    const rightStream = b.stream<string, string>('right');
    let failDownstream = true;
    let failSibling = false;
    streamStreamJoin(leftStream, rightStream, (l, r) => show(l, r), JoinWindows.of(5, 5), { name: 'j', kind: 'left' })
      .peek('fragile', (r) => {
        if (failDownstream && r.value.endsWith('|-')) {
          failDownstream = false;
          throw new Error('downstream failure');
        }
      })
      .to('out');
    rightStream.peek('sibling', () => {
      if (failSibling) {
        failSibling = false;
        throw new Error('sibling failure');
      }
    });
    const driver = new TopologyTestDriver(b.build());
    const left = driver.createInputTopic<string, string>('left');
    const right = driver.createInputTopic<string, string>('right');
    const out = driver.createOutputTopic<string, string>('out');
    left.pipeInput('a', 'L1', 10);
    left.pipeInput('b', 'L2', 12);
    // when: R closes L1 (watermark 16 > 15), the emission fails downstream: R is dead-lettered and rolled back
    right.pipeInput('c', 'R', 16);
    // then: R moved stream time all the same, and the stream-time punctuation after it emits L1, once
    expect(drain(out)).toEqual([['a', 'L1|-', 10]]);
    expect(driver.deadLetters('right').map((d) => d.source.offset)).toEqual([0]);
    right.pipeInput('c', 'R2', 16);
    expect(drain(out)).toEqual([]);
    // when: a record closes L2, and a sibling branch then fails: the join's work is rolled back behind its back
    failSibling = true;
    right.pipeInput('c', 'R3', 18);
    // then: L2 is open again for the punctuation after R3, which emits it, once
    expect(drain(out)).toEqual([['b', 'L2|-', 12]]);
    expect(driver.deadLetters('right').map((d) => d.source.offset)).toEqual([0, 2]);
    right.pipeInput('c', 'R4', 18);
    right.pipeInput('c', 'R5', 100);
    expect(drain(out)).toEqual([]);
    expect(driver.getKeyValueStore('j-left-buffer').get('a')).toBeUndefined();
    expect(driver.getKeyValueStore('j-left-buffer').get('b')).toBeUndefined();
  });

  it('closes windows when stream time moves on another input of the task too', () => {
    // given: the join's output is priced by a table, whose topic is read by the same task
    const b = new StreamsBuilder('ssj');
    const prices = table<string, string>(b, 'prices', { name: 'price-table' });
    const clicked = streamStreamJoin(b.stream<string, string>('left'), b.stream<string, string>('right'), show, JoinWindows.of(5, 5), { name: 'j', kind: 'left' });
    streamTableJoin(clicked, prices, (joined, price) => `${joined}@${price ?? '-'}`, { name: 'priced', left: true }).to('out');
    const driver = new TopologyTestDriver(b.build());
    const out = driver.createOutputTopic<string, string>('out');
    driver.createInputTopic<string, string>('left').pipeInput('k', 'L', 10);
    driver.createInputTopic<string, string>('prices').pipeInput('k', 'p', 12);
    expect(drain(out)).toEqual([]);
    // when: a price far ahead moves stream time past L's window
    driver.createInputTopic<string, string>('prices').pipeInput('other', 'q', 100);
    // then: L is forwarded unmatched, and priced as of its own time
    expect(drain(out)).toEqual([['k', 'L|-@p', 10]]);
  });

  it('repartitions a side whose key changed upstream, and can join a stream with itself', () => {
    const b = new StreamsBuilder('ssj');
    const clicks = b.stream<string, { user: string }>('clicks').map('by-user', (r) => ({ key: r.value.user, value: r.timestamp }));
    const views = b.stream<string, number>('views');
    streamStreamJoin(clicks, views, (c, v) => `${c}/${v}`, JoinWindows.ofTimeDifference(10), { name: 'cv' }).to('out');
    streamStreamJoin(views, views, (x, y) => `${x}+${y}`, JoinWindows.ofTimeDifference(0), { name: 'self' }).to('self-out');
    const topology = b.build();
    expect(topology.internalTopics.has('ssj-cv-left-repartition')).toBe(true);
    expect(topology.internalTopics.has('ssj-cv-right-repartition')).toBe(false);
    const driver = new TopologyTestDriver(topology);
    driver.createInputTopic<string, { user: string }>('clicks').pipeInput('c1', { user: 'u' }, 5);
    driver.createInputTopic<string, number>('views').pipeInput('u', 7, 8);
    expect(drain(driver.createOutputTopic('out'))).toEqual([['u', '5/7', 8]]);
    expect(drain(driver.createOutputTopic('self-out'))).toEqual([['u', '7+7', 8]]);
  });

  it('refuses windows that are not non-negative integers', () => {
    expect(() => JoinWindows.of(-1, 0)).toThrow(RangeError);
    expect(() => JoinWindows.of(0, 1.5)).toThrow(RangeError);
    expect(() => JoinWindows.of(0, 0, { graceMs: -1 })).toThrow(RangeError);
  });
});
