/**
 * The drift topology on the TopologyTestDriver (and, for the restart, on a runner over the embedded log): rows of
 * the stable version against the reference.json saved with it, one event per shift naming the shifted features.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isMillraceError } from '../../engine/errors.js';
import { DriftDetector, type DriftVerdict } from '../../engine/ml/drift/detector.js';
import {
  buildReferenceDistribution,
  readDriftReference,
  referenceDistributionJson,
  type ReferenceFileJson,
} from '../../engine/ml/drift/reference.js';
import type { DriftWindowHeader } from '../../engine/ml/drift/window.js';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { parseAvroSchema, validateValue } from '../../engine/serde/logical-types.js';
import { loadSchemaVersions } from '../../engine/serde/schema-files.js';
import { LevelBackend } from '../../engine/state/backend.js';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import { FEATURE_NAMES, Topics, type DriftDetected, type Features, type ModelRouting, type ModelVersionRef, type Prediction } from '../../topologies/pipeline/contract.js';
import drift, {
  DRIFT_STORES,
  driftDetectedEvent,
  driftEvaluationEvent,
  driftOptionsFrom,
  driftTopology,
  type DriftEvaluation,
  type DriftLogger,
} from '../../topologies/pipeline/drift.js';
import { caughtUp, readTopic, startRunner, tempDir } from '../support/runtime.js';
import { seededRandom as random } from '../support/engine-process.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const OPTIONS = { windowRows: 1_000, evaluateEveryRows: 250 };


/**
 * One row of a known distribution. `amountFactor` scales every amount (as the demo's drift does, ×2.5): the amount,
 * its sums and means, and the previous amount move; counts, gaps, distinct countries, the amount-to-mean ratio
 * and the score do not.
 */
function sampleRow(next: () => number, amountFactor = 1): { features: Features; score: number } {
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  const mean24 = Math.exp(3.5 + 0.3 * normal());
  const amount = mean24 * Math.exp(0.7 * normal());
  const mean1 = mean24 * (0.8 + 0.4 * next());
  const count10 = Math.floor(-Math.log(1 - next()) * 1.5);
  const u = next();
  return {
    features: {
      amount: amount * amountFactor,
      count_10m: count10,
      sum_1h: mean1 * (1 + count10) * amountFactor,
      mean_1h: mean1 * amountFactor,
      sum_24h: mean24 * (3 + Math.floor(next() * 10)) * amountFactor,
      mean_24h: mean24 * amountFactor,
      seconds_since_last: -Math.log(1 - next()) * 3_600,
      distinct_countries_24h: 1 + (u < 0.1 ? 1 : 0) + (u < 0.02 ? 1 : 0),
      amount_to_mean_24h: amount / mean24,
      prev_amount: mean24 * Math.exp(0.7 * normal()) * amountFactor,
    },
    score: 1 / (1 + Math.exp(-(-3 + 0.8 * normal()))),
  };
}

/** reference.json as the trainer writes it, from 20,000 rows of the undrifted distribution. */
function writeReference(path: string, version: string, seed: number): void {
  const next = random(seed);
  const rows = Array.from({ length: 20_000 }, () => sampleRow(next));
  const distribution = (name: string, values: number[]) => referenceDistributionJson(buildReferenceDistribution(name, values));
  const file: ReferenceFileJson = {
    model: 'fraud',
    version,
    feature_version: 'features-v1',
    features: Object.fromEntries(FEATURE_NAMES.map((name) => [name, distribution(name, rows.map((r) => r.features[name]))])),
    score: distribution('score', rows.map((r) => r.score)),
  };
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, JSON.stringify(file));
}

interface Traffic {
  readonly version?: string;
  readonly route?: 'stable' | 'canary';
  readonly amountFactor?: number;
}

