/**
 * Training jobs (DESIGN §6, retraining): a `JobRunner` launches the trainer in `training/` on a training set
 * exported by replay and returns what it wrote, verified. Two runners implement it: `LocalProcessRunner` (a child
 * process, the default) and `KubernetesJobRunner` (a `batch/v1` Job that requests `nvidia.com/gpu`). Both pass the
 * shared conformance suite in `test/conformance/job-runner.ts` wherever they can run.
 *
 * A run writes four files to the job's output directory: `model.onnx`, `metrics.json`, `reference.json` and, last,
 * `manifest.json`. `readTrainingOutput` reads them back and checks them against the job: the model file's SHA-256 is
 * computed here and must equal the manifest's, and the manifest must describe the model, version, seed and feature
 * version that were asked for. A result is only returned once that holds.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { MillraceError, errorMessage, type ErrorCode } from '../../errors.js';
import type { Reproducibility } from '../../../topologies/pipeline/contract.js';

/** The error code of a failed training job; `details.failure` says what went wrong. */
export const TRAINING_FAILED: ErrorCode = 'MILLRACE_TRAINING_FAILED';

/** What went wrong with a training job, in `MillraceError.details.failure`. */
export type TrainingFailure =
  /** The job spec cannot be run (a bad seed, fraction, path, or a path outside the runner's volumes). */
  | 'invalid-job'
  /** The trainer could not be started (no interpreter, no kubectl, the cluster refused the Job). */
  | 'spawn'
  /** The trainer exited with an error; `details.trainerCode` and `details.reason` are the trainer's own. */
  | 'exit'
  /** The job ran past its timeout and was killed. */
  | 'timeout'
  /** The caller's AbortSignal fired; the job was killed. */
  | 'aborted'
  /** The trainer exited 0 but its output is missing, malformed, or does not match the job (e.g. the SHA-256). */
  | 'output';

export interface TrainingJobSpec {
  /** Unique per job: names the Kubernetes Job, labels logs and events. */
  readonly jobId: string;
  readonly model: string;
  /** The version the trained model gets. */
  readonly version: string;
  /** The training set: CSV with `transaction_id,at,<feature columns>,label` (see training/README.md). */
  readonly dataPath: string;
  /** Where the run's files go; it must not already hold a manifest (a trained model is never overwritten). */
  readonly outDir: string;
  /** Seeds the holdout split and the model: an integer in [0, 2^32). */
  readonly seed: number;
  /** Share of each class held out for evaluation, in (0, 1). */
  readonly holdoutFraction: number;
  readonly featureVersion: string;
  /** When given, the manifest must list exactly these feature columns, in this order. */
  readonly featureNames?: readonly string[];
  /** The log ranges the training set was exported from, recorded in the manifest. */
  readonly offsets: Reproducibility['offsets'];
  /** Recorded in the manifest; the trainer's own version when absent. */
  readonly trainerVersion?: string;
}

export interface SplitMetrics {
  readonly auc: number;
  readonly logloss: number;
  readonly rows: number;
  readonly positives: number;
}

export interface TrainingMetrics {
  /** On the holdout, by the exported ONNX model: the numbers that decide promotion. */
  readonly holdout: SplitMetrics;
  /** On the rows the model was fitted on. */
  readonly train: SplitMetrics;
}

/** Floating-point slack on an AUC: a trapezoid sum can land a rounding error outside [0, 1]. */
const AUC_SLACK = 1e-9;

const SplitMetricsSchema = z.object({
  auc: z.number().min(-AUC_SLACK).max(1 + AUC_SLACK).transform((auc) => Math.min(1, Math.max(0, auc))),
  logloss: z.number().min(0),
  rows: z.number().int().min(1),
  positives: z.number().int().min(0),
});

const MetricsSchema = z.object({ holdout: SplitMetricsSchema, train: SplitMetricsSchema });

const TensorSchema = z.object({
  name: z.string(),
  type: z.string(),
  shape: z.array(z.number().int().nullable()),
});

