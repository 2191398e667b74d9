import fc from 'fast-check';
import type { TestOutputTopic, TopologyTestDriver } from '../../../engine/testing/index.js';

/** One output record as the tests compare them: key, value, timestamp. */
export type Out = readonly [key: string, value: string, timestamp: number];

/** A canonical order for a multiset of outputs, so two multisets compare with `toEqual`. */
export function sorted(outputs: readonly Out[]): Out[] {
  return [...outputs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0) || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0) || a[2] - b[2]);
}

/** The records written to `topic` since the last read, as `Out`s. */
export function drain(topic: TestOutputTopic<string, string>): Out[] {
  return topic.readRecordsToList().map((r) => [r.key ?? '<null>', r.value ?? '<null>', r.timestamp] as const);
}

/** The source coordinates of the records sent to the late-records topic, as `topic@offset`, sorted. */
export function lateSet(driver: TopologyTestDriver): string[] {
  return driver.lateRecords().map((d) => `${d.source.topic}@${d.source.offset}`).sort();
}

/** Keys and timestamps drawn from small ranges, so collisions (same key, same time) are common. */
export const keys = fc.constantFrom('a', 'b', 'c');

/**
 * Event times: either anywhere in a small range (much disorder, many late records), or drifting upwards with
 * jitter (mostly ordered, some late).
 */
export function timestamps(count: number): fc.Arbitrary<number[]> {
  const scattered = fc.array(fc.integer({ min: 0, max: 80 }), { minLength: count, maxLength: count });
  const drifting = fc
    .array(fc.integer({ min: -12, max: 12 }), { minLength: count, maxLength: count })
    .map((jitter) => jitter.map((j, i) => Math.max(0, i * 3 + j)));
  return fc.oneof(scattered, drifting);
}

/** The watermark after each step, given each step's event time: max event time so far − allowed lateness. */
export function watermarks(times: readonly number[], allowedLatenessMs: number): number[] {
  let streamTime = -1;
  return times.map((t) => {
    streamTime = Math.max(streamTime, t);
    return streamTime - allowedLatenessMs;
  });
}
