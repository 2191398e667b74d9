/**
 * Inference on the real topology path: a scoring topology (`features` → `inferenceProcessor` → `predictions`) on
 * the embedded log, scored by `OnnxModelRuntime` (worker threads) with the fixture MLP (10 → 256 → 256 → 2), over
 * feature vectors produced before the runner starts. In the same round:
 *
 * - rows/s with micro-batching (maxBatch 64) and with one row per call (maxBatch 1), each on its own consumer
 *   group over the same input, from `runner.start()` to the last input offset committed;
 * - the event loop's p99 delay (`monitorEventLoopDelay`, 1 ms resolution) over each of those runs, and over the
 *   same engine idle: runner started, model loaded, nothing to score;
 * - as extra information, raw `model.predict` rows/s (64-row calls and 1-row calls, one call in flight).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { EmbeddedLog } from '../engine/log/embedded/embedded-log.js';
import type { AppendRecord } from '../engine/log/log.js';
import type { LoadedModel, ModelSpec } from '../engine/ml/model-runtime.js';
import { OnnxModelRuntime } from '../engine/ml/onnx-runtime.js';
import { inferenceProcessor } from '../engine/operators/infer.js';
import { Serdes } from '../engine/serde/serde.js';
import { StreamsBuilder } from '../engine/topology/builder.js';
import type { Topology } from '../engine/topology/topology.js';
import { benchRunner } from './runner.js';

export const MODEL = 'fraud-mlp';
export const MICRO_BATCH = 64;
export const WORKERS = 1;

export interface InferenceBenchmarkOptions {
  /** Feature vectors scored by each run. */
  readonly rows: number;
  readonly partitions: number;
  readonly keys: number;
  /** How long the idle engine is watched. */
  readonly idleMs: number;
}

export interface InferenceFigures {
  readonly batchedRowsPerS: number;
  readonly singleRowsPerS: number;
  /** Process CPU (every thread, the model's workers included) per row scored, over each run. */
  readonly batchedCpuUsPerRow: number;
  readonly singleCpuUsPerRow: number;
  readonly batchedP99Ms: number;
  readonly singleP99Ms: number;
  readonly idleP99Ms: number;
  readonly rawBatchedRowsPerS: number;
  readonly rawSingleRowsPerS: number;
}

interface FeatureVector {
  readonly id: number;
  readonly features: number[];
}

interface Prediction {
  readonly id: number;
  readonly probability: number;
}

const WIDTH = 10;
const APPEND_BATCH = 1_000;
const RUN_TIMEOUT_MS = 600_000;

/** The fixture models: this file runs as `dist/benchmarks/inference.js`, two levels below the repository. */
function modelSpec(): ModelSpec {
  const candidates = ['../../test/fixtures/models/', '../test/fixtures/models/'].map((relative) => fileURLToPath(new URL(relative, import.meta.url)));
  const dir = candidates.find((d) => existsSync(join(d, 'manifest.json')));
  if (dir === undefined) throw new Error(`the fixture models are missing: no manifest.json in ${candidates.join(' or ')}`);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { models: Record<string, { file: string; sha256: string; inputWidth: number }> };
  const entry = manifest.models[MODEL];
  if (entry === undefined) throw new Error(`${MODEL} is not in ${join(dir, 'manifest.json')}`);
  return { name: MODEL, version: '1', path: join(dir, entry.file), sha256: entry.sha256, inputWidth: entry.inputWidth };
}

/** Ten features in [-2, 2), from the id. */
function featuresOf(id: number): number[] {
  return Array.from({ length: WIDTH }, (_, j) => (((id * 31 + j * 17) % 100) - 50) / 25);
}

function scoring(applicationId: string, output: string, model: LoadedModel, maxBatch: number): Topology {
  const b = new StreamsBuilder(applicationId);
  b.stream<string, FeatureVector>('features')
    .process(
      'score',
      inferenceProcessor<string, FeatureVector, string, Prediction>({
        model: () => model,
        toRow: (r) => r.value.features,
        emit: ({ record, probability }) => ({ key: record.key, value: { id: record.value.id, probability }, timestamp: record.timestamp, headers: record.headers }),
        maxBatch,
      }),
      { keySerde: Serdes.string(), valueSerde: Serdes.json<Prediction>() },
    )
    .to(output);
  return b.build();
}

/** The event loop's p99 delay in ms while `fn` runs. */
async function p99DuringMs<T>(fn: () => Promise<T>): Promise<{ result: T; p99Ms: number }> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  try {
    const result = await fn();
    return { result, p99Ms: histogram.percentile(99) / 1e6 };
  } finally {
    histogram.disable();
  }
}

