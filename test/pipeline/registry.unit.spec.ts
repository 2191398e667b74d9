import { describe, expect, it } from 'vitest';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import { Topics, type ModelRegistryEvent, type ModelRouting } from '../../topologies/pipeline/contract.js';
import { registryTopology } from '../../topologies/pipeline/registry.js';

const at = '2026-01-01T00:00:00.000Z';
const registered = (version: string): ModelRegistryEvent => ({
  type: 'ModelRegistered',
  model: 'fraud',
  version,
  artifact_uri: `/models/${version}/model.onnx`,
  sha256: `sha-${version}`,
  reference_uri: `/models/${version}/reference.json`,
  metrics: { auc: 0.9 },
  at,
});

describe('the model registry projection', () => {
  it('folds registry events into the routing table scoring reads', () => {
    const driver = new TopologyTestDriver(registryTopology().build());
    const events = driver.createInputTopic<string, ModelRegistryEvent>(Topics.modelRegistry);
    const routing = driver.createOutputTopic<string, ModelRouting>(Topics.modelRouting);
    const send = (event: ModelRegistryEvent) => events.pipeInput(event.model, event);
    const latest = () => routing.readValuesToList().at(-1)!;
    const stable = (r: ModelRouting) => r.stable?.version ?? null;
    const canary = (r: ModelRouting) => (r.canary === null ? null : [r.canary.version, r.canary.percent]);

    send(registered('v1'));
    expect(stable(latest())).toBeNull();
    send({ type: 'ModelPromoted', model: 'fraud', version: 'v1', at });
    expect(stable(latest())).toBe('v1');
    send(registered('v2'));
    send({ type: 'CanaryStarted', model: 'fraud', version: 'v2', percent: 5, at });
    let r = latest();
    expect([stable(r), canary(r)]).toEqual(['v1', ['v2', 5]]);
    expect(r.canary).toMatchObject({ sha256: 'sha-v2', artifact_uri: '/models/v2/model.onnx' });
    send({ type: 'CanaryStarted', model: 'fraud', version: 'v2', percent: 25, at });
    expect(canary(latest())).toEqual(['v2', 25]);
    send({ type: 'ModelPromoted', model: 'fraud', version: 'v2', at });
    r = latest();
    expect([stable(r), canary(r)]).toEqual(['v2', null]);
    // A stable version whose file turns out tampered is refused: the previous stable one serves again.
    send({ type: 'ModelRefused', model: 'fraud', version: 'v2', reason: 'sha256 mismatch', at });
    expect(stable(latest())).toBe('v1');
    // A canary that loses is rolled back; the stable version keeps serving.
    send(registered('v3'));
    send({ type: 'CanaryStarted', model: 'fraud', version: 'v3', percent: 5, at });
    send({ type: 'ModelRolledBack', model: 'fraud', version: 'v3', reason: 'worse on feedback', at });
    r = latest();
    expect([stable(r), canary(r)]).toEqual(['v1', null]);
    // The registry's own state says what became of each version.
    const state = driver.getKeyValueStore<string, { versions: Record<string, { status: string }> }>('registry').get('fraud')!;
    expect(Object.fromEntries(Object.entries(state.versions).map(([v, e]) => [v, e.status]))).toEqual({ v1: 'stable', v2: 'refused', v3: 'rolled-back' });
  });
});
