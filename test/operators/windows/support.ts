import { HoppingWindows, SessionWindows, SlidingWindows, TumblingWindows } from '../../../engine/operators/windows.js';
import type { SessionState, SlidingState, WindowKey } from '../../../engine/operators/windowed-aggregate.js';
import { Serdes } from '../../../engine/serde/serde.js';
import { TopologyTestDriver, type TestOutputTopic } from '../../../engine/testing/topology-test-driver.js';
import { StreamsBuilder, windowedSerde, type KTable } from '../../../engine/topology/builder.js';
import type { Windowed } from '../../../engine/topology/record.js';
import type { Emitted, Scenario, Value } from './reference.js';

/** Sorted-list merge: sessions' offset lists stay in arrival order when they merge. */
export function mergeSorted(a: number[], b: number[]): number[] {
  return [...a, ...b].sort((x, y) => x - y);
}

/** events (value = offset) → group by key → windowed `agg` in the scenario's kind, op and emit mode → `windows`. */
export function scenarioDriver(s: Scenario): TopologyTestDriver {
  const b = new StreamsBuilder('win', { allowedLatenessMs: s.allowedLatenessMs });
  const grouped = b.stream<string, number>('events').groupByKey('by-key');
  const options = { emit: s.emit };
  const grace = { graceMs: s.graceMs };
  let table: KTable<Windowed<string>, unknown>;
  if (s.kind === 'session') {
    const w = grouped.windowedBy(SessionWindows.withGap(s.gapMs, grace));
    table =
      s.op === 'count'
        ? w.count('agg', options)
        : s.op === 'reduce'
          ? w.reduce('agg', (a, v) => a + v, options)
          : w.aggregate<number[]>('agg', () => [], (a, v) => [...a, v], { ...options, merger: mergeSorted });
  } else {
    const spec =
      s.kind === 'tumbling'
        ? TumblingWindows.of(s.sizeMs, grace)
        : s.kind === 'hopping'
          ? HoppingWindows.of(s.sizeMs, s.advanceMs, grace)
          : SlidingWindows.of(s.sizeMs, grace);
    const w = grouped.windowedBy(spec);
    table =
      s.op === 'count'
        ? w.count('agg', options)
        : s.op === 'reduce'
          ? w.reduce('agg', (a, v) => a + v, options)
          : w.aggregate<number[]>('agg', () => [], (a, v) => [...a, v], options);
  }
  table.toStream('changes').to('windows', { valueSerde: Serdes.json() });
  return new TopologyTestDriver(b.build());
}

export function windowsTopic(driver: TopologyTestDriver): TestOutputTopic<Windowed<string>, Value> {
  return driver.createOutputTopic('windows', { keySerde: windowedSerde(Serdes.string()), valueSerde: Serdes.json<Value>() });
}

export function flat(records: Array<{ key: Windowed<string> | null; value: Value | null }>): Emitted[] {
  return records.map(({ key, value }) => ({ key: key!.key, start: key!.window.start, end: key!.window.end, value }));
}

/** The windows a windowed aggregation's store holds, by key, start, end. */
export function storedWindows(driver: TopologyTestDriver, s: Pick<Scenario, 'kind' | 'sizeMs'>, store = 'agg'): Emitted[] {
  const out: Emitted[] = [];
  if (s.kind === 'tumbling' || s.kind === 'hopping') {
    for (const { key, value } of driver.getKeyValueStore<WindowKey<string>, Value>(store).rangeSync()) {
      out.push({ key: key.key, start: key.start, end: key.start + s.sizeMs, value });
    }
  } else if (s.kind === 'sliding') {
    for (const { key, value } of driver.getKeyValueStore<string, SlidingState<number, Value>>(store).rangeSync()) {
      for (const w of value.windows) out.push({ key, start: Math.max(0, w.atMs - s.sizeMs), end: w.atMs + 1, value: w.aggregate });
    }
  } else {
    for (const { key, value } of driver.getKeyValueStore<string, SessionState<Value>>(store).rangeSync()) {
      for (const w of value.sessions) out.push({ key, start: w.firstMs, end: w.lastMs + 1, value: w.aggregate });
    }
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) || a.start - b.start || a.end - b.end);
}
