/**
 * The inference operator on a real runtime: a topology on the embedded log, scored by the real OnnxModelRuntime
 * (worker threads, the fixture logistic regression), run by `TopologyRunner`. The `TopologyTestDriver` runs
 * synchronous processors only, and this operator awaits a worker.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../../engine/log/embedded/embedded-log.js';
import type { LogRecord } from '../../../engine/log/log.js';
import type { LoadedModel } from '../../../engine/ml/model-runtime.js';
import { OnnxModelRuntime } from '../../../engine/ml/onnx-runtime.js';
import { inferenceProcessor, type BatchScored, type InferenceOptions, type ModelRoute } from '../../../engine/operators/infer.js';
import type { TopologyRunner } from '../../../engine/runtime/runner.js';
import { Serdes } from '../../../engine/serde/serde.js';
import { StreamsBuilder } from '../../../engine/topology/builder.js';
import type { Topology } from '../../../engine/topology/topology.js';
import { fixtureSpec, logregProbability } from '../../conformance/model-runtime.js';
import { caughtUp, readTopic, startRunner, tempDir } from '../../support/runtime.js';

interface FeatureVector {
  readonly id: number;
  readonly features: number[];
}

interface Prediction {
  readonly id: number;
  readonly probability: number;
  readonly model: string;
  readonly version: string;
  readonly sha256: string;
  readonly route: ModelRoute;
  readonly source: { topic: string; partition: number; offset: number };
}

const APP = 'scoring';

/** Ten features in [-2, 2), from the id: the expected probability can be computed from them. */
function featuresOf(id: number): number[] {
  return Array.from({ length: 10 }, (_, j) => (((id * 31 + j * 17) % 100) - 50) / 25);
}

function scoring(options: Partial<InferenceOptions<string, FeatureVector, string, Prediction>> & Pick<InferenceOptions<string, FeatureVector, string, Prediction>, 'model'>): Topology {
  const b = new StreamsBuilder(APP);
  b.stream<string, FeatureVector>('features')
    .process(
      'score',
      inferenceProcessor<string, FeatureVector, string, Prediction>({
        toRow: (r) => r.value.features,
        emit: ({ record, probability, model, route, source }) => ({
          key: record.key,
          value: { id: record.value.id, probability, model: model.name, version: model.version, sha256: model.sha256, route, source: source! },
          timestamp: record.timestamp,
          headers: record.headers,
        }),
        ...options,
      }),
      { keySerde: Serdes.string(), valueSerde: Serdes.json<Prediction>() },
    )
    .to('predictions');
  return b.build();
}

const produce = (log: EmbeddedLog, ids: number[], vector: (id: number) => FeatureVector = (id) => ({ id, features: featuresOf(id) })) =>
  log.append(ids.map((id) => ({ topic: 'features', key: Buffer.from(`u${id % 13}`), value: Buffer.from(JSON.stringify(vector(id))), timestamp: 1_000 + id })));

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

const predictionsOf = (records: LogRecord[]): Prediction[] => records.map((r) => JSON.parse(r.value!.toString('utf8')) as Prediction);

