import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Serdes } from '../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import { TopologyDraft } from '../../engine/topology/topology.js';
import { int64Bytes } from './helpers.js';

type Command = { readonly op: 'put'; readonly key: string; readonly value: string } | { readonly op: 'delete'; readonly key: string };

/** Applies a batch of commands per record to the store `kv`. */
function commandTopology(): TopologyDraft {
  return new TopologyDraft('cmd')
    .addSource('in', { topics: ['commands'], keySerde: Serdes.string(), valueSerde: Serdes.json<Command[]>() })
    .addStore({ name: 'kv', kind: 'key-value', keySerde: Serdes.string(), valueSerde: Serdes.string(), changelog: true })
    .addProcessor(
      'apply',
      () => ({
        process(record, ctx) {
          const kv = ctx.store<string, string>('kv');
          for (const command of record.value as Command[]) {
            if (command.op === 'put') kv.put(command.key, command.value);
            else kv.delete(command.key);
          }
        },
      }),
      { parents: ['in'], stores: ['kv'] },
    );
}

function readChangelog(driver: TopologyTestDriver, topic: string): Array<[string, string | null]> {
  return driver
    .createOutputTopic(topic, { keySerde: Serdes.string(), valueSerde: Serdes.string() })
    .readKeyValuesToList()
    .map(({ key, value }) => [key!, value]);
}

describe('the changelog of a store', () => {
  it('receives each checkpoint\'s changes on <app>-<store>-changelog', () => {
    // given
    const b = new StreamsBuilder('wc');
    b.stream<string, string>('words', { valueSerde: Serdes.string() }).groupByKey('g').count('counts');
    const driver = new TopologyTestDriver(b.build());
    const input = driver.createInputTopic<string, string>('words', { valueSerde: Serdes.string() });
    // when
    input.pipeInput('x', '');
    input.pipeInput('y', '');
    input.pipeInput('x', '');
    // then
    const changelog = driver.createOutputTopic('wc-counts-changelog', { valueSerde: Serdes.bytes() }).readKeyValuesToList();
    expect(changelog).toEqual([
      { key: 'x', value: int64Bytes(1) },
      { key: 'y', value: int64Bytes(1) },
      { key: 'x', value: int64Bytes(2) },
    ]);
  });

  it('has one record per changed key per checkpoint: the last value written, or a tombstone for a delete', () => {
    // given
    const driver = new TopologyTestDriver(commandTopology().build());
    const input = driver.createInputTopic<string, Command[]>('commands');
    input.pipeInput('r1', [{ op: 'put', key: 'a', value: '1' }, { op: 'put', key: 'b', value: '1' }]);
    // when: one record writes a twice, deletes b and writes c
    input.pipeInput('r2', [
      { op: 'put', key: 'a', value: '2' },
      { op: 'put', key: 'a', value: '3' },
      { op: 'delete', key: 'b' },
      { op: 'put', key: 'c', value: '1' },
    ]);
    // then
    const changelog = readChangelog(driver, 'cmd-kv-changelog');
    expect(changelog.slice(0, 2)).toEqual([['a', '1'], ['b', '1']]);
    expect(changelog.slice(2).sort()).toEqual([['a', '3'], ['b', null], ['c', '1']]);
  });

  it('gets nothing from a record whose processing failed, nor from a record that changed nothing', () => {
    const draft = commandTopology();
    const driver = new TopologyTestDriver(draft.build());
    const input = driver.createInputTopic<string, Command[]>('commands');
    input.pipeInput('r1', []);
    input.pipeRawInput(Buffer.from('r2'), Buffer.from('[{"op":"put","key":"a","value":"1"}, oops'));
    expect(readChangelog(driver, 'cmd-kv-changelog')).toEqual([]);
  });

  it('is not written for a store built with changelog: false', () => {
    const b = new StreamsBuilder('wc');
    b.stream<string, string>('words', { valueSerde: Serdes.string() }).groupByKey('g').count('counts', { changelog: false });
    const driver = new TopologyTestDriver(b.build());
    driver.createInputTopic<string, string>('words', { valueSerde: Serdes.string() }).pipeInput('x', '');
    expect(driver.createOutputTopic('wc-counts-changelog').isEmpty()).toBe(true);
    expect(driver.getKeyValueStore<string, number>('counts').get('x')).toBe(1);
  });

  it('replays to the committed store content, for any sequence of puts and deletes', () => {
    const command = fc.oneof(
      fc.record({ op: fc.constant('put' as const), key: fc.constantFrom('a', 'b', 'c', 'd'), value: fc.string({ maxLength: 4 }) }),
      fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom('a', 'b', 'c', 'd') }),
    );
    fc.assert(
      fc.property(fc.array(fc.array(command, { maxLength: 5 }), { maxLength: 20 }), (batches) => {
        // given
        const driver = new TopologyTestDriver(commandTopology().build());
        const input = driver.createInputTopic<string, Command[]>('commands');
        const reference = new Map<string, string>();
        // when
        for (const batch of batches) {
          input.pipeInput('r', batch);
          for (const c of batch) {
            if (c.op === 'put') reference.set(c.key, c.value);
            else reference.delete(c.key);
          }
        }
        // then
        const replayed = new Map<string, string>();
        for (const [key, value] of readChangelog(driver, 'cmd-kv-changelog')) {
          if (value === null) replayed.delete(key);
          else replayed.set(key, value);
        }
        const committed = new Map(driver.committedStoreEntries('kv').map(([k, v]) => [k.toString(), v.toString()]));
        expect(replayed).toEqual(reference);
        expect(committed).toEqual(reference);
      }),
      { numRuns: 150 },
    );
  });
});
