/**
 * The pieces of the pipeline benchmarks (`pipeline.ts`): the input, the model the pipeline serves, the config, the
 * engine processes, completion and verification.
 *
 * The input: N transactions on `transactions-raw` and a label for each on `feedback-raw`, appended in one go (on
 * the embedded log before the engine starts; on Kafka once the engines have settled, see `pipeline.ts`); before
 * that, the model's registry events on `model-registry` and the routing table they fold to on `model-routing` (so
 * every scoring task finds the model at start instead of racing the registry stage, which still folds the events).
 *
 * Labels can be appended with the transactions only because a run spans a few minutes of event time. `outcomes`
 * joins predictions to labels in event time with 10 minutes of grace, and a record more than the grace behind the
 * task's watermark is late (joins.ts: judged on its own time, not on its window's end). By default the outcomes task
 * waits for predictions while it has labels in hand (`maxTaskIdleMs`, 30 s), but at the end of a finite input that
 * wait is spent on predictions that never come, and would be measured: here it is 0, and the task reads its inputs
 * in timestamp order only among the records it has buffered, so it may read the backlog of labels before the first
 * prediction exists, and run its stream time to the last label's: every prediction more than 10 minutes older than
 * that is late. Without the wait, with the generator's labels 2 to 10 minutes after their transaction, 5,000
 * transactions at 1,000 a second of event time gave 1,133 outcomes and 3,867 late records; at the end-to-end test's
 * one a second, even labels fed only once scoring had passed them gave 724 of 5,000 (the partitions of a stage drift
 * apart by more than the grace over a backlog). So event time runs at `TRAFFIC.ratePerSecond`, a run's transactions
 * span at most `MAX_SPAN_MS` (110,000 transactions), and labels come 1 to 5 minutes after their transaction
 * (`LABEL_DELAY_MS`): the latest label is under 7 minutes past the first transaction, and nothing is late whatever
 * order the stages run in.
 *
 * Completion: every application's tasks, over all processes, cover every partition of their inputs, and each
 * input's committed offset has reached that partition's end offset as read after the status (so nothing is left
 * anywhere: not in a topic, not in an internal repartition topic, not in a task).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import kafkajs from 'kafkajs';
import { MillraceClient, type ReadRecord } from '../engine/cli/client.js';
import { EmbeddedLog } from '../engine/log/embedded/embedded-log.js';
import type { AppendRecord, Log } from '../engine/log/log.js';
import { buildReferenceDistribution, SCORE_DISTRIBUTION, type ReferenceDistribution } from '../engine/ml/drift/reference.js';
import { OnnxModelRuntime } from '../engine/ml/onnx-runtime.js';
import type { EngineStatus } from '../engine/runtime/status.js';
import { pipelineTopics, pipelineTopologies } from '../topologies/pipeline/config.js';
import {
  FEATURE_NAMES,
  FRAUD_MODEL,
  Topics,
  type Features,
  type ModelRegistryEvent,
  type ModelRouting,
  type Transaction,
} from '../topologies/pipeline/contract.js';
import { computeFeatures, extendHistory, featureRow, type HistoryEntry } from '../topologies/pipeline/feature-definitions.js';
import { TrafficGenerator, type GeneratedEvent } from '../topologies/pipeline/generator.js';

/** The repository: where `bin/millrace.js`, `schemas/` and the fixture models are (from dist/benchmarks or benchmarks/). */
export const REPO_ROOT = ((): string => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'bin', 'millrace.js')) && existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  throw new Error(`pipeline benchmark: no repository root above ${fileURLToPath(import.meta.url)}`);
})();

/** The traffic: the demo's 2,000 card holders, no drift, a thousand transactions a second of event time. */
export const TRAFFIC = Object.freeze({ seed: 11, users: 2_000, ratePerSecond: 1_000, startTimeMs: Date.parse('2026-03-02T00:00:00Z') });
/** The longest span of event time the transactions of a run may cover (see the top of this file). */
export const MAX_SPAN_MS = 110_000;
/** A label comes this long after its transaction (event time): see the top of this file. */
export const LABEL_DELAY_MS: readonly [number, number] = [60_000, 300_000];
/** The reference distributions are those of other traffic of the same kind (another seed): the "training data". */
const REFERENCE_SEED = 1_011;
const REFERENCE_ROWS = 20_000;
/** The model served: the fixture logistic regression (skl2onnx-shaped, 10 inputs = FEATURE_NAMES). */
export const FIXTURE_MODEL = 'fraud-logreg';
export const MODEL_VERSION = 'bench-1';
/** How often the engines' status is read (also the resolution of the end time). */
export const POLL_MS = 100;
/** The bootstrap training never starts: no Python trainer runs in a benchmark (see `pipelineBenchConfig`). */
const NEVER = Number.MAX_SAFE_INTEGER;

