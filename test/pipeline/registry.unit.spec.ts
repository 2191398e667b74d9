import { describe, expect, it } from 'vitest';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import { Topics, type ModelRegistryEvent, type ModelRouting } from '../../topologies/pipeline/contract.js';
import { applyRegistryEvent, emptyRegistry, registryTopology, type RegistryState } from '../../topologies/pipeline/registry.js';

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

describe('the registry fold, with operator decisions racing the controller', () => {
  const operator = { decided_by: 'operator' } as const;
  const promote = (version: string, by: 'operator' | 'controller' = 'controller'): ModelRegistryEvent => ({
    type: 'ModelPromoted', model: 'fraud', version, at, ...(by === 'operator' ? operator : {}),
  });
  const rollBack = (version: string, by: 'operator' | 'controller' = 'controller'): ModelRegistryEvent => ({
    type: 'ModelRolledBack', model: 'fraud', version, reason: 'r', at, ...(by === 'operator' ? operator : {}),
  });
  const canary = (version: string, percent: number): ModelRegistryEvent => ({ type: 'CanaryStarted', model: 'fraud', version, percent, at });
  const fold = (...events: ModelRegistryEvent[]): RegistryState => events.reduce(applyRegistryEvent, emptyRegistry('fraud'));
  const statuses = (state: RegistryState) => Object.fromEntries(Object.entries(state.versions).map(([v, e]) => [v, e.status]));
  const routing = (state: RegistryState) => ({ stable: state.stable, canary: state.canary });

  /** v1 stable, v2 in canary at 5 %. */
  const canaryRunning = (): ModelRegistryEvent[] => [registered('v1'), promote('v1'), registered('v2'), canary('v2', 5)];
  /** v1 retired, v2 stable, v3 registered. */
  const secondStable = (): ModelRegistryEvent[] => [registered('v1'), promote('v1'), registered('v2'), canary('v2', 5), promote('v2'), registered('v3')];

  describe('CanaryStarted', () => {
    it('applies to a registered version and to the canary (its next stage)', () => {
      expect(routing(fold(...canaryRunning(), canary('v2', 10)))).toEqual({ stable: 'v1', canary: { version: 'v2', percent: 10 } });
    });

    it.each([
      ['stable', [...canaryRunning(), promote('v2', 'operator')]],
      ['rolled-back', [...canaryRunning(), rollBack('v2', 'operator')]],
      ['retired', [...secondStable()]],
    ] as const)('is ignored for a %s version: a stage the controller started before it read the decision', (status, given) => {
      // given
      const version = status === 'retired' ? 'v1' : 'v2';
      const before = fold(...given);
      expect(before.versions[version]!.status).toBe(status);
      // when / then
      expect(applyRegistryEvent(before, canary(version, 10))).toBe(before);
    });
  });

  describe("the controller's decisions", () => {
    it('apply to a registered version and to the canary', () => {
      expect(statuses(fold(...canaryRunning(), promote('v2')))).toEqual({ v1: 'retired', v2: 'stable' });
      expect(statuses(fold(...canaryRunning(), rollBack('v2')))).toEqual({ v1: 'stable', v2: 'rolled-back' });
      expect(statuses(fold(registered('v1'), promote('v1'), registered('v2'), rollBack('v2')))).toEqual({ v1: 'stable', v2: 'rolled-back' });
    });

    it('a promotion is ignored once an operator rolled the canary back', () => {
      const before = fold(...canaryRunning(), rollBack('v2', 'operator'));
      expect(applyRegistryEvent(before, promote('v2'))).toBe(before);
      expect(routing(before)).toEqual({ stable: 'v1', canary: null });
    });

    it('a rollback is ignored once an operator promoted the canary', () => {
      const before = fold(...canaryRunning(), promote('v2', 'operator'));
      expect(applyRegistryEvent(before, rollBack('v2'))).toBe(before);
      expect(routing(before)).toEqual({ stable: 'v2', canary: null });
    });

    it('never touch a stable or retired version, nor an unknown one', () => {
      const before = fold(...secondStable());
      for (const event of [promote('v1'), rollBack('v1'), rollBack('v2'), promote('v9'), rollBack('v9')]) expect(applyRegistryEvent(before, event)).toBe(before);
    });
  });

  describe("an operator's promotion", () => {
    it('of the canary makes it stable and ends the canary', () => {
      const state = fold(...canaryRunning(), promote('v2', 'operator'));
      expect(routing(state)).toEqual({ stable: 'v2', canary: null });
      expect(statuses(state)).toEqual({ v1: 'retired', v2: 'stable' });
      expect(state.previousStable).toEqual(['v1']);
    });

    it('of another version while a canary runs makes it stable and rolls the canary back', () => {
      const state = fold(...canaryRunning(), registered('v3'), promote('v3', 'operator'));
      expect(routing(state)).toEqual({ stable: 'v3', canary: null });
      expect(statuses(state)).toEqual({ v1: 'retired', v2: 'rolled-back', v3: 'stable' });
    });

    it('of an earlier stable version is a rollback to it: it serves again and leaves the earlier ones', () => {
      const state = fold(...secondStable(), promote('v1', 'operator'));
      expect(routing(state)).toEqual({ stable: 'v1', canary: null });
      expect(statuses(state)).toEqual({ v1: 'stable', v2: 'retired', v3: 'registered' });
      expect(state.previousStable).toEqual(['v2']);
    });

    it('of a rolled-back version makes it stable', () => {
      const state = fold(...canaryRunning(), rollBack('v2'), promote('v2', 'operator'));
      expect(routing(state)).toEqual({ stable: 'v2', canary: null });
    });

    it('is ignored for a refused version, the stable version, and an unknown one', () => {
      const refused = fold(...canaryRunning(), { type: 'ModelRefused', model: 'fraud', version: 'v2', reason: 'sha256 mismatch', at });
      expect(applyRegistryEvent(refused, promote('v2', 'operator'))).toBe(refused);
      const running = fold(...canaryRunning());
      expect(applyRegistryEvent(running, promote('v1', 'operator'))).toBe(running);
      expect(applyRegistryEvent(running, promote('v9', 'operator'))).toBe(running);
    });
  });

  describe("an operator's rollback", () => {
    it('of the canary ends it; the stable version serves alone', () => {
      const state = fold(...canaryRunning(), rollBack('v2', 'operator'));
      expect(routing(state)).toEqual({ stable: 'v1', canary: null });
      expect(statuses(state)).toEqual({ v1: 'stable', v2: 'rolled-back' });
    });

    it('of the stable version hands back to the last earlier usable stable one, and leaves a canary running', () => {
      const state = fold(...secondStable(), canary('v3', 5), rollBack('v2', 'operator'));
      expect(routing(state)).toEqual({ stable: 'v1', canary: { version: 'v3', percent: 5 } });
      expect(statuses(state)).toEqual({ v1: 'stable', v2: 'rolled-back', v3: 'canary' });
      expect(state.previousStable).toEqual([]);
    });

    it('of the stable version is ignored when no earlier stable version is usable', () => {
      const only = fold(registered('v1'), promote('v1'));
      expect(applyRegistryEvent(only, rollBack('v1', 'operator'))).toBe(only);
      const refusedBefore = fold(...secondStable(), { type: 'ModelRefused', model: 'fraud', version: 'v1', reason: 'gone', at });
      expect(applyRegistryEvent(refusedBefore, rollBack('v2', 'operator'))).toBe(refusedBefore);
    });

    it('is ignored for a registered, retired or unknown version', () => {
      const before = fold(...secondStable());
      for (const version of ['v3', 'v1', 'v9']) expect(applyRegistryEvent(before, rollBack(version, 'operator'))).toBe(before);
    });
  });

  it('keeps old events readable: without decided_by a decision is the controller’s', () => {
    const parsed = JSON.parse('{"type":"ModelPromoted","model":"fraud","version":"v1","at":"2026-01-01T00:00:00.000Z","evidence":"first model"}') as ModelRegistryEvent;
    expect(fold(registered('v1'), parsed).stable).toBe('v1');
  });
});
