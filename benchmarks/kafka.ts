/**
 * The engine on Apache Kafka against a raw kafkajs consume→produce loop on the same broker, in the same run. Each
 * run gets fresh topics; a producer in this process appends the input (through `KafkaLog`, the same for every run)
 * while the consumer runs, and `measureStreaming` reports events/s, CPU-µs per event and the latency from a
 * record's append to its input offset being committed (see `measure.ts`; positions are read from the broker every
 * `POLL_MS` ms, which bounds the resolution). Every run checks that each input gave exactly one output.
 *
 * The raw loop reads a batch and produces one output per record; kafkajs commits the offsets of produced batches
 * every 100 ms (the engine's commit interval), so a committed offset means its output is written: at least once, with
 * no transaction, dead letters, state or metrics — less work than the engine's exactly-once checkpoints, and what a
 * hand-written kafkajs service would do. CPU is this process's (consumer and producer); the broker runs elsewhere.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import kafkajs from 'kafkajs';
import { KafkaLog } from '../engine/log/kafka/kafka-log.js';
import { offset, type AppendRecord, type Log } from '../engine/log/log.js';
import { Serdes } from '../engine/serde/serde.js';
import { StreamsBuilder } from '../engine/topology/builder.js';
import type { Topology } from '../engine/topology/topology.js';
import { measureStreaming, type Measurement } from './measure.js';
import { benchRunner } from './runner.js';

export interface KafkaBenchmarkOptions {
  readonly brokers: string[];
  readonly events: number;
  readonly partitions: number;
  readonly keys: number;
}

export interface KafkaFigures {
  readonly raw: Measurement;
  readonly stateless: Measurement;
  readonly keyedCount: Measurement;
}

const POLL_MS = 20;
const APPEND_BATCH = 1_000;
/** Records in flight (appended, not committed), as in the embedded scenarios. */
const WINDOW_RECORDS = 20_000;

export function kafkaEvent(i: number, keys: number): { key: Buffer; value: Buffer } {
  return {
    key: Buffer.from(`user-${(i * 7919) % keys}`),
    value: Buffer.from(JSON.stringify({ seq: i, amount: (i % 997) / 10, country: i % 3 === 0 ? 'NL' : 'FR' })),
  };
}

/** A consumer of `input` (writing `output`) that the producer feeds while it runs. */
export interface KafkaConsumer {
  readonly group: string;
  start(): Promise<void>;
  check(): void;
  stop(): Promise<void>;
}

/** Fresh topics, a consumer on them, the input appended while it runs; the topics are deleted after. */
export async function kafkaStreamingRun(
  log: Log,
  options: KafkaBenchmarkOptions,
  consumerOn: (input: string, output: string) => KafkaConsumer,
): Promise<Measurement> {
  const suffix = randomUUID().slice(0, 8);
  const input = `bench-in-${suffix}`;
  const output = `bench-out-${suffix}`;
  await log.createTopic({ name: input, partitions: options.partitions });
  await log.createTopic({ name: output, partitions: options.partitions });
  try {
    const consumer = consumerOn(input, output);
    await consumer.start();
    let measured: Measurement;
    try {
      measured = await measureStreaming({
        events: options.events,
        appendBatch: APPEND_BATCH,
        windowRecords: WINDOW_RECORDS,
        pollMs: POLL_MS,
        record: (i): AppendRecord => ({ topic: input, ...kafkaEvent(i, options.keys) }),
        append: (records) => log.append(records),
        committed: () => log.committedOffsets(consumer.group, input),
        check: () => consumer.check(),
      });
    } finally {
      await consumer.stop();
    }
    const outputs = await countRecords(log, output);
    if (outputs !== options.events) throw new Error(`${consumer.group}: ${outputs} output records for ${options.events} inputs`);
    return measured;
  } finally {
    await deleteTopicsOf(log, [input, output]);
  }
}

/**
 * Deletes every topic whose name starts with one of `prefixes`: a run's input and output, and what the engine made
 * around them (`<input>.dlq`, `<app>-late-records`, changelogs). A shared broker should not collect them run after run.
 */
async function deleteTopicsOf(log: Log, prefixes: readonly string[]): Promise<void> {
  const names = (await log.listTopics()).map((t) => t.name).filter((name) => prefixes.some((p) => name.startsWith(p)));
  for (const name of names) await log.deleteTopic(name).catch(() => undefined);
}

/** Committed records of a topic (offsets count transaction markers too, so the records are read and counted). */
async function countRecords(log: Log, topic: string): Promise<number> {
  let count = 0;
  for (const { partition, start, end } of await log.partitionOffsets(topic)) {
    let at = offset(start);
    while (at < end) {
      const batch = await log.read(topic, partition, at, { maxRecords: 5_000 });
      count += batch.records.length;
      if (batch.nextOffset <= at) break;
      at = batch.nextOffset;
    }
  }
  return count;
}