export interface Figures {
  readonly eventsPerS: number;
  readonly cpuUsPerEvent: number;
}

// ------------------------------------------------------------------------------------------------ the input

export interface PipelineInput {
  readonly events: number;
  /** `transactions-raw` records, in event-time order. */
  readonly transactions: readonly AppendRecord[];
  /** `feedback-raw` records, one per transaction, in event-time order. */
  readonly labels: readonly AppendRecord[];
}

function generator(seed: number): TrafficGenerator {
  return new TrafficGenerator({ ...TRAFFIC, seed, driftAtMs: null, labelDelayMs: LABEL_DELAY_MS });
}

function appendRecord(event: GeneratedEvent): AppendRecord {
  return { topic: event.topic, key: Buffer.from(event.key), value: Buffer.from(JSON.stringify(event.value)), timestamp: event.atMs };
}

/** `events` transactions of the benchmark traffic and a label for each. */
export function pipelineInput(events: number): PipelineInput {
  if ((events / TRAFFIC.ratePerSecond) * 1000 > MAX_SPAN_MS) {
    throw new RangeError(`pipeline benchmark: at most ${(MAX_SPAN_MS / 1000) * TRAFFIC.ratePerSecond} events (see MAX_SPAN_MS), got ${events}`);
  }
  const traffic = generator(TRAFFIC.seed);
  const transactions: AppendRecord[] = [];
  const labels: AppendRecord[] = [];
  while (transactions.length < events) {
    const event = traffic.next();
    (event.topic === Topics.transactionsRaw ? transactions : labels).push(appendRecord(event));
  }
  labels.push(...traffic.finish().map(appendRecord));
  if (labels.length !== events) throw new Error(`pipeline benchmark: ${labels.length} labels for ${events} transactions`);
  return { events, transactions, labels };
}

// ------------------------------------------------------------------------------------------------ the model

export interface InstalledModel {
  readonly registry: ModelRegistryEvent[];
  readonly routing: ModelRouting;
}

interface ManifestEntry {
  readonly file: string;
  readonly sha256: string;
  readonly inputWidth: number;
}

/** Feature rows of reference traffic, through the features' own definitions (what a training set holds). */
function referenceRows(rows: number): Features[] {
  const traffic = generator(REFERENCE_SEED);
  const histories = new Map<string, HistoryEntry[]>();
  const out: Features[] = [];
  while (out.length < rows) {
    const event = traffic.next();
    if (event.topic !== Topics.transactionsRaw) continue;
    const tx: Transaction = event.value;
    const history = histories.get(tx.user) ?? [];
    out.push(computeFeatures(history, event.atMs, tx.amount, tx.country));
    histories.set(tx.user, extendHistory(history, { at: event.atMs, amount: tx.amount, country: tx.country }));
  }
  return out;
}

function distributionJson(d: ReferenceDistribution): { edges: number[]; proportions: number[]; sample: number[] } {
  return { edges: Array.from(d.edges), proportions: Array.from(d.proportions), sample: Array.from(d.sortedSample) };
}

/**
 * The fixture model as a trained version would be: `model.onnx` and `reference.json` (quantile bins and samples of
 * each feature and of the model's own scores, on reference traffic) in `dir`, and the registry events that
 * register and promote it, with the routing table they fold to.
 */
