import { describe, expect, it } from 'vitest';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import { Topics, type DriftDetected, type Feedback, type ModelRegistryEvent, type Outcome, type TrainingJobEvent } from '../../topologies/pipeline/contract.js';
import { retrainingTopology } from '../../topologies/pipeline/retraining.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

function setup(options = {}) {
  const driver = new TopologyTestDriver(retrainingTopology({ bootstrapLabels: 10, minSamples: 40, maxSamples: 400, ...options }).build());
  const feedback = driver.createInputTopic<string, Feedback>(Topics.feedback);
  const drift = driver.createInputTopic<string, DriftDetected>(Topics.drift);
  const jobs = driver.createInputTopic<string, TrainingJobEvent>(Topics.trainingJobs);
  const outcomes = driver.createInputTopic<string, Outcome>(Topics.outcomes);
  const registryIn = driver.createInputTopic<string, ModelRegistryEvent>(Topics.modelRegistry);
  const jobsOut = driver.createOutputTopic<string, TrainingJobEvent>(Topics.trainingJobs);
  const registry = driver.createOutputTopic<string, ModelRegistryEvent>(Topics.modelRegistry);
  let clock = T0;
  const tick = () => (clock += 1_000);
  const trained = (jobId: string, version: string, metrics: Record<string, number>): TrainingJobEvent => ({
    type: 'ModelTrained',
    job_id: jobId,
    model: 'fraud',
    version,
    artifact_uri: `/models/${version}/model.onnx`,
    sha256: `sha-${version}`,
    metrics,
    reproducibility: { offsets: {}, feature_version: 'features-v1', seed: 1, trainer_version: 't', packages: {} },
    at: new Date(clock).toISOString(),
  });
  const outcome = (version: string, route: 'stable' | 'canary', probability: number, fraud: boolean): Outcome => ({
    transaction_id: `t${clock}`,
    model: 'fraud',
    version,
    route,
    probability,
    fraud,
    at: new Date(tick()).toISOString(),
  });
  return { driver, feedback, drift, jobs, outcomes, registryIn, jobsOut, registry, trained, outcome, tick, now: () => clock };
}

