import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { threadId } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isModelError } from '../../../engine/ml/model-runtime.js';
import { chooseSignature } from '../../../engine/ml/onnx-protocol.js';
import { OnnxModelRuntime } from '../../../engine/ml/onnx-runtime.js';
import { fixtureSpec, logregProbability, MODELS_DIR, runModelRuntimeSuite, sampleRows } from '../../conformance/model-runtime.js';
import { REPO_ROOT, requireBuild } from '../../support/engine-process.js';
import { tempDir } from '../../support/runtime.js';

const run = promisify(execFile);

runModelRuntimeSuite('OnnxModelRuntime', async () => new OnnxModelRuntime());
runModelRuntimeSuite('OnnxModelRuntime, 2 workers', async () => new OnnxModelRuntime({ workers: 2 }));

describe('OnnxModelRuntime', () => {
  let runtime: OnnxModelRuntime;

  beforeAll(() => {
    runtime = new OnnxModelRuntime({ workers: 2 });
  });

  afterAll(async () => {
    await runtime?.close();
  });

  it('runs inference in worker threads, leaving the event loop free', async () => {
    // given: the MLP scoring 20,000-row batches, each call a good deal of work
    const own = new OnnxModelRuntime({ workers: 1 });
    try {
      const mlp = await own.load(fixtureSpec('fraud-mlp'));
      const rows = sampleRows(20_000);
      expect(await mlp.predict(rows.slice(), 20_000)).toHaveLength(20_000);
      // when: calls back to back, while this thread's event-loop utilisation is measured (per thread: the share of
      // time the loop was busy rather than waiting; a machine under load leaves a waiting loop idle)
      const before = performance.eventLoopUtilization();
      for (let calls = 0; calls < 8; calls++) await mlp.predict(rows.slice(), 20_000);
      const utilisation = performance.eventLoopUtilization(before).utilization;
      // then: the work ran on the worker; had it run here, this thread would have been busy throughout
      expect(own.workerThreadIds()).toHaveLength(1);
      expect(own.workerThreadIds()).not.toContain(threadId);
      expect(utilisation).toBeLessThan(0.5);
    } finally {
      await own.close();
    }
  });

  it('spreads calls over its workers', async () => {
    const logreg = await runtime.load(fixtureSpec('fraud-logreg'));
    expect(runtime.workerThreadIds()).toHaveLength(2);
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => logreg.predict(sampleRows(100, i), 100)));
    expect(answers.every((a) => a.length === 100)).toBe(true);
    await logreg.close();
  });

  it('fails the calls of a worker that dies with a retriable error, restarts it, and serves again', async () => {
    // given
    const own = new OnnxModelRuntime({ workers: 1 });
    try {
      const mlp = await own.load(fixtureSpec('fraud-mlp'));
      const [threadBefore] = own.workerThreadIds();
      const inFlight = Array.from({ length: 8 }, (_, i) => mlp.predict(sampleRows(5_000, i), 5_000).then(() => 'answered', (err: unknown) => err));
      // when
      own.crashWorker(0);
      const outcomes = await Promise.all(inFlight);
      // then: what the worker held failed as retriable; a new thread answers the same model afterwards
      const failures = outcomes.filter((o) => o !== 'answered');
      expect(failures.length).toBeGreaterThan(0);
      for (const failure of failures) {
        expect(isModelError(failure, 'failed')).toBe(true);
        expect((failure as { retriable: boolean }).retriable).toBe(true);
      }
      const rows = sampleRows(3, 42);
      const probabilities = await (await own.load(fixtureSpec('fraud-logreg'))).predict(rows.slice(), 3);
      expect(probabilities[2]).toBeCloseTo(logregProbability(rows.subarray(20, 30)), 6);
      expect((await mlp.predict(sampleRows(10), 10)).length).toBe(10);
      expect(own.workerThreadIds()).toHaveLength(1);
      expect(own.workerThreadIds()[0]).not.toBe(threadBefore);
    } finally {
      await own.close();
    }
  });

  it('rejects calls past maxQueuedPerWorker as overloaded and retriable, and answers the others', async () => {
    const own = new OnnxModelRuntime({ workers: 1, maxQueuedPerWorker: 3 });
    try {
      const mlp = await own.load(fixtureSpec('fraud-mlp'));
      const outcomes = await Promise.all(
        Array.from({ length: 10 }, (_, i) => mlp.predict(sampleRows(500, i), 500).then((p) => p.length, (err: unknown) => err)),
      );
      expect(outcomes.filter((o) => o === 500)).toHaveLength(3);
      const refused = outcomes.filter((o) => o !== 500);
      expect(refused).toHaveLength(7);
      for (const err of refused) {
        expect(isModelError(err, 'overloaded')).toBe(true);
        expect((err as { retriable: boolean }).retriable).toBe(true);
      }
      expect((await mlp.predict(sampleRows(500), 500)).length).toBe(500);
    } finally {
      await own.close();
    }
  });

  it('takes ownership of the rows it is given: their buffer moves to the worker', async () => {
    const logreg = await runtime.load(fixtureSpec('fraud-logreg'));
    const rows = sampleRows(4);
    const answer = logreg.predict(rows, 4);
    expect(rows.length).toBe(0);
    expect((await answer).length).toBe(4);
    await logreg.close();
  });

  it('works from the build: node on dist/ starts the compiled worker', { timeout: 60_000 }, async () => {
    requireBuild();
    const { stdout } = await run(process.execPath, [join(REPO_ROOT, 'test/ml/inference/dist-runtime.mjs'), MODELS_DIR], { cwd: REPO_ROOT });
    const report = JSON.parse(stdout.trim().split('\n').at(-1)!) as { worker: string; probabilities: number[] };
    expect(report.worker).toMatch(/dist\/engine\/ml\/onnx-worker\.js$/);
    expect(report.probabilities.map((p) => Number(p.toFixed(6)))).toEqual([0.182426, 0.268941, 0.731059]);
  });
});

