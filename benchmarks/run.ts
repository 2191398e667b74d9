/**
 * The benchmark suite: each scenario against a baseline measured in the same run, in interleaved rounds, the median
 * reported (the machines are shared and noisy: only same-run ratios mean anything). Streaming scenarios report
 * events/s, CPU-µs per event and p50/p99 end-to-end latency (see `measure.ts`); the ratio is of events/s.
 *
 *   npm run bench                 # 3 interleaved rounds of 300,000 events, median reported
 *   npm run bench -- --quick      # 3 rounds of 100,000 events, shorter phases (--rounds=N, --events=N override either)
 *   npm run bench -- --smoke      # 1 round of a few thousand events: only checks that every scenario runs (the tests)
 *   npm run bench -- --no-kafka   # without the Apache Kafka group (by default on MILLRACE_KAFKA_BROKERS, or a broker
 *                                 # test/infra/kafka starts for the run and stops after it)
 *   npm run bench -- --only=inference   # one group of scenarios: embedded, projection, inference, pipeline or kafka
 *   npm run bench -- --scratch-broker   # MILLRACE_KAFKA_BROKERS may be wiped: also run the pipeline on it (see kafka())
 *
 * The last line of each scenario is machine-readable: `BENCH name=… value=… baseline=… ratio=…`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { EmbeddedLog } from '../engine/log/embedded/embedded-log.js';
import type { TopologyRunner } from '../engine/runtime/runner.js';
import { Serdes } from '../engine/serde/serde.js';
import { StreamsBuilder } from '../engine/topology/builder.js';
import type { Topology } from '../engine/topology/topology.js';
import { inferenceRound, MICRO_BATCH, MODEL, WORKERS, type InferenceFigures } from './inference.js';
import { kafkaClientsRound } from './kafka-clients.js';
import { driftRound, workersRound, type Figures } from './pipeline.js';
import { kafkaRound, type KafkaFigures } from './kafka.js';
import { projectionRound, type ProjectionFigures } from './projection.js';
import { HandLoop } from './hand-loop.js';
import { measureBatch, measureStreaming, median, type Measurement } from './measure.js';
import { BENCH_RUNNER_CONFIG, benchRunner } from './runner.js';

const numberArg = (name: string): number | undefined => {
  const raw = process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name}=${raw}: expected a positive integer`);
  return n;
};
const MODE = process.argv.includes('--smoke') ? 'smoke' : process.argv.includes('--quick') ? 'quick' : 'full';
/** How big each group runs, by mode. `smoke` measures nothing worth reading: it proves every scenario still runs. */
const SIZES = {
  full: { rounds: 3, events: 300_000, accounts: 20_000, phaseMs: 5_000, rows: 100_000, idleMs: 3_000, kafkaEvents: 150_000, driftEvents: 100_000, workersEvents: 60_000 },
  quick: { rounds: 3, events: 100_000, accounts: 20_000, phaseMs: 2_000, rows: 30_000, idleMs: 1_000, kafkaEvents: 50_000, driftEvents: 30_000, workersEvents: 15_000 },
  smoke: { rounds: 1, events: 3_000, accounts: 2_000, phaseMs: 300, rows: 2_000, idleMs: 200, kafkaEvents: 2_000, driftEvents: 2_000, workersEvents: 2_000 },
}[MODE];
const ROUNDS = numberArg('rounds') ?? SIZES.rounds;
const EVENTS = numberArg('events') ?? SIZES.events;
const PARTITIONS = 4;
const KEYS = 10_000;
const MANY_KEYS = 1_000_000;
const APPEND_BATCH = 1_000;
/** Records in flight (appended, not committed) while a streaming scenario runs: see `measure.ts`. */
const WINDOW_RECORDS = 20_000;
const GROUPS = ['embedded', 'projection', 'inference', 'pipeline', 'kafka'] as const;
const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length);
if (only !== undefined && !(GROUPS as readonly string[]).includes(only)) throw new Error(`--only=${only}: expected one of ${GROUPS.join(', ')}`);
const runs = (group: (typeof GROUPS)[number]): boolean => only === undefined || only === group;

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'millrace-bench-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Record `i` of the input; `keys` distinct keys, and `i * 7919 mod keys` visits each of them before repeating one. */
function event(i: number, keys: number = KEYS): { key: Buffer; value: Buffer } {
  return {
    key: Buffer.from(`user-${(i * 7919) % keys}`),
    value: Buffer.from(JSON.stringify({ seq: i, amount: (i % 997) / 10, country: i % 3 === 0 ? 'NL' : 'FR' })),
  };
}

