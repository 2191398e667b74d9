/**
 * The ML pipeline's projections, given / when / then, on the in-memory ProjectionTestDriver: what each keeps, under
 * which keys, and that late or reordered events, malformed input and long histories leave it right and bounded.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MillraceError, isMillraceError } from '../../engine/errors.js';
import { offset } from '../../engine/log/log.js';
import { auc } from '../../engine/ml/significance.js';
import { decodeEvent, handleEvent } from '../../engine/projections/apply.js';
import { LevelProjectionStore } from '../../engine/projections/level-store.js';
import { loadProjections, type ProjectionDefinition, type ProjectionModuleContext } from '../../engine/projections/projection.js';
import { deadLetterFor } from '../../engine/runtime/dead-letter.js';
import { ProjectionTestDriver, type ProjectionTestInput } from '../../engine/testing/index.js';
import { alertsProjection, type Alert } from '../../projections/pipeline/alerts.js';
import deadLettersModule, { MALFORMED, deadLettersProjection, type DeadLetterTotals, type DeadLettersByCode } from '../../projections/pipeline/dead-letters.js';
import driftTimeline, { type DriftEvaluation as StoredEvaluation, type DriftVerdict, type StoryEntry } from '../../projections/pipeline/drift-timeline.js';
import { PIPELINE_PROJECTIONS, pipelineProjections } from '../../projections/pipeline/index.js';
import modelPerformance, { SCORE_BINS, SCORE_BIN_EDGES, amountBand, scoreBin, type ModelPerformance } from '../../projections/pipeline/model-performance.js';
import userRisk, { type UserRisk } from '../../projections/pipeline/user-risk.js';
import {
  FEATURE_VERSION,
  Topics,
  type DriftDetected,
  type FeatureVector,
  type Features,
  type ModelRegistryEvent,
  type Outcome,
  type Prediction,
  type TrainingJobEvent,
} from '../../topologies/pipeline/contract.js';
import type { DriftEvaluation } from '../../topologies/pipeline/drift.js';

const T0 = Date.parse('2026-01-02T00:00:00Z');
const iso = (ms: number): string => new Date(T0 + ms).toISOString();
const MINUTE = 60_000;

function features(amount: number): Features {
  return { amount, count_10m: 1, sum_1h: amount, mean_1h: amount, sum_24h: amount, mean_24h: amount, seconds_since_last: 60, distinct_countries_24h: 1, amount_to_mean_24h: 1, prev_amount: 0 };
}

function vector(id: string, user: string, atMs: number, amount: number, country?: string): ProjectionTestInput {
  const value: FeatureVector = {
    transaction_id: id,
    user,
    at: iso(atMs),
    feature_version: FEATURE_VERSION,
    features: features(amount),
    source: { topic: Topics.transactions, partition: 0, offset: 7 },
    ...(country === undefined ? {} : { country }),
  };
  return { topic: Topics.features, key: user, value, timestampMs: T0 + atMs };
}

interface PredictionSpec {
  readonly id: string;
  readonly user?: string;
  readonly atMs: number;
  readonly probability: number;
  /** Default: probability ≥ 0.5. */
  readonly class?: 0 | 1;
  readonly version?: string;
  readonly route?: 'stable' | 'canary';
  readonly amount?: number;
  readonly country?: string;
}

function predictionValue(p: PredictionSpec): Prediction {
  return {
    transaction_id: p.id,
    user: p.user ?? 'user-1',
    at: iso(p.atMs),
    model: 'fraud',
    version: p.version ?? 'v1',
    model_sha256: 'ab'.repeat(32),
    probability: p.probability,
    class: p.class ?? (p.probability >= 0.5 ? 1 : 0),
    route: p.route ?? 'stable',
    features: features(p.amount ?? 42),
    lineage: { features: { topic: Topics.features, partition: 1, offset: 3 }, transaction: { topic: Topics.transactions, partition: 1, offset: 5 } },
    ...(p.country === undefined ? {} : { country: p.country }),
  };
}

function prediction(p: PredictionSpec): ProjectionTestInput {
  return { topic: Topics.predictions, key: p.id, value: predictionValue(p), timestampMs: T0 + p.atMs };
}

/** An outcome as the outcomes topology makes it from a prediction and its label (arriving `labelDelayMs` later). */
function outcome(p: PredictionSpec, fraud: boolean, labelDelayMs = 5 * MINUTE): ProjectionTestInput {
  const pred = predictionValue(p);
  const value: Outcome = {
    transaction_id: pred.transaction_id,
    model: pred.model,
    version: pred.version,
    route: pred.route,
    probability: pred.probability,
    fraud,
    at: pred.at,
    ...(pred.country === undefined ? {} : { country: pred.country }),
    amount: pred.features.amount,
  };
  return { topic: Topics.outcomes, key: pred.model, value, timestampMs: T0 + p.atMs + labelDelayMs };
}

/** Every permutation of a short list (for "any order gives the same answer"). */
function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

async function run(definition: ProjectionDefinition, inputs: readonly ProjectionTestInput[]): Promise<ProjectionTestDriver> {
  const driver = new ProjectionTestDriver(definition);
  await driver.pipeAll(inputs);
  return driver;
}

function expectNoDeadLetters(driver: ProjectionTestDriver): void {
  expect(driver.deadLetters.map((d) => d.error.message)).toEqual([]);
}

/** Op times of one event: a key is never written at a time before its last write (see projections/pipeline/support.ts). */
function opTimes(handled: Awaited<ReturnType<ProjectionTestDriver['pipe']>>): number[] {
  return (handled?.ops ?? []).map((op) => op.timestampMs);
}

// ---------------------------------------------------------------- the modules

