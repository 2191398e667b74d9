import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../../engine/errors.js';
import type { Log } from '../../engine/log/log.js';
import type { Logger } from '../../engine/logger.js';
import { OUTPUT_FILES, flatMetrics, readTrainingOutput, type JobRunner, type TrainingJobResult, type TrainingJobSpec } from '../../engine/ml/jobs/job-runner.js';
import type { ModelRuntime } from '../../engine/ml/model-runtime.js';
import { auc } from '../../engine/ml/significance.js';
import type { TopologyContext } from '../../engine/runtime/modules.js';
import type { SchemaRegistry } from '../../engine/serde/registry.js';
import { Serdes } from '../../engine/serde/serde.js';
import type { Processor, ProcessorContext } from '../../engine/topology/processor.js';
import type { StreamRecord } from '../../engine/topology/record.js';
import { TopologyDraft, type Topology } from '../../engine/topology/topology.js';
import { FEATURE_NAMES, FEATURE_VERSION, Topics, type ModelRouting, type ModelVersionRef, type Reproducibility, type TrainingJobEvent } from './contract.js';
import { exportTrainingSet, type LabelledRows, type TrainingSet } from './training-set.js';

/**
 * Training jobs (DESIGN §6, retraining): each `RetrainRequested` on `training-jobs` becomes a run of the trainer,
 * in two steps that are both events:
 *
 *   RetrainRequested ─▶ TrainingStarted (at once: the job is visible while it runs)
 *   TrainingStarted  ─▶ export the training set by replaying the log ─▶ JobRunner ─▶ evaluate ─▶ ModelTrained
 *                                                                                         └──▶ TrainingFailed
 *
 * The training set is the labelled transactions since the request's `since` (all of them without one), with their
 * features as of each transaction's event time (a replay of the features topology: point-in-time correct). The job
 * waits, polling the log, until the set holds `minRows` rows and `minPositives` frauds — labels come minutes after
 * their transactions — or until `maxDataWaitMs`, when it trains on what there is (or fails, below a floor).
 *
 * A hundredth-hash of the transaction id sets `evaluationPercent` of the rows aside, unseen by the trainer: the new
 * model and the serving one are both scored on them, and `ModelTrained.metrics` carries `auc` and `baseline_auc`
 * (the controller refuses a model clearly worse than the serving one before any canary).
 *
 * The model lands in `<dataDir>/models/<model>/<version>/` (version `v<N>` from job `<model>-<N>`). A run that a
 * crash cut short is redone from scratch when its `TrainingStarted` is read again; a finished one (its manifest
 * written) is read back and verified, not retrained. The task awaits the job: the `training-jobs` topic has one
 * partition, so jobs run one at a time, in order.
 */

export interface TrainingOptions {
  readonly log: Log;
  readonly runner: JobRunner;
  readonly runtime: ModelRuntime;
  /** Models go to `<dataDir>/models/`, training sets to `<dataDir>/training-sets/`. */
  readonly dataDir: string;
  readonly registry?: SchemaRegistry;
  readonly logger?: Logger;
  readonly applicationId?: string;
  readonly seed?: number;
  /** Share of the trainer's rows it holds out for its own metrics. */
  readonly holdoutFraction?: number;
  readonly evaluationPercent?: number;
  readonly minRows?: number;
  readonly minPositives?: number;
  readonly pollMs?: number;
  readonly maxDataWaitMs?: number;
}

export const DEFAULT_TRAINING_OPTIONS = {
  seed: 7,
  holdoutFraction: 0.2,
  evaluationPercent: 20,
  minRows: 3_000,
  minPositives: 40,
  pollMs: 2_000,
  maxDataWaitMs: 10 * 60_000,
} as const;

/** Below these, a job that waited `maxDataWaitMs` fails instead of training. */
const FLOOR_ROWS = 200;
const FLOOR_POSITIVES = 10;

type Settings = Required<Omit<TrainingOptions, 'registry' | 'logger' | 'applicationId'>> & Pick<TrainingOptions, 'registry' | 'logger'>;

/** `fraud-3` → `v3`. */
export function versionOfJob(jobId: string): string {
  const match = /-(\d+)$/.exec(jobId);
  return match === null ? jobId : `v${match[1]}`;
}

class TrainingProcessor implements Processor<string, TrainingJobEvent, string, TrainingJobEvent> {
  readonly #settings: Settings;

  constructor(settings: Settings) {
    this.#settings = settings;
  }