/** The baseline: a kafkajs consumer group that produces each batch to `output`, then commits its offsets. */
function rawLoop(options: KafkaBenchmarkOptions): (input: string, output: string) => KafkaConsumer {
  return (input, output) => {
    const group = `bench-raw-${randomUUID().slice(0, 8)}`;
    const kafka = new kafkajs.Kafka({ clientId: 'bench-raw', brokers: options.brokers, logLevel: kafkajs.logLevel.NOTHING });
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    const consumer = kafka.consumer({ groupId: group });
    let failure: unknown;
    return {
      group,
      start: async () => {
        await producer.connect();
        await consumer.connect();
        await consumer.subscribe({ topic: input, fromBeginning: true });
        consumer.on(consumer.events.CRASH, (event) => (failure = event.payload.error));
        await consumer.run({
          // Offsets of batches already produced, committed every 100 ms (the engine's commit interval), not per batch.
          autoCommitInterval: 100,
          // Every partition at once, as the engine's tasks run.
          partitionsConsumedConcurrently: options.partitions,
          eachBatch: async ({ batch }) => {
            if (batch.messages.length === 0) return;
            await producer.send({ topic: output, messages: batch.messages.map((m) => ({ key: m.key, value: m.value, partition: batch.partition })) });
          },
        });
      },
      check: () => {
        if (failure !== undefined) throw new Error(`the raw kafkajs loop crashed: ${String(failure)}`);
      },
      stop: async () => {
        await consumer.disconnect();
        await producer.disconnect();
      },
    };
  };
}

/** The engine's runner of `build(input, output)` on `log`, its local state in a temporary LevelDB. */
export function engineConsumer(log: Log, build: (input: string, output: string) => Topology): (input: string, output: string) => KafkaConsumer {
  return (input, output) => {
    const topology = build(input, output);
    let dir: string | undefined;
    let state: ClassicLevel<Buffer, Buffer> | undefined;
    let runner: ReturnType<typeof benchRunner> | undefined;
    return {
      group: topology.applicationId,
      start: async () => {
        dir = await mkdtemp(join(tmpdir(), 'millrace-bench-kafka-'));
        const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
        state = db;
        await db.open();
        runner = benchRunner(log, topology, db, {
          localState: { write: async (writes) => void (writes.length > 0 && (await db.batch(writes.map((w) => ({ ...w }))))) },
        });
        await runner.start();
      },
      check: () => {
        if (runner?.tasks.some((t) => t.state === 'failed') === true) throw new Error(`${topology.applicationId}: a task failed`);
      },
      stop: async () => {
        await runner?.stop();
        await deleteTopicsOf(log, [`${topology.applicationId}-`]);
        await state?.close();
        if (dir !== undefined) await rm(dir, { recursive: true, force: true });
      },
    };
  };
}

export const statelessTopology = (input: string, output: string): Topology => {
  const b = new StreamsBuilder(`bench-stateless-${randomUUID().slice(0, 8)}`);
  b.stream<string, { amount: number }>(input).mapValues('enrich', (v) => ({ ...v, cents: Math.round(v.amount * 100) })).to(output);
  return b.build();
};

const keyedCount = (input: string, output: string): Topology => {
  const b = new StreamsBuilder(`bench-count-${randomUUID().slice(0, 8)}`);
  b.stream<string, unknown>(input).groupByKey('by-user').count('counts').toStream('changes').to(output, { valueSerde: Serdes.json<number>() });
  return b.build();
};

/** One round of the three scenarios; `round` rotates which goes first. */
export async function kafkaRound(options: KafkaBenchmarkOptions, round = 0): Promise<KafkaFigures> {
  const log = new KafkaLog({ brokers: options.brokers, clientId: 'millrace-bench' });
  await log.open();
  try {
    const results: Partial<Record<keyof KafkaFigures, Measurement>> = {};
    const runs: Array<[keyof KafkaFigures, (input: string, output: string) => KafkaConsumer]> = [
      ['raw', rawLoop(options)],
      ['stateless', engineConsumer(log, statelessTopology)],
      ['keyedCount', engineConsumer(log, keyedCount)],
    ];
    for (let i = 0; i < runs.length; i++) {
      const [name, consumer] = runs[(round + i) % runs.length]!;
      results[name] = await kafkaStreamingRun(log, options, consumer);
    }
    return results as KafkaFigures;
  } finally {
    await log.close();
  }
}
