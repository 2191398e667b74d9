/**
 * The `JobRunner` conformance suite. Every runner proves itself with one line:
 *
 *   runJobRunnerSuite('LocalProcessRunner', async () => localFixture(python));
 *
 * It trains the real trainer on a small generated training set: the result's files, its SHA-256 (recomputed here),
 * metrics that make sense, a job re-run from its record giving the same model, and the failures a runner must
 * report — the trainer's own reason for bad data, a job killed at its timeout, a job aborted by its caller, a job
 * refused before it starts.
 *
 * The timeout and abort tests train on a named pipe that nobody writes: the trainer blocks opening it, so the job is
 * certainly still running when it is killed, however fast the machine.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMillraceError } from '../../engine/errors.js';
import {
  TRAINING_FAILED,
  flatMetrics,
  type JobRunner,
  type TrainingFailure,
  type TrainingJobResult,
  type TrainingJobSpec,
  type TrainingProgress,
} from '../../engine/ml/jobs/job-runner.js';
import { FEATURE_NAMES, FEATURE_VERSION, type Reproducibility } from '../../topologies/pipeline/contract.js';
import { seededRandom as random } from '../support/engine-process.js';

export interface JobRunnerFixture {
  /**
   * A runner whose jobs are killed after `timeoutMs` (default: long enough to train the suite's small sets). The
   * suite asks for 1000 ms in its timeout test.
   */
  runner(options?: { timeoutMs?: number }): JobRunner;
  /** A fresh directory that both this process and the runner's jobs read and write at the same path. */
  readonly workDir: string;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- a generated training set


/**
 * Card transactions with the pipeline's features (FEATURE_NAMES) and a label: about 6 % fraud, which is large
 * amounts in quick bursts from several countries, plus 1 % label noise. Mirrors training/millrace_trainer/synthetic.py.
 */
