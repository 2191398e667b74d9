import { describe, expect, it } from 'vitest';
import type { LogRecord, Offset } from '../../engine/log/log.js';
import { partitionForKey } from '../../engine/log/partitioner.js';
import { TimeWindows } from '../../engine/operators/windows.js';
import { TaskExecutor, type OutputRecord, type TaskEnvironment } from '../../engine/runtime/task-executor.js';
import { Serdes } from '../../engine/serde/serde.js';
import { MemoryBackend } from '../../engine/state/backend.js';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import { StreamsBuilder, windowedSerde } from '../../engine/topology/builder.js';
import type { Topology } from '../../engine/topology/topology.js';
import { int64Bytes, thrownCode } from './helpers.js';

describe('sources and sinks with serdes', () => {
  it('read string keys and JSON values by default and write them back the same way', () => {
    // given
    const b = new StreamsBuilder('app');
    b.stream<string, { n: number; tags: string[] }>('in').to('out');
    const driver = new TopologyTestDriver(b.build());
    // when
    driver.createInputTopic('in').pipeInput('ключ', { n: 1, tags: ['a'] });
    // then: the bytes on the topic are UTF-8 and JSON
    const raw = driver.createOutputTopic('out', { keySerde: Serdes.bytes(), valueSerde: Serdes.bytes() }).readRecord();
    expect(raw.key).toEqual(Buffer.from('ключ', 'utf8'));
    expect(raw.value).toEqual(Buffer.from('{"n":1,"tags":["a"]}', 'utf8'));
  });

  it('read and write int64 keys and values as 8 big-endian bytes', () => {
    const b = new StreamsBuilder('app');
    b.stream<number, number>('in', { keySerde: Serdes.int64(), valueSerde: Serdes.int64() })
      .mapValues('square', (v) => v * v, { valueSerde: Serdes.int64() })
      .to('out');
    const driver = new TopologyTestDriver(b.build());
    driver.createInputTopic('in', { keySerde: Serdes.int64(), valueSerde: Serdes.int64() }).pipeInput(-7, 3_000_000);
    const raw = driver.createOutputTopic('out', { keySerde: Serdes.bytes(), valueSerde: Serdes.bytes() }).readRecord();
    expect(raw.key).toEqual(int64Bytes(-7));
    expect(raw.value).toEqual(int64Bytes(9_000_000_000_000));
  });

  it('read and write float64 values', () => {
    const b = new StreamsBuilder('app');
    b.stream<string, number>('in', { valueSerde: Serdes.float64() })
      .mapValues('half', (v) => v / 2, { valueSerde: Serdes.float64() })
      .to('out');
    const driver = new TopologyTestDriver(b.build());
    const input = driver.createInputTopic<string, number>('in', { valueSerde: Serdes.float64() });
    input.pipeInput('a', 3);
    input.pipeInput('b', -0.5);
    expect(driver.createOutputTopic('out', { valueSerde: Serdes.float64() }).readValuesToList()).toEqual([1.5, -0.25]);
  });

  it('forget the value serde after a step that changes values without naming one: the sink writes JSON', () => {
    const b = new StreamsBuilder('app');
    const nums = b.stream<string, number>('in', { valueSerde: Serdes.float64() });
    nums.mapValues('same', (v) => v).to('changed');
    nums.filter('kept', () => true).to('unchanged');
    const driver = new TopologyTestDriver(b.build());
    driver.createInputTopic<string, number>('in', { valueSerde: Serdes.float64() }).pipeInput('a', 0.5);
    const bytes = { valueSerde: Serdes.bytes() };
    expect(driver.createOutputTopic('changed', bytes).readRecord().value).toEqual(Buffer.from('0.5'));
    expect(driver.createOutputTopic('unchanged', bytes).readRecord().value?.readDoubleBE(0)).toBe(0.5);
  });

  it('pass bytes through untouched', () => {
    const b = new StreamsBuilder('app');
    b.stream<Buffer, Buffer>('in', { keySerde: Serdes.bytes(), valueSerde: Serdes.bytes() }).to('out');
    const driver = new TopologyTestDriver(b.build());
    const notUtf8 = Buffer.from([0xff, 0x00, 0xfe]);
    driver.createInputTopic('in', { keySerde: Serdes.bytes(), valueSerde: Serdes.bytes() }).pipeInput(notUtf8, Buffer.from([1, 2, 3]));
    const out = driver.createOutputTopic('out', { keySerde: Serdes.bytes(), valueSerde: Serdes.bytes() }).readKeyValue();
    expect(out).toEqual({ key: notUtf8, value: Buffer.from([1, 2, 3]) });
  });

  it('use the serdes given to `to` over those of the stream', () => {
    const b = new StreamsBuilder('app');
    b.stream<string, number>('in').to('out', { keySerde: Serdes.string(), valueSerde: Serdes.int64() });
    const driver = new TopologyTestDriver(b.build());
    driver.createInputTopic<string, number>('in').pipeInput('a', 42);
    const raw = driver.createOutputTopic('out', { valueSerde: Serdes.bytes() }).readKeyValue();
    expect(raw).toEqual({ key: 'a', value: int64Bytes(42) });
  });

  it('write a key whose serde is unknown (after map) as UTF-8 if it is a string and as JSON otherwise', () => {
    const b = new StreamsBuilder('app');
    const nums = b.stream<string, number>('in');
    nums.map('numeric-key', (r) => ({ key: r.value, value: r.key })).to('numeric');
    nums.map('object-key', (r) => ({ key: { id: r.value }, value: r.key })).to('object');
    nums.map('string-key', (r) => ({ key: `#${r.value}`, value: r.key })).to('string');
    const driver = new TopologyTestDriver(b.build());
    driver.createInputTopic<string, number>('in').pipeInput('a', 42);
    const bytes = { keySerde: Serdes.bytes() };
    expect(driver.createOutputTopic('numeric', bytes).readRecord().key).toEqual(Buffer.from('42'));
    expect(driver.createOutputTopic('object', bytes).readRecord().key).toEqual(Buffer.from('{"id":42}'));
    expect(driver.createOutputTopic('string', bytes).readRecord().key).toEqual(Buffer.from('#42'));
  });

  it('read several topics with one source whose default name is a valid node name', () => {
    // The default name joins the topics with '+', which the node-name pattern rejects (engine bug: see report).
    const b = new StreamsBuilder('app');
    b.stream<string, number>(['left', 'right']).to('out');
    const driver = new TopologyTestDriver(b.build());
    driver.createInputTopic<string, number>('right').pipeInput('r', 1);
    driver.createInputTopic<string, number>('left').pipeInput('l', 2);
    expect(driver.createOutputTopic('out').readKeyValuesToList()).toEqual([
      { key: 'r', value: 1 },
      { key: 'l', value: 2 },
    ]);
  });

  it('read several topics with one source given an explicit name', () => {
    const b = new StreamsBuilder('app');
    b.stream<string, number>(['left', 'right'], { name: 'both' }).to('out');
    const topology = b.build();
    expect(topology.describe().subtopologies[0]!.nodes[0]).toMatchObject({ name: 'both', topics: ['left', 'right'] });
    const driver = new TopologyTestDriver(topology);
    driver.createInputTopic<string, number>('right').pipeInput('r', 1);
    driver.createInputTopic<string, number>('left').pipeInput('l', 2);
    expect(driver.createOutputTopic('out').readKeyValuesToList()).toEqual([
      { key: 'r', value: 1 },
      { key: 'l', value: 2 },
    ]);
  });

  it('dead-letter int64 and float64 bytes of the wrong length, and an int64 outside the safe range', () => {
    const b = new StreamsBuilder('app');
    b.stream<number, number>('in', { keySerde: Serdes.int64(), valueSerde: Serdes.float64() }).to('out');
    const driver = new TopologyTestDriver(b.build());
    const input = driver.createInputTopic('in', { keySerde: Serdes.bytes(), valueSerde: Serdes.bytes() });
    input.pipeInput(Buffer.alloc(7), Buffer.alloc(8));
    input.pipeInput(Buffer.alloc(8), Buffer.alloc(4));
    input.pipeInput(int64Bytes(0).fill(0x7f, 0, 1), Buffer.alloc(8));
    input.pipeInput(int64Bytes(Number.MAX_SAFE_INTEGER), Buffer.alloc(8));
    expect(driver.deadLetters('in').map((d) => [d.code, d.source.offset])).toEqual([
      ['MILLRACE_DESERIALIZATION', 0],
      ['MILLRACE_DESERIALIZATION', 1],
      ['MILLRACE_DESERIALIZATION', 2],
    ]);
    expect(driver.createOutputTopic('out', { keySerde: Serdes.int64(), valueSerde: Serdes.float64() }).readKeyValuesToList()).toEqual([
      { key: Number.MAX_SAFE_INTEGER, value: 0 },
    ]);
  });

  it('refuse an input topic the topology does not read', () => {
    const b = new StreamsBuilder('app');
    b.stream('in').to('out');
    const driver = new TopologyTestDriver(b.build());
    expect(thrownCode(() => driver.createInputTopic('elsewhere'))).toBe('MILLRACE_TOPIC_UNKNOWN');
  });

  it('turn a value the sink cannot serialise into a dead letter from the sink node', () => {
    const b = new StreamsBuilder('app');
    b.stream<string, number>('in').mapValues('half', (v) => v / 2).to('out', { valueSerde: Serdes.int64() });
    const driver = new TopologyTestDriver(b.build());
    const input = driver.createInputTopic<string, number>('in');
    input.pipeInput('odd', 3);
    input.pipeInput('even', 4);
    expect(driver.createOutputTopic('out', { valueSerde: Serdes.int64() }).readKeyValuesToList()).toEqual([{ key: 'even', value: 2 }]);
    expect(driver.deadLetters('in').map((d) => [d.code, d.node, d.source.offset])).toEqual([['MILLRACE_SERIALIZATION', 'to-out', 0]]);
  });
});