/** Predictions one second apart in event time, from `seed`'s rows. */
function predictionSource(seed: number) {
  const next = random(seed);
  let i = 0;
  return (count: number, traffic: Traffic = {}): Prediction[] =>
    Array.from({ length: count }, () => {
      const { features, score } = sampleRow(next, traffic.amountFactor ?? 1);
      const n = i++;
      return {
        transaction_id: `tx-${n}`,
        user: `user-${n % 50}`,
        at: new Date(T0 + n * 1_000).toISOString(),
        model: 'fraud',
        version: traffic.version ?? 'v1',
        model_sha256: 'sha',
        probability: score,
        class: score >= 0.5 ? 1 : 0,
        route: traffic.route ?? 'stable',
        features,
        lineage: { features: { topic: Topics.features, partition: 0, offset: n }, transaction: { topic: Topics.transactions, partition: 0, offset: n } },
      };
    });
}

describe('the drift topology', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  const ref = (version: string, reference = join(dir.path, version, 'reference.json')): ModelVersionRef => ({
    version,
    artifact_uri: join(dir.path, version, 'model.onnx'),
    sha256: `sha-${version}`,
    reference_uri: reference,
  });
  beforeEach(async () => {
    dir = await tempDir('millrace-drift-');
    writeReference(join(dir.path, 'v1', 'reference.json'), 'v1', 1);
    writeReference(join(dir.path, 'v2', 'reference.json'), 'v2', 2);
  });
  afterEach(async () => {
    await dir.remove();
  });

  function setup(options: { logger?: DriftLogger } = {}) {
    const driver = new TopologyTestDriver(driftTopology({ ...OPTIONS, ...options }));
    const routing = driver.createInputTopic<string, ModelRouting>(Topics.modelRouting);
    const predictions = driver.createInputTopic<string, Prediction>(Topics.predictions);
    const events = driver.createOutputTopic<string, DriftDetected>(Topics.drift);
    const evaluations = driver.createOutputTopic<string, DriftEvaluation>(Topics.driftEvaluations);
    const send = (rows: readonly Prediction[]) => {
      for (const p of rows) predictions.pipeInput(p.transaction_id, p, Date.parse(p.at));
    };
    const route = (stable: ModelVersionRef | null, canary: (ModelVersionRef & { percent: number }) | null = null) =>
      routing.pipeInput('fraud', { model: 'fraud', stable, canary });
    const header = () => driver.getKeyValueStore<string, DriftWindowHeader>(DRIFT_STORES.headers).get('fraud');
    return { driver, predictions, events, evaluations, send, route, header };
  }

  /** What a detector over a memory window says of the same rows (what the topology must emit): every evaluation, and the verdicts. */
  function expectedOutput(rows: readonly Prediction[], version = 'v1'): { verdicts: DriftDetected[]; evaluations: DriftEvaluation[] } {
    const seen: DriftVerdict[] = [];
    const detector = new DriftDetector({
      model: 'fraud',
      version,
      features: FEATURE_NAMES,
      reference: readDriftReference(join(dir.path, version, 'reference.json'))!,
      options: OPTIONS,
      onEvaluation: (evaluation) => seen.push(evaluation),
    });
    const verdicts = rows.flatMap((p) => detector.observe({ timestampMs: Date.parse(p.at), features: p.features, score: p.probability }) ?? []);
    return { verdicts: verdicts.map(driftDetectedEvent), evaluations: seen.map(driftEvaluationEvent) };
  }

  it('emits no verdict for traffic like the reference, though it evaluates', () => {
    const s = setup();
    s.route(ref('v1'));
    s.send(predictionSource(10)(3_000));
    expect(s.events.readValuesToList()).toEqual([]);
    expect(s.header()).toMatchObject({ size: 1_000, rowsSeen: 3_000, evaluations: 9, events: 0, missingReference: 0 });
  });

  it('writes every evaluation, drifted or not, to drift-evaluations keyed by model, with each column\'s bins', () => {
    const s = setup();
    s.route(ref('v1'));
    const rows = predictionSource(10)(3_000);
    s.send(rows);
    const out = s.evaluations.readRecordsToList();
    expect(out.map((r) => r.key)).toEqual(Array(9).fill('fraud'));
    const values = out.map((r) => r.value!);
    expect(values.map((e) => e.drifted_features)).toEqual(Array(9).fill([]));
    const [first] = values;
    expect(Object.keys(first!)).toEqual(['model', 'version', 'window_start', 'window_end', 'window_size', 'drifted_features', 'statistics', 'at']);
    expect(first).toMatchObject({ model: 'fraud', version: 'v1', window_size: 1_000, window_end: rows[999]!.at, at: rows[999]!.at });
    expect(first!.statistics.map((st) => st.feature)).toEqual([...FEATURE_NAMES, 'score']);
    for (const st of first!.statistics) {
      expect(Object.keys(st)).toEqual(['feature', 'ks', 'ks_p_value', 'psi', 'js', 'drifted', 'bins']);
      expect(st.bins.edges).toHaveLength(st.bins.reference.length + 1);
      expect(st.bins.live).toHaveLength(st.bins.reference.length);
      expect(st.bins.live.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
    // Each evaluation is timed by its window's latest row, so the topic reads in event time.
    expect(out.map((r) => r.timestamp)).toEqual(values.map((e) => Date.parse(e.window_end)));
    // The window in the stores gives exactly what a window in memory gives.
    expect(values).toEqual(expectedOutput(rows).evaluations);
  });

  it('names the shifted features once amounts grow 2.5 times, with statistics for every feature and the score', () => {
    const s = setup();
    s.route(ref('v1'));
    const source = predictionSource(11);
    const rows = [...source(1_500), ...source(2_000, { amountFactor: 2.5 })];
    s.send(rows);
    const out = s.events.readRecordsToList();
    // After a verdict, none for a window's worth of rows (the cool-down); a shift that persists is reported again
    // once the window holds only rows seen since.
    expect(out.map((r) => r.key)).toEqual(['fraud', 'fraud']);
    const [event, again] = out.map((r) => r.value!) as [DriftDetected, DriftDetected];
    expect(Date.parse(again.window_end) - Date.parse(event.window_end)).toBeGreaterThanOrEqual(1_000 * 1_000);
    expect(again.drifted_features).toContain('amount');
    expect(event).toMatchObject({ model: 'fraud', version: 'v1', window_size: 1_000 });
    expect(event.statistics.map((st) => st.feature)).toEqual([...FEATURE_NAMES, 'score']);
    for (const st of event.statistics) {
      for (const v of [st.ks, st.ks_p_value, st.psi, st.js]) expect(Number.isFinite(v)).toBe(true);
    }
    // Exactly the amount-derived features: not the counts, gaps, countries, the amount-to-mean ratio or the score.
    expect(event.drifted_features).toEqual(['amount', 'sum_1h', 'mean_1h', 'sum_24h', 'mean_24h', 'prev_amount']);
    expect(event.drifted_features).toEqual(event.statistics.filter((st) => st.drifted).map((st) => st.feature));
    // The window is the last 1,000 rows before the verdict, in event time.
    expect(Date.parse(event.window_end) - Date.parse(event.window_start)).toBe(999_000);
    expect(event.at).toBe(event.window_end);
    expect(Date.parse(event.window_end)).toBeGreaterThan(Date.parse(rows[1_500]!.at));
    // The window in the stores gives exactly what a window in memory gives.
    expect([event, again]).toEqual(expectedOutput(rows).verdicts);

    // A verdict's evaluation reaches drift-evaluations too, the same statistics with their bins.
    const evaluations = s.evaluations.readValuesToList().map((e) => e!);
    expect(evaluations).toEqual(expectedOutput(rows).evaluations);
    const drifted = evaluations.filter((e) => e.drifted_features.length > 0);
    expect(drifted.map((e) => e.window_end)).toEqual([event.window_end, again.window_end]);
    expect(drifted[0]!.statistics.map(({ bins: _bins, ...st }) => st)).toEqual(event.statistics);
    // Undrifted evaluations before the shift, none during the cool-downs.
    expect(evaluations.length).toBeGreaterThan(drifted.length);
  });

  it('keeps the bins out of the Avro drift event: DriftDetected is exactly its schema', async () => {
    const s = setup();
    s.route(ref('v1'));
    const source = predictionSource(11);
    s.send([...source(1_500), ...source(2_000, { amountFactor: 2.5 })]);
    const [event] = s.events.readValuesToList();
    expect(event).toBeDefined();
    for (const st of event!.statistics) expect(st).not.toHaveProperty('bins');
    const schemas = await loadSchemaVersions(fileURLToPath(new URL('../../schemas', import.meta.url)), 'drift-detected');
    const type = parseAvroSchema(schemas.at(-1)!);
    // A field the schema lacks is an issue, so none means no bins at any depth.
    expect(validateValue(type, event)).toEqual([]);
    expect(type.fromBuffer(type.toBuffer(event))).toEqual(event);
  });

  it('ignores canary-served rows and rows of versions that are not the stable one', () => {
    const s = setup();
    s.route(ref('v1'), { ...ref('v2'), percent: 50 });
    const source = predictionSource(12);
    s.send(source(500));
    s.send(source(3_000, { version: 'v2', route: 'canary', amountFactor: 2.5 }));
    s.send(source(3_000, { version: 'v0', amountFactor: 2.5 }));
    s.send(source(500));
    expect(s.header()).toMatchObject({ rowsSeen: 1_000, evaluations: 1 });
    expect(s.events.readValuesToList()).toEqual([]);
  });

  it('starts a new window when a new version becomes stable', () => {
    const s = setup();
    s.route(ref('v1'));
    const source = predictionSource(13);
    s.send(source(700));
    s.route(ref('v2'));
    s.send(source(5)); // v1 rows, still in flight: no longer the stable version's
    s.send(source(3, { version: 'v2' }));
    expect(s.header()).toMatchObject({ rowsSeen: 3, size: 3 });
    expect(s.driver.getKeyValueStore<string, string>(DRIFT_STORES.versions).get('fraud')).toBe('v2');
    // v1's 700 rows are gone from the store, not only from the header's view.
    expect(s.driver.committedStoreEntries(DRIFT_STORES.rows)).toHaveLength(3);
  });

  it('skips a version whose reference is missing or unreadable, logging it once, and never fails a record', () => {
    const warn = vi.fn();
    const s = setup({ logger: { warn } });
    const source = predictionSource(14);
    s.route(ref('v1', join(dir.path, 'nowhere', 'reference.json')));
    s.send(source(1_500, { amountFactor: 2.5 }));
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![0]).toMatchObject({ model: 'fraud', version: 'v1' });

    const bad = join(dir.path, 'v3', 'reference.json');
    mkdirSync(join(dir.path, 'v3'));
    writeFileSync(bad, '{"features": {"amount": {"edges": [1, 2], "proportions": [0.5], "sample": [1]}}');
    s.route(ref('v3', bad));
    s.send(source(1_500, { version: 'v3', amountFactor: 2.5 }));
    expect(warn).toHaveBeenCalledTimes(2);
    expect(String(warn.mock.calls[1]![0].reason)).toMatch(/no distribution for|not valid JSON|shares sum/);

    expect(s.events.readValuesToList()).toEqual([]);
    expect(s.driver.deadLetters(Topics.predictions)).toEqual([]);
    expect(s.header()).toBeUndefined();
  });

  it('dead-letters malformed predictions and goes on with the rest', () => {
    const s = setup();
    s.route(ref('v1'));
    const [good] = predictionSource(15)(1);
    s.predictions.pipeRawInput(Buffer.from('tx-a'), Buffer.from('not json'), T0);
    const { amount: _amount, ...withoutAmount } = good!.features;
    s.predictions.pipeInput('tx-b', { ...good!, features: withoutAmount as unknown as Features }, T0);
    s.predictions.pipeInput('tx-c', { ...good!, route: 'sideways' as 'stable' }, T0);
    s.predictions.pipeInput('tx-d', { ...good!, at: 'yesterday' }, T0);
    s.predictions.pipeInput('tx-e', { ...good!, probability: Number.NaN }, T0);
    s.send([good!]);
    const letters = s.driver.deadLetters(Topics.predictions);
    expect(letters.map((l) => [Buffer.from(l.original.key!, 'base64').toString(), l.code])).toEqual(
      ['tx-a', 'tx-b', 'tx-c', 'tx-d', 'tx-e'].map((key) => [key, 'MILLRACE_DESERIALIZATION']),
    );
    expect(s.header()).toMatchObject({ rowsSeen: 1 });
  });

  it('takes its options from the engine config, checked once', () => {
    expect(driftOptionsFrom({ windowRows: 1_500, evaluateEveryRows: 250, thresholds: { psi: 0.25 } })).toEqual({
      windowRows: 1_500,
      evaluateEveryRows: 250,
      thresholds: { psi: 0.25 },
    });
    const code = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (err) {
        return isMillraceError(err) ? err.code : 'not a MillraceError';
      }
      return undefined;
    };
    expect(code(() => driftOptionsFrom({ windowSize: 10 }))).toBe('MILLRACE_CONFIG_INVALID');
    expect(code(() => driftOptionsFrom({ windowRows: '10' }))).toBe('MILLRACE_CONFIG_INVALID');
    expect(code(() => driftOptionsFrom({ thresholds: { p: 0.1 } }))).toBe('MILLRACE_CONFIG_INVALID');
    expect(code(() => driftTopology({ windowRows: 0 }))).toBe('MILLRACE_CONFIG_INVALID');
    expect(code(() => driftTopology({ windowRows: 100, minWindowRows: 200 }))).toBe('MILLRACE_CONFIG_INVALID');
    const services = { logger: { warn: () => {} } } as unknown as Parameters<typeof drift>[0]['services'];
    const topology = drift({ options: { windowRows: 1_500, evaluateEveryRows: 250 }, services, registry: undefined as never });
    const detect = topology.describe().subtopologies.flatMap((sub) => sub.nodes).find((n) => n.name === 'detect');
    expect(detect?.detail).toMatchObject({ windowRows: 1_500, evaluateEveryRows: 250, minWindowRows: 1_500, cooldownRows: 1_500 });
  });

  describe('across a restart', () => {
    let log: EmbeddedLog;
    beforeEach(async () => {
      log = new EmbeddedLog({ path: join(dir.path, 'log') });
      await log.open();
      await log.createTopic({ name: Topics.predictions, partitions: 1 });
      await log.createTopic({ name: Topics.modelRouting, partitions: 1, cleanupPolicy: 'compact' });
      await log.createTopic({ name: Topics.drift, partitions: 1 });
      await log.createTopic({ name: Topics.driftEvaluations, partitions: 1 });
    });
    afterEach(async () => {
      await log.close();
    });

    const append = (rows: readonly Prediction[]) =>
      log.append(rows.map((p) => ({ topic: Topics.predictions, key: Buffer.from(p.transaction_id), value: Buffer.from(JSON.stringify(p)), timestamp: Date.parse(p.at) })));

    for (const lost of [false, true]) {
      it(`resumes its windows exactly${lost ? ', restored from their changelogs when local state is lost' : ''}`, async () => {
        const source = predictionSource(16);
        const before = [...source(1_200), ...source(130, { amountFactor: 2.5 })];
        const after = source(1_500, { amountFactor: 2.5 });
        await log.append([{ topic: Topics.modelRouting, key: Buffer.from('fraud'), value: Buffer.from(JSON.stringify({ model: 'fraud', stable: ref('v1'), canary: null })) }]);

        const first = startRunner(log, driftTopology(OPTIONS));
        await first.start();
        await append(before);
        await caughtUp(first);
        await first.stop();
        if (lost) {
          for (const store of Object.values(DRIFT_STORES)) {
            await new LevelBackend(log.db, `drift/${store}`, 0).clear();
            await new LevelBackend(log.db, `drift/${store}~checkpoint`, 0).clear();
          }
        }
        const second = startRunner(log, driftTopology(OPTIONS));
        await second.start();
        await append(after);
        await caughtUp(second);
        if (lost) expect(second.tasks.reduce((n, t) => n + t.restoredRecords, 0)).toBeGreaterThan(0);
        await second.stop();

        const events = (await readTopic(log, Topics.drift)).map((r) => JSON.parse(r.value!.toString()) as DriftDetected);
        const expected = expectedOutput([...before, ...after]);
        expect(expected.verdicts.length).toBeGreaterThan(0);
        expect(events).toEqual(expected.verdicts);
        // Every evaluation once, across the restart too.
        const evaluations = (await readTopic(log, Topics.driftEvaluations)).map((r) => JSON.parse(r.value!.toString()) as DriftEvaluation);
        expect(evaluations).toEqual(expected.evaluations);
      });
    }
  });
});
