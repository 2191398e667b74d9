/**
 * The ML pipeline end to end, as one scenario that runs on the embedded log and on Kafka: a `millrace up` process
 * running every pipeline topology, fed by the traffic generator over HTTP, watched through HTTP only.
 *
 *   1. clean traffic: labels accumulate, the first model is trained by the real Python trainer and promoted;
 *   2. more clean traffic, scored by it;
 *   3. drifted traffic: the drift topology names the shifted features, the controller asks for a retraining, the
 *      trainer trains on the drifted window, and the new version starts as a canary;
 *   4. drifted traffic until the canary is promoted (or rolled back, which fails the scenario);
 *   5. the AUC of each version on the drifted traffic, from the feedback joined to its predictions (`outcomes`).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { MillraceClient, type ReadRecord } from '../../engine/cli/client.js';
import type { ModelView } from '../../engine/ml/model-service.js';
import { auc } from '../../engine/ml/significance.js';
import { pipelineConfig } from '../../topologies/pipeline/config.js';
import { FRAUD_MODEL, Topics, type DriftDetected, type ModelRegistryEvent, type Outcome, type TrainingJobEvent } from '../../topologies/pipeline/contract.js';
import { sendEvents } from '../../topologies/pipeline/demo-traffic.js';
import { TrafficGenerator } from '../../topologies/pipeline/generator.js';
import { REPO_ROOT, freePort, startEngine, type EngineProcess } from './engine-process.js';
import { kafkaClient } from './cluster.js';
import { tempDir } from './runtime.js';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { LocalProcessRunner } from '../../engine/ml/jobs/local-process-runner.js';
import { EmbeddedSchemaRegistry } from '../../engine/serde/embedded-registry.js';
import { reproduceTrainingJob } from '../../topologies/pipeline/training.js';

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const START = Date.parse('2026-03-02T00:00:00Z');
/**
 * Features over 24 hours settle a day into the stream, so the first model is trained on the hours after that (a
 * model trained on the first hours would see every later hour as drift). At one transaction a second, a day is
 * 86,400 transactions and as many labels.
 */
export const WARM_UP = START + 24 * HOUR;
/**
 * The clean traffic sent before the first model is awaited: two hours past the warm-up, of which the first model
 * asks for 5,000 labels (`bootstrapLabels`), so it learns from, and takes its drift reference from, settled features.
 */
export const FIRST_MODEL_AT = WARM_UP + 2 * HOUR;
/** Event time: clean until DRIFT_AT, then drifted; the first model scores an hour and a half of clean traffic first. */
export const DRIFT_AT = FIRST_MODEL_AT + 1.5 * HOUR;

export interface ScenarioOptions {
  readonly python: string;
  readonly brokers?: string;
  readonly log?: (line: string) => void;
}

export interface ScenarioResult {
  readonly oldVersion: string;
  readonly newVersion: string;
  readonly oldAuc: number;
  readonly newAuc: number;
  /** Every drift verdict, in the order they were emitted. */
  readonly drifts: DriftDetected[];
  /** When the traffic began to drift (event time). */
  readonly driftAtMs: number;
  /** The retrained model's recorded SHA-256, and that of the model a re-run of its recorded job gave. */
  readonly reproduced: { readonly recorded: string; readonly rerun: string };
  readonly registry: ModelRegistryEvent[];
  readonly jobs: TrainingJobEvent[];
  /** What the pipeline's projections answered once everything was processed. */
  readonly projections: PipelineReadSide;
}

/** The read side, as a user queries it over HTTP. */
export interface PipelineReadSide {
  readonly names: string[];
  /** `model-performance` `fraud/<version>/all`, by version. */
  readonly performance: Record<string, { count?: number; auc?: number } | undefined>;
  /** Keys of `model-performance` under `fraud/<new version>/country=`. */
  readonly countrySlices: string[];
  /** Keys of `drift-timeline` under `fraud/<old version>/` (verdicts) and under `fraud/story/`. */
  readonly driftVerdicts: string[];
  readonly story: string[];
  /** A few keys of `user-risk` and of `alerts`. */
  readonly users: string[];
  readonly alerts: string[];
  /** The names of the samples `/metrics` exposed then. */
  readonly metricNames: string[];
  /** `GET /lineage` of the last prediction: the topic and link name of each record. */
  readonly lineage: string[];
}