export function trainingCsv(rows: number, seed: number): string {
  const next = random(seed);
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  const lognormal = (mu: number, sigma: number): number => Math.exp(mu + sigma * normal());
  const exponential = (mean: number): number => -mean * Math.log(1 - next());
  const poisson = (lambda: number): number => {
    let k = 0;
    for (let p = next(); p > Math.exp(-lambda); p *= next()) k++;
    return k;
  };
  const lines = [['transaction_id', 'at', ...FEATURE_NAMES, 'label'].join(',')];
  const start = Date.UTC(2026, 0, 1);
  for (let i = 0; i < rows; i++) {
    const fraud = next() < 0.06;
    const mean24h = lognormal(3.4, 0.5);
    const amount = fraud ? lognormal(5.2, 0.8) : lognormal(3.4, 0.9);
    const count10m = 1 + poisson(fraud ? 3 : 0.2);
    const count1h = count10m + poisson(0.5);
    const count24h = count1h + poisson(3);
    const mean1h = mean24h * lognormal(0, 0.2);
    const features: Record<(typeof FEATURE_NAMES)[number], number> = {
      amount,
      count_10m: count10m,
      sum_1h: mean1h * count1h,
      mean_1h: mean1h,
      sum_24h: mean24h * count24h,
      mean_24h: mean24h,
      seconds_since_last: exponential(fraud ? 120 : 4 * 3600),
      distinct_countries_24h: 1 + (fraud ? poisson(1) : next() < 0.05 ? 1 : 0),
      amount_to_mean_24h: amount / mean24h,
      prev_amount: lognormal(3.4, 0.9),
    };
    const label = next() < 0.01 ? !fraud : fraud;
    const at = new Date(start + i * 7_000).toISOString();
    lines.push([`tx-${seed}-${i}`, at, ...FEATURE_NAMES.map((name) => features[name].toFixed(4)), label ? 1 : 0].join(','));
  }
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------- helpers

const ROWS = 1500;
const OFFSETS: Reproducibility['offsets'] = { features: [{ partition: 0, from: 0, to: 900 }, { partition: 1, from: 0, to: 600 }] };

/** A runner's timeout for the job that never finishes. */
const SHORT_TIMEOUT_MS = 1_000;

/** A named pipe with no writer: a trainer reading it blocks until it is killed. */
async function stalledDataPath(dir: string, name: string): Promise<string> {
  const path = join(dir, `${name}.fifo`);
  await promisify(execFile)('mkfifo', [path]);
  return path;
}

async function sha256(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

async function expectFailure(promise: Promise<unknown>, failure: TrainingFailure): Promise<Record<string, unknown>> {
  try {
    await promise;
  } catch (err) {
    if (isMillraceError(err, TRAINING_FAILED) && err.details?.failure === failure) return err.details;
    throw new Error(`expected ${TRAINING_FAILED} with failure ${failure}, got ${String(err)}`, { cause: err });
  }
  throw new Error(`expected failure ${failure}, but the job succeeded`);
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * What a `ModelTrained` event keeps of a run (its fields), with what the pipeline adds to re-run it: the training set
 * is re-exported from `reproducibility.offsets` (here, the same file), and the holdout fraction comes from the
 * training topology's settings — it is not in `Reproducibility`, so a changed setting changes the model.
 */
interface RecordedJob {
  readonly job_id: string;
  readonly model: string;
  readonly version: string;
  readonly data_path: string;
  readonly holdout_fraction: number;
  readonly sha256: string;
  readonly reproducibility: Reproducibility;
}

// ---------------------------------------------------------------- the suite

export function runJobRunnerSuite(name: string, factory: () => Promise<JobRunnerFixture>): void {
  describe(`JobRunner conformance: ${name}`, () => {
    let fixture: JobRunnerFixture;
    let dataPath: string;
    let first: TrainingJobResult;
    const progress: TrainingProgress[] = [];

    const spec = (jobId: string, overrides: Partial<TrainingJobSpec> = {}): TrainingJobSpec => ({
      jobId,
      model: 'fraud',
      version: `v-${jobId}`,
      dataPath,
      outDir: join(fixture.workDir, 'out', jobId),
      seed: 7,
      holdoutFraction: 0.25,
      featureVersion: FEATURE_VERSION,
      featureNames: FEATURE_NAMES,
      offsets: OFFSETS,
      trainerVersion: 'conformance-1',
      ...overrides,
    });

    beforeAll(async () => {
      fixture = await factory();
      await mkdir(fixture.workDir, { recursive: true });
      dataPath = join(fixture.workDir, 'train.csv');
      await writeFile(dataPath, trainingCsv(ROWS, 1));
    });

    afterAll(async () => {
      await fixture?.close();
    });

    it('trains a model and returns its files, verified', async () => {
      const job = spec('train-1');
      first = await fixture.runner().run(job, { onProgress: (event) => progress.push(event) });

      expect(first.jobId).toBe('train-1');
      expect(first.modelPath).toBe(join(job.outDir, 'model.onnx'));
      expect(first.referencePath).toBe(join(job.outDir, 'reference.json'));
      expect(first.manifestPath).toBe(join(job.outDir, 'manifest.json'));
      expect(first.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(first.sha256).toBe(await sha256(first.modelPath));
      expect(first.manifest.artifact.sha256).toBe(first.sha256);

      expect(first.manifest.model).toBe('fraud');
      expect(first.manifest.version).toBe('v-train-1');
      expect(first.manifest.feature_names).toEqual([...FEATURE_NAMES]);
      expect(first.manifest.feature_version).toBe(FEATURE_VERSION);
      expect(first.manifest.artifact.inputs).toEqual([{ name: 'features', type: 'tensor(float)', shape: [null, FEATURE_NAMES.length] }]);
      expect(first.manifest.artifact.outputs.map((output) => output.name)).toEqual(['label', 'probabilities']);
      expect(first.manifest.data.rows).toBe(ROWS);
      expect(first.manifest.data.sha256).toBe(await sha256(dataPath));
    });

    it('reports metrics that make sense', () => {
      const { holdout, train } = first.metrics;
      expect(holdout.rows + train.rows).toBe(ROWS);
      expect(holdout.rows).toBeGreaterThan(ROWS * 0.2);
      expect(holdout.rows).toBeLessThan(ROWS * 0.3);
      for (const split of [holdout, train]) {
        expect(split.positives).toBeGreaterThan(0);
        expect(split.positives).toBeLessThan(split.rows);
        expect(split.logloss).toBeGreaterThan(0);
      }
      // The generated fraud is easy to tell apart; label noise keeps it from being perfect on the holdout.
      expect(holdout.auc).toBeGreaterThan(0.8);
      expect(holdout.auc).toBeLessThanOrEqual(1);
      expect(train.auc).toBeGreaterThanOrEqual(holdout.auc);
      expect(flatMetrics(first.metrics)).toMatchObject({ holdout_auc: holdout.auc, train_rows: train.rows });
    });

    it('records what reproduces the run', () => {
      expect(first.reproducibility).toMatchObject({
        offsets: OFFSETS,
        feature_version: FEATURE_VERSION,
        seed: 7,
        trainer_version: 'conformance-1',
      });
      expect(Object.keys(first.reproducibility.packages)).toEqual(
        expect.arrayContaining(['python', 'numpy', 'scikit-learn', 'skl2onnx', 'onnx', 'onnxruntime']),
      );
    });

    it('writes a drift reference for every feature and the score', async () => {
      const reference = JSON.parse(await readFile(first.referencePath, 'utf8')) as {
        features: Record<string, { edges: number[]; proportions: number[]; sample: number[] }>;
        score: { edges: number[]; proportions: number[]; sample: number[] };
      };
      expect(Object.keys(reference.features)).toEqual([...FEATURE_NAMES]);
      for (const entry of [...Object.values(reference.features), reference.score]) {
        expect(entry.proportions).toHaveLength(entry.edges.length - 1);
        expect(entry.proportions.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
        expect(entry.sample.length).toBeGreaterThan(0);
      }
    });

    it('reports the trainer\'s progress', () => {
      const stages = new Set(progress.map((event) => event.stage));
      expect([...stages]).toEqual(expect.arrayContaining(['load', 'split', 'fit', 'export', 'evaluate', 'write']));
      expect(progress.every((event) => event.jobId === 'train-1')).toBe(true);
    });

    it('re-running a recorded job gives the same model', async () => {
      // What the ModelTrained event carried, through JSON as it would be on the topic.
      const recorded: RecordedJob = JSON.parse(
        JSON.stringify({
          job_id: first.jobId,
          model: first.manifest.model,
          version: first.manifest.version,
          data_path: dataPath,
          holdout_fraction: first.manifest.holdout_fraction,
          sha256: first.sha256,
          reproducibility: first.reproducibility,
        } satisfies RecordedJob),
      ) as RecordedJob;
      const rerun = await fixture.runner().run({
        jobId: `${recorded.job_id}-rerun`,
        model: recorded.model,
        version: recorded.version,
        dataPath: recorded.data_path,
        outDir: join(fixture.workDir, 'out', 'rerun'),
        seed: recorded.reproducibility.seed,
        holdoutFraction: recorded.holdout_fraction,
        featureVersion: recorded.reproducibility.feature_version,
        offsets: recorded.reproducibility.offsets,
        trainerVersion: recorded.reproducibility.trainer_version,
      });
      expect(rerun.sha256).toBe(recorded.sha256);
      expect(await readFile(rerun.modelPath)).toEqual(await readFile(first.modelPath));
      expect(rerun.metrics).toEqual(first.metrics);
      expect(rerun.reproducibility).toEqual(first.reproducibility);
      expect(await readFile(rerun.referencePath)).toEqual(await readFile(first.referencePath));
      expect(await readFile(join(rerun.modelPath, '..', 'metrics.json'))).toEqual(await readFile(join(first.modelPath, '..', 'metrics.json')));
    });

    it('a different seed gives a different model', async () => {
      const other = await fixture.runner().run(spec('seed-8', { seed: 8, version: 'v-train-1' }));
      expect(other.sha256).not.toBe(first.sha256);
      expect(other.reproducibility.seed).toBe(8);
    });

    it('passes values that look like options to the trainer unchanged', async () => {
      const small = join(fixture.workDir, 'small.csv');
      await writeFile(small, trainingCsv(400, 3));
      const result = await fixture.runner().run(spec('dash', { dataPath: small, model: '-fraud', version: '--v1=$(HOME)$$1' }));
      expect(result.manifest.model).toBe('-fraud');
      expect(result.manifest.version).toBe('--v1=$(HOME)$$1');
    });

    it('fails a job on bad data with the trainer\'s reason, and writes no manifest', async () => {
      const bad = join(fixture.workDir, 'bad.csv');
      const csv = trainingCsv(50, 2).split('\n');
      // Drop the prev_amount column from every line.
      const column = FEATURE_NAMES.indexOf('prev_amount') + 2;
      await writeFile(bad, csv.map((line) => line.split(',').filter((_, i) => i !== column).join(',')).join('\n'));
      const job = spec('bad-data', { dataPath: bad });
      const details = await expectFailure(fixture.runner().run(job), 'exit');
      expect(details.trainerCode).toBe('bad-data');
      expect(details.reason).toEqual(expect.stringContaining('prev_amount'));
      expect(existsSync(join(job.outDir, 'manifest.json'))).toBe(false);
    });

    it('never overwrites a trained model', async () => {
      // A new job writing where train-1 wrote (a new job id: a runner may refuse a reused one before the trainer).
      const details = await expectFailure(fixture.runner().run(spec('overwrite', { outDir: join(fixture.workDir, 'out', 'train-1') })), 'exit');
      expect(details.trainerCode).toBe('output-exists');
      expect(await sha256(first.modelPath)).toBe(first.sha256);
    });

    it('kills a job that runs past its timeout', async () => {
      const stalled = await stalledDataPath(fixture.workDir, 'timeout');
      const details = await expectFailure(fixture.runner({ timeoutMs: SHORT_TIMEOUT_MS }).run(spec('timeout', { dataPath: stalled })), 'timeout');
      if (typeof details.pid === 'number') expect(processGone(details.pid)).toBe(true);
      expect(existsSync(join(fixture.workDir, 'out', 'timeout', 'manifest.json'))).toBe(false);
    });

    it('kills a job its caller aborts', async () => {
      const stalled = await stalledDataPath(fixture.workDir, 'aborted');
      const controller = new AbortController();
      const seen: string[] = [];
      const run = fixture.runner().run(spec('aborted', { dataPath: stalled }), {
        signal: controller.signal,
        onProgress: (event) => {
          seen.push(event.stage);
          if (event.stage === 'load') controller.abort();
        },
      });
      const details = await expectFailure(run, 'aborted');
      // It was aborted while running, not before it started.
      expect(seen).toContain('load');
      if (typeof details.pid === 'number') expect(processGone(details.pid)).toBe(true);
      expect(existsSync(join(fixture.workDir, 'out', 'aborted', 'manifest.json'))).toBe(false);
    });

    it('does not start a job whose signal has already aborted', async () => {
      const controller = new AbortController();
      controller.abort();
      const seen: TrainingProgress[] = [];
      await expectFailure(fixture.runner().run(spec('pre-aborted'), { signal: controller.signal, onProgress: (event) => seen.push(event) }), 'aborted');
      expect(seen).toEqual([]);
      expect(existsSync(join(fixture.workDir, 'out', 'pre-aborted'))).toBe(false);
    });

    it('refuses a job it cannot run before starting anything', async () => {
      const invalid: Array<Partial<TrainingJobSpec>> = [
        { holdoutFraction: 1 },
        { holdoutFraction: 0 },
        { seed: -1 },
        { seed: 1.5 },
        { seed: 2 ** 32 },
        { jobId: 'has space' },
        { version: '' },
        { dataPath: '' },
        { offsets: { features: [{ partition: 0, from: 10, to: 5 }] } },
      ];
      for (const overrides of invalid) {
        const job = spec('invalid', { outDir: join(fixture.workDir, 'out', 'invalid'), ...overrides });
        const seen: TrainingProgress[] = [];
        await expectFailure(fixture.runner().run(job, { onProgress: (event) => seen.push(event) }), 'invalid-job');
        expect(seen).toEqual([]);
      }
      expect(existsSync(join(fixture.workDir, 'out', 'invalid'))).toBe(false);
    });
  });
}