describe('the retraining and canary controller', () => {
  it('trains the first model, retrains on drift, and walks the new one through canary stages to promotion', () => {
    const s = setup();
    for (let i = 0; i < 10; i++) s.feedback.pipeInput(`t${i}`, { transaction_id: `t${i}`, user: 'u', fraud: false, at: new Date(s.tick()).toISOString() }, s.now());
    const requests = s.jobsOut.readValuesToList().filter((e) => e!.type === 'RetrainRequested');
    expect(requests.map((r) => r!.job_id)).toEqual(['fraud-1']);
    s.jobs.pipeInput('fraud', s.trained('fraud-1', 'v1', { auc: 0.9 }), s.tick());
    expect(s.registry.readValuesToList().map((e) => [e!.type, e!.version])).toEqual([['ModelRegistered', 'v1'], ['ModelPromoted', 'v1']]);

    const verdict: DriftDetected = {
      model: 'fraud', version: 'v1', window_start: '', window_end: '', window_size: 2000,
      statistics: [], drifted_features: ['amount', 'mean_24h'], at: new Date(s.tick()).toISOString(),
    };
    s.drift.pipeInput('fraud', verdict, s.now());
    s.drift.pipeInput('fraud', verdict, s.tick()); // the same verdict again: no second job
    const retrain = s.jobsOut.readValuesToList().filter((e) => e!.type === 'RetrainRequested');
    expect(retrain.map((r) => [r!.job_id, (r as { reason: string }).reason])).toEqual([['fraud-2', 'drift in amount, mean_24h']]);
    s.jobs.pipeInput('fraud', s.trained('fraud-2', 'v2', { auc: 0.95, baseline_auc: 0.7 }), s.tick());
    expect(s.registry.readValuesToList().map((e) => [e!.type, e!.version, (e as { percent?: number }).percent])).toEqual([
      ['ModelRegistered', 'v2', undefined],
      ['CanaryStarted', 'v2', 5],
    ]);
    // The canary is clearly better on feedback: each stage passes as soon as both arms have enough outcomes.
    for (let i = 0; i < 400; i++) {
      const fraud = i % 5 === 0;
      s.outcomes.pipeInput('fraud', s.outcome('v2', 'canary', fraud ? 0.9 : 0.1, fraud), s.now());
      s.outcomes.pipeInput('fraud', s.outcome('v1', 'stable', fraud ? 0.4 : 0.5, fraud), s.now());
    }
    const stages = s.registry.readValuesToList().map((e) => [e!.type, (e as { percent?: number }).percent ?? null]);
    expect(stages).toEqual([
      ['CanaryStarted', 10],
      ['CanaryStarted', 25],
      ['CanaryStarted', 50],
      ['ModelPromoted', null],
    ]);
  });

  it('trains the first model on labels after the warm-up only, counting none of those before it', () => {
    const HOUR = 3_600_000;
    const label = (s: ReturnType<typeof setup>, at: number) =>
      s.feedback.pipeInput(`t${at}`, { transaction_id: `t${at}`, user: 'u', fraud: false, at: new Date(at).toISOString() }, at);
    const requests = (s: ReturnType<typeof setup>) =>
      s.jobsOut.readValuesToList().filter((e): e is Extract<TrainingJobEvent, { type: 'RetrainRequested' }> => e!.type === 'RetrainRequested');

    // Twenty labels an hour for a day: plenty, but all inside the warm-up.
    const s = setup({ bootstrapLabels: 10, bootstrapWarmUpMs: 24 * HOUR, bootstrapWindowMs: 6 * HOUR });
    for (let at = T0; at < T0 + 24 * HOUR; at += HOUR / 20) label(s, at);
    expect(requests(s)).toEqual([]);
    // Ten labels past it ask for the first model, trained from the warm-up's end: not six hours back into it.
    for (let i = 0; i < 10; i++) label(s, T0 + 24 * HOUR + i * 60_000);
    expect(requests(s).map((r) => [r.job_id, r.reason, r.since])).toEqual([['fraud-1', 'first model: 10 labels after the warm-up', new Date(T0 + 24 * HOUR).toISOString()]]);

    // With labels well past the warm-up, the window is what bounds the training set.
    const late = setup({ bootstrapLabels: 10, bootstrapWarmUpMs: HOUR, bootstrapWindowMs: 2 * HOUR });
    label(late, T0);
    for (let i = 0; i < 10; i++) label(late, T0 + 5 * HOUR + i * 60_000);
    expect(requests(late).map((r) => r.since)).toEqual([new Date(T0 + 5 * HOUR + 9 * 60_000 - 2 * HOUR).toISOString()]);

    // Without a warm-up every label counts, and without a window the first model trains on all history.
    const plain = setup({ bootstrapLabels: 3 });
    for (let i = 0; i < 3; i++) label(plain, T0 + i);
    expect(requests(plain).map((r) => [r.reason, r.since])).toEqual([['first model: 3 labels', undefined]]);
  });

  it('rolls back a canary that does worse, and does not try one whose holdout AUC is worse', () => {
    const s = setup({ bootstrapLabels: 1 });
    s.feedback.pipeInput('t', { transaction_id: 't', user: 'u', fraud: false, at: new Date(s.tick()).toISOString() }, s.now());
    s.jobs.pipeInput('fraud', s.trained('fraud-1', 'v1', { auc: 0.9 }), s.tick());
    const drift = (version: string): DriftDetected => ({
      model: 'fraud', version, window_start: '', window_end: '', window_size: 1, statistics: [], drifted_features: ['amount'], at: new Date(s.tick()).toISOString(),
    });
    s.drift.pipeInput('fraud', drift('v1'), s.now());
    s.jobs.pipeInput('fraud', s.trained('fraud-2', 'v2', { auc: 0.8, baseline_auc: 0.9 }), s.tick());
    s.registry.readValuesToList();
    expect(s.driver.getKeyValueStore<string, { registry: { canary: unknown; stable: string } }>('controller').get('fraud')!.registry).toMatchObject({ canary: null, stable: 'v1' });
    // Another drift on v1 does not retrain again (one retraining per drifted version)…
    s.drift.pipeInput('fraud', drift('v1'), s.now());
    expect(s.jobsOut.readValuesToList().filter((e) => e!.type === 'RetrainRequested').map((e) => e!.job_id)).toEqual(['fraud-1', 'fraud-2']);
  });

  it('rolls back a canary whose outcomes are significantly worse', () => {
    const s = setup({ bootstrapLabels: 1 });
    s.feedback.pipeInput('t', { transaction_id: 't', user: 'u', fraud: false, at: new Date(s.tick()).toISOString() }, s.now());
    s.jobs.pipeInput('fraud', s.trained('fraud-1', 'v1', { auc: 0.9 }), s.tick());
    s.drift.pipeInput('fraud', { model: 'fraud', version: 'v1', window_start: '', window_end: '', window_size: 1, statistics: [], drifted_features: ['amount'], at: '' }, s.tick());
    s.jobs.pipeInput('fraud', s.trained('fraud-2', 'v2', { auc: 0.9, baseline_auc: 0.9 }), s.tick());
    s.registry.readValuesToList();
    for (let i = 0; i < 100; i++) {
      const fraud = i % 5 === 0;
      s.outcomes.pipeInput('fraud', s.outcome('v2', 'canary', fraud ? 0.2 : 0.8, fraud), s.now());
      s.outcomes.pipeInput('fraud', s.outcome('v1', 'stable', fraud ? 0.8 : 0.2, fraud), s.now());
    }
    const events = s.registry.readValuesToList();
    expect(events.map((e) => e!.type)).toEqual(['ModelRolledBack']);
    expect((events[0] as { reason: string }).reason).toMatch(/worse on feedback: stage 5%/);
  });

  it('judges a stage only once each arm has met minPositives frauds, however many outcomes it has', () => {
    const inCanary = (options: object) => {
      const s = setup({ bootstrapLabels: 1, ...options });
      s.feedback.pipeInput('t', { transaction_id: 't', user: 'u', fraud: false, at: new Date(s.tick()).toISOString() }, s.now());
      s.jobs.pipeInput('fraud', s.trained('fraud-1', 'v1', { auc: 0.9 }), s.tick());
      s.drift.pipeInput('fraud', { model: 'fraud', version: 'v1', window_start: '', window_end: '', window_size: 1, statistics: [], drifted_features: ['amount'], at: '' }, s.tick());
      s.jobs.pipeInput('fraud', s.trained('fraud-2', 'v2', { auc: 0.9, baseline_auc: 0.9 }), s.tick());
      s.registry.readValuesToList();
      return s;
    };
    // Legitimate outcomes only, the canary's scores a little worse: far past minSamples, nothing is decided…
    const s = inCanary({ minPositives: 10 });
    for (let i = 0; i < 100; i++) {
      s.outcomes.pipeInput('fraud', s.outcome('v2', 'canary', 0.05 + (i % 3) * 0.01, false), s.now());
      s.outcomes.pipeInput('fraud', s.outcome('v1', 'stable', 0.02 + (i % 3) * 0.01, false), s.now());
    }
    expect(s.registry.readValuesToList()).toEqual([]);
    // …until both arms have met ten frauds, which the canary catches and the stable version misses.
    for (let i = 0; i < 10; i++) {
      if (i === 9) expect(s.registry.readValuesToList()).toEqual([]);
      s.outcomes.pipeInput('fraud', s.outcome('v2', 'canary', 0.9, true), s.now());
      s.outcomes.pipeInput('fraud', s.outcome('v1', 'stable', 0.01, true), s.now());
    }
    const events = s.registry.readValuesToList();
    expect(events.map((e) => [e!.type, (e as { percent?: number }).percent])).toEqual([['CanaryStarted', 10]]);

    // Without frauds a stage ends at maxSamples, rolled back: there was nothing to judge it on.
    const starved = inCanary({ minPositives: 3, maxSamples: 60 });
    for (let i = 0; i < 60; i++) {
      starved.outcomes.pipeInput('fraud', starved.outcome('v2', 'canary', 0.01, false), starved.now());
      starved.outcomes.pipeInput('fraud', starved.outcome('v1', 'stable', 0.5, false), starved.now());
    }
    const rolledBack = starved.registry.readValuesToList();
    expect(rolledBack.map((e) => e!.type)).toEqual(['ModelRolledBack']);
    expect((rolledBack[0] as { reason: string }).reason).toMatch(/^too few outcomes to judge after 60: stage 5%: .*\(n=60, 0 fraud\)/);
  });
});