describe('the pipeline projection modules', () => {
  const context = { registry: undefined, services: undefined } as unknown as Omit<ProjectionModuleContext, 'options'>;

  it('lists the built-in modules and makes config references with options by projection name', () => {
    expect(PIPELINE_PROJECTIONS).toEqual(['pipeline/user-risk', 'pipeline/alerts', 'pipeline/model-performance', 'pipeline/drift-timeline', 'pipeline/dead-letters']);
    expect(pipelineProjections({ alerts: { threshold: 0.8 }, 'dead-letters': { recent: 3 } })).toEqual([
      { module: 'pipeline/user-risk', options: {} },
      { module: 'pipeline/alerts', options: { threshold: 0.8 } },
      { module: 'pipeline/model-performance', options: {} },
      { module: 'pipeline/drift-timeline', options: {} },
      { module: 'pipeline/dead-letters', options: { recent: 3 } },
    ]);
  });

  it('loads each module as the engine does, one valid projection named after it, with its options', async () => {
    for (const { module, options } of pipelineProjections({ alerts: { threshold: 0.8 } })) {
      const path = fileURLToPath(new URL(`../../projections/${module}.ts`, import.meta.url));
      const definitions = await loadProjections({ module: path, options }, '/', context);
      expect(definitions.map((d) => d.name)).toEqual([module.slice('pipeline/'.length)]);
    }
  });

  it('refuses invalid options with MILLRACE_CONFIG_INVALID when the module loads', () => {
    for (const make of [() => alertsProjection({ threshold: 1.5 }), () => deadLettersProjection({ recent: 0 }), () => deadLettersModule({ options: { recent: 2.5 } })]) {
      expect(make).toThrow(MillraceError);
      try {
        make();
      } catch (err) {
        expect(isMillraceError(err, 'MILLRACE_CONFIG_INVALID')).toBe(true);
      }
    }
  });
});

// ---------------------------------------------------------------- versions in a real store

