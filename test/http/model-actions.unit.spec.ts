/**
 * `POST /models/:name/promote` and `POST /models/:name/rollback` through fastify's inject(): an operator's decision
 * in two steps (a dry run answering the plan and its token, then the decision with the token), on an EmbeddedLog.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../../engine/http/openapi.js';
import { buildHttpServer } from '../../engine/http/server.js';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import type { LogRecord } from '../../engine/log/log.js';
import { Metrics } from '../../engine/metrics/metrics.js';
import { ModelService } from '../../engine/ml/model-service.js';
import { AUDIT_TOPIC } from '../../engine/runtime/audit.js';
import type { EngineApi, EngineStatus } from '../../engine/runtime/status.js';
import { EmbeddedSchemaRegistry } from '../../engine/serde/embedded-registry.js';
import { Topics, type ModelRegistryEvent } from '../../topologies/pipeline/contract.js';
import { readTopic, tempDir } from '../support/runtime.js';

const SCHEMAS_DIR = fileURLToPath(new URL('../../schemas', import.meta.url));
const AT = '2026-03-01T00:00:00.000Z';

const STATUS: EngineStatus = {
  state: 'running',
  startedAt: AT,
  version: '0.0.0-test',
  log: { kind: 'embedded', location: '/tmp/x' },
  applications: [],
};

function expectProblem(res: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, status: number, code: string): Record<string, unknown> {
  expect(res.statusCode).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/problem\+json/);
  const body = res.json() as Record<string, unknown>;
  expect(body).toMatchObject({ status, code });
  return body;
}

const registered = (model: string, version: string): ModelRegistryEvent => ({
  type: 'ModelRegistered',
  model,
  version,
  artifact_uri: `/models/${version}/model.onnx`,
  sha256: `sha-${version}`,
  reference_uri: `/models/${version}/reference.json`,
  metrics: { auc: 0.9 },
  at: AT,
});
const promoted = (model: string, version: string): ModelRegistryEvent => ({ type: 'ModelPromoted', model, version, at: AT, evidence: 'first model' });
const canary = (model: string, version: string, percent: number): ModelRegistryEvent => ({ type: 'CanaryStarted', model, version, percent, at: AT });
const refused = (model: string, version: string): ModelRegistryEvent => ({ type: 'ModelRefused', model, version, reason: 'sha256 mismatch', at: AT });

/** v1 serves, v2 is in canary at 5 %. */
const canaryRunning = (model: string): ModelRegistryEvent[] => [registered(model, 'v1'), promoted(model, 'v1'), registered(model, 'v2'), canary(model, 'v2', 5)];
/** v1 retired, v2 serves. */
const secondStable = (model: string): ModelRegistryEvent[] => [...canaryRunning(model), promoted(model, 'v2')];

