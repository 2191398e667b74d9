/**
 * Runs a training job as a child process on this machine: `python -m millrace_trainer train …` with the trainer's
 * directory on PYTHONPATH. The default runner (DESIGN §6); `training/setup` makes the interpreter.
 *
 * The trainer's stderr is read line by line as it comes: progress events go to the logger and to `onProgress`, and
 * the last 64 KiB are kept for the error of a failed run. The job is killed (SIGTERM, then SIGKILL after
 * `killGraceMs`) when it runs past `timeoutMs` or when the caller's signal aborts it.
 */
import { spawn } from 'node:child_process';
import { isAbsolute, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { MillraceError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import {
  OutputTail,
  parseTrainerLine,
  readTrainingOutput,
  trainerArguments,
  trainerReason,
  trainingFailed,
  validateJob,
  type JobRunOptions,
  type JobRunner,
  type TrainingFailure,
  type TrainingJobResult,
  type TrainingJobSpec,
} from './job-runner.js';

export interface LocalProcessRunnerOptions {
  /** The interpreter of the trainer's environment (what `training/setup` prints). */
  readonly python: string;
  /** The directory that holds the `millrace_trainer` package (`<repo>/training`). */
  readonly trainerDir: string;
  /** A job still running after this long is killed. */
  readonly timeoutMs: number;
  /** Added to the child's environment (which is this process's, plus the trainer's settings). */
  readonly env?: Readonly<Record<string, string>>;
  readonly logger?: Logger;
  /** Between SIGTERM and SIGKILL when a job is killed. Default 5 s. */
  readonly killGraceMs?: number;
  /** How much of the trainer's stderr is kept for errors. Default 64 KiB. */
  readonly stderrTailBytes?: number;
}

const RUNNER = 'local-process';
const DEFAULT_KILL_GRACE_MS = 5_000;
const DEFAULT_STDERR_TAIL_BYTES = 64 * 1024;
/** Setting timers past this fires them at once (Node clamps to 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class LocalProcessRunner implements JobRunner {
  readonly name = RUNNER;
  private readonly options: Readonly<Required<Omit<LocalProcessRunnerOptions, 'logger' | 'env'>>> & {
    readonly env: Readonly<Record<string, string>>;
    readonly logger: Logger | undefined;
  };

  constructor(options: LocalProcessRunnerOptions) {
    if (!options.python) throw new MillraceError('MILLRACE_CONFIG_INVALID', 'LocalProcessRunner needs the trainer\'s python');
    if (!options.trainerDir) throw new MillraceError('MILLRACE_CONFIG_INVALID', 'LocalProcessRunner needs trainerDir (<repo>/training)');
    if (!(Number.isInteger(options.timeoutMs) && options.timeoutMs > 0 && options.timeoutMs <= MAX_TIMER_MS)) {
      throw new MillraceError('MILLRACE_CONFIG_INVALID', `timeoutMs must be an integer in [1, ${MAX_TIMER_MS}], got ${options.timeoutMs}`);
    }
    this.options = Object.freeze({
      python: options.python,
      trainerDir: resolve(options.trainerDir),
      timeoutMs: options.timeoutMs,
      env: { ...options.env },
      logger: options.logger,
      killGraceMs: options.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
      stderrTailBytes: options.stderrTailBytes ?? DEFAULT_STDERR_TAIL_BYTES,
    });
  }

  async run(job: TrainingJobSpec, options: JobRunOptions = {}): Promise<TrainingJobResult> {
    validateJob(job, RUNNER);
    // Paths are resolved here: the child runs in the trainer's directory.
    const paths = {
      dataPath: isAbsolute(job.dataPath) ? job.dataPath : resolve(job.dataPath),
      outDir: isAbsolute(job.outDir) ? job.outDir : resolve(job.outDir),
    };
    if (options.signal?.aborted) {
      throw trainingFailed({ jobId: job.jobId, runner: RUNNER, failure: 'aborted', reason: 'aborted before it started' });
    }
    await this.spawnTrainer(job, trainerArguments(job, paths), options);
    return readTrainingOutput(job, paths.outDir, RUNNER);
  }

  private spawnTrainer(job: TrainingJobSpec, args: string[], options: JobRunOptions): Promise<void> {
    const { python, trainerDir, timeoutMs, killGraceMs, logger } = this.options;
    const log = logger?.child({ runner: RUNNER, jobId: job.jobId });
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PYTHONPATH: trainerDir,
      PYTHONUNBUFFERED: '1',
      // The trainer does not depend on hash order (its tests check that); a fixed seed keeps it so for plugins.
      PYTHONHASHSEED: '0',
      PYTHONDONTWRITEBYTECODE: '1',
      ...this.options.env,
    };

    return new Promise<void>((resolvePromise, reject) => {
      const child = spawn(python, ['-m', 'millrace_trainer', ...args], {
        cwd: trainerDir,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const stderr = new OutputTail(this.options.stderrTailBytes);
      const stdout = new OutputTail(this.options.stderrTailBytes);
      let killedFor: Extract<TrainingFailure, 'timeout' | 'aborted'> | undefined;
      let graceTimer: NodeJS.Timeout | undefined;
      let settled = false;

      log?.info({ pid: child.pid, python, args }, 'training job started');

      const kill = (reason: 'timeout' | 'aborted'): void => {
        if (killedFor || child.exitCode !== null || child.signalCode !== null) return;
        killedFor = reason;
        log?.warn({ pid: child.pid, reason }, 'killing training job');
        child.kill('SIGTERM');
        graceTimer = setTimeout(() => child.kill('SIGKILL'), killGraceMs);
        graceTimer.unref();
      };
      const timer = setTimeout(() => kill('timeout'), timeoutMs);
      const onAbort = (): void => kill('aborted');
      options.signal?.addEventListener('abort', onAbort, { once: true });

      const finish = (error?: MillraceError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (graceTimer) clearTimeout(graceTimer);
        options.signal?.removeEventListener('abort', onAbort);
        if (error) reject(error);
        else resolvePromise();
      };

      child.stdout.setEncoding('utf8').on('data', (chunk: string) => stdout.push(chunk));
      child.stderr.setEncoding('utf8');
      const lines = createInterface({ input: child.stderr, crlfDelay: Infinity });
      lines.on('line', (line) => {
        stderr.push(`${line}\n`);
        if (!line.trim()) return;
        const parsed = parseTrainerLine(line);
        const stage = parsed.kind === 'progress' ? parsed.stage : parsed.kind;
        if (parsed.kind === 'error') log?.error({ trainerCode: parsed.code }, parsed.message);
        else log?.info({ stage }, parsed.message);
        options.onProgress?.({ jobId: job.jobId, stage, message: parsed.message });
      });

      child.on('error', (err: NodeJS.ErrnoException) => {
        finish(
          trainingFailed(
            { jobId: job.jobId, runner: RUNNER, failure: 'spawn', reason: `cannot start ${python}: ${err.code ?? err.message}` },
            err,
          ),
        );
      });
      // 'close' comes after stdio has ended, so every stderr line has been read by then.
      child.on('close', (code, signal) => {
        const base = { jobId: job.jobId, runner: RUNNER, exitCode: code, signal, stderrTail: stderr.toString() };
        if (child.pid !== undefined) Object.assign(base, { pid: child.pid });
        if (killedFor) {
          const reason = killedFor === 'timeout' ? `ran longer than ${timeoutMs} ms and was killed` : 'aborted by the caller and killed';
          finish(trainingFailed({ ...base, failure: killedFor, reason }));
          return;
        }
        if (code === 0) {
          log?.info({ summary: stdout.toString().trim() }, 'training job finished');
          finish();
          return;
        }
        const { reason, trainerCode } = trainerReason(stderr.toString());
        finish(
          trainingFailed({
            ...base,
            failure: 'exit',
            reason: signal ? `killed by ${signal}: ${reason}` : reason,
            ...(trainerCode === undefined ? {} : { trainerCode }),
          }),
        );
      });
    });
  }
}