export async function installModel(dir: string): Promise<InstalledModel> {
  const fixtures = join(REPO_ROOT, 'test', 'fixtures', 'models');
  const manifest = JSON.parse(readFileSync(join(fixtures, 'manifest.json'), 'utf8')) as { models: Record<string, ManifestEntry> };
  const entry = manifest.models[FIXTURE_MODEL];
  if (entry === undefined || entry.inputWidth !== FEATURE_NAMES.length) {
    throw new Error(`pipeline benchmark: ${FIXTURE_MODEL} in ${fixtures}/manifest.json does not read ${FEATURE_NAMES.length} features`);
  }
  await mkdir(dir, { recursive: true });
  const modelPath = join(dir, 'model.onnx');
  const referencePath = join(dir, 'reference.json');
  await copyFile(join(fixtures, entry.file), modelPath);
  const sha256 = createHash('sha256').update(readFileSync(modelPath)).digest('hex');
  if (sha256 !== entry.sha256) throw new Error(`pipeline benchmark: ${entry.file} has SHA-256 ${sha256}, the manifest says ${entry.sha256}`);

  const rows = referenceRows(REFERENCE_ROWS);
  const runtime = new OnnxModelRuntime({ workers: 1 });
  const scores = new Float64Array(rows.length);
  try {
    const model = await runtime.load({ name: FRAUD_MODEL, version: MODEL_VERSION, path: modelPath, sha256, inputWidth: FEATURE_NAMES.length });
    const chunk = 1_024;
    for (let from = 0; from < rows.length; from += chunk) {
      const count = Math.min(chunk, rows.length - from);
      const input = new Float32Array(count * FEATURE_NAMES.length);
      for (let i = 0; i < count; i++) input.set(featureRow(rows[from + i]!), i * FEATURE_NAMES.length);
      scores.set(await model.predict(input, count), from);
    }
  } finally {
    await runtime.close();
  }
  const features: Record<string, ReturnType<typeof distributionJson>> = {};
  for (const name of FEATURE_NAMES) features[name] = distributionJson(buildReferenceDistribution(name, Float64Array.from(rows, (r) => r[name])));
  const score = distributionJson(buildReferenceDistribution(SCORE_DISTRIBUTION, scores));
  await writeFile(referencePath, JSON.stringify({ model: FRAUD_MODEL, version: MODEL_VERSION, features, score }));

  const at = new Date(TRAFFIC.startTimeMs).toISOString();
  const ref = { version: MODEL_VERSION, artifact_uri: modelPath, sha256, reference_uri: referencePath };
  return {
    registry: [
      { type: 'ModelRegistered', model: FRAUD_MODEL, ...ref, metrics: {}, at },
      { type: 'ModelPromoted', model: FRAUD_MODEL, version: MODEL_VERSION, at, evidence: 'benchmark fixture' },
    ],
    routing: { model: FRAUD_MODEL, stable: ref, canary: null },
  };
}

// ------------------------------------------------------------------------------------------------ config and log

/**
 * The pipeline as `millrace up` runs it, minus what cannot or should not run here: no projections (the read side:
 * each process would rebuild every read model from all partitions, so they do not split over processes), and the
 * first-model bootstrap never fires (it would start the Python trainer; the model is pre-registered instead).
 * `drift: false` leaves the drift stage out and changes nothing else.
 */
export function pipelineBenchConfig(options: { drift: boolean; kafka: boolean }): Record<string, unknown> {
  const topologies = pipelineTopologies({ retraining: { bootstrapLabels: NEVER }, outcomes: { maxTaskIdleMs: 0 } }).filter((t) => options.drift || t.module !== 'pipeline/drift');
  return {
    topics: pipelineTopics(),
    topologies,
    projections: [],
    schemasDir: join(REPO_ROOT, 'schemas'),
    ...(options.kafka ? { kafka: { sessionTimeoutMs: 10_000, heartbeatIntervalMs: 1_000 } } : {}),
  };
}

/** The application ids a config runs (its topologies' defaults). */
export function applicationIds(drift: boolean): string[] {
  return ['ingest', 'features', 'scoring', 'outcomes', ...(drift ? ['drift'] : []), 'model-registry', 'retraining', 'training'];
}

/** Creates the pipeline's topics as the engine would, and registers and promotes the model. */
export async function prepareLog(log: Log, model: InstalledModel): Promise<void> {
  for (const topic of pipelineTopics()) {
    await log.createTopic({ name: topic.name, partitions: topic.partitions, cleanupPolicy: topic.compacted === true ? 'compact' : 'delete' });
  }
  const key = Buffer.from(FRAUD_MODEL);
  await log.append(model.registry.map((event) => ({ topic: Topics.modelRegistry, key, value: Buffer.from(JSON.stringify(event)), timestamp: TRAFFIC.startTimeMs })));
  await log.append([{ topic: Topics.modelRouting, key, value: Buffer.from(JSON.stringify(model.routing)), timestamp: TRAFFIC.startTimeMs }]);
}