/** Baseline: the same records written straight into LevelDB, in batches, as fast as it goes. */
async function rawLevelWrites(): Promise<Measurement> {
  return withDir(async (dir) => {
    const db = new ClassicLevel<Buffer, Buffer>(join(dir, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    const measured = await measureBatch(EVENTS, async () => {
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
    });
    await db.close();
    return measured;
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

/** A consumer of `in` on `log` (writing to `out`), started before the first append and stopped after the last commit. */
interface Consumer {
  readonly group: string;
  start(): Promise<void>;
  check(): void;
  stop(): Promise<void>;
}

/** Appends `EVENTS` records (over `keys` keys) while `consumer` runs on a fresh log, and measures it (`measure.ts`). */
async function streamingRun(consumerOn: (log: EmbeddedLog) => Consumer, keys: number = KEYS): Promise<Measurement> {
  return withDir(async (dir) => {
    const log = new EmbeddedLog({ path: join(dir, 'log') });
    await log.open();
    try {
      await log.createTopic({ name: 'in', partitions: PARTITIONS });
      await log.createTopic({ name: 'out', partitions: PARTITIONS });
      const consumer = consumerOn(log);
      await consumer.start();
      let measured: Measurement;
      try {
        measured = await measureStreaming({
          events: EVENTS,
          appendBatch: APPEND_BATCH,
          windowRecords: WINDOW_RECORDS,
          record: (i) => ({ topic: 'in', ...event(i, keys) }),
          append: (records) => log.append(records),
          committed: () => log.committedOffsets(consumer.group, 'in'),
          check: () => consumer.check(),
        });
      } finally {
        await consumer.stop();
      }
      const outputs = (await log.partitionOffsets('out')).reduce((sum, p) => sum + p.end, 0);
      if (outputs !== EVENTS) throw new Error(`${consumer.group}: expected ${EVENTS} outputs, found ${outputs}`);
      return measured;
    } finally {
      await log.close();
    }
  });
}

function topologyConsumer(build: () => Topology): (log: EmbeddedLog) => Consumer {
  return (log) => {
    const topology = build();
    const runner: TopologyRunner = benchRunner(log, topology, log.db);
    return {
      group: topology.applicationId,
      start: () => runner.start(),
      check: () => {
        if (runner.tasks.some((t) => t.state === 'failed')) throw new Error(`${topology.applicationId}: a task failed`);
      },
      stop: () => runner.stop(),
    };
  };
}

function handLoopConsumer(log: EmbeddedLog): Consumer {
  const loop = new HandLoop({
    log,
    group: 'bench-hand-loop',
    input: 'in',
    output: 'out',
    partitions: PARTITIONS,
    maxRecords: BENCH_RUNNER_CONFIG.pollMaxRecords,
    maxWaitMs: BENCH_RUNNER_CONFIG.pollMaxWaitMs,
  });
  return { group: 'bench-hand-loop', start: () => loop.start(), check: () => loop.check(), stop: () => loop.stop() };
}

async function main(): Promise<void> {
  console.log(
    `Millrace benchmarks: ${EVENTS.toLocaleString('en')} events, ${PARTITIONS} partitions, ${ROUNDS} interleaved round(s), median reported, Node ${process.version}`,
  );
  if (runs('embedded')) await embedded();
  if (runs('projection')) await projection();
  if (runs('inference')) await inference();
  if (runs('pipeline')) await pipeline();
  if (runs('kafka')) await kafka();
}

async function embedded(): Promise<void> {
  const raw: Measurement[] = [];
  const loop: Measurement[] = [];
  const stateless: Measurement[] = [];
  const count10k: Measurement[] = [];
  const count1m: Measurement[] = [];
  const scenarios: Array<() => Promise<void>> = [
    async () => void raw.push(await rawLevelWrites()),
    async () => void loop.push(await streamingRun(handLoopConsumer)),
    async () => void stateless.push(await streamingRun(topologyConsumer(statelessTopology))),
    async () => void count10k.push(await streamingRun(topologyConsumer(keyedCountTopology), KEYS)),
    async () => void count1m.push(await streamingRun(topologyConsumer(keyedCountTopology), MANY_KEYS)),
  ];
  // Interleaved rounds, so a burst of load from a neighbour hits every scenario alike; each round starts one
  // scenario later, so none always runs first (cold) or last.
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < scenarios.length; i++) await scenarios[(round + i) % scenarios.length]!();
  }
  describeMeasured('embedded.raw-level-writes', raw);
  describeMeasured('embedded.hand-loop', loop);
  reportMeasured('embedded.stateless', stateless, loop, 'the hand-written consume→produce loop');
  const distinct = (keys: number): string => `${Math.min(keys, EVENTS).toLocaleString('en')} distinct keys of ${keys.toLocaleString('en')}`;
  for (const [name, keys, values] of [['embedded.keyed-count-10k', KEYS, count10k], ['embedded.keyed-count-1m', MANY_KEYS, count1m]] as const) {
    const vsRaw = median(values.map((m) => m.eventsPerS)) / median(raw.map((m) => m.eventsPerS));
    console.log(`${name} (${distinct(keys)}) vs raw classic-level batch writes: ratio ${vsRaw.toFixed(3)}`);
    reportMeasured(name, values, stateless, 'the stateless topology', { rawLevel: median(raw.map((m) => m.eventsPerS)).toFixed(0), rawLevelRatio: vsRaw.toFixed(4) });
  }
}

/** Projection reads (`ProjectionManager.get`) while its runner ingests, as a ratio to the same reads idle. */
async function projection(): Promise<void> {
  const options = { accounts: SIZES.accounts, partitions: PARTITIONS, phaseMs: SIZES.phaseMs, concurrency: 8, windowRecords: WINDOW_RECORDS };
  console.log(`Projection (balances over ${options.accounts.toLocaleString('en')} accounts, LevelDB store): ${options.concurrency} queries in flight, ${options.phaseMs} ms per phase`);
  const rounds: ProjectionFigures[] = [];
  for (let round = 0; round < ROUNDS; round++) rounds.push(await projectionRound(options));
  const ingested = rounds.map((r) => r.ingestedPerS);
  console.log(`projection.ingest while queried: ${Math.round(median(ingested)).toLocaleString('en')} payments/s applied (rounds: ${ingested.map((v) => Math.round(v).toLocaleString('en')).join(', ')})`);
  const idle = rounds.map((r) => r.idle);
  const busy = rounds.map((r) => r.ingesting);
  const m = (of: readonly Measurement[], pick: (x: Measurement) => number, digits: number): string => fixed(median(of.map(pick)), digits);
  console.log(`  idle: ${m(idle, (x) => x.cpuUsPerEvent, 2)} CPU-µs/query, p50 ${m(idle, (x) => x.p50Ms, 3)} ms p99 ${m(idle, (x) => x.p99Ms, 3)} ms`);
  console.log(`  ingesting: ${m(busy, (x) => x.cpuUsPerEvent, 2)} CPU-µs/query, p50 ${m(busy, (x) => x.p50Ms, 3)} ms p99 ${m(busy, (x) => x.p99Ms, 3)} ms`);
  reportAgainst('projection.query-while-ingesting', busy.map((x) => x.eventsPerS), idle.map((x) => x.eventsPerS), 'the same queries idle', QUERIES_PER_S, {
    cpuUsPerEvent: m(busy, (x) => x.cpuUsPerEvent, 2),
    p50Ms: m(busy, (x) => x.p50Ms, 3),
    p99Ms: m(busy, (x) => x.p99Ms, 3),
    baselineCpuUsPerEvent: m(idle, (x) => x.cpuUsPerEvent, 2),
    baselineP50Ms: m(idle, (x) => x.p50Ms, 3),
    baselineP99Ms: m(idle, (x) => x.p99Ms, 3),
    ingestedPerS: median(ingested).toFixed(0),
  });
}

/**
 * Inference through the scoring topology: rows/s micro-batched as a ratio to one row per call, and the event loop's
 * p99 delay while the micro-batched topology runs, as a ratio to the same engine idle (higher is worse).
 */
async function inference(): Promise<void> {
  const options = { rows: SIZES.rows, partitions: PARTITIONS, keys: KEYS, idleMs: SIZES.idleMs };
  console.log(`Inference (${MODEL}, ${WORKERS} worker thread(s)): ${options.rows.toLocaleString('en')} feature vectors per run, maxBatch ${MICRO_BATCH} vs 1`);
  const rounds: InferenceFigures[] = [];
  for (let round = 0; round < ROUNDS; round++) rounds.push(await inferenceRound(options));
  const rounded = (values: number[]): string => values.map((v) => Math.round(v)).join(', ');
  const rawBatched = rounds.map((r) => r.rawBatchedRowsPerS);
  const rawSingle = rounds.map((r) => r.rawSingleRowsPerS);
  console.log(`inference.raw-predict: ${Math.round(median(rawBatched)).toLocaleString('en')} rows/s in ${MICRO_BATCH}-row calls (rounds: ${rounded(rawBatched)}), ${Math.round(median(rawSingle)).toLocaleString('en')} rows/s in 1-row calls (rounds: ${rounded(rawSingle)})`);
  const cpu = (values: number[]): string => median(values).toFixed(2);
  reportAgainst('inference-microbatch', rounds.map((r) => r.batchedRowsPerS), rounds.map((r) => r.singleRowsPerS), 'one row per call (maxBatch 1)', ROWS_PER_S, {
    cpuUsPerEvent: cpu(rounds.map((r) => r.batchedCpuUsPerRow)),
    baselineCpuUsPerEvent: cpu(rounds.map((r) => r.singleCpuUsPerRow)),
  });
  const singleP99 = rounds.map((r) => r.singleP99Ms);
  console.log(`inference.event-loop-p99 with one row per call: ${median(singleP99).toFixed(2)} ms (rounds: ${singleP99.map((v) => v.toFixed(2)).join(', ')})`);
  reportAgainst('inference-event-loop-p99', rounds.map((r) => r.batchedP99Ms), rounds.map((r) => r.idleP99Ms), 'the engine idle (runner started, model loaded, no input)', MS);
}

/** The ML pipeline on the embedded log (`millrace up` on a backlog), with its drift stage and without it. */
async function pipeline(): Promise<void> {
  const events = SIZES.driftEvents;
  console.log(`Pipeline (millrace up, every stage but training, fixture model): ${events.toLocaleString('en')} transactions and their labels per run`);
  const rounds: Array<{ on: Figures; off: Figures }> = [];
  for (let round = 0; round < ROUNDS; round++) rounds.push(await driftRound({ events, round, log: quietLog }));
  const cpuOn = median(rounds.map((r) => r.on.cpuUsPerEvent));
  const cpuOff = median(rounds.map((r) => r.off.cpuUsPerEvent));
  console.log(`  drift's cost: ${((1 - median(rounds.map((r) => r.on.eventsPerS / r.off.eventsPerS))) * 100).toFixed(1)} % of events/s, ${((cpuOn / cpuOff - 1) * 100).toFixed(1)} % more CPU per event`);
  reportAgainst('pipeline.drift-on-vs-off', rounds.map((r) => r.on.eventsPerS), rounds.map((r) => r.off.eventsPerS), 'the same pipeline without its drift stage', EVENTS_PER_S, {
    cpuUsPerEvent: cpuOn.toFixed(2),
    baselineCpuUsPerEvent: cpuOff.toFixed(2),
  });
}

/** Per-run detail of the pipeline scenarios, kept out of the report unless asked for (`--verbose`). */
const quietLog = (line: string): void => {
  if (process.argv.includes('--verbose')) console.log(`  ${line}`);
};

/** The Kafka scenarios: each engine figure as a ratio to a raw kafkajs consume→produce loop on the same broker. */
async function kafka(): Promise<void> {
  if (process.argv.includes('--no-kafka')) {
    console.log('kafka: skipped (--no-kafka)');
    return;
  }
  let brokers = process.env['MILLRACE_KAFKA_BROKERS'];
  const script = new URL('../../test/infra/kafka', import.meta.url).pathname;
  // A broker of its own, on a port the test suite does not use, started here and stopped at the end.
  const env = { ...process.env, MILLRACE_KAFKA_PORT: process.env['MILLRACE_BENCH_KAFKA_PORT'] ?? '19392', MILLRACE_KAFKA_STARTED_BY: 'benchmarks' };
  let started = false;
  // The pipeline's topics and group ids are fixed: its runs delete them (and `_schemas`) before and after, so they
  // run only on a broker this run started, or one the caller says may be wiped.
  const scratch = brokers === undefined || process.argv.includes('--scratch-broker');
  if (brokers === undefined) {
    try {
      brokers = execFileSync(script, ['start'], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!;
      started = true;
    } catch (err) {
      console.log(`kafka: skipped (no broker given in MILLRACE_KAFKA_BROKERS, and test/infra/kafka could not start one: ${(err as Error).message.split('\n')[0]})`);
      return;
    }
  }
  try {
    const options = { brokers: brokers.split(','), events: SIZES.kafkaEvents, partitions: PARTITIONS, keys: KEYS };
    console.log(`Kafka at ${brokers}: ${options.events.toLocaleString('en')} events per scenario`);
    const rounds: KafkaFigures[] = [];
    for (let round = 0; round < ROUNDS; round++) rounds.push(await kafkaRound(options, round));
    const raw = rounds.map((r) => r.raw);
    describeMeasured('kafka.raw-kafkajs-loop', raw);
    reportMeasured('kafka.stateless', rounds.map((r) => r.stateless), raw, 'the raw kafkajs consume→produce loop');
    reportMeasured('kafka.keyed-count', rounds.map((r) => r.keyedCount), raw, 'the raw kafkajs consume→produce loop');
    const clients = [];
    for (let round = 0; round < ROUNDS; round++) clients.push(await kafkaClientsRound(options, round));
    reportMeasured('kafka.client-platformatic', clients.map((r) => r.platformatic), clients.map((r) => r.kafkajs), 'the same topology on KafkaLog (kafkajs)');
    if (!scratch) {
      console.log('pipeline.workers: skipped (it deletes the pipeline topics, consumer groups and _schemas of the broker: pass --scratch-broker if MILLRACE_KAFKA_BROKERS may be wiped)');
      return;
    }
    const events = SIZES.workersEvents;
    console.log(`Pipeline on Kafka: ${events.toLocaleString('en')} transactions and their labels per run, one millrace up process vs two in the same groups`);
    const workers: Array<{ one: Figures; two: Figures }> = [];
    for (let round = 0; round < ROUNDS; round++) workers.push(await workersRound({ brokers: options.brokers, events, round, log: quietLog }));
    reportAgainst('pipeline.workers-2-vs-1', workers.map((r) => r.two.eventsPerS), workers.map((r) => r.one.eventsPerS), 'one worker (one millrace up process)', EVENTS_PER_S, {
      cpuUsPerEvent: median(workers.map((r) => r.two.cpuUsPerEvent)).toFixed(2),
      baselineCpuUsPerEvent: median(workers.map((r) => r.one.cpuUsPerEvent)).toFixed(2),
    });
  } finally {
    if (started) execFileSync(script, ['stop'], { env, stdio: 'inherit' });
  }
}

interface Unit {
  readonly label: string;
  readonly digits: number;
}
const EVENTS_PER_S: Unit = { label: 'events/s', digits: 0 };
const ROWS_PER_S: Unit = { label: 'rows/s', digits: 0 };
const QUERIES_PER_S: Unit = { label: 'queries/s', digits: 0 };
const MS: Unit = { label: 'ms', digits: 2 };

function reportAgainst(
  name: string,
  values: number[],
  baselines: number[],
  baselineName: string,
  unit: Unit = EVENTS_PER_S,
  extra: Readonly<Record<string, string>> = {},
): void {
  const value = median(values);
  const baseline = median(baselines);
  const ratio = value / baseline;
  const show = (v: number): string => (unit.digits === 0 ? Math.round(v).toLocaleString('en') : v.toFixed(unit.digits));
  console.log(`${name}: ${show(value)} ${unit.label} (rounds: ${values.map(show).join(', ')})`);
  console.log(`  vs ${baselineName} ${show(baseline)} ${unit.label}: ratio ${ratio.toFixed(3)}`);
  const fields = Object.entries(extra).map(([k, v]) => ` ${k}=${v}`).join('');
  console.log(`BENCH name=${name} value=${value.toFixed(unit.digits)} baseline=${baseline.toFixed(unit.digits)} ratio=${ratio.toFixed(4)}${fields}`);
}

const fixed = (v: number, digits: number): string => (Number.isNaN(v) ? 'n/a' : v.toFixed(digits));

/** One line: the medians of a scenario's events/s, CPU-µs per event and latencies, with each round's events/s. */
function describeMeasured(name: string, values: readonly Measurement[]): void {
  const m = (pick: (x: Measurement) => number): number => median(values.map(pick));
  console.log(
    `${name}: ${Math.round(m((x) => x.eventsPerS)).toLocaleString('en')} events/s (rounds: ${values.map((x) => Math.round(x.eventsPerS).toLocaleString('en')).join(', ')}), ` +
      `${fixed(m((x) => x.cpuUsPerEvent), 2)} CPU-µs/event, latency p50 ${fixed(m((x) => x.p50Ms), 0)} ms p99 ${fixed(m((x) => x.p99Ms), 0)} ms`,
  );
}

/** A streaming scenario against its baseline: events/s as the ratio, CPU and latency (medians of rounds) as extra fields. */
function reportMeasured(name: string, values: readonly Measurement[], baselines: readonly Measurement[], baselineName: string, extra: Readonly<Record<string, string>> = {}): void {
  const m = (of: readonly Measurement[], pick: (x: Measurement) => number): number => median(of.map(pick));
  describeMeasured(name, values);
  console.log(`  baseline: ${baselineName}, ${fixed(m(baselines, (x) => x.cpuUsPerEvent), 2)} CPU-µs/event, latency p50 ${fixed(m(baselines, (x) => x.p50Ms), 0)} ms p99 ${fixed(m(baselines, (x) => x.p99Ms), 0)} ms`);
  reportAgainst(name, values.map((x) => x.eventsPerS), baselines.map((x) => x.eventsPerS), baselineName, EVENTS_PER_S, {
    cpuUsPerEvent: fixed(m(values, (x) => x.cpuUsPerEvent), 2),
    p50Ms: fixed(m(values, (x) => x.p50Ms), 0),
    p99Ms: fixed(m(values, (x) => x.p99Ms), 0),
    baselineCpuUsPerEvent: fixed(m(baselines, (x) => x.cpuUsPerEvent), 2),
    baselineP50Ms: fixed(m(baselines, (x) => x.p50Ms), 0),
    baselineP99Ms: fixed(m(baselines, (x) => x.p99Ms), 0),
    ...extra,
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