describe('windowed keys', () => {
  it('are written as the inner key bytes, then window start and end as 8 big-endian bytes each', () => {
    const serde = windowedSerde(Serdes.string());
    const context = { topic: 't', isKey: true };
    const bytes = serde.serialize({ key: 'ab', window: { start: 1000, end: 2000 } }, context);
    const expected = Buffer.concat([Buffer.from('ab'), int64Bytes(1000), int64Bytes(2000)]);
    expect(bytes).toEqual(expected);
    expect(serde.deserialize(bytes, context)).toEqual({ key: 'ab', window: { start: 1000, end: 2000 } });
    expect(serde.name).toBe('windowed(string)');
  });

  it('shorter than 16 bytes fail to deserialise with MILLRACE_DESERIALIZATION', () => {
    const serde = windowedSerde(Serdes.string());
    expect(thrownCode(() => serde.deserialize(Buffer.alloc(15), { topic: 't', isKey: true }))).toBe('MILLRACE_DESERIALIZATION');
  });

  it('come out of a windowed aggregation and can be read back with windowedSerde', () => {
    const b = new StreamsBuilder('app');
    b.stream<string, number>('in').groupByKey('g').windowedBy(TimeWindows.tumbling(100)).count('per-window').toStream('changes').to('out');
    const driver = new TopologyTestDriver(b.build());
    driver.createInputTopic<string, number>('in').pipeInput('k', 1, 250);
    const out = driver.createOutputTopic('out', { keySerde: windowedSerde(Serdes.string()), valueSerde: Serdes.int64() });
    expect(out.readKeyValuesToList()).toEqual([{ key: { key: 'k', window: { start: 200, end: 300 } }, value: 1 }]);
  });
});

