import { describe, expect, it } from 'vitest';
import { Serdes } from '../../engine/serde/serde.js';
import type { KeyValueStore } from '../../engine/state/key-value-store.js';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import type { Processor, ProcessorContext } from '../../engine/topology/processor.js';
import type { StreamRecord } from '../../engine/topology/record.js';
import { TopologyDraft, type StoreSpec } from '../../engine/topology/topology.js';

const seenStore: StoreSpec = { name: 'seen', kind: 'key-value', keySerde: Serdes.string(), valueSerde: Serdes.int64(), changelog: true };

/** Forwards the first record of each key and drops repeats; remembers when each key was first seen. */
class Dedupe implements Processor<string, string, string, string> {
  #seen: KeyValueStore<string, number> | undefined;

  init(context: ProcessorContext<string, string>): void {
    this.#seen = context.store<string, number>('seen');
  }

  process(record: StreamRecord<string, string>, context: ProcessorContext<string, string>): void {
    const seen = this.#seen!;
    if (seen.get(record.key) !== undefined) {
      context.forward(record, 'repeats');
      return;
    }
    seen.put(record.key, record.timestamp);
    context.forward(record, 'firsts');
  }
}

function dedupeTopology(): TopologyDraft {
  return new TopologyDraft('dedupe-app')
    .addSource('in', { topics: ['events'], keySerde: Serdes.string(), valueSerde: Serdes.string() })
    .addStore(seenStore)
    .addProcessor('dedupe', () => new Dedupe(), { parents: ['in'], stores: ['seen'] })
    .addSink('firsts', 'firsts', { parents: ['dedupe'], keySerde: Serdes.string(), valueSerde: Serdes.string() })
    .addSink('repeats', 'repeats', { parents: ['dedupe'], keySerde: Serdes.string(), valueSerde: Serdes.string() });
}

describe('the Processor API through TopologyDraft', () => {
  it('runs a processor with its declared store and forwards to named children', () => {
    // given
    const driver = new TopologyTestDriver(dedupeTopology().build());
    const input = driver.createInputTopic<string, string>('events', { valueSerde: Serdes.string() });
    // when
    input.pipeInput('a', 'a1', 10);
    input.pipeInput('b', 'b1', 11);
    input.pipeInput('a', 'a2', 12);
    // then
    expect(driver.createOutputTopic('firsts', { valueSerde: Serdes.string() }).readValuesToList()).toEqual(['a1', 'b1']);
    expect(driver.createOutputTopic('repeats', { valueSerde: Serdes.string() }).readValuesToList()).toEqual(['a2']);
    const store = driver.getKeyValueStore<string, number>('seen');
    expect([store.get('a'), store.get('b'), store.get('c')]).toEqual([10, 11, undefined]);
  });

  it('gives the processor a context describing its task, node, record, stream time and wall clock', () => {
    // given
    const observed: unknown[] = [];
    const lifecycle: string[] = [];
    const draft = new TopologyDraft('ctx-app')
      .addSource('in', { topics: ['events'], keySerde: Serdes.string(), valueSerde: Serdes.string() })
      .addProcessor(
        'observe',
        (): Processor<string, string> => ({
          init(ctx) {
            lifecycle.push(`init ${ctx.nodeName}`);
            ctx.onCommit(() => {
              lifecycle.push(`commit at stream time ${ctx.streamTimeMs()}`);
            });
          },
          process(record, ctx) {
            observed.push({
              applicationId: ctx.applicationId,
              taskId: ctx.taskId,
              partition: ctx.partition,
              nodeName: ctx.nodeName,
              metadata: ctx.recordMetadata(),
              streamTimeMs: ctx.streamTimeMs(),
              wallClockMs: ctx.wallClockMs(),
              value: record.value,
            });
          },
          close() {
            lifecycle.push('close');
          },
        }),
        { parents: ['in'] },
      );
    const driver = new TopologyTestDriver(draft.build(), { initialWallClockMs: 1_000 });
    const input = driver.createInputTopic<string, string>('events', { valueSerde: Serdes.string() });
    // when
    input.pipeInput('k', 'first', 50);
    driver.advanceWallClockTime(250);
    input.pipeInput('k', 'older', 20);
    driver.close();
    // then
    const base = { applicationId: 'ctx-app', taskId: '0_0', partition: 0, nodeName: 'observe' };
    expect(observed).toEqual([
      { ...base, metadata: { topic: 'events', partition: 0, offset: 0 }, streamTimeMs: 50, wallClockMs: 1_000, value: 'first' },
      { ...base, metadata: { topic: 'events', partition: 0, offset: 1 }, streamTimeMs: 50, wallClockMs: 1_250, value: 'older' },
    ]);
    // A checkpoint after each record, and one when the wall clock advances (wall-clock punctuators may have run).
    expect(lifecycle).toEqual(['init observe', 'commit at stream time 50', 'commit at stream time 50', 'commit at stream time 50', 'close']);
  });

  it('uses a new processor instance per task', () => {
    let created = 0;
    const supplier = (): Processor<string, string> => {
      created++;
      return { process() {} };
    };
    const draft = new TopologyDraft('app')
      .addSource('a', { topics: ['a'], keySerde: Serdes.string(), valueSerde: Serdes.string() })
      .addProcessor('pa', supplier, { parents: ['a'] })
      .addSource('b', { topics: ['b'], keySerde: Serdes.string(), valueSerde: Serdes.string() })
      .addProcessor('pb', supplier, { parents: ['b'] });
    new TopologyTestDriver(draft.build());
    expect(created).toBe(2);
  });
});

