import { Serdes } from '../../engine/serde/serde.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import type { TopologyContext } from '../../engine/runtime/modules.js';

/**
 * Counts events per key: every event on `input` updates its key's count, and each new count is written to
 * `output` as `{key, value: count}`. The simplest stateful topology; the crash tests and benchmarks run it.
 *
 * Options: `applicationId` (default "keyed-count"), `input` (default "events"), `output` (default "event-counts").
 */
export default function keyedCount({ options }: TopologyContext) {
  const applicationId = typeof options['applicationId'] === 'string' ? options['applicationId'] : 'keyed-count';
  const input = typeof options['input'] === 'string' ? options['input'] : 'events';
  const output = typeof options['output'] === 'string' ? options['output'] : 'event-counts';
  const builder = new StreamsBuilder(applicationId);
  builder
    .stream<string, unknown>(input, { name: 'events' })
    .groupByKey('by-key')
    .count('counts')
    .toStream('count-changes')
    .to(output, { name: 'to-output', valueSerde: Serdes.json<number>() });
  return builder;
}