/** Appends the transactions, then the labels. */
export async function appendInput(log: Log, input: PipelineInput): Promise<void> {
  for (const records of [input.transactions, input.labels]) {
    for (let from = 0; from < records.length; from += 5_000) await log.append(records.slice(from, from + 5_000));
  }
}

/** Pre-produces into the embedded log of `dataDir`, which the engine then opens. */
export async function preProduceEmbedded(dataDir: string, input: PipelineInput, model: InstalledModel): Promise<void> {
  const log = new EmbeddedLog({ path: join(dataDir, 'log') });
  await log.open();
  try {
    await prepareLog(log, model);
    await appendInput(log, input);
  } finally {
    await log.close();
  }
}

const PIPELINE_TOPIC_NAMES: ReadonlySet<string> = new Set(pipelineTopics().map((t) => t.name));
const APP_PREFIXES = applicationIds(true).map((app) => `${app}-`);

/** Topics a pipeline run leaves on a broker: its topics, their dead letters, the schema topic, internal topics. */
function isPipelineTopic(name: string): boolean {
  if (name === '_schemas') return true;
  const base = name.endsWith('.dlq') ? name.slice(0, -'.dlq'.length) : name;
  return PIPELINE_TOPIC_NAMES.has(base) || APP_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/**
 * Deletes the pipeline's topics and consumer groups from a broker. Its topic names and group ids are fixed (no
 * prefix option), so runs on a shared broker must start from none: two runs at once on one broker would collide.
 */
export async function resetKafka(brokers: readonly string[]): Promise<void> {
  const kafka = new kafkajs.Kafka({ clientId: 'millrace-bench-reset', brokers: [...brokers], logLevel: kafkajs.logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const apps = applicationIds(true);
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((id) => apps.some((app) => id === app || id.startsWith(`${app}-`)));
    if (groups.length > 0) await admin.deleteGroups(groups);
    const topics = (await admin.listTopics()).filter(isPipelineTopic);
    if (topics.length === 0) return;
    await admin.deleteTopics({ topics, timeout: 30_000 });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const left = (await admin.listTopics()).filter(isPipelineTopic);
      if (left.length === 0) return;
      if (Date.now() > deadline) throw new Error(`pipeline benchmark: topics still not deleted after 60 s: ${left.join(', ')}`);
      await sleep(200);
    }
  } finally {
    await admin.disconnect();
  }
}

// ------------------------------------------------------------------------------------------------ engine processes

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface EngineChild {
  readonly pid: number;
  /** Resolves with the URL once the process printed it and `/health` answers. */
  readonly ready: Promise<string>;
  readonly stderr: () => string;
  /** Whether the process has ended. */
  readonly ended: () => boolean;
  /** Resolves with the exit code (or signal) when the process ends. */
  readonly exited: Promise<number | string>;
  /** SIGTERM (every task commits), then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * `millrace up` as a child process (as the end-to-end tests run it). Set MILLRACE_BENCH_CPU_PROF to a directory to
 * run it under `node --cpu-prof` (the profile is written when it exits after SIGTERM).
 */
export function spawnEngine(options: { configPath: string; dataDir: string; port: number; brokers?: readonly string[] }): EngineChild {
  const profileDir = process.env['MILLRACE_BENCH_CPU_PROF'];
  const args = [
    ...(profileDir === undefined || profileDir === '' ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir]),
    join(REPO_ROOT, 'bin', 'millrace.js'),
    'up',
    '--config',
    options.configPath,
    '--data-dir',
    options.dataDir,
    '--port',
    String(options.port),
    ...(options.brokers === undefined ? [] : ['--brokers', options.brokers.join(',')]),
  ];
  const { MILLRACE_BROKERS: _brokers, MILLRACE_SCHEMA_REGISTRY: _registry, ...env } = process.env;
  const child: ChildProcess = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
  if (child.pid === undefined) throw new Error('pipeline benchmark: millrace up did not start');
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  // Bounded: the structured log of a long run is not kept whole.
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-200_000)));
  let ended = false;
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => {
    ended = true;
    resolve(code ?? signal ?? 'unknown');
  }));
  const ready = (async (): Promise<string> => {
    const deadline = Date.now() + 60_000;
    let url: string | undefined;
    while (url === undefined) {
      url = / at (http:\/\/\S+)/.exec(stdout)?.[1];
      if (url !== undefined) break;
      if (ended) throw new Error(`millrace up exited before it was ready:\n${stdout}\n${stderr.slice(-4_000)}`);
      if (Date.now() > deadline) throw new Error(`millrace up was not ready in 60 s:\n${stdout}\n${stderr.slice(-4_000)}`);
      await sleep(10);
    }
    for (;;) {
      try {
        const response = await fetch(`${url}/health`);
        await response.arrayBuffer();
        if (response.ok) return url;
      } catch {
        // not answering yet: the deadline below decides
      }
      if (ended || Date.now() > deadline) throw new Error(`millrace up never answered /health:\n${stderr.slice(-4_000)}`);
      await sleep(10);
    }
  })();
  ready.catch(() => undefined); // awaited by the caller; not an unhandled rejection meanwhile
  const pid = child.pid;
  return {
    pid,
    ready,
    stderr: () => stderr,
    ended: () => ended,
    exited,
    async stop(graceMs = 20_000) {
      if (ended) return;
      child.kill('SIGTERM');
      const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
      if ((await Promise.race([exited, timer])) === 'timeout' && !ended) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

const CLOCK_TICKS_PER_S = ((): number => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system, every thread) a live process has used, in µs, from /proc/<pid>/stat. */
export function processCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  if (!Number.isFinite(ticks)) throw new Error(`pipeline benchmark: cannot read the CPU time of ${pid} from ${stat.slice(0, 200)}`);
  return (ticks / CLOCK_TICKS_PER_S) * 1e6;
}

/** The whole machine's CPU time so far (every core), busy and in all, µs: `/proc/stat`'s first line. */
export function machineCpuUs(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { busy: ((total - idle) / CLOCK_TICKS_PER_S) * 1e6, total: (total / CLOCK_TICKS_PER_S) * 1e6 };
}

// ------------------------------------------------------------------------------------------------ a run

export interface RunOptions {
  readonly engines: readonly EngineChild[];
  /** The applications that must have processed everything. */
  readonly apps: readonly string[];
  readonly timeoutMs: number;
  /** When the timed part started (`performance.now()`). */
  readonly startedMs: number;
  /** The engines' CPU time then, summed, µs (default 0: started with the processes). */
  readonly cpuStartUs?: number;
  /** The machine's busy CPU time then (`machineCpuUs().busy`). */
  readonly machineStartUs: number;
}

export interface RunResult {
  /** From the start until the status poll that found everything processed. */
  readonly seconds: number;
  /** The engines' CPU time then, summed. */
  readonly cpuUs: number;
  /** From the start until every engine answered `/health`. */
  readonly readySeconds: number;
  /** Cores the whole machine kept busy over the timed part (the engines, the broker, anything else running). */
  readonly machineBusyCores: number;
  readonly clients: MillraceClient[];
}

/** Waits until every engine answers; its clients. */
export async function readyClients(engines: readonly EngineChild[]): Promise<MillraceClient[]> {
  const clients: MillraceClient[] = [];
  for (const engine of engines) {
    const url = await Promise.race([
      engine.ready,
      engine.exited.then((code) => Promise.reject(new Error(`millrace up exited (${code}) before it was ready:\n${engine.stderr().slice(-4_000)}`))),
    ]);
    clients.push(new MillraceClient(url));
  }
  return clients;
}

/**
 * Waits until the engines run every application and their tasks are settled: each task owned by one process, the
 * same ones over `stableMs`, nothing left to process (the model's registry events).
 */
export async function settled(clients: readonly MillraceClient[], apps: readonly string[], options: { stableMs?: number; timeoutMs?: number } = {}): Promise<void> {
  const stableMs = options.stableMs ?? 2_000;
  const deadline = performance.now() + (options.timeoutMs ?? 120_000);
  let last = '';
  let since = performance.now();
  for (;;) {
    const statuses = await Promise.all(clients.map((c) => c.status()));
    failures(statuses);
    const owners = new Map<string, number>();
    let ready = true;
    for (const status of statuses) {
      for (const app of apps) {
        const view = status.applications.find((a) => a.applicationId === app);
        if (view === undefined || view.state !== 'running') ready = false;
        for (const task of view?.tasks ?? []) {
          const id = `${app}/${task.taskId}`;
          owners.set(id, (owners.get(id) ?? 0) + 1);
          if (task.state !== 'running' || task.inputs.some((i) => i.lag > 0)) ready = false;
        }
      }
    }
    if ([...owners.values()].some((n) => n > 1) || apps.some((app) => ![...owners.keys()].some((id) => id.startsWith(`${app}/`)))) ready = false;
    const now = performance.now();
    const assignment = ready ? [...owners.keys()].sort().join(',') : '';
    if (assignment !== last) {
      last = assignment;
      since = now;
    } else if (ready && now - since >= stableMs) {
      return;
    }
    if (now > deadline) throw new Error(`pipeline benchmark: the engines' tasks did not settle in time (last: ${assignment || 'not all running'})`);
    await sleep(200);
  }
}

interface InputProgress {
  readonly committed: number;
}

/** Polls the engines until everything is processed; then the time and the engines' CPU. */
export async function runUntilProcessed(options: RunOptions): Promise<RunResult> {
  const { engines } = options;
  const deadline = options.startedMs + options.timeoutMs;
  const clients = await readyClients(engines);
  const readySeconds = (performance.now() - options.startedMs) / 1000;
  for (;;) {
    if (performance.now() > deadline) throw new Error(`pipeline benchmark: not processed within ${options.timeoutMs / 1000} s`);
    for (const engine of engines) {
      // A process that ended on its own is a failure, whatever it printed.
      if (engine.ended()) throw new Error(`pipeline benchmark: engine ${engine.pid} exited during the run:\n${engine.stderr().slice(-4_000)}`);
    }
    const statuses = await Promise.all(clients.map((c) => c.status()));
    // When the answers are in, not when they were asked for: a busy engine answers late, and what it answers is
    // the state when it got round to it.
    const polledAt = performance.now();
    failures(statuses);
    if (await processed(statuses, clients[0]!, options.apps)) {
      const cpuUs = engines.reduce((sum, e) => sum + processCpuUs(e.pid), 0) - (options.cpuStartUs ?? 0);
      const seconds = (polledAt - options.startedMs) / 1000;
      const machineBusyCores = (machineCpuUs().busy - options.machineStartUs) / 1e6 / ((performance.now() - options.startedMs) / 1000);
      return { seconds, cpuUs, readySeconds, machineBusyCores, clients };
    }
    await sleep(POLL_MS);
  }
}

function failures(statuses: readonly EngineStatus[]): void {
  for (const status of statuses) {
    for (const app of status.applications) {
      if (app.state === 'failed' || app.error !== null) throw new Error(`pipeline benchmark: ${app.applicationId} failed: ${app.error}`);
      for (const task of app.tasks) {
        if (task.state === 'failed' || task.error !== null) throw new Error(`pipeline benchmark: ${app.applicationId} task ${task.taskId} failed: ${task.error}`);
      }
    }
  }
}

/**
 * Whether every application has processed everything: over all processes, its tasks cover every partition of each
 * topic they read, and each committed offset is at that partition's end offset read after the status.
 */
async function processed(statuses: readonly EngineStatus[], client: MillraceClient, apps: readonly string[]): Promise<boolean> {
  const progress = new Map<string, Map<string, InputProgress>>();
  for (const status of statuses) {
    for (const app of status.applications) {
      let inputs = progress.get(app.applicationId);
      if (inputs === undefined) progress.set(app.applicationId, (inputs = new Map()));
      for (const task of app.tasks) {
        for (const input of task.inputs) {
          if (input.lag > 0) return false;
          const key = `${input.topic}\u0000${input.partition}`;
          const known = inputs.get(key);
          if (known === undefined || known.committed < input.committed) inputs.set(key, { committed: input.committed });
        }
      }
    }
  }
  if (apps.some((app) => (progress.get(app)?.size ?? 0) === 0)) return false;
  const topics = new Set<string>();
  for (const inputs of progress.values()) for (const key of inputs.keys()) topics.add(key.split('\u0000')[0]!);
  const ends = new Map<string, Array<{ partition: number; end: number }>>();
  for (const topic of topics) {
    const view = await client.request<{ offsets: Array<{ partition: number; end: number }> }>('GET', `/topics/${encodeURIComponent(topic)}`);
    ends.set(topic, view.offsets);
  }
  for (const inputs of progress.values()) {
    const read = new Set([...inputs.keys()].map((key) => key.split('\u0000')[0]!));
    for (const topic of read) {
      for (const { partition, end } of ends.get(topic)!) {
        const at = inputs.get(`${topic}\u0000${partition}`);
        if (at === undefined || at.committed < end) return false;
      }
    }
  }
  return true;
}

// ------------------------------------------------------------------------------------------------ verification

/** Every record of a topic, through `GET /topics/:topic/events`. */
export async function readAll(client: MillraceClient, topic: string): Promise<ReadRecord[]> {
  const out: ReadRecord[] = [];
  let offsets: Map<number, number> | 'earliest' = 'earliest';
  for (;;) {
    const result = await client.readEvents(topic, { offset: offsets, limit: 1_000 });
    out.push(...result.records);
    const next = new Map(Object.entries(result.next).map(([p, o]) => [Number(p), o]));
    const done = [...next].every(([p, o]) => o >= (result.highWatermarks[String(p)] ?? 0));
    if (done || result.records.length === 0) return out;
    offsets = next;
  }
}

export interface Verified {
  readonly predictions: number;
  readonly outcomes: number;
  readonly driftEvaluations: number;
  readonly driftVerdicts: number;
}

/**
 * Throws unless the output is complete: a prediction by the served model for every transaction, an outcome for
 * every label, nothing dead-lettered or late anywhere, and (with the drift stage) drift evaluations.
 */
export async function verifyOutput(clients: readonly MillraceClient[], input: PipelineInput, options: { drift: boolean }): Promise<Verified> {
  const client = clients[0]!;
  const wrong: string[] = [];
  const predictions = await readAll(client, Topics.predictions);
  const ids = new Set<string>();
  let otherModel = 0;
  for (const record of predictions) {
    const value = record.value as { transaction_id: string; version: string };
    ids.add(value.transaction_id);
    if (value.version !== MODEL_VERSION) otherModel++;
  }
  if (predictions.length !== input.events || ids.size !== input.events) wrong.push(`${predictions.length} predictions of ${ids.size} transactions, expected ${input.events}`);
  if (otherModel > 0) wrong.push(`${otherModel} predictions not by ${FRAUD_MODEL} ${MODEL_VERSION}`);
  const outcomes = (await readAll(client, Topics.outcomes)).length;
  if (outcomes !== input.events) wrong.push(`${outcomes} outcomes, expected ${input.events} (one per label)`);
  // The pipeline's own dead letters and late records: a shared broker may hold other applications' on purpose.
  const ours = (name: string): boolean => PIPELINE_TOPIC_NAMES.has(name.replace(/\.dlq$/, '')) || APP_PREFIXES.some((prefix) => name.startsWith(prefix));
  const names = (await client.listTopics()).map((t) => t.name).filter(ours);
  for (const name of names.filter((n) => n.endsWith('.dlq') || n.endsWith('-late-records'))) {
    const records = await readAll(client, name);
    if (records.length > 0) wrong.push(`${records.length} records on ${name}, the first: ${JSON.stringify(records[0]).slice(0, 1_500)}`);
  }
  for (const status of await Promise.all(clients.map((c) => c.status()))) {
    const dead = status.applications.reduce((n, app) => n + app.tasks.reduce((m, t) => m + t.deadLettered, 0), 0);
    if (dead > 0) wrong.push(`${dead} records dead-lettered (status)`);
  }
  const driftEvaluations = options.drift ? (await readAll(client, Topics.driftEvaluations)).length : 0;
  const driftVerdicts = options.drift ? (await readAll(client, Topics.drift)).length : 0;
  if (options.drift && driftEvaluations === 0) wrong.push('the drift stage evaluated nothing');
  if (wrong.length > 0) throw new Error(`pipeline benchmark: incomplete output: ${wrong.join('; ')}`);
  return { predictions: predictions.length, outcomes, driftEvaluations, driftVerdicts };
}

// ------------------------------------------------------------------------------------------------ misc

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