const OffsetsSchema = z.record(
  z.string(),
  z.array(z.object({ partition: z.number().int().min(0), from: z.number().int().min(0), to: z.number().int().min(0) })),
);

/** `manifest.json`, as far as Millrace reads it (the trainer writes more; see training/README.md). */
const ManifestSchema = z.object({
  schema: z.literal(1),
  model: z.string(),
  version: z.string(),
  artifact: z.object({
    file: z.string(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    bytes: z.number().int().min(1),
    format: z.literal('onnx'),
    inputs: z.array(TensorSchema),
    outputs: z.array(TensorSchema),
    input: z.string(),
    probabilities: z.string(),
    fraud_class_index: z.number().int().min(0),
  }),
  files: z.object({ metrics: z.string(), reference: z.string() }),
  feature_names: z.array(z.string()),
  feature_version: z.string(),
  seed: z.number().int(),
  holdout_fraction: z.number(),
  trainer_version: z.string(),
  python: z.string(),
  packages: z.record(z.string(), z.string()),
  estimator: z.object({ class: z.string(), params: z.record(z.string(), z.unknown()) }),
  offsets: OffsetsSchema,
  data: z.object({ file: z.string(), sha256: z.string(), rows: z.number().int(), positives: z.number().int() }),
  rows: z.object({ train: z.number().int(), holdout: z.number().int() }),
  metrics: MetricsSchema,
  checks: z.record(z.string(), z.number()),
});

export type TrainingManifest = z.infer<typeof ManifestSchema>;

export interface TrainingJobResult {
  readonly jobId: string;
  readonly modelPath: string;
  /** SHA-256 of `model.onnx`, computed from the file (and equal to the manifest's). */
  readonly sha256: string;
  readonly metrics: TrainingMetrics;
  /** `reference.json`: quantile bins and samples per feature and for the score, for drift detection. */
  readonly referencePath: string;
  readonly manifestPath: string;
  readonly manifest: TrainingManifest;
  /** What a `ModelTrained` event records to reproduce the run. */
  readonly reproducibility: Reproducibility;
}

export interface TrainingProgress {
  readonly jobId: string;
  /** The trainer's stage (`load`, `split`, `fit`, `export`, `evaluate`, `write`), or `log` for other output. */
  readonly stage: string;
  readonly message: string;
}

export interface JobRunOptions {
  /** Cancels the job: the process or Kubernetes Job is killed and `run` rejects with failure `aborted`. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: TrainingProgress) => void;
}

export interface JobRunner {
  /** `local-process`, `kubernetes`: recorded in `TrainingStarted` events. */
  readonly name: string;
  run(job: TrainingJobSpec, options?: JobRunOptions): Promise<TrainingJobResult>;
}

export const OUTPUT_FILES = {
  model: 'model.onnx',
  metrics: 'metrics.json',
  reference: 'reference.json',
  manifest: 'manifest.json',
} as const;

export interface TrainingFailureDetails {
  readonly jobId: string;
  readonly runner: string;
  readonly failure: TrainingFailure;
  /** The trainer's reason (its error message), or what the runner saw. */
  readonly reason: string;
  /** The trainer's error code (`bad-data`, `bad-argument`, `output-exists`, `conversion`), when it gave one. */
  readonly trainerCode?: string;
  readonly exitCode?: number | null;
  readonly signal?: string | null;
  readonly pid?: number;
  /** The last lines the trainer wrote to stderr. */
  readonly stderrTail?: string;
}

export function trainingFailed(details: TrainingFailureDetails, cause?: unknown): MillraceError {
  return new MillraceError(TRAINING_FAILED, `training job ${details.jobId} failed (${details.failure}): ${details.reason}`, {
    details: { ...details },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Flat metrics for a `ModelTrained` event: `holdout_auc`, `holdout_logloss`, …, `train_positives`. */
export function flatMetrics(metrics: TrainingMetrics): Record<string, number> {
  const flat: Record<string, number> = {};
  for (const split of ['holdout', 'train'] as const) {
    for (const [key, value] of Object.entries(metrics[split])) flat[`${split}_${key}`] = value;
  }
  return flat;
}

const SEED_MAX = 2 ** 32 - 1;

/** Checks a job spec before anything starts. Throws a `MillraceError` (failure `invalid-job`). */
export function validateJob(job: TrainingJobSpec, runner: string): void {
  const problems: string[] = [];
  if (!/^[\w.:-]{1,200}$/.test(job.jobId)) problems.push('jobId must be 1-200 characters of [A-Za-z0-9_.:-]');
  if (!job.model) problems.push('model is empty');
  if (!job.version) problems.push('version is empty');
  if (!job.dataPath) problems.push('dataPath is empty');
  if (!job.outDir) problems.push('outDir is empty');
  if (!Number.isInteger(job.seed) || job.seed < 0 || job.seed > SEED_MAX) problems.push(`seed must be an integer in [0, ${SEED_MAX}]`);
  if (!(job.holdoutFraction > 0 && job.holdoutFraction < 1)) problems.push('holdoutFraction must be in (0, 1)');
  if (!job.featureVersion) problems.push('featureVersion is empty');
  for (const [topic, ranges] of Object.entries(job.offsets)) {
    for (const range of ranges) {
      if (![range.partition, range.from, range.to].every((n) => Number.isInteger(n) && n >= 0) || range.from > range.to) {
        problems.push(`offsets of ${topic} must be integer ranges with 0 ≤ from ≤ to`);
        break;
      }
    }
  }
  if (problems.length > 0) {
    throw trainingFailed({ jobId: job.jobId, runner, failure: 'invalid-job', reason: problems.join('; ') });
  }
}

/**
 * The trainer's command line for a job (after `python -m millrace_trainer`). Every value is joined to its option
 * (`--version=-rc1`): argparse would otherwise read a value that begins with `-` as an option of its own.
 */
export function trainerArguments(job: TrainingJobSpec, paths: { dataPath: string; outDir: string } = job): string[] {
  return [
    'train',
    `--data=${paths.dataPath}`,
    `--out=${paths.outDir}`,
    `--seed=${job.seed}`,
    `--holdout=${job.holdoutFraction}`,
    `--model-name=${job.model}`,
    `--version=${job.version}`,
    `--feature-version=${job.featureVersion}`,
    `--offsets-json=${JSON.stringify(job.offsets)}`,
    ...(job.trainerVersion === undefined ? [] : [`--trainer-version=${job.trainerVersion}`]),
  ];
}

/** Bounded memory for a child's output: the last `maxBytes` of it. */
export class OutputTail {
  private text = '';
  constructor(private readonly maxBytes: number) {}
  push(chunk: string): void {
    this.text += chunk;
    if (this.text.length > this.maxBytes * 2) this.text = this.text.slice(-this.maxBytes);
  }
  toString(): string {
    return this.text.length > this.maxBytes ? this.text.slice(-this.maxBytes) : this.text;
  }
}

interface TrainerErrorLine {
  readonly code: string;
  readonly message: string;
}

/**
 * One line of the trainer's stderr: a JSON progress or error event, or anything else (a traceback) as `log`.
 */
export function parseTrainerLine(
  line: string,
): { kind: 'progress'; stage: string; message: string } | { kind: 'error'; code: string; message: string } | { kind: 'log'; message: string } {
  const trimmed = line.trim();
  if (trimmed.startsWith('{')) {
    try {
      const event = JSON.parse(trimmed) as Record<string, unknown>;
      if (event.event === 'progress' && typeof event.stage === 'string' && typeof event.message === 'string') {
        return { kind: 'progress', stage: event.stage, message: event.message };
      }
      if (event.event === 'error' && typeof event.code === 'string' && typeof event.message === 'string') {
        return { kind: 'error', code: event.code, message: event.message };
      }
    } catch {
      // Not JSON after all: a log line that happens to start with a brace.
    }
  }
  return { kind: 'log', message: trimmed };
}

/** The trainer's error event in its output, or else its last non-empty line (the end of a traceback). */
export function trainerReason(output: string): { reason: string; trainerCode?: string } {
  const lines = output.split('\n').filter((line) => line.trim() !== '');
  let error: TrainerErrorLine | undefined;
  for (const line of lines) {
    const parsed = parseTrainerLine(line);
    if (parsed.kind === 'error') error = parsed;
  }
  if (error) return { reason: error.message, trainerCode: error.code };
  return { reason: lines[lines.length - 1]?.trim() || 'the trainer wrote nothing to stderr' };
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function readJson(path: string): Promise<unknown> {
  return JSON.parse(await readFile(path, 'utf8')) as unknown;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Reads and verifies a finished run's output directory against its job. `dir` is where this process sees the
 * job's `outDir` (the same path for a local run; a mounted volume for a Kubernetes Job).
 */
export async function readTrainingOutput(job: TrainingJobSpec, dir: string, runner: string): Promise<TrainingJobResult> {
  const fail = (reason: string, cause?: unknown): MillraceError =>
    trainingFailed({ jobId: job.jobId, runner, failure: 'output', reason }, cause);
  const manifestPath = join(dir, OUTPUT_FILES.manifest);
  let raw: unknown;
  try {
    raw = await readJson(manifestPath);
  } catch (err) {
    throw fail(`cannot read ${manifestPath}: ${errorMessage(err)}`, err);
  }
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw fail(`${manifestPath} is not a trainer manifest: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`);
  }
  const manifest = parsed.data;
  const mismatches: string[] = [];
  const expect = (what: string, actual: unknown, expected: unknown): void => {
    if (!sameJson(actual, expected)) mismatches.push(`${what} is ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
  };
  expect('model', manifest.model, job.model);
  expect('version', manifest.version, job.version);
  expect('seed', manifest.seed, job.seed);
  expect('feature_version', manifest.feature_version, job.featureVersion);
  expect('holdout_fraction', manifest.holdout_fraction, job.holdoutFraction);
  expect('offsets', manifest.offsets, job.offsets);
  if (job.featureNames) expect('feature_names', manifest.feature_names, job.featureNames);
  if (job.trainerVersion !== undefined) expect('trainer_version', manifest.trainer_version, job.trainerVersion);
  if (mismatches.length > 0) throw fail(`the manifest does not describe this job: ${mismatches.join('; ')}`);

  const modelPath = join(dir, OUTPUT_FILES.model);
  const referencePath = join(dir, OUTPUT_FILES.reference);
  let sha256: string;
  try {
    sha256 = await sha256File(modelPath);
    await stat(referencePath);
  } catch (err) {
    throw fail(`an output file is missing: ${errorMessage(err)}`, err);
  }
  if (sha256 !== manifest.artifact.sha256) {
    throw fail(`${modelPath} has SHA-256 ${sha256}, but the manifest records ${manifest.artifact.sha256}`);
  }
  let metrics: TrainingMetrics;
  try {
    metrics = MetricsSchema.parse(await readJson(join(dir, OUTPUT_FILES.metrics)));
  } catch (err) {
    throw fail(`cannot read ${OUTPUT_FILES.metrics}: ${errorMessage(err)}`, err);
  }
  if (!sameJson(metrics, manifest.metrics)) throw fail(`${OUTPUT_FILES.metrics} and the manifest disagree`);

  return {
    jobId: job.jobId,
    modelPath,
    sha256,
    metrics,
    referencePath,
    manifestPath,
    manifest,
    reproducibility: {
      offsets: manifest.offsets,
      feature_version: manifest.feature_version,
      seed: manifest.seed,
      trainer_version: manifest.trainer_version,
      packages: { python: manifest.python, ...manifest.packages },
    },
  };
}