describe('choosing the input and output of a model', () => {
  const features = { name: 'features', isTensor: true, type: 'float32', shape: ['N', 10] };
  const label = { name: 'label', isTensor: true, type: 'int64', shape: ['N'] };
  const probabilities = { name: 'probabilities', isTensor: true, type: 'float32', shape: ['N', 2] };
  const logits = { name: 'logits', isTensor: true, type: 'float32', shape: ['N', 2] };

  it('takes `features` and the one float32 [rows, 2] output', () => {
    expect(chooseSignature([features], [label, probabilities])).toEqual({ inputName: 'features', outputName: 'probabilities', inputWidth: 10 });
  });

  it('takes the only float matrix input whatever its name, with a symbolic width as unknown', () => {
    expect(chooseSignature([{ ...features, name: 'input', shape: ['N', 'F'] }], [probabilities])).toEqual({
      inputName: 'input',
      outputName: 'probabilities',
      inputWidth: null,
    });
  });

  it('asks for a name when two outputs could be the probabilities, and takes the one named', () => {
    expect(chooseSignature([features], [logits, probabilities])).toHaveProperty('error');
    expect(chooseSignature([features], [logits, probabilities], { outputName: 'probabilities' })).toMatchObject({ outputName: 'probabilities' });
  });

  it('refuses models without a probabilities output or with several inputs', () => {
    expect(chooseSignature([features], [label])).toHaveProperty('error');
    expect(chooseSignature([features, { ...features, name: 'extra' }], [probabilities])).toHaveProperty('error');
    expect(chooseSignature([features], [{ ...probabilities, shape: ['N', 3] }])).toHaveProperty('error');
  });
});

describe('the fixture models', () => {
  it('are what generate.mjs writes, byte for byte', { timeout: 30_000 }, async () => {
    const dir = await tempDir('millrace-model-gen-');
    try {
      await run(process.execPath, [join(MODELS_DIR, 'generate.mjs'), dir.path]);
      for (const file of ['fraud-logreg.onnx', 'fraud-mlp.onnx', 'manifest.json']) {
        expect((await readFile(join(dir.path, file))).equals(await readFile(join(MODELS_DIR, file))), file).toBe(true);
      }
    } finally {
      await dir.remove();
    }
  });
});
