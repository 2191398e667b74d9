import { describe, expect, it } from 'vitest';
import { isMillraceError } from '../../engine/errors.js';
import { Serdes } from '../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import type { Processor, ProcessorSupplier } from '../../engine/topology/processor.js';
import { TopologyDraft, type StoreSpec } from '../../engine/topology/topology.js';
import { base64 } from './helpers.js';

interface Reading {
  readonly celsius: number;
}

/** `in` → mapValues `to-fahrenheit` (throws on a negative reading) → `out`. */
function converter(): StreamsBuilder {
  const b = new StreamsBuilder('thermo');
  b.stream<string, Reading>('in')
    .mapValues('to-fahrenheit', (v) => {
      if (v.celsius < -273.15) throw new Error('below absolute zero');
      return v.celsius * 1.8 + 32;
    })
    .to('out');
  return b;
}

describe('a step that throws', () => {
  it('sends the record to <topic>.dlq with an RFC 7807 body, its coordinates, the node and its original bytes', () => {
    // given
    const driver = new TopologyTestDriver(converter().build());
    const input = driver.createInputTopic<string, Reading>('in');
    // when
    input.pipeInput('s1', { celsius: 10 }, 1_000);
    input.pipeInput('s2', { celsius: -300 }, 2_000, { origin: Buffer.from('lab') });
    input.pipeInput('s3', { celsius: 100 }, 3_000);
    // then: processing went on with the next record
    expect(driver.createOutputTopic('out').readKeyValuesToList()).toEqual([
      { key: 's1', value: 50 },
      { key: 's3', value: 212 },
    ]);
    expect(driver.deadLetters('in')).toEqual([
      {
        type: 'https://millrace.dev/problems/processing',
        title: 'Processor failed on a record',
        status: 500,
        detail: expect.any(String),
        code: 'MILLRACE_PROCESSING',
        source: { topic: 'in', partition: 0, offset: 1, timestamp: '1970-01-01T00:00:02.000Z' },
        application: 'thermo',
        task: '0_0',
        node: 'to-fahrenheit',
        original: {
          key: base64('s2'),
          value: base64('{"celsius":-300}'),
          encoding: 'base64',
          headers: { origin: base64('lab') },
        },
      },
    ]);
  });

  it('writes the dead letter keyed by the original key, at the original timestamp, with code and source headers', () => {
    const driver = new TopologyTestDriver(converter().build());
    driver.createInputTopic<string, Reading>('in').pipeInput('s2', { celsius: -300 }, 2_000);
    const record = driver.createOutputTopic('in.dlq').readRecord();
    expect(record.key).toBe('s2');
    expect(record.timestamp).toBe(2_000);
    expect(record.headers).toEqual({
      'millrace.dlq.code': Buffer.from('MILLRACE_PROCESSING'),
      'millrace.source.topic': Buffer.from('in'),
      'millrace.source.partition': Buffer.from('0'),
      'millrace.source.offset': Buffer.from('0'),
    });
  });

  it('names the node that threw, not the first node of the record', () => {
    const b = new StreamsBuilder('app');
    b.stream<string, number>('in')
      .filter('positive', (r) => r.value > 0)
      .mapValues('inverse', (v) => v)
      .peek('check', (r) => {
        if (r.value === 13) throw new Error('unlucky');
      })
      .to('out');
    const driver = new TopologyTestDriver(b.build());
    driver.createInputTopic<string, number>('in').pipeInput('k', 13);
    expect(driver.deadLetters('in').map((d) => d.node)).toEqual(['check']);
  });

  it('in flatMap part-way through forwards none of the records of that input', () => {
    const b = new StreamsBuilder('app');
    b.stream<string, number[]>('in')
      .flatMap('explode', function* (r) {
        for (const n of r.value) {
          if (n < 0) throw new Error('negative');
          yield { key: r.key, value: n };
        }
      })
      .to('out');
    const driver = new TopologyTestDriver(b.build());
    const input = driver.createInputTopic<string, number[]>('in');
    input.pipeInput('a', [1, 2, -3, 4]);
    input.pipeInput('b', [5]);
    expect(driver.createOutputTopic('out').readKeyValuesToList()).toEqual([{ key: 'b', value: 5 }]);
    expect(driver.deadLetters('in').map((d) => [d.code, d.node, d.source.offset])).toEqual([['MILLRACE_PROCESSING', 'explode', 0]]);
  });

  it('after one branch already wrote to a sink withdraws that output too', () => {
    // given: the source feeds two children; the second throws after the first has written
    const b = new StreamsBuilder('app');
    const nums = b.stream<string, number>('in');
    nums.to('copy');
    nums.mapValues('fragile', (v) => {
      if (v === 0) throw new Error('zero');
      return 1 / v;
    }).to('inverse');
    const driver = new TopologyTestDriver(b.build());
    // when
    const input = driver.createInputTopic<string, number>('in');
    input.pipeInput('a', 0);
    input.pipeInput('b', 4);
    // then
    expect(driver.createOutputTopic('copy').readKeyValuesToList()).toEqual([{ key: 'b', value: 4 }]);
    expect(driver.createOutputTopic('inverse').readKeyValuesToList()).toEqual([{ key: 'b', value: 0.25 }]);
  });
});

