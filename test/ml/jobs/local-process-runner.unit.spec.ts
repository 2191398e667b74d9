import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMillraceError } from '../../../engine/errors.js';
import { TRAINING_FAILED, trainerArguments, type TrainingFailure, type TrainingJobSpec } from '../../../engine/ml/jobs/job-runner.js';
import { LocalProcessRunner } from '../../../engine/ml/jobs/local-process-runner.js';
import { FEATURE_VERSION } from '../../../topologies/pipeline/contract.js';
import { runJobRunnerSuite } from '../../conformance/job-runner.js';
import { describeWithTrainer, TRAINER_DIR } from '../../support/trainer.js';

/** Ample for the suite's 1,500-row sets; the timeout test sets its own. */
const TIMEOUT_MS = 120_000;

// Skips with the reason when there is no trainer; with CI=true a missing trainer fails this file instead.
describeWithTrainer('LocalProcessRunner', (python) => {
  runJobRunnerSuite('LocalProcessRunner', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'millrace-jobs-'));
    return {
      workDir,
      runner: (options = {}) =>
        new LocalProcessRunner({ python, trainerDir: TRAINER_DIR, timeoutMs: options.timeoutMs ?? TIMEOUT_MS, killGraceMs: 2_000 }),
      async close() {
        await rm(workDir, { recursive: true, force: true });
      },
    };
  });
});

// The runner's own handling of a child, with stand-in interpreters (shell scripts): no trainer needed.
describe('LocalProcessRunner with a stand-in interpreter', () => {
  let dir: string;

  const job = (overrides: Partial<TrainingJobSpec> = {}): TrainingJobSpec => ({
    jobId: 'stand-in',
    model: 'fraud',
    version: 'v1',
    dataPath: join(dir, 'train.csv'),
    outDir: join(dir, 'out'),
    seed: 7,
    holdoutFraction: 0.2,
    featureVersion: FEATURE_VERSION,
    offsets: {},
    ...overrides,
  });

  /** An executable shell script standing in for python. */
  const interpreter = async (name: string, body: string): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, `#!/bin/sh\n${body}\n`);
    await chmod(path, 0o755);
    return path;
  };

  const runner = (python: string, timeoutMs = TIMEOUT_MS) =>
    new LocalProcessRunner({ python, trainerDir: TRAINER_DIR, timeoutMs, killGraceMs: 200 });

  async function failure(promise: Promise<unknown>, expected: TrainingFailure): Promise<Record<string, unknown>> {
    const err: unknown = await promise.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(isMillraceError(err, TRAINING_FAILED)).toBe(true);
    const details = (err as { details: Record<string, unknown> }).details;
    expect(details.failure).toBe(expected);
    return details;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'millrace-stand-in-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a bad configuration', () => {
    for (const timeoutMs of [0, -1, 1.5, 2 ** 31]) {
      expect(() => runner('python3', timeoutMs)).toThrow(expect.objectContaining({ code: 'MILLRACE_CONFIG_INVALID' }));
    }
    expect(() => new LocalProcessRunner({ python: '', trainerDir: TRAINER_DIR, timeoutMs: 1_000 })).toThrow(
      expect.objectContaining({ code: 'MILLRACE_CONFIG_INVALID' }),
    );
  });

  it('fails with spawn when the interpreter does not exist', async () => {
    const details = await failure(runner(join(dir, 'no-such-python')).run(job()), 'spawn');
    expect(details.reason).toEqual(expect.stringContaining('ENOENT'));
  });

  it('runs the trainer module in the trainer directory with absolute paths, and checks what it wrote', async () => {
    // given: an interpreter that records how it was started and writes nothing
    const python = await interpreter('record', `pwd > "${dir}/cwd.txt"; printf '%s\\n' "$@" > "${dir}/args.txt"; echo "$PYTHONPATH" > "${dir}/pythonpath.txt"`);
    const relative = job({ dataPath: join('relative', 'train.csv'), outDir: join('relative', 'out') });
    // when: it exits 0
    const details = await failure(runner(python).run(relative), 'output');
    // then: nothing was returned without a verified manifest, and the trainer saw absolute paths
    expect(details.reason).toEqual(expect.stringContaining('manifest.json'));
    const args = (await readFile(join(dir, 'args.txt'), 'utf8')).trimEnd().split('\n');
    expect(args).toEqual(['-m', 'millrace_trainer', ...trainerArguments(relative, { dataPath: resolve(relative.dataPath), outDir: resolve(relative.outDir) })]);
    expect((await readFile(join(dir, 'cwd.txt'), 'utf8')).trim()).toBe(resolve(TRAINER_DIR));
    expect((await readFile(join(dir, 'pythonpath.txt'), 'utf8')).trim()).toBe(resolve(TRAINER_DIR));
  });

  it('reports the last line of a crash when the trainer gives no error event', async () => {
    const python = await interpreter(
      'crash',
      `echo '{"event": "progress", "stage": "load", "message": "reading"}' >&2; echo 'Traceback (most recent call last):' >&2; echo 'ZeroDivisionError: division by zero' >&2; exit 1`,
    );
    const details = await failure(runner(python).run(job()), 'exit');
    expect(details.exitCode).toBe(1);
    expect(details.reason).toBe('ZeroDivisionError: division by zero');
    expect(details.trainerCode).toBeUndefined();
    expect(details.stderrTail).toEqual(expect.stringContaining('Traceback'));
  });

  it('kills a trainer that ignores SIGTERM with SIGKILL after the grace period', async () => {
    // given: a trainer that ignores SIGTERM, and says so before it sleeps
    const python = await interpreter(
      'stubborn',
      `trap '' TERM; echo '{"event": "progress", "stage": "load", "message": "ignoring SIGTERM"}' >&2; exec sleep 600`,
    );
    const controller = new AbortController();
    // when: its caller aborts it once it is running
    const run = runner(python).run(job(), {
      signal: controller.signal,
      onProgress: (event) => {
        if (event.stage === 'load') controller.abort();
      },
    });
    // then: SIGTERM is not enough, SIGKILL ends it
    const details = await failure(run, 'aborted');
    expect(details.signal).toBe('SIGKILL');
  });
});