/** Scores every pre-produced vector with `maxBatch` rows per call: rows/s, and the loop's p99 over the run. */
async function topologyRun(log: EmbeddedLog, options: InferenceBenchmarkOptions, model: LoadedModel, maxBatch: number): Promise<{ rowsPerS: number; p99Ms: number; cpuUsPerRow: number }> {
  const output = `predictions-${maxBatch}`;
  await log.createTopic({ name: output, partitions: options.partitions });
  const runner = benchRunner(log, scoring(`bench-infer-${maxBatch}`, output, model, maxBatch), log.db);
  const cpu = process.cpuUsage();
  const { result: seconds, p99Ms } = await p99DuringMs(async () => {
    const started = performance.now();
    await runner.start();
    for (;;) {
      const tasks = runner.tasks;
      if (tasks.some((t) => t.state === 'failed')) throw new Error(`the scoring topology (maxBatch ${maxBatch}) failed`);
      const done = tasks.flatMap((t) => t.inputs()).reduce((sum, input) => sum + input.committed, 0);
      if (done >= options.rows) break;
      if (performance.now() - started > RUN_TIMEOUT_MS) throw new Error(`the scoring topology (maxBatch ${maxBatch}) committed ${done} of ${options.rows} rows in ${RUN_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    return (performance.now() - started) / 1000;
  });
  const usage = process.cpuUsage(cpu);
  await runner.stop();
  const outputs = (await log.partitionOffsets(output)).reduce((sum, p) => sum + p.end, 0);
  if (outputs !== options.rows) throw new Error(`expected ${options.rows} predictions (maxBatch ${maxBatch}), found ${outputs}`);
  return { rowsPerS: options.rows / seconds, p99Ms, cpuUsPerRow: (usage.user + usage.system) / options.rows };
}

/** The loop's p99 with the engine running and nothing to score: the runner polls an empty topic. */
async function idleRun(log: EmbeddedLog, options: InferenceBenchmarkOptions, model: LoadedModel): Promise<number> {
  await log.createTopic({ name: 'predictions-idle', partitions: options.partitions });
  // Its own application over `features`, started before anything is produced.
  const runner = benchRunner(log, scoring('bench-infer-idle', 'predictions-idle', model, MICRO_BATCH), log.db);
  await runner.start();
  const { p99Ms } = await p99DuringMs(() => new Promise((resolve) => setTimeout(resolve, options.idleMs)));
  await runner.stop();
  return p99Ms;
}

/** `model.predict` alone, one call in flight: rows/s with `batch` rows a call. */
async function rawRun(model: LoadedModel, rows: number, batch: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < rows; i += batch) {
    const count = Math.min(batch, rows - i);
    const input = new Float32Array(count * WIDTH);
    for (let r = 0; r < count; r++) input.set(featuresOf(i + r), r * WIDTH);
    await model.predict(input, count);
  }
  return rows / ((performance.now() - started) / 1000);
}

/** One round: raw calls (which also warm the worker up), the idle engine, then both topology runs. */
export async function inferenceRound(options: InferenceBenchmarkOptions): Promise<InferenceFigures> {
  const dir = await mkdtemp(join(tmpdir(), 'millrace-bench-infer-'));
  const runtime = new OnnxModelRuntime({ workers: WORKERS });
  const log = new EmbeddedLog({ path: join(dir, 'log') });
  try {
    const model = await runtime.load(modelSpec());
    const rawBatchedRowsPerS = await rawRun(model, options.rows, MICRO_BATCH);
    const rawSingleRowsPerS = await rawRun(model, Math.min(options.rows, 10_000), 1);
    await log.open();
    await log.createTopic({ name: 'features', partitions: options.partitions });
    const idleP99Ms = await idleRun(log, options, model);
    for (let i = 0; i < options.rows; i += APPEND_BATCH) {
      const records: AppendRecord[] = [];
      for (let id = i; id < Math.min(options.rows, i + APPEND_BATCH); id++) {
        const vector: FeatureVector = { id, features: featuresOf(id) };
        records.push({ topic: 'features', key: Buffer.from(`user-${(id * 7919) % options.keys}`), value: Buffer.from(JSON.stringify(vector)) });
      }
      await log.append(records);
    }
    const batched = await topologyRun(log, options, model, MICRO_BATCH);
    const single = await topologyRun(log, options, model, 1);
    return {
      batchedRowsPerS: batched.rowsPerS,
      singleRowsPerS: single.rowsPerS,
      batchedCpuUsPerRow: batched.cpuUsPerRow,
      singleCpuUsPerRow: single.cpuUsPerRow,
      batchedP99Ms: batched.p99Ms,
      singleP99Ms: single.p99Ms,
      idleP99Ms,
      rawBatchedRowsPerS,
      rawSingleRowsPerS,
    };
  } finally {
    await log.close();
    await runtime.close();
    await rm(dir, { recursive: true, force: true });
  }
}