describe('KStream.process', () => {
  it('runs a Processor API node inside the DSL with a store added to the builder', () => {
    // given: a running total per key, forwarded on every record
    const b = new StreamsBuilder('dsl-app');
    b.addStore({ name: 'totals', kind: 'key-value', keySerde: Serdes.string(), valueSerde: Serdes.int64(), changelog: true });
    b.stream<string, number>('amounts')
      .process<string, number>(
        'running-total',
        () => ({
          process(r, ctx) {
            const totals = ctx.store<string, number>('totals');
            const total = (totals.get(r.key) ?? 0) + r.value;
            totals.put(r.key, total);
            ctx.forward({ ...r, value: total });
          },
        }),
        { stores: ['totals'], valueSerde: Serdes.int64() },
      )
      .to('totals');
    const driver = new TopologyTestDriver(b.build());
    // when
    const input = driver.createInputTopic<string, number>('amounts');
    input.pipeInput('a', 5);
    input.pipeInput('b', 1);
    input.pipeInput('a', 7);
    // then
    expect(driver.createOutputTopic('totals', { valueSerde: Serdes.int64() }).readKeyValuesToList()).toEqual([
      { key: 'a', value: 5 },
      { key: 'b', value: 1 },
      { key: 'a', value: 12 },
    ]);
    expect(driver.getKeyValueStore<string, number>('totals').get('a')).toBe(12);
  });

  it('turns a store the node did not declare into a dead letter with code MILLRACE_STORE_UNKNOWN', () => {
    // given: `seen` exists and `remember` declares it, but `peeker` does not
    const b = new StreamsBuilder('dsl-app');
    b.addStore(seenStore);
    const events = b.stream<string, string>('events', { valueSerde: Serdes.string() });
    events.process('remember', () => ({ process(r, ctx) { ctx.store<string, number>('seen').put(r.key, r.timestamp); } }), { stores: ['seen'] });
    events
      .process<string, string>('peeker', () => ({ process(r, ctx) { ctx.store<string, number>('seen').get(r.key); ctx.forward(r); } }))
      .to('out', { valueSerde: Serdes.string() });
    const driver = new TopologyTestDriver(b.build());
    // when
    driver.createInputTopic<string, string>('events', { valueSerde: Serdes.string() }).pipeInput('a', 'x', 7);
    // then: the record's other writes are rolled back too
    expect(driver.deadLetters('events').map((d) => [d.code, d.node, d.source.offset])).toEqual([['MILLRACE_STORE_UNKNOWN', 'peeker', 0]]);
    expect(driver.createOutputTopic('out').isEmpty()).toBe(true);
    expect(driver.getKeyValueStore<string, number>('seen').get('a')).toBeUndefined();
  });

  it('turns a store that does not exist at all into the same dead letter', () => {
    const b = new StreamsBuilder('dsl-app');
    b.stream<string, string>('events', { valueSerde: Serdes.string() }).process('lost', () => ({ process(_r, ctx) { ctx.store('nowhere'); } }));
    const driver = new TopologyTestDriver(b.build());
    driver.createInputTopic<string, string>('events', { valueSerde: Serdes.string() }).pipeInput('a', 'x');
    expect(driver.deadLetters('events').map((d) => d.code)).toEqual(['MILLRACE_STORE_UNKNOWN']);
  });
});