  process(record: StreamRecord<string, TrainingJobEvent>, ctx: ProcessorContext<string, TrainingJobEvent>): void | Promise<void> {
    const event = record.value;
    const emit = (value: TrainingJobEvent): void => ctx.forward({ key: record.key, value, timestamp: record.timestamp, headers: {} });
    if (event.type === 'RetrainRequested') {
      const jobs = ctx.store<string, TrainingJobEvent>('requests');
      jobs.put(event.job_id, event);
      emit({ type: 'TrainingStarted', job_id: event.job_id, model: event.model, runner: this.#settings.runner.name, at: event.at });
      return;
    }
    if (event.type !== 'TrainingStarted' || event.runner !== this.#settings.runner.name) return;
    const request = ctx.store<string, TrainingJobEvent>('requests').get(event.job_id);
    const routing = ctx.globalStore<string, ModelRouting>('routing').get(event.model);
    return this.#run(event, request?.type === 'RetrainRequested' ? request.since : undefined, routing?.stable ?? null).then(emit);
  }

  async #run(started: Extract<TrainingJobEvent, { type: 'TrainingStarted' }>, since: string | undefined, serving: ModelVersionRef | null): Promise<TrainingJobEvent> {
    const s = this.#settings;
    const { job_id: jobId, model, at } = started;
    const log = s.logger?.child({ jobId });
    try {
      const setDir = join(s.dataDir, 'training-sets', jobId);
      await mkdir(setDir, { recursive: true });
      const set = await this.#waitForData(jobId, since, setDir);
      const version = versionOfJob(jobId);
      const spec: TrainingJobSpec = {
        jobId,
        model,
        version,
        dataPath: set.path,
        outDir: join(s.dataDir, 'models', model, version),
        seed: s.seed,
        holdoutFraction: s.holdoutFraction,
        featureVersion: FEATURE_VERSION,
        featureNames: FEATURE_NAMES,
        offsets: set.offsets,
      };
      log?.info({ rows: set.rows, positives: set.positives, since }, 'training');
      const result = await this.#train(spec);
      const reproducibility: Reproducibility = {
        ...result.reproducibility,
        training_set: { since: since ?? null, holdout_fraction: s.holdoutFraction, evaluation_percent: s.evaluationPercent },
      };
      const metrics: Record<string, number> = {
        ...flatMetrics(result.metrics),
        auc: await this.#auc(model, version, result.modelPath, result.sha256, set.holdout),
        evaluation_rows: set.holdout.rows.length,
        evaluation_positives: set.holdout.positives,
        training_rows: set.rows,
        training_positives: set.positives,
      };
      if (serving !== null) metrics['baseline_auc'] = await this.#auc(model, serving.version, serving.artifact_uri, serving.sha256, set.holdout);
      log?.info({ version, sha256: result.sha256, auc: metrics['auc'], baselineAuc: metrics['baseline_auc'] }, 'model trained');
      return {
        type: 'ModelTrained',
        job_id: jobId,
        model,
        version,
        artifact_uri: result.modelPath,
        sha256: result.sha256,
        metrics,
        reproducibility,
        at,
      };
    } catch (err) {
      log?.warn({ err }, 'training failed');
      return { type: 'TrainingFailed', job_id: jobId, model, reason: errorMessage(err), at };
    }
  }

  async #waitForData(jobId: string, since: string | undefined, dir: string): Promise<TrainingSet & { holdout: LabelledRows & { positives: number } }> {
    const s = this.#settings;
    const deadline = Date.now() + s.maxDataWaitMs;
    for (;;) {
      const set = await exportTrainingSet({
        log: s.log,
        ...(s.registry === undefined ? {} : { registry: s.registry }),
        ...(since === undefined ? {} : { fromEventTimeMs: Date.parse(since) }),
        outPath: join(dir, 'train.csv'),
        holdout: { path: join(dir, 'evaluation.csv'), percent: s.evaluationPercent },
      });
      const rows = set.rows + set.holdout.rows.length;
      const positives = set.positives + set.holdout.positives;
      if (rows >= s.minRows && positives >= s.minPositives) return set;
      if (Date.now() >= deadline) {
        if (set.rows >= FLOOR_ROWS && set.positives >= FLOOR_POSITIVES && set.holdout.positives > 0) return set;
        throw new Error(`${jobId}: only ${rows} labelled rows (${positives} fraud) since ${since ?? 'the start'} after waiting ${s.maxDataWaitMs} ms`);
      }
      s.logger?.info({ jobId, rows, positives, want: { rows: s.minRows, positives: s.minPositives } }, 'waiting for labels');
      await new Promise((resolve) => setTimeout(resolve, s.pollMs));
    }
  }

  async #train(spec: TrainingJobSpec): Promise<TrainingJobResult> {
    const runner = this.#settings.runner;
    if (existsSync(join(spec.outDir, OUTPUT_FILES.manifest))) {
      // Trained before a crash: the same job, read back and verified (a mismatch throws, and the job fails).
      return readTrainingOutput(spec, spec.outDir, runner.name);
    }
    await rm(spec.outDir, { recursive: true, force: true });
    await mkdir(spec.outDir, { recursive: true });
    return runner.run(spec);
  }