async function scanKeys(client: MillraceClient, projection: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.request<{ items: Array<{ key: string }>; nextCursor?: string }>('GET', `/projections/${projection}`, { query: { prefix, limit: 500, cursor } });
    keys.push(...page.items.map((i) => i.key));
    cursor = page.nextCursor;
  } while (cursor !== undefined && keys.length < 5_000);
  return keys;
}

async function readSide(client: MillraceClient, oldVersion: string, newVersion: string): Promise<PipelineReadSide> {
  const { projections } = await client.request<{ projections: Array<{ name: string }> }>('GET', '/projections');
  const performance: PipelineReadSide['performance'] = {};
  for (const version of [oldVersion, newVersion]) {
    const key = `${FRAUD_MODEL}/${encodeURIComponent(version)}/all`;
    const answer = await client.request<{ value: { count?: number; auc?: number } }>('GET', `/projections/model-performance/${encodeURIComponent(key)}`).catch(() => undefined);
    performance[version] = answer?.value;
  }
  return {
    names: projections.map((p) => p.name),
    performance,
    countrySlices: await scanKeys(client, 'model-performance', `${FRAUD_MODEL}/${encodeURIComponent(newVersion)}/country=`),
    driftVerdicts: await scanKeys(client, 'drift-timeline', `${FRAUD_MODEL}/${encodeURIComponent(oldVersion)}/`),
    story: await scanKeys(client, 'drift-timeline', `${FRAUD_MODEL}/story/`),
    users: (await client.request<{ items: Array<{ key: string }> }>('GET', '/projections/user-risk', { query: { limit: 5 } })).items.map((i) => i.key),
    alerts: await scanKeys(client, 'alerts', 'tx/'),
    lineage: await (async () => {
      // The first prediction of a partition that has one (on Kafka, the last offsets are transaction markers).
      const topic = await client.request<{ offsets: Array<{ partition: number; start: number; end: number }> }>('GET', `/topics/${Topics.predictions}`);
      const filled = topic.offsets.find((o) => o.end > o.start);
      if (filled === undefined) return [];
      const first = await client.request<{ records: Array<{ partition: number; offset: number }> }>('GET', `/topics/${Topics.predictions}/events`, {
        query: { partition: filled.partition, offset: 'earliest', limit: 1 },
      });
      const prediction = first.records[0];
      if (prediction === undefined) return [];
      const answer = await client.request<{ records: Array<{ via: string | null; record: { topic: string } }> }>('GET', `/lineage/${Topics.predictions}/${prediction.partition}/${prediction.offset}`);
      return answer.records.map((n) => `${n.via ?? 'root'}:${n.record.topic}`);
    })(),
    metricNames: [...new Set((await (await fetch(`${client.baseUrl}/metrics`)).text()).split('\n').filter((l) => l.startsWith('millrace_')).map((l) => l.split(/[{ ]/)[0]!))],
  };
}

/** The issue's must-shows on a scenario's result; the same on every log. */
export function expectPipelineMustShows(result: ScenarioResult): void {
  // Drift events come once the traffic drifts, never before, and in its first two hours name the features the
  // drift moves at once: the amount and what is computed from it, and the score; not the countries. (Those move
  // later: with fewer account takeovers, fewer users have a foreign country among the last 24 hours', and after
  // five hours or so that shows in `distinct_countries_24h` too, while the canary still runs.)
  expect(result.drifts.length).toBeGreaterThan(0);
  for (const drift of result.drifts) expect(Date.parse(drift.window_end)).toBeGreaterThanOrEqual(result.driftAtMs);
  const early = result.drifts.filter((d) => Date.parse(d.window_end) < result.driftAtMs + 2 * HOUR);
  const named = new Set(early.flatMap((d) => d.drifted_features));
  expect(named).toContain('amount');
  expect(named).toContain('score');
  expect(named).not.toContain('distinct_countries_24h');
  // The retraining it caused went through every canary stage to promotion, and judged by feedback on the drifted
  // traffic, the new model is the better one.
  const stages = result.registry.filter((e) => e.type === 'CanaryStarted' && e.version === result.newVersion).map((e) => (e as { percent: number }).percent);
  expect(stages).toEqual([5, 10, 25, 50]);
  expect(result.registry.some((e) => e.type === 'ModelPromoted' && e.version === result.newVersion)).toBe(true);
  expect(result.newAuc).toBeGreaterThan(result.oldAuc);
  // Re-running the recorded training job gives the same model, byte for byte.
  expect(result.reproduced.rerun).toBe(result.reproduced.recorded);
  // The read side: every projection, performance per version and per country, the drift story.
  const read = result.projections;
  expect(read.names).toEqual(['user-risk', 'alerts', 'model-performance', 'drift-timeline', 'dead-letters']);
  for (const version of [result.oldVersion, result.newVersion]) {
    expect(read.performance[version]?.count, `model-performance of ${version}`).toBeGreaterThan(100);
    expect(read.performance[version]?.auc).toEqual(expect.any(Number));
  }
  expect(read.countrySlices.length).toBeGreaterThan(1);
  expect(read.driftVerdicts.length).toBeGreaterThan(0);
  expect(read.story.some((key) => key.includes('ModelPromoted'))).toBe(true);
  expect(read.users.length).toBeGreaterThan(0);
  expect(read.alerts.length).toBeGreaterThan(0);
  // A prediction's lineage: its feature vector and its transaction.
  expect(read.lineage).toEqual(expect.arrayContaining([`root:${Topics.predictions}`, `features:${Topics.features}`, `transaction:${Topics.transactions}`]));
  // The pipeline reports inference, drift and traffic to Prometheus.
  for (const name of ['millrace_inference_batch_size_count', 'millrace_inference_latency_seconds_bucket', 'millrace_drift_psi', 'millrace_drift_ks', 'millrace_model_traffic_share', 'millrace_record_latency_seconds_bucket', 'millrace_consumer_lag_seconds', 'millrace_projection_lag_records']) {
    expect(read.metricNames, name).toContain(name);
  }
}

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

export async function totalLag(client: MillraceClient): Promise<number> {
  const status = await client.status();
  return status.applications.reduce((n, app) => n + app.tasks.reduce((m, task) => m + task.inputs.reduce((k, input) => k + input.lag, 0), 0), 0);
}

export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, engine: EngineProcess): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}\n--- engine stderr (tail) ---\n${engine.stderr().slice(-6_000)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** The pipeline's config for tests: small thresholds so that a model is trained and retrained within minutes. */
export function pipelineTestConfig(options: { python: string; brokers?: string }): Record<string, unknown> {
  return {
    ...pipelineConfig({
      retraining: { bootstrapLabels: 5_000, bootstrapWarmUpMs: 24 * HOUR, bootstrapWindowMs: 2 * HOUR, minSamples: 150, maxSamples: 6_000 },
      training: { minRows: 3_000, minPositives: 40, pollMs: 2_000, maxDataWaitMs: 5 * MINUTE },
      drift: { windowRows: 1_500, evaluateEveryRows: 250 },
    }),
    schemasDir: join(REPO_ROOT, 'schemas'),
    training: { python: options.python, timeoutMs: 10 * MINUTE },
    runtime: { commitIntervalMs: 100 },
    ...(options.brokers === undefined ? {} : { kafka: { sessionTimeoutMs: 10_000, heartbeatIntervalMs: 1_000, transactionTimeoutMs: 60_000 } }),
  };
}

/**
 * The scenario's traffic: one transaction a second of event time from START, drifting at DRIFT_AT, labels two to
 * ten minutes later; `sendUntil` sends everything up to a moment of event time, as fast as the engine takes it.
 */
export function pipelineTraffic(client: MillraceClient, say: (line: string) => void): { generator: TrafficGenerator; sendUntil: (eventTimeMs: number) => Promise<void> } {
  const generator = new TrafficGenerator({
    seed: 11,
    users: 1_000,
    ratePerSecond: 1,
    driftAtMs: DRIFT_AT - START,
    startTimeMs: START,
    labelDelayMs: [2 * MINUTE, 10 * MINUTE],
  });
  const sendUntil = async (eventTimeMs: number): Promise<void> => {
    const events = generator.takeUntil(eventTimeMs);
    await sendEvents(client, events, { maxBatch: 2_000 });
    say(`sent ${events.length} events up to ${new Date(eventTimeMs).toISOString()} (${generator.stats.transactions} transactions so far)`);
  };
  return { generator, sendUntil };
}

export async function runPipelineScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const say = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const dir = await tempDir('millrace-pipeline-');
  const configPath = join(dir.path, 'millrace.config.json');
  await writeFile(configPath, JSON.stringify(pipelineTestConfig(options)));
  const engine = await startEngine({
    config: configPath,
    dataDir: join(dir.path, 'data'),
    port: await freePort(),
    timeoutMs: 120_000,
    ...(options.brokers === undefined ? {} : { brokers: options.brokers }),
  });
  const client = new MillraceClient(engine.url);
  try {
    const traffic = pipelineTraffic(client, say);
    const sendUntil = traffic.sendUntil;
    const fraud = async (): Promise<ModelView | undefined> => ((await client.request<{ models: ModelView[] }>('GET', '/models')).models).find((m) => m.name === 'fraud');

    // 1. Clean traffic, until the first model serves.
    await sendUntil(FIRST_MODEL_AT);
    const first = await until('the first model to be promoted', 8 * MINUTE, async () => (await fraud())?.stable ?? undefined, engine);
    say(`first model: ${first}`);

    // 2. More clean traffic, scored by it; 3. the drift.
    await sendUntil(DRIFT_AT);
    await sendUntil(DRIFT_AT + 2 * HOUR);
    const canary = await until(
      'a retrained model to start as a canary',
      10 * MINUTE,
      async () => {
        const model = await fraud();
        return model?.canary?.version ?? model?.versions.find((v) => v.version !== first && v.stage !== 'registered')?.version;
      },
      engine,
    );
    say(`canary: ${canary}`);

    // 4. Drifted traffic, ten minutes of event time at a time, until the canary is decided.
    let eventTime = DRIFT_AT + 2 * HOUR;
    const decided = await until(
      'the canary to be promoted or rolled back',
      20 * MINUTE,
      async () => {
        const model = await fraud();
        const stage = model?.versions.find((v) => v.version === canary)?.stage;
        if (stage === 'stable' || stage === 'rolled-back' || stage === 'refused') return stage;
        if (eventTime < DRIFT_AT + 10 * HOUR) {
          eventTime += 10 * MINUTE;
          await sendUntil(eventTime);
        }
        return undefined;
      },
      engine,
    );
    const registry = (await readAll(client, Topics.modelRegistry)).map((r) => r.value as ModelRegistryEvent);
    const jobs = (await readAll(client, Topics.trainingJobs)).map((r) => r.value as TrainingJobEvent);
    const drifts = (await readAll(client, Topics.drift)).map((r) => r.value as DriftDetected);
    for (const event of registry) say(`registry: ${event.type} ${event.version}${'percent' in event ? ` ${event.percent}%` : ''}${'evidence' in event && event.evidence !== undefined ? ` (${event.evidence})` : ''}${'reason' in event ? ` (${event.reason})` : ''}`);
    for (const job of jobs) say(`training-jobs: ${job.type} ${job.job_id}${job.type === 'ModelTrained' ? ` ${job.version} auc=${job.metrics['auc']?.toFixed(4)} baseline_auc=${job.metrics['baseline_auc']?.toFixed(4) ?? '-'}` : ''}${'reason' in job ? ` (${job.reason})` : ''}`);
    for (const drift of drifts) {
      const stats = drift.statistics.filter((s) => s.drifted).map((s) => `${s.feature} (PSI ${s.psi.toFixed(3)}, KS ${s.ks.toFixed(3)}, p ${s.ks_p_value.toExponential(1)})`);
      say(`drift: ${drift.version} ${drift.window_start}..${drift.window_end}: ${stats.join(', ')}`);
    }
    expect(decided, 'the canary was promoted').toBe('stable');

    // Two more hours of drifted traffic, served by the promoted model, and everything processed.
    await sendUntil(eventTime + 2 * HOUR);
    await until('the pipeline to catch up', 10 * MINUTE, async () => ((await totalLag(client)) === 0 ? true : undefined), engine);

    // 5. Both versions on the drifted traffic, judged by feedback.
    const outcomes = (await readAll(client, Topics.outcomes)).map((r) => r.value as Outcome);
    const drifted = outcomes.filter((o) => Date.parse(o.at) >= DRIFT_AT + 10 * MINUTE);
    const aucOf = (version: string): number => {
      const mine = drifted.filter((o) => o.version === version);
      expect(mine.length, `outcomes of ${version} on drifted traffic`).toBeGreaterThan(100);
      expect(mine.some((o) => o.fraud), `frauds among the outcomes of ${version}`).toBe(true);
      return auc(mine.map((o) => o.probability), mine.map((o) => o.fraud));
    };
    await until(
      'the projections to catch up',
      5 * MINUTE,
      async () => ((await client.request<{ projections: Array<{ lag: number }> }>('GET', '/projections')).projections.every((p) => p.lag === 0) ? true : undefined),
      engine,
    );
    const projections = await readSide(client, first, canary);
    const perf = Object.entries(projections.performance).map(([v, p]) => `${v}: ${p?.count} outcomes, AUC ${p?.auc?.toFixed(3)}`);
    say(
      `read side: ${projections.names.join(', ')}; model-performance ${perf.join('; ')}; ${projections.countrySlices.length} country slices; ` +
        `${projections.driftVerdicts.length} drift verdicts of ${first}; ${projections.story.length} story entries; ${projections.alerts.length} alerts`,
    );
    const result: ScenarioResult = {
      projections,
      oldVersion: first,
      newVersion: canary,
      oldAuc: aucOf(first),
      newAuc: aucOf(canary),
      drifts,
      driftAtMs: DRIFT_AT,
      reproduced: { recorded: '', rerun: '' },
      registry,
      jobs,
    };
    say(`AUC on drifted traffic, from feedback: ${first} (before retraining) ${result.oldAuc.toFixed(4)}, ${canary} (retrained) ${result.newAuc.toFixed(4)}`);

    // 6. The retraining re-run from what its ModelTrained event records, with the engine stopped: the same model.
    expect(await engine.kill('SIGTERM')).toBe(0);
    const trained = jobs.find((j): j is Extract<TrainingJobEvent, { type: 'ModelTrained' }> => j.type === 'ModelTrained' && j.version === canary)!;
    const log = options.brokers === undefined ? new EmbeddedLog({ path: join(dir.path, 'data', 'log') }) : await kafkaClient(options.brokers);
    try {
      if (log instanceof EmbeddedLog) await log.open();
      const registry = new EmbeddedSchemaRegistry(log);
      await registry.open();
      const rerun = await reproduceTrainingJob(trained, {
        log,
        registry,
        runner: new LocalProcessRunner({ python: options.python, trainerDir: join(REPO_ROOT, 'training'), timeoutMs: 10 * MINUTE }),
        outDir: join(dir.path, 'reproduced'),
      });
      say(`${canary} re-run from its record: SHA-256 ${rerun.sha256} (recorded ${trained.sha256})`);
      return { ...result, reproduced: { recorded: trained.sha256, rerun: rerun.sha256 } };
    } finally {
      await log.close();
    }
  } finally {
    await engine.kill('SIGTERM');
    await dir.remove();
  }
}