describe('`to` and partitions', () => {
  function passThrough(): Topology {
    const b = new StreamsBuilder('app');
    b.stream<string | null, string>('in', { valueSerde: Serdes.string() }).to('out', { valueSerde: Serdes.string() });
    return b.build();
  }

  /** Runs one task of the topology on `taskPartition` against sink topics of `partitions` partitions. */
  function runTask(topology: Topology, taskPartition: number, partitions: number, keys: Array<string | null>): OutputRecord[] {
    const env: TaskEnvironment = {
      applicationId: topology.applicationId,
      errorPolicy: 'dead-letter',
      cacheMaxBytesPerStore: 1 << 20,
      openBackend: (store, partition) => new MemoryBackend(store.name, partition),
      partitionsOf: () => partitions,
      wallClockMs: () => 0,
      globalStore: () => {
        throw new Error('this topology has no global store');
      },
    };
    const task = new TaskExecutor(topology, topology.subtopologies[0]!, taskPartition, env);
    task.init();
    keys.forEach((key, i) => {
      const input: LogRecord = {
        topic: 'in',
        partition: taskPartition,
        offset: i as Offset,
        timestamp: i,
        key: key === null ? null : Buffer.from(key),
        value: Buffer.from(`v${i}`),
        headers: {},
      };
      expect(task.process(input)).toBeUndefined();
    });
    return task.takeCheckpoint().outputs;
  }

  const keys = ['alpha', 'beta', null, 'gamma', 'alpha', null, 'delta'];

  it('writes the same records whatever the partition count of the sink topic', () => {
    const topology = passThrough();
    const strip = (records: OutputRecord[]) => records.map(({ partition: _partition, ...rest }) => rest);
    const onOne = runTask(topology, 0, 1, keys);
    const onEight = runTask(topology, 0, 8, keys);
    expect(strip(onEight)).toEqual(strip(onOne));
    expect(onOne.map((r) => r.value?.toString())).toEqual(['v0', 'v1', 'v2', 'v3', 'v4', 'v5', 'v6']);
  });

  it('places a keyed record by the hash of its key bytes (as Kafka does) and a keyless one on the input partition', () => {
    const topology = passThrough();
    const out = runTask(topology, 5, 3, keys);
    expect(out.map((r) => r.partition)).toEqual(keys.map((k) => (k === null ? 5 % 3 : partitionForKey(Buffer.from(k), 3))));
    // The same key always lands in the same partition.
    expect(out[0]!.partition).toBe(out[4]!.partition);
  });

  it('puts everything on one partition in the test driver, in processing order', () => {
    const driver = new TopologyTestDriver(passThrough());
    const input = driver.createInputTopic<string, string>('in', { valueSerde: Serdes.string() });
    keys.forEach((k, i) => input.pipeInput(k, `v${i}`));
    const out = driver.createOutputTopic('out', { valueSerde: Serdes.string() }).readKeyValuesToList();
    expect(out).toEqual(keys.map((key, i) => ({ key, value: `v${i}` })));
  });
});