async function committedTotal(log: EmbeddedLog): Promise<number> {
  let total = 0;
  for (const offset of (await log.committedOffsets(APP, 'features')).values()) total += offset;
  return total;
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('inferenceProcessor on OnnxModelRuntime', () => {
  let runtime: OnnxModelRuntime;
  let stable: LoadedModel;
  let canary: LoadedModel;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let log: EmbeddedLog;
  let runner: TopologyRunner | undefined;

  beforeAll(async () => {
    runtime = new OnnxModelRuntime();
    stable = await runtime.load(fixtureSpec('fraud-logreg', { name: 'fraud', version: '1' }));
    canary = await runtime.load(fixtureSpec('fraud-logreg', { name: 'fraud', version: '2' }));
  });

  afterAll(async () => {
    await runtime?.close();
  });

  beforeEach(async () => {
    dir = await tempDir('millrace-infer-');
    log = new EmbeddedLog({ path: dir.path });
    await log.open();
    await log.createTopic({ name: 'features', partitions: 2 });
    await log.createTopic({ name: 'predictions', partitions: 2 });
  });

  afterEach(async () => {
    await runner?.stop();
    runner = undefined;
    await log.close();
    await dir.remove();
  });

  it('scores every record once, in input order, with its lineage, in batches', async () => {
    // given: 1,000 feature vectors waiting in two partitions
    const batches: BatchScored[] = [];
    await produce(log, range(0, 1_000));
    runner = startRunner(log, scoring({ model: () => stable, maxBatch: 64, onBatch: (b) => batches.push(b) }));
    // when
    await runner.start();
    await caughtUp(runner);
    await runner.stop();
    // then: per partition, one prediction per input offset, in offset order, with the right probability
    const inputs = await readTopic(log, 'features');
    const predictions = await readTopic(log, 'predictions');
    expect(predictions).toHaveLength(1_000);
    for (const partition of [0, 1]) {
      const input = inputs.filter((r) => r.partition === partition).sort((a, b) => a.offset - b.offset);
      const output = predictionsOf(predictions.filter((r) => r.partition === partition).sort((a, b) => a.offset - b.offset));
      expect(output.map((p) => p.source)).toEqual(input.map((r) => ({ topic: 'features', partition, offset: r.offset })));
      expect(output.map((p) => p.id)).toEqual(input.map((r) => (JSON.parse(r.value!.toString('utf8')) as FeatureVector).id));
    }
    for (const p of predictionsOf(predictions)) {
      expect(p.probability).toBeCloseTo(logregProbability(featuresOf(p.id).map(Math.fround)), 6);
      expect(p).toMatchObject({ model: 'fraud', version: '1', sha256: stable.sha256, route: 'stable' });
    }
    // Batches formed: 1,000 rows in far fewer calls, none above maxBatch.
    expect(batches.reduce((n, b) => n + b.rows, 0)).toBe(1_000);
    expect(Math.max(...batches.map((b) => b.rows))).toBe(64);
    expect(batches.length).toBeLessThanOrEqual(30);
  });

  it('batches per model under a canary split, and keeps input order across models', async () => {
    const batches: BatchScored[] = [];
    await produce(log, range(0, 400));
    runner = startRunner(
      log,
      scoring({
        model: (r) => (r.value.id % 4 === 0 ? { model: canary, route: 'canary' } : { model: stable, route: 'stable' }),
        maxBatch: 32,
        onBatch: (b) => batches.push(b),
      }),
    );
    await runner.start();
    await caughtUp(runner);
    await runner.stop();
    const predictions = await readTopic(log, 'predictions');
    expect(predictions).toHaveLength(400);
    for (const partition of [0, 1]) {
      const output = predictionsOf(predictions.filter((r) => r.partition === partition).sort((a, b) => a.offset - b.offset));
      expect(output.map((p) => p.source.offset)).toEqual(output.map((_, i) => i));
    }
    for (const p of predictionsOf(predictions)) {
      expect([p.route, p.version]).toEqual(p.id % 4 === 0 ? ['canary', '2'] : ['stable', '1']);
    }
    expect(batches.reduce((n, b) => n + (b.model === canary ? b.rows : 0), 0)).toBe(100);
    expect(batches.reduce((n, b) => n + (b.model === stable ? b.rows : 0), 0)).toBe(300);
  });

  it('sends a record without a model, or with unusable features, to the dead-letter topic, and scores the rest in order', async () => {
    await produce(log, range(0, 100), (id) => ({ id, features: id % 10 === 7 ? [...featuresOf(id).slice(0, 9), Number.NaN] : id % 10 === 8 ? featuresOf(id).slice(0, 4) : featuresOf(id) }));
    runner = startRunner(log, scoring({ model: (r) => (r.value.id % 10 === 3 ? undefined : stable) }));
    await runner.start();
    await caughtUp(runner);
    await runner.stop();
    const predictions = predictionsOf(await readTopic(log, 'predictions'));
    expect(predictions.map((p) => p.id).sort((a, b) => a - b)).toEqual(range(0, 100).filter((id) => ![3, 7, 8].includes(id % 10)));
    const dead = (await readTopic(log, 'features.dlq')).map((r) => JSON.parse(r.value!.toString('utf8')) as { reason: string; route?: string; source: { offset: number } });
    expect(dead).toHaveLength(30);
    const reasons = dead.map((d) => d.reason);
    expect(reasons.filter((r) => r === 'model-unavailable')).toHaveLength(10);
    expect(reasons.filter((r) => r === 'invalid-features')).toHaveLength(20);
    expect(dead.find((d) => d.reason === 'model-unavailable')).toMatchObject({ route: 'stable' });
  });

  it('never commits the position of a record whose prediction the checkpoint lacks', async () => {
    // given: batches that never fill nor time out (maxWaitMs 60 s): only the commit hook flushes them
    const batches: BatchScored[] = [];
    runner = startRunner(log, scoring({ model: () => stable, maxBatch: 64, maxWaitMs: 60_000, onBatch: (b) => batches.push(b) }), { commitIntervalMs: 15 });
    await runner.start();
    // when: records trickle in while the checkpoints are watched
    let producing = true;
    const producer = (async () => {
      for (let from = 0; from < 300; from += 5) {
        await produce(log, range(from, from + 5));
        await new Promise((resolve) => setTimeout(resolve, 4));
      }
      producing = false;
    })();
    let samples = 0;
    while (producing) {
      const before = await committedTotal(log);
      const predictions = (await readTopic(log, 'predictions')).length;
      const after = await committedTotal(log);
      // then: what is committed is scored (before ≤ predictions), and nothing is scored past a checkpoint (≤ after)
      expect(before).toBeLessThanOrEqual(predictions);
      expect(predictions).toBeLessThanOrEqual(after);
      samples++;
      // The reads above can resolve without I/O: give the producer's and the task's timers their turn.
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await producer;
    await caughtUp(runner);
    await runner.stop();
    runner = undefined;
    expect(samples).toBeGreaterThan(5);
    expect(await committedTotal(log)).toBe(300);
    expect(await readTopic(log, 'predictions')).toHaveLength(300);
    // The commit hook flushed partial batches.
    expect(batches.some((b) => b.rows < 64)).toBe(true);
  });

  it('scores a batch that does not fill once it has waited maxWaitMs, without a checkpoint', async () => {
    const batches: BatchScored[] = [];
    runner = startRunner(log, scoring({ model: () => stable, maxBatch: 64, maxWaitMs: 20, onBatch: (b) => batches.push(b) }), {
      commitIntervalMs: 600_000,
      commitMaxRecords: 1_000_000,
    });
    await runner.start();
    await produce(log, [0, 2, 4, 6, 8]); // one partition each: u0, u2, u4, u6, u8
    // then: five rows never fill a batch of 64, and no checkpoint comes for ten minutes: only the wait scores them
    await until(() => batches.reduce((n, b) => n + b.rows, 0) === 5, 'the batches to be scored');
    expect(await readTopic(log, 'predictions')).toHaveLength(0);
    await runner.stop();
    runner = undefined;
    expect(await readTopic(log, 'predictions')).toHaveLength(5);
  });

  it('retries the batches a crashed worker held, and loses none', async () => {
    const own = new OnnxModelRuntime({ workers: 1 });
    try {
      const model = await own.load(fixtureSpec('fraud-logreg'));
      const batches: BatchScored[] = [];
      let crashed = false;
      await produce(log, range(0, 3_000));
      runner = startRunner(
        log,
        scoring({
          model: () => model,
          maxBatch: 16,
          onBatch: (b) => {
            batches.push(b);
            if (!crashed && batches.length === 5) {
              crashed = true;
              own.crashWorker(0);
            }
          },
        }),
      );
      await runner.start();
      await caughtUp(runner, 60_000);
      await runner.stop();
      runner = undefined;
      const predictions = predictionsOf(await readTopic(log, 'predictions'));
      expect(predictions.map((p) => p.id).sort((a, b) => a - b)).toEqual(range(0, 3_000));
      expect(batches.some((b) => b.retries > 0)).toBe(true);
    } finally {
      await own.close();
    }
  });

  it.each(['dead-letter', 'fail'] as const)(
    'fails the task when a batch cannot be scored (%s policy), commits none of it, and a restart scores it',
    async (errorPolicy) => {
      // given: a task caught up with model A
      const own = new OnnxModelRuntime();
      try {
        const modelA = await own.load(fixtureSpec('fraud-logreg', { version: 'A' }));
        runner = startRunner(log, scoring({ model: () => modelA, maxRetries: 1 }), { errorPolicy });
        await runner.start();
        await produce(log, range(0, 100));
        await caughtUp(runner);
        // when: model A goes away under records in flight
        await modelA.close();
        await produce(log, range(100, 140));
        await until(() => runner!.status().state === 'failed', 'the task to fail');
        // then: nothing after the last checkpoint was committed — no prediction, no dead letter
        expect(await committedTotal(log)).toBe(100);
        expect(await readTopic(log, 'predictions')).toHaveLength(100);
        expect((await readTopic(log, 'features.dlq').catch(() => [])).length).toBe(0);
        expect(runner.status().error).toMatch(/could not be scored/);
        await runner.stop();
        // and a restart with model B scores the rest, each record once
        const modelB = await own.load(fixtureSpec('fraud-logreg', { version: 'B' }));
        runner = startRunner(log, scoring({ model: () => modelB }), { errorPolicy });
        await runner.start();
        await caughtUp(runner);
        await runner.stop();
        runner = undefined;
        const predictions = predictionsOf(await readTopic(log, 'predictions'));
        expect(predictions.map((p) => p.id).sort((a, b) => a - b)).toEqual(range(0, 140));
        expect(predictions.filter((p) => p.version === 'B').map((p) => p.id).sort((a, b) => a - b)).toEqual(range(100, 140));
      } finally {
        await own.close();
      }
    },
  );

  it('waits for `ready` before the task takes records', async () => {
    let loaded: LoadedModel | undefined;
    let release!: () => void;
    const ready = new Promise<void>((resolve) => (release = resolve));
    await produce(log, range(0, 20));
    runner = startRunner(log, scoring({ model: () => loaded, ready: () => ready }));
    const starting = runner.start();
    await new Promise((resolve) => setTimeout(resolve, 100));
    loaded = stable;
    release();
    await starting;
    await caughtUp(runner);
    await runner.stop();
    runner = undefined;
    expect(await readTopic(log, 'predictions')).toHaveLength(20);
    expect((await readTopic(log, 'features.dlq').catch(() => [])).length).toBe(0);
  });
});
