import type { Processor, ProcessorContext } from '../../engine/topology/processor.js';
import type { StreamRecord } from '../../engine/topology/record.js';
import { Serdes } from '../../engine/serde/serde.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';

/** Forwards the first record of each key and drops repeats (the README's Processor API example). */
export class Dedupe implements Processor<string, unknown, string, unknown> {
  process(record: StreamRecord<string, unknown>, ctx: ProcessorContext<string, unknown>): void {
    const seen = ctx.store<string, number>('seen');
    if (seen.get(record.key) !== undefined) return;
    seen.put(record.key, record.timestamp);
    ctx.forward(record);
  }
}

const b = new StreamsBuilder('dedupe');
b.addStore({ name: 'seen', kind: 'key-value', keySerde: Serdes.string(), valueSerde: Serdes.int64(), changelog: true });
b.stream<string, unknown>('raw-events').process('dedupe', () => new Dedupe(), { stores: ['seen'] }).to('unique-events');
export default b;
