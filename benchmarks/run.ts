/**
 * Throughput of the engine on the embedded log, each figure printed as a ratio to raw `classic-level` batch
 * writes measured in the same run (the machines are shared and noisy: only same-run ratios mean anything).
 *
 *   npm run bench                 # 3 rounds, median reported
 *   npm run bench -- --quick      # 1 round, smaller input
 *   npm run bench -- --kafka      # also on Apache Kafka (MILLRACE_KAFKA_BROKERS, or a broker test/infra/kafka starts)
 *   npm run bench -- --only=inference   # one group of scenarios: embedded, inference or kafka
 *
 * The last line of each scenario is machine-readable: `BENCH name=… value=… baseline=… ratio=…`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ClassicLevel } from 'classic-level';
import { EmbeddedLog } from '../engine/log/embedded/embedded-log.js';
import type { AppendRecord } from '../engine/log/log.js';
import type { TopologyRunner } from '../engine/runtime/runner.js';
import { Serdes } from '../engine/serde/serde.js';
import { StreamsBuilder } from '../engine/topology/builder.js';
import type { Topology } from '../engine/topology/topology.js';
import { inferenceRound, MICRO_BATCH, MODEL, WORKERS, type InferenceFigures } from './inference.js';
import { kafkaRound, type KafkaFigures } from './kafka.js';
import { benchRunner } from './runner.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 1 : 3;
const EVENTS = quick ? 100_000 : 300_000;
const PARTITIONS = 4;
const KEYS = 10_000;
const APPEND_BATCH = 1_000;
const GROUPS = ['embedded', 'inference', 'kafka'] as const;
const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length);
if (only !== undefined && !(GROUPS as readonly string[]).includes(only)) throw new Error(`--only=${only}: expected one of ${GROUPS.join(', ')}`);
const runs = (group: (typeof GROUPS)[number]): boolean => only === undefined || only === group;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'millrace-bench-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function event(i: number): { key: Buffer; value: Buffer } {
  return {
    key: Buffer.from(`user-${(i * 7919) % KEYS}`),
    value: Buffer.from(JSON.stringify({ seq: i, amount: (i % 997) / 10, country: i % 3 === 0 ? 'NL' : 'FR' })),
  };
}

/** Baseline: the same records written straight into LevelDB, in batches, as fast as it goes. */
async function rawLevelWrites(): Promise<number> {
  return withDir(async (dir) => {
    const db = new ClassicLevel<Buffer, Buffer>(join(dir, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    const started = performance.now();
    for (let i = 0; i < EVENTS; i += APPEND_BATCH) {
      const ops = [];
      for (let j = i; j < i + APPEND_BATCH; j++) {
        const key = Buffer.allocUnsafe(17);
        key[0] = 3;
        key.writeUInt32BE(1, 1);
        key.writeUInt32BE(j % PARTITIONS, 5);
        key.writeBigUInt64BE(BigInt(j), 9);
        ops.push({ type: 'put' as const, key, value: event(j).value });
      }
      await db.batch(ops);
    }
    const seconds = (performance.now() - started) / 1000;
    await db.close();
    return EVENTS / seconds;
  });
}

function statelessTopology(): Topology {
  const b = new StreamsBuilder('bench-stateless');
  b.stream<string, { seq: number; amount: number; country: string }>('in')
    .filter('big-enough', (r) => r.value.amount >= 0)
    .mapValues('enrich', (v) => ({ ...v, cents: Math.round(v.amount * 100) }))
    .to('out');
  return b.build();
}

function keyedCountTopology(): Topology {
  const b = new StreamsBuilder('bench-count');
  b.stream<string, unknown>('in').groupByKey('by-user').count('counts').toStream('changes').to('out', { valueSerde: Serdes.json<number>() });
  return b.build();
}

/** Produce `EVENTS` records while the topology runs; events/s from the first append to the last output committed. */
async function topologyThroughput(build: () => Topology): Promise<number> {
  return withDir(async (dir) => {
    const log = new EmbeddedLog({ path: join(dir, 'log') });
    await log.open();
    await log.createTopic({ name: 'in', partitions: PARTITIONS });
    await log.createTopic({ name: 'out', partitions: PARTITIONS });
    const topology = build();
    const runner = benchRunner(log, topology, log.db);
    await runner.start();
    const started = performance.now();
    for (let i = 0; i < EVENTS; i += APPEND_BATCH) {
      const records: AppendRecord[] = [];
      for (let j = i; j < i + APPEND_BATCH; j++) records.push({ topic: 'in', ...event(j) });
      await log.append(records);
    }
    for (;;) {
      const done = runner.tasks.flatMap((t) => t.inputs()).reduce((sum, input) => sum + input.committed, 0);
      if (done >= EVENTS) break;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const seconds = (performance.now() - started) / 1000;
    await runner.stop();
    const outputs = (await log.partitionOffsets('out')).reduce((sum, p) => sum + p.end, 0);
    if (outputs !== EVENTS) throw new Error(`expected ${EVENTS} outputs, found ${outputs}`);
    await log.close();
    return EVENTS / seconds;
  });
}

function report(name: string, values: number[], baselines: number[]): void {
  reportAgainst(name, values, baselines, 'raw classic-level batch writes');
}

async function main(): Promise<void> {
  console.log(`Millrace benchmarks: ${EVENTS.toLocaleString('en')} events, ${PARTITIONS} partitions, ${KEYS.toLocaleString('en')} keys, ${ROUNDS} round(s), Node ${process.version}`);
  if (runs('embedded')) await embedded();
  if (runs('inference')) await inference();
  if (runs('kafka')) await kafka();
}

async function embedded(): Promise<void> {
  const baseline: number[] = [];
  const stateless: number[] = [];
  const keyedCount: number[] = [];
  // Interleaved rounds, so a burst of load from a neighbour hits every scenario alike.
  for (let round = 0; round < ROUNDS; round++) {
    baseline.push(await rawLevelWrites());
    stateless.push(await topologyThroughput(statelessTopology));
    keyedCount.push(await topologyThroughput(keyedCountTopology));
  }
  report('embedded.produce-stateless-sink', stateless, baseline);
  report('embedded.keyed-count', keyedCount, baseline);
}

/**
 * Inference through the scoring topology: rows/s micro-batched as a ratio to one row per call, and the event loop's
 * p99 delay while the micro-batched topology runs, as a ratio to the same engine idle (higher is worse).
 */
async function inference(): Promise<void> {
  const options = { rows: quick ? 30_000 : 100_000, partitions: PARTITIONS, keys: KEYS, idleMs: quick ? 1_000 : 3_000 };
  console.log(`Inference (${MODEL}, ${WORKERS} worker thread(s)): ${options.rows.toLocaleString('en')} feature vectors per run, maxBatch ${MICRO_BATCH} vs 1`);
  const rounds: InferenceFigures[] = [];
  for (let round = 0; round < ROUNDS; round++) rounds.push(await inferenceRound(options));
  const rounded = (values: number[]): string => values.map((v) => Math.round(v)).join(', ');
  const rawBatched = rounds.map((r) => r.rawBatchedRowsPerS);
  const rawSingle = rounds.map((r) => r.rawSingleRowsPerS);
  console.log(`inference.raw-predict: ${Math.round(median(rawBatched)).toLocaleString('en')} rows/s in ${MICRO_BATCH}-row calls (rounds: ${rounded(rawBatched)}), ${Math.round(median(rawSingle)).toLocaleString('en')} rows/s in 1-row calls (rounds: ${rounded(rawSingle)})`);
  reportAgainst('inference-microbatch', rounds.map((r) => r.batchedRowsPerS), rounds.map((r) => r.singleRowsPerS), 'one row per call (maxBatch 1)', ROWS_PER_S);
  const singleP99 = rounds.map((r) => r.singleP99Ms);
  console.log(`inference.event-loop-p99 with one row per call: ${median(singleP99).toFixed(2)} ms (rounds: ${singleP99.map((v) => v.toFixed(2)).join(', ')})`);
  reportAgainst('inference-event-loop-p99', rounds.map((r) => r.batchedP99Ms), rounds.map((r) => r.idleP99Ms), 'the engine idle (runner started, model loaded, no input)', MS);
}

/** The Kafka scenarios: each engine figure as a ratio to a raw kafkajs consume→produce loop on the same broker. */
async function kafka(): Promise<void> {
  let brokers = process.env['MILLRACE_KAFKA_BROKERS'];
  let started = false;
  if (brokers === undefined && process.argv.includes('--kafka')) {
    const script = new URL('../../test/infra/kafka', import.meta.url).pathname;
    brokers = execFileSync(script, ['start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!;
    started = true;
  }
  if (brokers === undefined) {
    console.log('kafka: skipped (set MILLRACE_KAFKA_BROKERS, or pass --kafka to start a local broker)');
    return;
  }
  try {
    const options = { brokers: brokers.split(','), events: quick ? 50_000 : 150_000, partitions: PARTITIONS, keys: KEYS };
    console.log(`Kafka at ${brokers}: ${options.events.toLocaleString('en')} events per scenario`);
    const rounds: KafkaFigures[] = [];
    for (let round = 0; round < ROUNDS; round++) rounds.push(await kafkaRound(options));
    const raw = rounds.map((r) => r.raw);
    console.log(`kafka.raw-kafkajs-loop: ${Math.round(median(raw)).toLocaleString('en')} events/s (rounds: ${raw.map((v) => Math.round(v)).join(', ')})`);
    reportAgainst('kafka.stateless', rounds.map((r) => r.stateless), raw, 'the raw kafkajs consume→produce loop');
    reportAgainst('kafka.keyed-count', rounds.map((r) => r.keyedCount), raw, 'the raw kafkajs consume→produce loop');
  } finally {
    if (started) execFileSync(new URL('../../test/infra/kafka', import.meta.url).pathname, ['stop'], { stdio: 'inherit' });
  }
}

interface Unit {
  readonly label: string;
  readonly digits: number;
}
const EVENTS_PER_S: Unit = { label: 'events/s', digits: 0 };
const ROWS_PER_S: Unit = { label: 'rows/s', digits: 0 };
const MS: Unit = { label: 'ms', digits: 2 };

function reportAgainst(name: string, values: number[], baselines: number[], baselineName: string, unit: Unit = EVENTS_PER_S): void {
  const value = median(values);
  const baseline = median(baselines);
  const ratio = value / baseline;
  const show = (v: number): string => (unit.digits === 0 ? Math.round(v).toLocaleString('en') : v.toFixed(unit.digits));
  console.log(`${name}: ${show(value)} ${unit.label} (rounds: ${values.map(show).join(', ')})`);
  console.log(`  vs ${baselineName} ${show(baseline)} ${unit.label}: ratio ${ratio.toFixed(3)}`);
  console.log(`BENCH name=${name} value=${value.toFixed(unit.digits)} baseline=${baseline.toFixed(unit.digits)} ratio=${ratio.toFixed(4)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