  /** AUC of a model on the evaluation rows; the file is verified by SHA-256 as it loads. */
  async #auc(model: string, version: string, path: string, sha256: string, rows: LabelledRows): Promise<number> {
    const loaded = await this.#settings.runtime.load({ name: `${model}-evaluation`, version, path, sha256, inputWidth: FEATURE_NAMES.length });
    try {
      const input = new Float32Array(rows.rows.length * FEATURE_NAMES.length);
      rows.rows.forEach((row, i) => input.set(row, i * FEATURE_NAMES.length));
      const scores = await loaded.predict(input, rows.rows.length);
      return auc(Array.from(scores), rows.labels);
    } finally {
      await loaded.close();
    }
  }
}

/**
 * Re-runs a recorded training job: the same log ranges, cut the same way, trained with the same seed, into
 * `outDir`. The trainer is deterministic, so the model file is the same bytes: its SHA-256 equals the recorded one.
 */
export async function reproduceTrainingJob(
  trained: Extract<TrainingJobEvent, { type: 'ModelTrained' }>,
  options: { log: Log; runner: JobRunner; outDir: string; registry?: SchemaRegistry },
): Promise<TrainingJobResult> {
  const { reproducibility } = trained;
  const cut = reproducibility.training_set;
  if (cut === undefined) throw new Error(`${trained.job_id} records no training_set: it cannot be cut again`);
  const setDir = join(options.outDir, 'training-set');
  await mkdir(setDir, { recursive: true });
  const set = await exportTrainingSet({
    log: options.log,
    ...(options.registry === undefined ? {} : { registry: options.registry }),
    ranges: reproducibility.offsets,
    ...(cut.since === null ? {} : { fromEventTimeMs: Date.parse(cut.since) }),
    outPath: join(setDir, 'train.csv'),
    holdout: { path: join(setDir, 'evaluation.csv'), percent: cut.evaluation_percent },
  });
  return options.runner.run({
    jobId: `${trained.job_id}-reproduced`,
    model: trained.model,
    version: trained.version,
    dataPath: set.path,
    outDir: join(options.outDir, 'model'),
    seed: reproducibility.seed,
    holdoutFraction: cut.holdout_fraction,
    featureVersion: reproducibility.feature_version,
    featureNames: FEATURE_NAMES,
    offsets: reproducibility.offsets,
  });
}

export function trainingTopology(options: TrainingOptions): Topology {
  const settings: Settings = { ...DEFAULT_TRAINING_OPTIONS, ...options };
  const json = Serdes.json<TrainingJobEvent>();
  return new TopologyDraft(options.applicationId ?? 'training')
    .addGlobalStore({ name: 'routing', topic: Topics.modelRouting, keySerde: Serdes.string(), valueSerde: Serdes.json<ModelRouting>() })
    .addStore({ name: 'requests', kind: 'key-value', keySerde: Serdes.string(), valueSerde: json, changelog: true })
    .addSource('training-jobs', { topics: [Topics.trainingJobs], keySerde: Serdes.string(), valueSerde: json })
    .addProcessor('train', () => new TrainingProcessor(settings), {
      parents: ['training-jobs'],
      stores: ['requests'],
      operator: 'train',
      detail: { runner: options.runner.name, seed: settings.seed, minRows: settings.minRows, minPositives: settings.minPositives },
    })
    .addSink('to-training-jobs', Topics.trainingJobs, { parents: ['train'], keySerde: Serdes.string(), valueSerde: json })
    .build();
}

export default function training({ services, options }: TopologyContext): Topology {
  const numeric = (name: keyof typeof DEFAULT_TRAINING_OPTIONS): Partial<TrainingOptions> =>
    typeof options[name] === 'number' ? { [name]: options[name] } : {};
  return trainingTopology({
    log: services.log,
    runner: services.jobRunner(),
    runtime: services.modelRuntime(),
    dataDir: services.dataDir,
    registry: services.registry,
    logger: services.logger,
    ...numeric('seed'),
    ...numeric('holdoutFraction'),
    ...numeric('evaluationPercent'),
    ...numeric('minRows'),
    ...numeric('minPositives'),
    ...numeric('pollMs'),
    ...numeric('maxDataWaitMs'),
  });
}
