/**
 * The engine on Apache Kafka against a raw kafkajs consume→produce loop on the same broker, in the same run: both
 * read the same pre-produced input and write one output per input record; the figure is events/s from start to the
 * last output, and each engine scenario is printed as a ratio to the raw loop.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ClassicLevel } from 'classic-level';
import kafkajs from 'kafkajs';
import { KafkaLog } from '../engine/log/kafka/kafka-log.js';
import type { AppendRecord, Log } from '../engine/log/log.js';
import type { TopologyRunner } from '../engine/runtime/runner.js';
import { Serdes } from '../engine/serde/serde.js';
import { StreamsBuilder } from '../engine/topology/builder.js';
import type { Topology } from '../engine/topology/topology.js';
import { benchRunner } from './runner.js';

export interface KafkaBenchmarkOptions {
  readonly brokers: string[];
  readonly events: number;
  readonly partitions: number;
  readonly keys: number;
}

export interface KafkaFigures {
  readonly raw: number;
  readonly stateless: number;
  readonly keyedCount: number;
  /** Process CPU per event (the client side: the broker runs elsewhere). */
  readonly rawCpuUsPerEvent: number;
  readonly statelessCpuUsPerEvent: number;
  readonly keyedCountCpuUsPerEvent: number;
}

/** events/s and this process's CPU-µs per event of `run`, which returns events/s. */
async function withCpu(events: number, run: () => Promise<number>): Promise<{ eventsPerS: number; cpuUsPerEvent: number }> {
  const cpu = process.cpuUsage();
  const eventsPerS = await run();
  const usage = process.cpuUsage(cpu);
  return { eventsPerS, cpuUsPerEvent: (usage.user + usage.system) / events };
}

function event(i: number, keys: number): { key: Buffer; value: Buffer } {
  return {
    key: Buffer.from(`user-${(i * 7919) % keys}`),
    value: Buffer.from(JSON.stringify({ seq: i, amount: (i % 997) / 10, country: i % 3 === 0 ? 'NL' : 'FR' })),
  };
}

async function prepareInput(log: Log, options: KafkaBenchmarkOptions): Promise<{ input: string; output: string }> {
  const suffix = randomUUID().slice(0, 8);
  const input = `bench-in-${suffix}`;
  const output = `bench-out-${suffix}`;
  await log.createTopic({ name: input, partitions: options.partitions });
  await log.createTopic({ name: output, partitions: options.partitions });
  for (let i = 0; i < options.events; i += 5_000) {
    const records: AppendRecord[] = [];
    for (let j = i; j < Math.min(options.events, i + 5_000); j++) records.push({ topic: input, ...event(j, options.keys) });
    await log.append(records);
  }
  return { input, output };
}

/** The baseline: a consumer group reading `input` and producing each record to `output`, nothing else. */
async function rawLoop(options: KafkaBenchmarkOptions, input: string, output: string): Promise<number> {
  const kafka = new kafkajs.Kafka({ clientId: 'bench-raw', brokers: options.brokers, logLevel: kafkajs.logLevel.NOTHING });
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  const consumer = kafka.consumer({ groupId: `bench-raw-${randomUUID().slice(0, 8)}` });
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topic: input, fromBeginning: true });
  let done = 0;
  const started = performance.now();
  let finished!: () => void;
  const all = new Promise<void>((resolve) => (finished = resolve));
  await consumer.run({
    eachBatch: async ({ batch }) => {
      await producer.send({
        topic: output,
        messages: batch.messages.map((m) => ({ key: m.key, value: m.value, partition: batch.partition })),
      });
      done += batch.messages.length;
      if (done >= options.events) finished();
    },
  });
  await all;
  const seconds = (performance.now() - started) / 1000;
  await consumer.disconnect();
  await producer.disconnect();
  return options.events / seconds;
}

async function engine(options: KafkaBenchmarkOptions, log: Log, build: (input: string, output: string) => Topology, input: string, output: string): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'millrace-bench-kafka-'));
  const state = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await state.open();
  const topology = build(input, output);
  const runner = benchRunner(log, topology, state, { localState: { write: async (writes) => void (writes.length > 0 && (await state.batch(writes.map((w) => ({ ...w }))))) } });
  const started = performance.now();
  await runner.start();
  for (;;) {
    const committed = await log.committedOffsets(topology.applicationId, input);
    if ([...committed.values()].reduce((sum, o) => sum + o, 0) >= options.events) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const seconds = (performance.now() - started) / 1000;
  await runner.stop();
  await state.close();
  await rm(dir, { recursive: true, force: true });
  return options.events / seconds;
}

const stateless = (input: string, output: string): Topology => {
  const b = new StreamsBuilder(`bench-stateless-${randomUUID().slice(0, 8)}`);
  b.stream<string, { amount: number }>(input).mapValues('enrich', (v) => ({ ...v, cents: Math.round(v.amount * 100) })).to(output);
  return b.build();
};

const keyedCount = (input: string, output: string): Topology => {
  const b = new StreamsBuilder(`bench-count-${randomUUID().slice(0, 8)}`);
  b.stream<string, unknown>(input).groupByKey('by-user').count('counts').toStream('changes').to(output, { valueSerde: Serdes.json<number>() });
  return b.build();
};

/** One round of the three scenarios, each on its own copy of the input. */
export async function kafkaRound(options: KafkaBenchmarkOptions): Promise<KafkaFigures> {
  const log = new KafkaLog({ brokers: options.brokers, clientId: 'millrace-bench' });
  await log.open();
  try {
    const a = await prepareInput(log, options);
    const raw = await withCpu(options.events, () => rawLoop(options, a.input, a.output));
    const b = await prepareInput(log, options);
    const statelessRun = await withCpu(options.events, () => engine(options, log, stateless, b.input, b.output));
    const c = await prepareInput(log, options);
    const countRun = await withCpu(options.events, () => engine(options, log, keyedCount, c.input, c.output));
    for (const { input, output } of [a, b, c]) {
      await log.deleteTopic(input);
      await log.deleteTopic(output);
    }
    return {
      raw: raw.eventsPerS,
      stateless: statelessRun.eventsPerS,
      keyedCount: countRun.eventsPerS,
      rawCpuUsPerEvent: raw.cpuUsPerEvent,
      statelessCpuUsPerEvent: statelessRun.cpuUsPerEvent,
      keyedCountCpuUsPerEvent: countRun.cpuUsPerEvent,
    };
  } finally {
    await log.close();
  }
}
