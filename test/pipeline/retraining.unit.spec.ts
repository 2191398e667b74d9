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
  return { driver, feedback, drift, jobs, outcomes, jobsOut, registry, trained, outcome, tick, now: () => clock };
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
});