describe("the controller and an operator's decisions", () => {
  type Setup = ReturnType<typeof setup>;
  type Stage = { version: string; percent: number; canary: { n: number }; stable: { n: number } } | null;
  interface Stored {
    stage: Stage;
    registry: { stable: string | null; canary: { version: string; percent: number } | null; versions: Record<string, { status: string }> };
  }
  const stored = (s: Setup) => s.driver.getKeyValueStore<string, Stored>('controller').get('fraud')!;
  const statuses = (s: Setup) => Object.fromEntries(Object.entries(stored(s).registry.versions).map(([v, e]) => [v, e.status]));
  const decide = (s: Setup, type: 'ModelPromoted' | 'ModelRolledBack', version: string) =>
    s.registryIn.pipeInput(
      'fraud',
      type === 'ModelPromoted'
        ? { type, model: 'fraud', version, at: new Date(s.tick()).toISOString(), decided_by: 'operator', reason: 'by hand' }
        : { type, model: 'fraud', version, reason: 'by hand', at: new Date(s.tick()).toISOString(), decided_by: 'operator' },
      s.now(),
    );
  /** Outcomes on which the canary is clearly better: each stage would pass as soon as both arms have enough. */
  const betterCanary = (s: Setup, canary: string, stable: string, rounds: number) => {
    for (let i = 0; i < rounds; i++) {
      const fraud = i % 5 === 0;
      s.outcomes.pipeInput('fraud', s.outcome(canary, 'canary', fraud ? 0.9 : 0.1, fraud), s.now());
      s.outcomes.pipeInput('fraud', s.outcome(stable, 'stable', fraud ? 0.4 : 0.5, fraud), s.now());
    }
  };
  /** The registry events of the controller since the last read (an operator's come back on the same topic). */
  const controllerEvents = (s: Setup) => s.registry.readValuesToList().filter((e) => (e as { decided_by?: string }).decided_by !== 'operator');

  /** Given: v1 serves, v2 is in canary at 5 %. */
  function canaryAt5(): Setup {
    const s = setup({ bootstrapLabels: 1 });
    s.feedback.pipeInput('t', { transaction_id: 't', user: 'u', fraud: false, at: new Date(s.tick()).toISOString() }, s.now());
    s.jobs.pipeInput('fraud', s.trained('fraud-1', 'v1', { auc: 0.9 }), s.tick());
    s.drift.pipeInput('fraud', { model: 'fraud', version: 'v1', window_start: '', window_end: '', window_size: 1, statistics: [], drifted_features: ['amount'], at: '' }, s.tick());
    s.jobs.pipeInput('fraud', s.trained('fraud-2', 'v2', { auc: 0.95, baseline_auc: 0.9 }), s.tick());
    expect(s.registry.readValuesToList().at(-1)).toMatchObject({ type: 'CanaryStarted', version: 'v2', percent: 5 });
    // Some evidence gathered, not yet enough to judge.
    betterCanary(s, 'v2', 'v1', 10);
    expect(stored(s).stage).toMatchObject({ version: 'v2', percent: 5, canary: { n: 10 }, stable: { n: 10 } });
    return s;
  }

  /** Given: v1 retired, v2 serves (promoted through every stage), v3 in canary at 5 %. */
  function secondCanaryAt5(): Setup {
    const s = canaryAt5();
    betterCanary(s, 'v2', 'v1', 400);
    expect(controllerEvents(s).at(-1)).toMatchObject({ type: 'ModelPromoted', version: 'v2' });
    s.drift.pipeInput('fraud', { model: 'fraud', version: 'v2', window_start: '', window_end: '', window_size: 1, statistics: [], drifted_features: ['amount'], at: '' }, s.tick());
    s.jobs.pipeInput('fraud', s.trained('fraud-3', 'v3', { auc: 0.95, baseline_auc: 0.9 }), s.tick());
    expect(controllerEvents(s).at(-1)).toMatchObject({ type: 'CanaryStarted', version: 'v3', percent: 5 });
    betterCanary(s, 'v3', 'v2', 10);
    return s;
  }

  it('an operator promoting the canary in stage 5 % ends the stage: no further decision on it', () => {
    // given
    const s = canaryAt5();
    // when
    decide(s, 'ModelPromoted', 'v2');
    // then
    expect(stored(s).stage).toBeNull();
    expect(stored(s).registry).toMatchObject({ stable: 'v2', canary: null });
    betterCanary(s, 'v2', 'v1', 400);
    expect(controllerEvents(s)).toEqual([]);
  });

  it('retrains a version an operator brought back when it drifts again', () => {
    // given: v2 promoted over v1 after v1 drifted, then rolled back by an operator: v1 serves again
    const s = canaryAt5();
    decide(s, 'ModelPromoted', 'v2');
    decide(s, 'ModelRolledBack', 'v2');
    expect(stored(s).registry).toMatchObject({ stable: 'v1', canary: null });
    s.jobsOut.readValuesToList();
    // when
    s.drift.pipeInput('fraud', { model: 'fraud', version: 'v1', window_start: '', window_end: '', window_size: 1, statistics: [], drifted_features: ['amount'], at: '' }, s.tick());
    // then
    expect(s.jobsOut.readValuesToList().map((e) => [e!.type, e!.job_id])).toEqual([['RetrainRequested', 'fraud-3']]);
  });

  it('an operator rolling the canary back in stage 5 % ends the stage: no further decision on it', () => {
    // given
    const s = canaryAt5();
    // when
    decide(s, 'ModelRolledBack', 'v2');
    // then
    expect(stored(s).stage).toBeNull();
    expect(stored(s).registry).toMatchObject({ stable: 'v1', canary: null });
    expect(statuses(s)).toEqual({ v1: 'stable', v2: 'rolled-back' });
    betterCanary(s, 'v2', 'v1', 400);
    expect(controllerEvents(s)).toEqual([]);
  });

  it('an operator promoting another version ends the stage, and the canary is rolled back as the registry does', () => {
    // given
    const s = secondCanaryAt5();
    // when: back to v1 by hand
    decide(s, 'ModelPromoted', 'v1');
    // then
    expect(stored(s).stage).toBeNull();
    expect(stored(s).registry).toMatchObject({ stable: 'v1', canary: null });
    expect(statuses(s)).toEqual({ v1: 'stable', v2: 'retired', v3: 'rolled-back' });
    betterCanary(s, 'v3', 'v1', 400);
    expect(controllerEvents(s)).toEqual([]);
  });

  it('an operator rolling back the stable version keeps the stage, judged afresh against the version serving now', () => {
    // given
    const s = secondCanaryAt5();
    expect(stored(s).stage).toMatchObject({ version: 'v3', canary: { n: 10 }, stable: { n: 10 } });
    // when
    decide(s, 'ModelRolledBack', 'v2');
    // then
    expect(stored(s).registry).toMatchObject({ stable: 'v1', canary: { version: 'v3', percent: 5 } });
    expect(stored(s).stage).toMatchObject({ version: 'v3', percent: 5, canary: { n: 10 }, stable: { n: 0 } });
    // v2's outcomes no longer count for the stable arm; v1's do
    s.outcomes.pipeInput('fraud', s.outcome('v2', 'stable', 0.5, false), s.now());
    expect(stored(s).stage).toMatchObject({ stable: { n: 0 } });
    betterCanary(s, 'v3', 'v1', 400);
    expect(controllerEvents(s).map((e) => [e!.type, e!.version])).toContainEqual(['CanaryStarted', 'v3']);
  });

  it('skips registry events that are not an operator decision: its own come back on the topic it reads', () => {
    // given
    const s = canaryAt5();
    const before = stored(s);
    // when: a stage change and a promotion without decided_by, as the controller itself writes them
    s.registryIn.pipeInput('fraud', { type: 'CanaryStarted', model: 'fraud', version: 'v2', percent: 50, at: new Date(s.tick()).toISOString() }, s.now());
    s.registryIn.pipeInput('fraud', { type: 'ModelPromoted', model: 'fraud', version: 'v2', at: new Date(s.tick()).toISOString() }, s.now());
    s.registryIn.pipeInput('fraud', null, s.tick());
    // then
    expect(stored(s)).toEqual(before);
  });

  it('ignores an operator decision the registry fold does not apply (the stable version promoted again)', () => {
    const s = canaryAt5();
    const before = stored(s);
    decide(s, 'ModelPromoted', 'v1');
    expect(stored(s)).toEqual(before);
  });
});
