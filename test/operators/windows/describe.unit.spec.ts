import { describe, expect, it } from 'vitest';
import { SessionWindows, SlidingWindows, TimeWindows } from '../../../engine/operators/windows.js';
import { StreamsBuilder } from '../../../engine/topology/builder.js';

describe('describe() of windowed aggregations', () => {
  it('shows the window kind, size, advance, gap and grace, the emit mode and idleCloseMs on the node and its store', () => {
    const b = new StreamsBuilder('ml-features');
    const grouped = b.stream<string, number>('events').groupByKey('by-user');
    grouped.windowedBy(TimeWindows.hopping(60_000, 10_000, { graceMs: 5_000 })).count('hourly', { emit: 'final', idleCloseMs: 30_000 });
    grouped.windowedBy(SlidingWindows.of(600_000)).reduce('last-10-min', (a, v) => a + v);
    grouped.windowedBy(SessionWindows.withGap(1_800_000, { graceMs: 60_000 })).aggregate('visits', () => 0, (n) => n + 1, { merger: (a, c) => a + c, emit: 'final' });
    grouped.windowedBy(TimeWindows.tumbling(1_000)).count('per-second', { emit: 'update' });
    const description = b.build().describe();
    const nodes = description.subtopologies.flatMap((s) => s.nodes).filter((n) => n.kind === 'processor');
    expect(nodes.map((n) => [n.name, n.operator, n.detail])).toEqual([
      ['hourly', 'windowedCount', { window: { kind: 'hopping', sizeMs: 60_000, advanceMs: 10_000, graceMs: 5_000 }, emit: 'final', idleCloseMs: 30_000 }],
      ['last-10-min', 'windowedReduce', { window: { kind: 'sliding', sizeMs: 600_000, graceMs: 0 } }],
      ['visits', 'windowedAggregate', { window: { kind: 'session', inactivityGapMs: 1_800_000, graceMs: 60_000 }, emit: 'final' }],
      // emit 'update' and no idle close are the defaults, and describe as before they existed
      ['per-second', 'windowedCount', { window: { kind: 'tumbling', sizeMs: 1_000, graceMs: 0 } }],
    ]);
    expect(description.stores.map((s) => [s.name, s.kind, s.keySerde, s.valueSerde, s.detail])).toEqual([
      ['hourly', 'window', 'window(string)', 'int64', nodes[0]!.detail],
      ['last-10-min', 'window', 'string', 'sliding(json,json)', nodes[1]!.detail],
      ['visits', 'window', 'string', 'session(json)', nodes[2]!.detail],
      ['per-second', 'window', 'window(string)', 'int64', nodes[3]!.detail],
    ]);
  });
});