describe('operator decisions on model versions', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let log: EmbeddedLog;
  let app: FastifyInstance;

  beforeAll(async () => {
    dir = await tempDir('millrace-model-actions-');
    log = new EmbeddedLog({ path: join(dir.path, 'log') });
    await log.open();
    await log.createTopic({ name: Topics.modelRegistry, partitions: 1 });
    const registry = new EmbeddedSchemaRegistry(log);
    await registry.open();
    const engine: EngineApi = {
      log,
      registry,
      metrics: new Metrics({ defaultMetrics: false }),
      schemasDir: SCHEMAS_DIR,
      topologies: () => [],
      status: async () => STATUS,
      models: new ModelService({ log, runtime: () => { throw new TypeError('no runtime in this test'); } }),
    };
    app = await buildHttpServer(engine);
  });

  afterAll(async () => {
    await app?.close();
    await log?.close();
    await dir?.remove();
  });

  const events = (...list: ModelRegistryEvent[]) =>
    log.append(list.map((e) => ({ topic: Topics.modelRegistry, key: Buffer.from(e.model), value: Buffer.from(JSON.stringify(e)) })));
  const decide = (model: string, action: 'promote' | 'rollback', body: unknown, actor?: string) =>
    app.inject({
      method: 'POST',
      url: `/models/${encodeURIComponent(model)}/${action}`,
      headers: { 'content-type': 'application/json', ...(actor === undefined ? {} : { 'x-millrace-actor': actor }) },
      payload: typeof body === 'string' ? body : JSON.stringify(body),
    });
  /** Dry run, then the decision with its token. */
  const confirm = async (model: string, action: 'promote' | 'rollback', body: Record<string, unknown>, actor?: string) => {
    const dry = await decide(model, action, body, actor);
    expect(dry.statusCode).toBe(200);
    return decide(model, action, { ...body, token: (dry.json() as { token: string }).token }, actor);
  };
  const records = async (topic: string): Promise<LogRecord[]> => ((await log.listTopics()).some((t) => t.name === topic) ? readTopic(log, topic) : []);
  const json = (r: LogRecord) => JSON.parse(r.value!.toString('utf8')) as Record<string, unknown>;
  /** What an action appends: the registry events and audit events written since `before`. */
  const appended = async (before: { registry: number; audit: number }) => ({
    registry: (await records(Topics.modelRegistry)).slice(before.registry),
    audit: (await records(AUDIT_TOPIC)).slice(before.audit),
  });
  const counts = async () => ({ registry: (await records(Topics.modelRegistry)).length, audit: (await records(AUDIT_TOPIC)).length });
  const model = async (name: string) => {
    const res = await app.inject({ method: 'GET', url: '/models' });
    expect(res.statusCode).toBe(200);
    return (res.json() as { models: Array<{ name: string; stable: string | null; canary: unknown; versions: Array<Record<string, unknown>> }> }).models.find((m) => m.name === name)!;
  };
  const traffic = async (name: string) => Object.fromEntries((await model(name)).versions.map((v) => [v['version'], [v['stage'], v['trafficPercent']]]));

  it('promotes the canary in two steps: the dry run shows the routing to come, the token writes one registry event and one audit event', async () => {
    // given
    await events(...canaryRunning('alpha'));
    const before = await counts();

    // when: a dry run
    const dry = await decide('alpha', 'promote', { version: 'v2', reason: 'better on the dashboard' }, 'alice');

    // then: the plan, and nothing written
    expect(dry.statusCode).toBe(200);
    expect(dry.json()).toEqual({
      dryRun: true,
      action: 'promote',
      model: 'alpha',
      version: 'v2',
      from: { stable: 'v1', canary: { version: 'v2', percent: 5 } },
      to: { stable: 'v2', canary: null },
      token: expect.stringMatching(/^[0-9a-f]{24}$/),
    });
    expect(await counts()).toEqual(before);
    // The same plan gets the same token.
    expect((await decide('alpha', 'promote', { version: 'v2' })).json()).toMatchObject({ token: (dry.json() as { token: string }).token });

    // when: the decision with the token
    const done = await decide('alpha', 'promote', { version: 'v2', reason: 'better on the dashboard', token: (dry.json() as { token: string }).token }, 'alice');

    // then
    expect(done.statusCode).toBe(200);
    const { registry, audit } = await appended(before);
    expect(done.json()).toEqual({ dryRun: false, action: 'promote', model: 'alpha', version: 'v2', audit: { topic: AUDIT_TOPIC, partition: 0, offset: audit[0]!.offset } });
    expect(registry).toHaveLength(1);
    expect(registry[0]!.key?.toString()).toBe('alpha');
    expect(json(registry[0]!)).toEqual({ type: 'ModelPromoted', model: 'alpha', version: 'v2', at: expect.any(String), decided_by: 'operator', reason: 'better on the dashboard' });
    expect(audit).toHaveLength(1);
    expect(json(audit[0]!)).toEqual({
      type: 'ModelPromoted',
      at: json(registry[0]!)['at'],
      actor: 'alice',
      model: 'alpha',
      version: 'v2',
      from: { stable: 'v1', canary: { version: 'v2', percent: 5 } },
      to: { stable: 'v2', canary: null },
      reason: 'better on the dashboard',
    });
    // read back
    expect(await model('alpha')).toMatchObject({ stable: 'v2', canary: null });
    expect(await traffic('alpha')).toEqual({ v1: ['retired', 0], v2: ['stable', 100] });
    expect((await model('alpha')).versions.find((v) => v['version'] === 'v2')!['lastDecision']).toEqual({
      action: 'promote',
      decidedBy: 'operator',
      at: json(registry[0]!)['at'],
      reason: 'better on the dashboard',
    });
    expect((await model('alpha')).versions.find((v) => v['version'] === 'v1')!['lastDecision']).toMatchObject({ action: 'promote', decidedBy: 'controller', evidence: 'first model' });
    const listed = (await app.inject({ method: 'GET', url: '/audit?limit=1' })).json() as { events: unknown[] };
    expect(listed.events).toEqual([expect.objectContaining({ type: 'ModelPromoted', model: 'alpha', version: 'v2', actor: 'alice', audit: { topic: AUDIT_TOPIC, partition: 0, offset: audit[0]!.offset } })]);

    // when: the same token again
    const again = await decide('alpha', 'promote', { version: 'v2', token: (dry.json() as { token: string }).token });
    // then: refused, nothing written
    expectProblem(again, 409, 'MILLRACE_MODEL_DECISION_STALE');
    expect((await appended(before)).registry).toHaveLength(1);
  });

  it('refuses a token once the registry moved on (409), and writes nothing', async () => {
    // given: a dry run of a promotion of the canary at 5 %
    await events(...canaryRunning('beta'));
    const dry = (await decide('beta', 'promote', { version: 'v2' })).json() as { token: string };
    // when: the controller moves the canary on to 10 % before the operator confirms
    await events(canary('beta', 'v2', 10));
    const before = await counts();
    const stale = await decide('beta', 'promote', { version: 'v2', token: dry.token });
    // then
    expectProblem(stale, 409, 'MILLRACE_MODEL_DECISION_STALE');
    expect(await counts()).toEqual(before);
    // A token not from a dry run is refused the same way.
    expectProblem(await decide('beta', 'promote', { version: 'v2', token: 'not-a-token' }), 409, 'MILLRACE_MODEL_DECISION_STALE');
    // A new dry run shows the routing now, and its token works.
    const fresh = await decide('beta', 'promote', { version: 'v2' });
    expect(fresh.json()).toMatchObject({ from: { stable: 'v1', canary: { version: 'v2', percent: 10 } }, to: { stable: 'v2', canary: null } });
    expect((await decide('beta', 'promote', { version: 'v2', token: (fresh.json() as { token: string }).token })).statusCode).toBe(200);
  });

  it('refuses a token when the controller settled the canary first (409)', async () => {
    await events(...canaryRunning('gamma'));
    const dry = (await decide('gamma', 'rollback', { version: 'v2' })).json() as { token: string };
    await events({ type: 'ModelRolledBack', model: 'gamma', version: 'v2', reason: 'worse on feedback', at: AT });
    expectProblem(await decide('gamma', 'rollback', { version: 'v2', token: dry.token }), 409, 'MILLRACE_MODEL_DECISION_STALE');
  });

  it('rolls back the canary: the stable version serves alone', async () => {
    // given
    await events(...canaryRunning('delta'));
    const before = await counts();
    // when
    const dry = await decide('delta', 'rollback', { version: 'v2' });
    expect(dry.json()).toMatchObject({ dryRun: true, from: { stable: 'v1', canary: { version: 'v2', percent: 5 } }, to: { stable: 'v1', canary: null } });
    const done = await decide('delta', 'rollback', { version: 'v2', token: (dry.json() as { token: string }).token });
    // then
    expect(done.statusCode).toBe(200);
    expect(done.json()).toMatchObject({ dryRun: false, action: 'rollback', model: 'delta', version: 'v2' });
    const { registry, audit } = await appended(before);
    expect(registry.map(json)).toEqual([{ type: 'ModelRolledBack', model: 'delta', version: 'v2', reason: 'rolled back by an operator', at: expect.any(String), decided_by: 'operator' }]);
    // Without the actor header, the client's address acts.
    expect(audit.map(json)).toEqual([expect.objectContaining({ type: 'ModelRolledBack', model: 'delta', version: 'v2', actor: expect.stringMatching(/^http:/) })]);
    expect(json(audit[0]!)).not.toHaveProperty('reason');
    expect(await traffic('delta')).toEqual({ v1: ['stable', 100], v2: ['rolled-back', 0] });
  });

  it('rolls back the stable version to the earlier one, and promotes an earlier stable version (a rollback to it)', async () => {
    await events(...secondStable('epsilon'));
    const back = await confirm('epsilon', 'rollback', { version: 'v2', reason: 'alerts since the promotion' });
    expect(back.statusCode).toBe(200);
    expect(await traffic('epsilon')).toEqual({ v1: ['stable', 100], v2: ['rolled-back', 0] });

    await events(...secondStable('zeta'));
    const dry = await decide('zeta', 'promote', { version: 'v1' });
    expect(dry.json()).toMatchObject({ from: { stable: 'v2', canary: null }, to: { stable: 'v1', canary: null } });
    expect((await decide('zeta', 'promote', { version: 'v1', token: (dry.json() as { token: string }).token })).statusCode).toBe(200);
    expect(await traffic('zeta')).toEqual({ v1: ['stable', 100], v2: ['retired', 0] });
  });

  it('promotes a registered version while a canary runs: the canary is rolled back', async () => {
    await events(...canaryRunning('eta'), registered('eta', 'v3'));
    const dry = await decide('eta', 'promote', { version: 'v3' });
    expect(dry.json()).toMatchObject({ from: { stable: 'v1', canary: { version: 'v2', percent: 5 } }, to: { stable: 'v3', canary: null } });
    expect((await decide('eta', 'promote', { version: 'v3', token: (dry.json() as { token: string }).token })).statusCode).toBe(200);
    expect(await traffic('eta')).toEqual({ v1: ['retired', 0], v2: ['rolled-back', 0], v3: ['stable', 100] });
  });

  it('takes two confirmations of one plan once', async () => {
    await events(...canaryRunning('theta'));
    const before = await counts();
    const { token } = (await decide('theta', 'promote', { version: 'v2' })).json() as { token: string };
    const results = await Promise.all([decide('theta', 'promote', { version: 'v2', token }), decide('theta', 'promote', { version: 'v2', token })]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 409]);
    const { registry, audit } = await appended(before);
    expect([registry.length, audit.length]).toEqual([1, 1]);
  });

  describe('refuses with an RFC 7807 problem, writing nothing', () => {
    beforeAll(async () => {
      await events(...secondStable('iota'), registered('iota', 'v3'), registered('iota', 'v4'), refused('iota', 'v4'));
      await events(registered('kappa', 'v1'), promoted('kappa', 'v1'));
    });

    it.each([
      ['an unknown model', 'nobody', 'promote', { version: 'v1' }, 404, 'MILLRACE_HTTP_NOT_FOUND'],
      ['an unknown version', 'iota', 'promote', { version: 'v9' }, 404, 'MILLRACE_HTTP_NOT_FOUND'],
      ['an unknown version, with a token', 'iota', 'rollback', { version: 'v9', token: 'x' }, 404, 'MILLRACE_HTTP_NOT_FOUND'],
      ['a refused version promoted', 'iota', 'promote', { version: 'v4' }, 400, 'MILLRACE_MODEL_DECISION_INVALID'],
      ['the stable version promoted', 'iota', 'promote', { version: 'v2' }, 400, 'MILLRACE_MODEL_DECISION_INVALID'],
      ['a registered version rolled back', 'iota', 'rollback', { version: 'v3' }, 400, 'MILLRACE_MODEL_DECISION_INVALID'],
      ['a retired version rolled back', 'iota', 'rollback', { version: 'v1' }, 400, 'MILLRACE_MODEL_DECISION_INVALID'],
      ['the only stable version rolled back: nothing to fall back to', 'kappa', 'rollback', { version: 'v1' }, 400, 'MILLRACE_MODEL_DECISION_INVALID'],
      ['no version', 'iota', 'promote', {}, 422, 'MILLRACE_HTTP_VALIDATION'],
      ['an empty version', 'iota', 'promote', { version: '' }, 422, 'MILLRACE_HTTP_VALIDATION'],
      ['an unknown field', 'iota', 'promote', { version: 'v3', dryRun: false }, 422, 'MILLRACE_HTTP_VALIDATION'],
      ['a body that is not an object', 'iota', 'promote', '["v3"]', 422, 'MILLRACE_HTTP_VALIDATION'],
      ['a body that is not JSON', 'iota', 'promote', '{"version": ', 400, 'MILLRACE_HTTP_MALFORMED_JSON'],
    ] as const)('%s: %i %s', async (_, name, action, body, status, code) => {
      const before = await counts();
      expectProblem(await decide(name, action, body), status, code);
      expect(await counts()).toEqual(before);
    });

    it('names the version and its stage in a refusal', async () => {
      const body = expectProblem(await decide('iota', 'promote', { version: 'v4' }), 400, 'MILLRACE_MODEL_DECISION_INVALID');
      expect(body).toMatchObject({ model: 'iota', version: 'v4', stage: 'refused' });
    });
  });

  it('documents both routes in the OpenAPI document', () => {
    const paths = openApiDocument.paths as Record<string, Record<string, { operationId: string; responses: Record<string, unknown> }>>;
    for (const action of ['promote', 'rollback']) {
      const operation = paths[`/models/{name}/${action}`]?.['post'];
      expect(operation, action).toBeDefined();
      expect(Object.keys(operation!.responses).sort()).toEqual(['200', '400', '404', '409', '422', '500']);
    }
  });
});

describe('operator decisions without a model registry', () => {
  it('are not served: 404', async () => {
    const dir = await tempDir('millrace-model-actions-none-');
    const log = new EmbeddedLog({ path: join(dir.path, 'log') });
    await log.open();
    const registry = new EmbeddedSchemaRegistry(log);
    await registry.open();
    const app = await buildHttpServer({
      log,
      registry,
      metrics: new Metrics({ defaultMetrics: false }),
      schemasDir: SCHEMAS_DIR,
      topologies: () => [],
      status: async () => STATUS,
    });
    try {
      const res = await app.inject({ method: 'POST', url: '/models/fraud/promote', headers: { 'content-type': 'application/json' }, payload: '{"version":"v1"}' });
      expectProblem(res, 404, 'MILLRACE_HTTP_NOT_FOUND');
    } finally {
      await app.close();
      await log.close();
      await dir.remove();
    }
  });
});