describe('a record that cannot be deserialised', () => {
  it('with a value that is not JSON becomes a MILLRACE_DESERIALIZATION dead letter from the source node', () => {
    // given
    const driver = new TopologyTestDriver(converter().build());
    const input = driver.createInputTopic<string, Reading>('in');
    // when
    input.pipeRawInput(Buffer.from('s1'), Buffer.from('{"celsius": 1'), 5);
    input.pipeInput('s2', { celsius: 0 });
    // then
    expect(driver.createOutputTopic('out').readKeyValuesToList()).toEqual([{ key: 's2', value: 32 }]);
    const [letter, ...rest] = driver.deadLetters('in');
    expect(rest).toEqual([]);
    expect(letter).toMatchObject({
      type: 'https://millrace.dev/problems/deserialization',
      status: 422,
      code: 'MILLRACE_DESERIALIZATION',
      source: { topic: 'in', partition: 0, offset: 0 },
      node: 'source-in',
      original: { key: base64('s1'), value: base64('{"celsius": 1'), encoding: 'base64' },
    });
  });

  it('with a key that is not UTF-8 under the string serde becomes the same kind of dead letter', () => {
    const driver = new TopologyTestDriver(converter().build());
    driver.createInputTopic('in').pipeRawInput(Buffer.from([0xc3, 0x28]), Buffer.from('{"celsius":1}'));
    expect(driver.deadLetters('in').map((d) => [d.code, d.original.key])).toEqual([['MILLRACE_DESERIALIZATION', Buffer.from([0xc3, 0x28]).toString('base64')]]);
    expect(driver.createOutputTopic('out').isEmpty()).toBe(true);
  });
});

describe('grouping a record without a key or value', () => {
  function counter(): TopologyTestDriver {
    const b = new StreamsBuilder('app');
    b.stream<string, number | null>('in').groupByKey('g').count('counts').toStream('changes').to('out', { valueSerde: Serdes.int64() });
    return new TopologyTestDriver(b.build());
  }

  it('sends a null key into count to the dead-letter topic and counts the next record', () => {
    const driver = counter();
    const input = driver.createInputTopic<string, number | null>('in');
    input.pipeInput(null, 1);
    input.pipeInput('a', 1);
    expect(driver.deadLetters('in').map((d) => [d.code, d['reason'], d.node, d.source.offset, d.original.key])).toEqual([
      ['MILLRACE_PROCESSING', 'null-key', 'counts', 0, null],
    ]);
    expect(driver.createOutputTopic('out', { valueSerde: Serdes.int64() }).readKeyValuesToList()).toEqual([{ key: 'a', value: 1 }]);
  });

  it('sends a tombstone into count to the dead-letter topic and leaves the count as it was', () => {
    const driver = counter();
    const input = driver.createInputTopic<string, number | null>('in');
    input.pipeInput('a', 1);
    input.pipeInput('a', null);
    input.pipeInput('a', 1);
    expect(driver.deadLetters('in').map((d) => [d['reason'], d.source.offset, d.original.value])).toEqual([['null-value', 1, null]]);
    expect(driver.createOutputTopic('out', { valueSerde: Serdes.int64() }).readValuesToList()).toEqual([1, 2]);
  });
});