describe('the pipeline projections on a versioned store', () => {
  it('leave as the latest version of each key what the handlers decided, late events included', async () => {
    // A store answers a key with its version of greatest time, not the last written; an update written behind the
    // latest version would be lost. Every key here is written at non-decreasing times: proven on LevelDB.
    const dir = await mkdtemp(join(tmpdir(), 'millrace-pipeline-projections-'));
    const store = new LevelProjectionStore({ path: dir, historyRetentionMs: 30 * 24 * 3_600_000 });
    await store.open();
    try {
      const events: ProjectionTestInput[] = [];
      for (let i = 0; i < 60; i++) {
        // Every third event is 20 minutes late.
        const p = { id: `t${i}`, user: `user-${i % 4}`, atMs: (i % 3 === 0 ? i - 20 : i) * MINUTE, probability: ((i * 37) % 100) / 100, country: i % 2 === 0 ? 'FR' : 'DE' };
        events.push(vector(p.id, p.user, p.atMs, i, p.country), prediction(p), outcome(p, i % 5 === 0));
      }
      // What the latest versions must add up to: every event counted, late ones included.
      const alertCount = events.filter((e) => e.topic === Topics.predictions && (e.value as Prediction).class === 1).length;
      const totals: Array<[ProjectionDefinition, (items: Array<[string, unknown]>) => number, number]> = [
        [userRisk, (items) => items.reduce((sum, [, v]) => sum + (v as UserRisk).counts.scored, 0), 60],
        [alertsProjection(), (items) => items.filter(([key, v]) => key.startsWith('tx/') && (v as Alert).status !== 'open').length, alertCount],
        [modelPerformance, (items) => items.filter(([key]) => key.endsWith('/all')).reduce((sum, [, v]) => sum + (v as ModelPerformance).count, 0), 60],
      ];
      for (const [definition, total, expected] of totals) {
        const id = { name: definition.name, namespace: 'live' };
        const driver = new ProjectionTestDriver(definition);
        const next = new Map<string, number>();
        for (const input of events) {
          const handled = await driver.pipe(input);
          if (handled === undefined) continue;
          const at = `${input.topic}/${input.partition ?? 0}`;
          const n = next.get(at) ?? 0;
          next.set(at, n + 1);
          const record = { topic: input.topic, partition: input.partition ?? 0, offset: offset(n), timestamp: input.timestampMs!, key: null, value: Buffer.from(JSON.stringify(input.value)), headers: {} };
          const read = async (key: string) => {
            const got = await store.get(id, key);
            return got.status === 'found' ? { value: got.value, timestampMs: got.timestampMs } : undefined;
          };
          const applied = await handleEvent(definition, await decodeEvent(definition, record), read);
          await store.apply(id, { source: { topic: record.topic, partition: record.partition, nextOffset: offset(n + 1) }, ops: applied.ops });
        }
        expectNoDeadLetters(driver);
        const scanned = await store.scan(id, { limit: 1000 });
        expect(scanned.status).toBe('ok');
        const latest = scanned.status === 'ok' ? scanned.items.map((item) => [item.key, item.value]) : [];
        expect(latest).toEqual(driver.entries());
        expect(total(latest as Array<[string, unknown]>)).toBe(expected);
      }
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------- user-risk

describe('user-risk', () => {
  it('keeps per user the latest feature vector and score, and counts scored and flagged transactions', async () => {
    const driver = await run(userRisk, [
      vector('t1', 'user-1', 0, 20, 'FR'),
      prediction({ id: 't1', atMs: 0, probability: 0.1 }),
      vector('t2', 'user-1', MINUTE, 900, 'ES'),
      prediction({ id: 't2', atMs: MINUTE, probability: 0.97, version: 'v2', route: 'canary' }),
      vector('t3', 'user-2', 2 * MINUTE, 5),
    ]);
    expectNoDeadLetters(driver);
    expect(driver.get('user-1')).toEqual({
      user: 'user-1',
      features: { transaction_id: 't2', at: iso(MINUTE), feature_version: FEATURE_VERSION, country: 'ES', values: features(900) },
      score: { transaction_id: 't2', at: iso(MINUTE), probability: 0.97, class: 1, model: 'fraud', version: 'v2', route: 'canary' },
      counts: { scored: 2, flagged: 1 },
      max_probability: 0.97,
      as_of_ms: T0 + MINUTE,
    } satisfies UserRisk);
    // A vector written before vectors carried the country: unknown.
    expect(driver.get('user-2')).toMatchObject({ features: { transaction_id: 't3', country: 'unknown' }, score: null, counts: { scored: 0, flagged: 0 } });
  });

  it('does not let a late, older vector or prediction replace a newer one, but counts it, writing no earlier than the newer', async () => {
    const driver = await run(userRisk, [vector('t2', 'user-1', 10 * MINUTE, 900, 'ES'), prediction({ id: 't2', atMs: 10 * MINUTE, probability: 0.2 })]);
    const lateVector = await driver.pipe(vector('t1', 'user-1', MINUTE, 20, 'FR'));
    const latePrediction = await driver.pipe(prediction({ id: 't1', atMs: MINUTE, probability: 0.8 }));
    expectNoDeadLetters(driver);
    expect(driver.get('user-1')).toMatchObject({
      features: { transaction_id: 't2', country: 'ES' },
      score: { transaction_id: 't2', probability: 0.2 },
      counts: { scored: 2, flagged: 1 },
      max_probability: 0.8,
      as_of_ms: T0 + 10 * MINUTE,
    });
    expect(opTimes(lateVector)).toEqual([]); // nothing to change
    expect(opTimes(latePrediction)).toEqual([T0 + 10 * MINUTE]); // at the newer time, so it is the latest version
  });

  it('ends the same whatever order the topics and partitions are read in (ties broken by transaction id)', async () => {
    const events = [
      vector('a', 'user-1', 0, 10, 'FR'),
      vector('b', 'user-1', MINUTE, 20, 'FR'),
      prediction({ id: 'a', atMs: 0, probability: 0.7 }),
      prediction({ id: 'b', atMs: MINUTE, probability: 0.3 }),
      prediction({ id: 'c', atMs: MINUTE, probability: 0.6 }), // same instant as b: c > b wins
    ];
    const results = new Set<string>();
    for (const order of permutations(events)) results.add(JSON.stringify((await run(userRisk, order)).entries()));
    expect(results.size).toBe(1);
    expect(JSON.parse([...results][0]!)).toEqual([['user-1', expect.objectContaining({ score: expect.objectContaining({ transaction_id: 'c' }), counts: { scored: 3, flagged: 2 } })]]);
  });

  it('dead-letters a prediction that breaks the contract, naming the field, and keeps going', async () => {
    const driver = await run(userRisk, [
      { topic: Topics.predictions, key: 't1', value: { ...predictionValue({ id: 't1', atMs: 0, probability: 0.5 }), probability: 1.5 } },
      { topic: Topics.features, key: 'u', value: { transaction_id: 't0', at: iso(0) } },
      prediction({ id: 't2', atMs: 0, probability: 0.5 }),
    ]);
    expect(driver.deadLetters.map((d) => (d.error as MillraceError).code)).toEqual(['MILLRACE_RECORD_INVALID', 'MILLRACE_RECORD_INVALID']);
    expect(driver.deadLetters[0]!.error.message).toMatch(/probability/);
    expect(driver.deadLetters[1]!.error.message).toMatch(/user/);
    expect(driver.get('user-1')).toMatchObject({ counts: { scored: 1 } });
  });
});

// ---------------------------------------------------------------- alerts

describe('alerts', () => {
  it('alerts on class 1 or a probability at or above the threshold, under tx/<id>, with score, model, route, features and lineage', async () => {
    const driver = await run(alertsProjection(), [
      prediction({ id: 'high', atMs: 0, probability: 0.95, country: 'FR', amount: 700 }),
      prediction({ id: 'flagged', atMs: MINUTE, probability: 0.6 }),
      prediction({ id: 'calm', atMs: 2 * MINUTE, probability: 0.3 }),
      prediction({ id: 'sure-but-not-called', atMs: 3 * MINUTE, probability: 0.92, class: 0 }), // a model with a threshold above 0.92
    ]);
    expectNoDeadLetters(driver);
    expect(driver.get('tx/high')).toEqual({
      transaction_id: 'high',
      user: 'user-1',
      at: iso(0),
      model: 'fraud',
      version: 'v1',
      model_sha256: 'ab'.repeat(32),
      route: 'stable',
      probability: 0.95,
      class: 1,
      level: 'high',
      country: 'FR',
      features: features(700),
      lineage: { features: { topic: Topics.features, partition: 1, offset: 3 }, transaction: { topic: Topics.transactions, partition: 1, offset: 5 } },
      status: 'open',
      outcome: null,
      as_of_ms: T0,
    } satisfies Alert);
    expect(driver.get('tx/flagged')).toMatchObject({ level: 'flagged', class: 1, country: 'unknown' });
    expect(driver.get('tx/calm')).toBeUndefined();
    expect(driver.get('tx/sure-but-not-called')).toMatchObject({ level: 'high', class: 0 });
  });

  it('takes the threshold as an option', async () => {
    const driver = await run(alertsProjection({ threshold: 0.25 }), [prediction({ id: 'a', atMs: 0, probability: 0.3 }), prediction({ id: 'b', atMs: 0, probability: 0.2 })]);
    expect(driver.get('tx/a')).toMatchObject({ level: 'high', class: 0 });
    expect(driver.get('tx/b')).toBeUndefined();
  });

  it("lists a user's alerts in time order under user/<user>/, ids URI-encoded, and marks them confirmed or false-positive by outcome", async () => {
    const a = { id: 'tx-a', user: 'ops/eve', atMs: 2 * MINUTE, probability: 0.9 };
    const b = { id: 'tx-b', user: 'ops/eve', atMs: MINUTE, probability: 0.8 };
    const c = { id: 'tx-c', user: 'ops', atMs: 0, probability: 0.99 };
    const driver = await run(alertsProjection(), [prediction(a), prediction(b), prediction(c), outcome(a, true), outcome(b, false)]);
    expectNoDeadLetters(driver);
    expect(driver.entries().filter(([key]) => key.startsWith('user/ops%2Feve/'))).toEqual([
      [`user/ops%2Feve/${iso(MINUTE)}/tx-b`, { transaction_id: 'tx-b', at: iso(MINUTE), probability: 0.8, level: 'flagged', status: 'false-positive', as_of_ms: T0 + 6 * MINUTE }],
      [`user/ops%2Feve/${iso(2 * MINUTE)}/tx-a`, { transaction_id: 'tx-a', at: iso(2 * MINUTE), probability: 0.9, level: 'high', status: 'confirmed', as_of_ms: T0 + 7 * MINUTE }],
    ]);
    expect(driver.get('tx/tx-a')).toMatchObject({ status: 'confirmed', outcome: { fraud: true, resolved_at: iso(7 * MINUTE) } });
    expect(driver.get('tx/tx-b')).toMatchObject({ status: 'false-positive', outcome: { fraud: false } });
    expect(driver.get(`user/ops/${iso(0)}/tx-c`)).toMatchObject({ status: 'open' });
  });

  it('ends the same whichever of a prediction and its outcome is read first', async () => {
    const high = { id: 'x', atMs: 0, probability: 0.97, country: 'DE' };
    const flagged = { id: 'y', atMs: MINUTE, probability: 0.6 };
    const calm = { id: 'z', atMs: 2 * MINUTE, probability: 0.1 };
    const pairs = [high, flagged, calm].map((p, i) => [prediction(p), outcome(p, i === 0)] as const);
    const results = new Set<string>();
    for (const flips of [0, 1, 2, 3, 4, 5, 6, 7]) {
      const order = pairs.flatMap(([p, o], i) => ((flips >> i) & 1 ? [o, p] : [p, o]));
      const driver = await run(alertsProjection(), order);
      expectNoDeadLetters(driver);
      results.add(JSON.stringify(driver.entries()));
    }
    expect(results.size).toBe(1);
    expect(JSON.parse([...results][0]!)).toEqual([
      ['tx/x', expect.objectContaining({ user: 'user-1', status: 'confirmed', level: 'high', country: 'DE', class: 1, features: features(42) })],
      ['tx/y', expect.objectContaining({ user: 'user-1', status: 'false-positive', level: 'flagged', class: 1 })],
      [`user/user-1/${iso(0)}/x`, expect.objectContaining({ status: 'confirmed' })],
      [`user/user-1/${iso(MINUTE)}/y`, expect.objectContaining({ status: 'false-positive' })],
    ]);
  });

  it('lets a prediction read after its outcome settle what the outcome alone suggested: completed, or removed when it is no alert', async () => {
    // The outcome of a model whose threshold is above 0.6 (outcomes do not say so): it looks like class 1.
    const notCalled = { id: 'y', atMs: MINUTE, probability: 0.6, class: 0 as const };
    const driver = await run(alertsProjection(), [outcome(notCalled, false)]);
    expect(driver.get('tx/y')).toMatchObject({ user: null, status: 'false-positive' });
    await driver.pipe(prediction(notCalled));
    expectNoDeadLetters(driver);
    expect(driver.entries()).toEqual([]);
  });

  it('keeps an alert opened by an outcome alone, with what the outcome says, until its prediction comes', async () => {
    const driver = await run(alertsProjection(), [outcome({ id: 'o', atMs: 0, probability: 0.95, country: 'IT' }, true)]);
    expect(driver.entries()).toEqual([
      [
        'tx/o',
        expect.objectContaining({ user: null, at: null, class: null, probability: 0.95, level: 'high', country: 'IT', features: null, lineage: null, status: 'confirmed' }),
      ],
    ]);
  });
});

// ---------------------------------------------------------------- model-performance

describe('model-performance', () => {
  it('keeps per version counts, the confusion matrix at 0.5, log loss, Brier and calibration, overall and by amount, country and route', async () => {
    const rows: Array<[PredictionSpec, boolean]> = [
      [{ id: 'a', atMs: 0, probability: 0.9, amount: 5, country: 'FR' }, true], // tp
      [{ id: 'b', atMs: MINUTE, probability: 0.7, amount: 75, country: 'FR' }, false], // fp
      [{ id: 'c', atMs: 2 * MINUTE, probability: 0.2, amount: 1500, country: 'DE', route: 'canary' }, true], // fn
      [{ id: 'd', atMs: 3 * MINUTE, probability: 0.1, amount: 10 }, false], // tn, no country
    ];
    const driver = await run(
      modelPerformance,
      rows.map(([p, fraud]) => outcome(p, fraud)),
    );
    expectNoDeadLetters(driver);
    const all = driver.get('fraud/v1/all') as unknown as ModelPerformance;
    const logLoss = -(Math.log(0.9) + Math.log(0.3) + Math.log(0.2) + Math.log(0.9)) / 4;
    expect(all).toMatchObject({
      model: 'fraud',
      version: 'v1',
      slice: 'all',
      threshold: 0.5,
      count: 4,
      positives: 2,
      negatives: 2,
      confusion: { tp: 1, fp: 1, tn: 1, fn: 1 },
      accuracy: 0.5,
      precision: 0.5,
      recall: 0.5,
      false_positive_rate: 0.5,
      base_rate: 0.5,
      first_at: iso(0),
      last_at: iso(3 * MINUTE),
      as_of_ms: T0 + 8 * MINUTE,
    });
    expect(all.mean_probability).toBeCloseTo((0.9 + 0.7 + 0.2 + 0.1) / 4, 12);
    expect(all.log_loss).toBeCloseTo(logLoss, 12);
    expect(all.brier).toBeCloseTo((0.01 + 0.49 + 0.64 + 0.01) / 4, 12);
    expect(all.auc).toBe(0.75); // the four scores sit in four bins: exact
    expect(all.auc).toBeCloseTo(auc([0.9, 0.7, 0.2, 0.1], [true, false, true, false]), 12);
    expect(driver.entries().map(([key]) => key)).toEqual([
      'fraud/v1/all',
      'fraud/v1/amount=0-10',
      'fraud/v1/amount=10-50',
      'fraud/v1/amount=1000+',
      'fraud/v1/amount=50-200',
      'fraud/v1/country=DE',
      'fraud/v1/country=FR',
      'fraud/v1/country=unknown',
      'fraud/v1/route=canary',
      'fraud/v1/route=stable',
    ]);
    expect(driver.get('fraud/v1/country=FR')).toMatchObject({ count: 2, confusion: { tp: 1, fp: 1, tn: 0, fn: 0 }, precision: 0.5, recall: 1, auc: 1 });
    expect(driver.get('fraud/v1/route=canary')).toMatchObject({ count: 1, confusion: { fn: 1 }, precision: null, recall: 0, auc: null });
    expect(driver.get('fraud/v1/amount=1000+')).toMatchObject({ count: 1, positives: 1 });
  });

  it('counts outcomes without country or amount (written before outcomes carried them) as unknown', async () => {
    const old = { transaction_id: 't', model: 'fraud', version: 'v0', route: 'stable', probability: 0.4, fraud: false, at: iso(0) };
    const driver = await run(modelPerformance, [{ topic: Topics.outcomes, key: 'fraud', value: old, timestampMs: T0 }]);
    expect(driver.entries().map(([key]) => key)).toEqual(['fraud/v0/all', 'fraud/v0/amount=unknown', 'fraud/v0/country=unknown', 'fraud/v0/route=stable']);
  });

  it('puts amounts in fixed bands, each including its lower bound', () => {
    expect([0, 9.99, 10, 49.99, 50, 199.99, 200, 999.99, 1000, 1_000_000].map(amountBand)).toEqual([
      '0-10', '0-10', '10-50', '10-50', '50-200', '50-200', '200-1000', '200-1000', '1000+', '1000+',
    ]);
    expect(amountBand(undefined)).toBe('unknown');
  });

  it('approximates the AUC from a bounded histogram: exact when no positive shares a bin with a negative, ties counted half', async () => {
    // A small data set, scores spread so that positives and negatives never share a bin.
    const data: Array<[number, boolean]> = [
      [0.0005, false], [0.003, false], [0.007, true], [0.015, false], [0.03, false], [0.07, false], [0.15, true],
      [0.25, false], [0.45, true], [0.55, false], [0.85, true], [0.97, true], [0.996, false], [0.9995, true],
    ];
    const bins = (p: number) => scoreBin(p);
    for (const [p, label] of data) for (const [q, other] of data) if (label !== other) expect(bins(p) === bins(q), `${p} and ${q} share a bin`).toBe(false);
    const driver = await run(
      modelPerformance,
      data.map(([probability, fraud], i) => outcome({ id: `t${i}`, atMs: i * MINUTE, probability }, fraud)),
    );
    const value = driver.get('fraud/v1/all') as unknown as ModelPerformance;
    const exact = auc(data.map(([p]) => p), data.map(([, y]) => y));
    expect(value.auc).toBeCloseTo(exact, 12);

    // With ties: the histogram's AUC is the exact AUC of the scores rounded to their bins.
    const tied: Array<[number, boolean]> = [[0.11, true], [0.12, false], [0.13, false], [0.5, true], [0.55, false], [0.0, false], [1, true], [0.995, false]];
    const tiedDriver = await run(
      modelPerformance,
      tied.map(([probability, fraud], i) => outcome({ id: `t${i}`, atMs: i * MINUTE, probability }, fraud)),
    );
    const tiedValue = tiedDriver.get('fraud/v1/all') as unknown as ModelPerformance;
    expect(tiedValue.auc).toBeCloseTo(auc(tied.map(([p]) => scoreBin(p)), tied.map(([, y]) => y)), 12);
    expect(tiedValue.auc).not.toBeCloseTo(auc(tied.map(([p]) => p), tied.map(([, y]) => y)), 3);
  });

  it('keeps the histogram bounded and the value small however many outcomes come, late ones included', async () => {
    const driver = new ProjectionTestDriver(modelPerformance);
    for (let i = 0; i < 2_000; i++) {
      await driver.pipe(outcome({ id: `t${i}`, atMs: (i % 2 === 0 ? i : i - 500) * 1_000, probability: (i * 7919) % 1000 / 1000, amount: i }, i % 3 === 0));
    }
    expectNoDeadLetters(driver);
    const value = driver.get('fraud/v1/all') as unknown as ModelPerformance;
    expect(value.count).toBe(2_000);
    expect(SCORE_BIN_EDGES).toHaveLength(SCORE_BINS + 1);
    for (const counts of [value.histogram.positive, value.histogram.negative, value.histogram.probability_sum]) expect(counts).toHaveLength(SCORE_BINS);
    expect(value.histogram.positive.reduce((a, b) => a + b) + value.histogram.negative.reduce((a, b) => a + b)).toBe(2_000);
    expect(Buffer.byteLength(JSON.stringify(value))).toBeLessThan(4_096);
    // Versions only move forward: the latest is the one with everything in it.
    expect(value.as_of_ms).toBe(T0 + 1_998_000 + 5 * MINUTE);
  });
});

// ---------------------------------------------------------------- drift-timeline

function driftVerdict(version: string, endMs: number, drifted: readonly string[]): ProjectionTestInput {
  const stat = (feature: string) => ({ feature, ks: 0.3, ks_p_value: 0.001, psi: 0.4, js: 0.05, drifted: drifted.includes(feature) });
  const value: DriftDetected = {
    model: 'fraud',
    version,
    window_start: iso(endMs - 10 * MINUTE),
    window_end: iso(endMs),
    window_size: 500,
    statistics: ['amount', 'sum_1h', 'score'].map(stat),
    drifted_features: drifted,
    at: iso(endMs),
  };
  return { topic: Topics.drift, key: 'fraud', value, timestampMs: T0 + endMs };
}

const BINS = { edges: [0, 10, 20, 40], reference: [0.25, 0.5, 0.25], live: [0.1, 0.4, 0.5] };

/** An evaluation on drift-evaluations, as the drift topology writes it. */
function driftEvaluation(version: string, endMs: number, drifted: readonly string[], bins: DriftEvaluation['statistics'][number]['bins'] = BINS): ProjectionTestInput {
  const stat = (feature: string) => ({ feature, ks: 0.3, ks_p_value: 0.001, psi: 0.4, js: 0.05, drifted: drifted.includes(feature), bins });
  const value: DriftEvaluation = {
    model: 'fraud',
    version,
    window_start: iso(endMs - 10 * MINUTE),
    window_end: iso(endMs),
    window_size: 500,
    drifted_features: drifted,
    statistics: ['amount', 'score'].map(stat),
    at: iso(endMs),
  };
  return { topic: Topics.driftEvaluations, key: 'fraud', value, timestampMs: T0 + endMs };
}

const job = (event: TrainingJobEvent): ProjectionTestInput => ({ topic: Topics.trainingJobs, key: event.model, value: event, timestampMs: Date.parse(event.at) });
const registryEvent = (event: ModelRegistryEvent): ProjectionTestInput => ({ topic: Topics.modelRegistry, key: event.model, value: event, timestampMs: Date.parse(event.at) });

describe('drift-timeline', () => {
  it("keeps each verdict under <model>/<version>/<window end>, so a prefix scan lists one version's verdicts in time order", async () => {
    const driver = await run(driftTimeline, [driftVerdict('v1', 30 * MINUTE, ['amount']), driftVerdict('v1', 10 * MINUTE, []), driftVerdict('v2', 20 * MINUTE, [])]);
    expectNoDeadLetters(driver);
    expect(driver.entries().filter(([key]) => key.startsWith('fraud/v1/')).map(([key]) => key)).toEqual([`fraud/v1/${iso(10 * MINUTE)}`, `fraud/v1/${iso(30 * MINUTE)}`]);
    expect(driver.get(`fraud/v1/${iso(30 * MINUTE)}`)).toEqual({
      kind: 'drift',
      model: 'fraud',
      version: 'v1',
      window_start: iso(20 * MINUTE),
      window_end: iso(30 * MINUTE),
      window_size: 500,
      drifted_features: ['amount'],
      statistics: {
        amount: { ks: 0.3, ks_p_value: 0.001, psi: 0.4, js: 0.05, drifted: true },
        sum_1h: { ks: 0.3, ks_p_value: 0.001, psi: 0.4, js: 0.05, drifted: false },
        score: { ks: 0.3, ks_p_value: 0.001, psi: 0.4, js: 0.05, drifted: false },
      },
      at: iso(30 * MINUTE),
      as_of_ms: T0 + 30 * MINUTE,
    } satisfies DriftVerdict);
  });

  it("keeps every evaluation with its bins under <model>/evaluations/<version>/<window end>, so a prefix scan charts one version's over time", async () => {
    const driver = await run(driftTimeline, [
      driftEvaluation('v1', 30 * MINUTE, ['amount']),
      driftVerdict('v1', 30 * MINUTE, ['amount']),
      driftEvaluation('v1', 10 * MINUTE, []),
      driftEvaluation('v2', 20 * MINUTE, []),
      driftEvaluation('v1', 20 * MINUTE, []),
    ]);
    expectNoDeadLetters(driver);
    expect(driver.entries().filter(([key]) => key.startsWith('fraud/evaluations/v1/')).map(([key]) => key)).toEqual(
      [10, 20, 30].map((m) => `fraud/evaluations/v1/${iso(m * MINUTE)}`),
    );
    // Beside the verdicts, not among them; and an evaluation tells no story.
    expect(driver.entries().filter(([key]) => key.startsWith('fraud/v1/')).map(([key]) => key)).toEqual([`fraud/v1/${iso(30 * MINUTE)}`]);
    expect(driver.entries().filter(([key]) => key.startsWith('fraud/story/'))).toHaveLength(1);
    expect(driver.get(`fraud/evaluations/v1/${iso(10 * MINUTE)}`)).toEqual({
      kind: 'evaluation',
      model: 'fraud',
      version: 'v1',
      window_start: iso(0),
      window_end: iso(10 * MINUTE),
      window_size: 500,
      drifted_features: [],
      statistics: {
        amount: { ks: 0.3, ks_p_value: 0.001, psi: 0.4, js: 0.05, drifted: false, bins: BINS },
        score: { ks: 0.3, ks_p_value: 0.001, psi: 0.4, js: 0.05, drifted: false, bins: BINS },
      },
      at: iso(10 * MINUTE),
      as_of_ms: T0 + 10 * MINUTE,
    } satisfies StoredEvaluation);
    expect(driver.get(`fraud/evaluations/v1/${iso(30 * MINUTE)}`)).toMatchObject({ drifted_features: ['amount'], statistics: { amount: { drifted: true } } });
  });

  it('keeps evaluations bounded: too many bins are left out, bins of the wrong shape are refused', async () => {
    const many = { edges: Array.from({ length: 102 }, (_, i) => i), reference: Array(101).fill(1 / 101), live: Array(101).fill(1 / 101) };
    const driver = await run(driftTimeline, [
      driftEvaluation('v1', 10 * MINUTE, [], many),
      driftEvaluation('v1', 20 * MINUTE, [], { ...BINS, live: [0.5, 0.5] }),
      driftEvaluation('v1', 30 * MINUTE, [], { ...BINS, edges: [0, 1, 2, Number.NaN] }),
    ]);
    expect(driver.get(`fraud/evaluations/v1/${iso(10 * MINUTE)}`)).toMatchObject({ statistics: { amount: { psi: 0.4, bins: null } } });
    expect(driver.get(`fraud/evaluations/v1/${iso(20 * MINUTE)}`)).toBeUndefined();
    expect(driver.get(`fraud/evaluations/v1/${iso(30 * MINUTE)}`)).toBeUndefined();
    expect(driver.deadLetters.map((d) => d.error.message)).toEqual([
      expect.stringMatching(/bins must have k \+ 1 edges and k reference and live shares, got 4, 3 and 2/),
      expect.stringMatching(/bins\.edges must hold finite numbers/),
    ]);
  });

  it('tells the drift → retrain → canary → promote story under <model>/story/, in order, events of one instant included, whatever the read order', async () => {
    const trainedAt = iso(40 * MINUTE);
    const events = [
      driftVerdict('v1', 30 * MINUTE, ['amount', 'score']),
      job({ type: 'RetrainRequested', job_id: 'fraud-2', model: 'fraud', reason: 'drift in amount, score', at: iso(30 * MINUTE), since: iso(20 * MINUTE) }),
      job({ type: 'TrainingStarted', job_id: 'fraud-2', model: 'fraud', runner: 'local', at: iso(31 * MINUTE) }),
      job({
        type: 'ModelTrained', job_id: 'fraud-2', model: 'fraud', version: 'v2', artifact_uri: '/m/v2/model.onnx', sha256: 'cd'.repeat(32),
        metrics: { auc: 0.91, baseline_auc: 0.88 }, at: trainedAt,
        reproducibility: { offsets: {}, feature_version: FEATURE_VERSION, seed: 1, trainer_version: '1', packages: {} },
      }),
      registryEvent({ type: 'ModelRegistered', model: 'fraud', version: 'v2', artifact_uri: '/m/v2/model.onnx', sha256: 'cd'.repeat(32), reference_uri: '/m/v2/reference.json', metrics: { auc: 0.91 }, at: trainedAt }),
      registryEvent({ type: 'CanaryStarted', model: 'fraud', version: 'v2', percent: 5, at: trainedAt }),
      registryEvent({ type: 'CanaryStarted', model: 'fraud', version: 'v2', percent: 10, at: iso(50 * MINUTE) }),
      registryEvent({ type: 'ModelPromoted', model: 'fraud', version: 'v2', evidence: 'stage 50%: log loss canary 0.1 vs stable 0.2', at: iso(60 * MINUTE) }),
    ];
    const expected = [
      `fraud/story/${iso(30 * MINUTE)}/0-DriftDetected/v1`,
      `fraud/story/${iso(30 * MINUTE)}/1-RetrainRequested/fraud-2`,
      `fraud/story/${iso(31 * MINUTE)}/2-TrainingStarted/fraud-2`,
      `fraud/story/${trainedAt}/3-ModelTrained/fraud-2`,
      `fraud/story/${trainedAt}/4-ModelRegistered/v2`,
      `fraud/story/${trainedAt}/6-CanaryStarted/v2`,
      `fraud/story/${iso(50 * MINUTE)}/6-CanaryStarted/v2`,
      `fraud/story/${iso(60 * MINUTE)}/7-ModelPromoted/v2`,
    ];
    for (const order of [events, [...events].reverse()]) {
      const driver = await run(driftTimeline, order);
      expectNoDeadLetters(driver);
      expect(driver.entries().filter(([key]) => key.startsWith('fraud/story/')).map(([key]) => key)).toEqual(expected);
    }
    const driver = await run(driftTimeline, events);
    expect(driver.get(expected[0]!)).toMatchObject({ kind: 'story', type: 'DriftDetected', version: 'v1', drifted_features: ['amount', 'score'] });
    expect(driver.get(expected[1]!)).toMatchObject({ type: 'RetrainRequested', reason: 'drift in amount, score', since: iso(20 * MINUTE) });
    expect(driver.get(expected[3]!)).toMatchObject({ type: 'ModelTrained', version: 'v2', metrics: { auc: 0.91, baseline_auc: 0.88 }, sha256: 'cd'.repeat(32) });
    expect(driver.get(expected[5]!)).toMatchObject({ type: 'CanaryStarted', percent: 5 });
    expect(driver.get(expected[7]!)).toMatchObject({ type: 'ModelPromoted', evidence: 'stage 50%: log loss canary 0.1 vs stable 0.2' });
  });

  it('tells rollbacks, refusals and failed jobs with their reasons, and no story for a verdict without drift', async () => {
    const driver = await run(driftTimeline, [
      driftVerdict('v1', 10 * MINUTE, []),
      job({ type: 'TrainingFailed', job_id: 'fraud-3', model: 'fraud', reason: 'trainer exited with 1', at: iso(20 * MINUTE) }),
      registryEvent({ type: 'ModelRolledBack', model: 'fraud', version: 'v3', reason: 'worse on feedback', at: iso(30 * MINUTE) }),
      registryEvent({ type: 'ModelRefused', model: 'fraud', version: 'v4', reason: 'sha256 mismatch', at: iso(40 * MINUTE) }),
    ]);
    expect(driver.entries().filter(([key]) => key.startsWith('fraud/story/')).map(([, value]) => value)).toEqual([
      expect.objectContaining({ type: 'TrainingFailed', job_id: 'fraud-3', reason: 'trainer exited with 1' }),
      expect.objectContaining({ type: 'ModelRolledBack', version: 'v3', reason: 'worse on feedback' }),
      expect.objectContaining({ type: 'ModelRefused', version: 'v4', reason: 'sha256 mismatch' }),
    ] satisfies Array<Partial<StoryEntry>>);
  });
});

// ---------------------------------------------------------------- dead-letters

const DLQ = 'transactions-raw.dlq';

/** A dead letter as the runtime writes it for a record of `transactions-raw` at `offsetN`. */
function deadLetter(code: 'MILLRACE_SCHEMA_VIOLATION' | 'MILLRACE_DESERIALIZATION', detail: string, atMs: number, offsetN: number): ProjectionTestInput {
  const input = { topic: Topics.transactionsRaw, partition: 2, offset: offset(offsetN), timestamp: T0 + atMs, key: Buffer.from('user-1'), value: Buffer.from('{}'), headers: {} };
  const out = deadLetterFor(input, new MillraceError(code, detail), { topic: DLQ, partition: 2, node: 'validate', applicationId: 'ingest', taskId: '0_2' });
  return { topic: DLQ, key: 'user-1', value: out.value!, timestampMs: out.timestamp, partition: 2 };
}

describe('dead-letters', () => {
  it('counts the dead letters of every *.dlq topic per topic and per code, with first and last seen and the last detail', async () => {
    const driver = await run(deadLettersProjection(), [
      deadLetter('MILLRACE_SCHEMA_VIOLATION', 'amount is above the maximum', 0, 10),
      deadLetter('MILLRACE_DESERIALIZATION', 'not JSON', MINUTE, 11),
      deadLetter('MILLRACE_SCHEMA_VIOLATION', 'ip is not an IP address', 2 * MINUTE, 12),
      { topic: 'transactions', key: 'x', value: { ignored: true } }, // not a dead-letter topic
    ]);
    expectNoDeadLetters(driver);
    expect(driver.entries().map(([key]) => key)).toEqual([DLQ, `${DLQ}/MILLRACE_DESERIALIZATION`, `${DLQ}/MILLRACE_SCHEMA_VIOLATION`]);
    expect(driver.get(DLQ)).toEqual({
      topic: DLQ,
      count: 3,
      codes: { MILLRACE_SCHEMA_VIOLATION: 2, MILLRACE_DESERIALIZATION: 1 },
      first_seen: iso(0),
      last_seen: iso(2 * MINUTE),
      as_of_ms: T0 + 2 * MINUTE,
    } satisfies DeadLetterTotals);
    expect(driver.get(`${DLQ}/MILLRACE_SCHEMA_VIOLATION`)).toEqual({
      topic: DLQ,
      code: 'MILLRACE_SCHEMA_VIOLATION',
      title: 'Event does not match the topic schema',
      count: 2,
      first_seen: iso(0),
      last_seen: iso(2 * MINUTE),
      last_detail: 'ip is not an IP address',
      recent: [
        { at: iso(2 * MINUTE), partition: 2, offset: 2, source: { topic: Topics.transactionsRaw, partition: 2, offset: 12, timestamp: iso(2 * MINUTE) }, application: 'ingest', node: 'validate' },
        { at: iso(0), partition: 2, offset: 0, source: { topic: Topics.transactionsRaw, partition: 2, offset: 10, timestamp: iso(0) }, application: 'ingest', node: 'validate' },
      ],
      as_of_ms: T0 + 2 * MINUTE,
    } satisfies DeadLettersByCode);
  });

  it('counts a record that is not a dead letter (not JSON, a tombstone, no code) as malformed, never dead-lettering it', async () => {
    const driver = await run(deadLettersProjection(), [
      { topic: 'features.dlq', key: null, value: Buffer.from('{"truncated'), timestampMs: T0 },
      { topic: 'features.dlq', key: null, value: null, timestampMs: T0 + 1 },
      { topic: 'features.dlq', key: null, value: { hello: 'world' }, timestampMs: T0 + 2 },
    ]);
    expectNoDeadLetters(driver);
    expect(driver.get('features.dlq')).toMatchObject({ count: 3, codes: { [MALFORMED]: 3 } });
    expect(driver.get(`features.dlq/${MALFORMED}`)).toMatchObject({ count: 3, title: null, last_detail: 'not a problem document (no code): {"hello":"world"}' });
    expect((driver.get(`features.dlq/${MALFORMED}`) as unknown as DeadLettersByCode).recent.map((r) => r.offset)).toEqual([2, 1, 0]);
  });

  it('keeps the coordinates of the latest few only (option recent), latest first', async () => {
    for (const [options, kept] of [[{}, 5], [{ recent: 2 }, 2]] as const) {
      const driver = await run(
        deadLettersProjection(options),
        Array.from({ length: 12 }, (_, i) => deadLetter('MILLRACE_SCHEMA_VIOLATION', `problem ${i}`, i * MINUTE, 100 + i)),
      );
      const value = driver.get(`${DLQ}/MILLRACE_SCHEMA_VIOLATION`) as unknown as DeadLettersByCode;
      expect(value.count).toBe(12);
      expect(value.recent.map((r) => r.source?.offset)).toEqual([111, 110, 109, 108, 107].slice(0, kept));
    }
  });

  it('does not let a late dead letter change the last detail, but counts it and moves first seen back', async () => {
    const driver = await run(deadLettersProjection(), [deadLetter('MILLRACE_SCHEMA_VIOLATION', 'newest', 10 * MINUTE, 1)]);
    const late = await driver.pipe(deadLetter('MILLRACE_SCHEMA_VIOLATION', 'older', MINUTE, 0));
    expect(driver.get(`${DLQ}/MILLRACE_SCHEMA_VIOLATION`)).toMatchObject({ count: 2, first_seen: iso(MINUTE), last_seen: iso(10 * MINUTE), last_detail: 'newest' });
    expect(opTimes(late)).toEqual([T0 + 10 * MINUTE, T0 + 10 * MINUTE]);
  });

  it('reads its input through the pattern, never its own dead-letter topic', async () => {
    const driver = new ProjectionTestDriver(deadLettersProjection());
    expect(await driver.pipe({ topic: '_projection.dead-letters.dlq', value: Buffer.from('x') })).toBeUndefined();
    expect(await driver.pipe({ topic: '_projection.alerts.dlq', value: Buffer.from('x') })).toBeDefined();
    expect(await driver.pipe({ topic: 'transactions-raw.dlq.archive', value: Buffer.from('x') })).toBeUndefined();
    expect(driver.entries().map(([key]) => key)).toEqual(['_projection.alerts.dlq', `_projection.alerts.dlq/${MALFORMED}`]);
  });

});