describe('rollback of a failed record', () => {
  const balances: StoreSpec = { name: 'balances', kind: 'key-value', keySerde: Serdes.string(), valueSerde: Serdes.int64(), changelog: true };

  /**
   * Applies a signed amount to a balance. It writes the new balance and forwards it first, and only then
   * refuses an overdraft (or a record with a `fail` header): everything it did for that record must be undone.
   */
  const ledger: ProcessorSupplier<string, number, string, number> = () => ({
    process(record, ctx) {
      const store = ctx.store<string, number>('balances');
      const next = (store.get(record.key) ?? 0) + record.value;
      if (next === 0) store.delete(record.key);
      else store.put(record.key, next);
      store.put('last-account', record.value);
      ctx.forward({ ...record, value: next });
      if (next < 0) throw new Error('overdraft');
      if (record.headers['fail'] !== undefined) throw new Error('told to fail');
    },
  });

  function ledgerTopology(): TopologyDraft {
    return new TopologyDraft('bank')
      .addSource('in', { topics: ['tx'], keySerde: Serdes.string(), valueSerde: Serdes.int64() })
      .addStore(balances)
      .addProcessor('ledger', ledger, { parents: ['in'], stores: ['balances'] })
      .addSink('out', 'balances', { parents: ['ledger'], keySerde: Serdes.string(), valueSerde: Serdes.int64() });
  }

  function committed(driver: TopologyTestDriver): Record<string, number> {
    return Object.fromEntries(driver.committedStoreEntries('balances').map(([k, v]) => [k.toString(), Number(v.readBigInt64BE(0))]));
  }

  it('leaves the store unchanged and forwards nothing, although the processor forwarded before throwing', () => {
    // given
    const driver = new TopologyTestDriver(ledgerTopology().build());
    const input = driver.createInputTopic<string, number>('tx', { valueSerde: Serdes.int64() });
    const output = driver.createOutputTopic('balances', { valueSerde: Serdes.int64() });
    const changelog = driver.createOutputTopic('bank-balances-changelog', { keySerde: Serdes.bytes(), valueSerde: Serdes.bytes() });
    input.pipeInput('alice', 100);
    output.readRecordsToList();
    changelog.readRecordsToList();
    // when
    input.pipeInput('alice', -150);
    // then
    expect(output.isEmpty()).toBe(true);
    expect(changelog.isEmpty()).toBe(true);
    const store = driver.getKeyValueStore<string, number>('balances');
    expect([store.get('alice'), store.get('last-account')]).toEqual([100, 100]);
    expect(committed(driver)).toEqual({ alice: 100, 'last-account': 100 });
    expect(driver.deadLetters('tx').map((d) => [d.code, d.node, d.source.offset])).toEqual([['MILLRACE_PROCESSING', 'ledger', 1]]);
  });

  it('restores a key the record deleted and removes a key the record created', () => {
    // given
    const driver = new TopologyTestDriver(ledgerTopology().build());
    const input = driver.createInputTopic<string, number>('tx', { valueSerde: Serdes.int64() });
    input.pipeInput('bob', 5);
    // when: bob's balance is zeroed (deleted) and carol's created, each by a record that then fails
    input.pipeInput('bob', -5, undefined, { fail: Buffer.from('1') });
    input.pipeInput('carol', -1);
    // then
    const store = driver.getKeyValueStore<string, number>('balances');
    expect([store.get('bob'), store.get('carol'), store.get('last-account')]).toEqual([5, undefined, 5]);
    expect(committed(driver)).toEqual({ bob: 5, 'last-account': 5 });
    // and the store goes on working: the same delete without the header goes through
    input.pipeInput('bob', -5);
    expect(store.get('bob')).toBeUndefined();
    expect(committed(driver)).toEqual({ 'last-account': -5 });
  });

  it('rolls back the writes of a downstream stateful step the record already reached', () => {
    // given: a counter of balance changes downstream of the ledger, which it reaches before the ledger throws
    const draft = ledgerTopology()
      .addStore({ name: 'changes', kind: 'key-value', keySerde: Serdes.string(), valueSerde: Serdes.int64(), changelog: true })
      .addProcessor(
        'count-changes',
        (): Processor<string, number> => ({
          process(r, ctx) {
            const changes = ctx.store<string, number>('changes');
            changes.put(r.key, (changes.get(r.key) ?? 0) + 1);
          },
        }),
        { parents: ['ledger'], stores: ['changes'] },
      );
    const driver = new TopologyTestDriver(draft.build());
    const input = driver.createInputTopic<string, number>('tx', { valueSerde: Serdes.int64() });
    // when
    input.pipeInput('dan', -1);
    input.pipeInput('dan', 3);
    // then: only the second record was counted
    expect(driver.getKeyValueStore<string, number>('changes').get('dan')).toBe(1);
    expect(driver.committedStoreEntries('changes').map(([k, v]) => [k.toString(), Number(v.readBigInt64BE(0))])).toEqual([['dan', 1]]);
  });

  it('with errorPolicy "fail" throws MILLRACE_TASK_FAILED instead, after rolling the record back', () => {
    // given
    const driver = new TopologyTestDriver(ledgerTopology().build(), { errorPolicy: 'fail' });
    const input = driver.createInputTopic<string, number>('tx', { valueSerde: Serdes.int64() });
    input.pipeInput('alice', 10);
    // when
    let thrown: unknown;
    try {
      input.pipeInput('alice', -20);
    } catch (err) {
      thrown = err;
    }
    // then
    expect(isMillraceError(thrown, 'MILLRACE_TASK_FAILED')).toBe(true);
    if (!isMillraceError(thrown)) return;
    expect(thrown.details).toEqual({ topic: 'tx', partition: 0, offset: 1, node: 'ledger' });
    expect(thrown.cause).toBeInstanceOf(Error);
    expect(driver.deadLetters('tx')).toEqual([]);
    expect(driver.getKeyValueStore<string, number>('balances').get('alice')).toBe(10);
    expect(driver.createOutputTopic('balances', { valueSerde: Serdes.int64() }).readValuesToList()).toEqual([10]);
  });

  it('with errorPolicy "fail" also fails on a record that cannot be deserialised', () => {
    const driver = new TopologyTestDriver(ledgerTopology().build(), { errorPolicy: 'fail' });
    let code: string | undefined;
    try {
      driver.createInputTopic('tx').pipeRawInput(Buffer.from('a'), Buffer.from([1, 2, 3]));
    } catch (err) {
      if (isMillraceError(err)) code = err.code;
    }
    expect(code).toBe('MILLRACE_TASK_FAILED');
  });
});
