/**
 * `GET /models` and `POST /v1/models/:name:predict` through fastify's inject(): a ModelService folding the
 * `model-registry` topic of an EmbeddedLog, serving the fixture ONNX regression on a real OnnxModelRuntime.
 */
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHttpServer } from '../../engine/http/server.js';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { Metrics } from '../../engine/metrics/metrics.js';
import { MAX_PREDICT_INSTANCES, ModelService } from '../../engine/ml/model-service.js';
import type { LoadedModel } from '../../engine/ml/model-runtime.js';
import { OnnxModelRuntime } from '../../engine/ml/onnx-runtime.js';
import type { EngineApi, EngineStatus } from '../../engine/runtime/status.js';
import { EmbeddedSchemaRegistry } from '../../engine/serde/embedded-registry.js';
import { FEATURE_NAMES, Topics, type ModelRegistryEvent } from '../../topologies/pipeline/contract.js';
import { fixtureSpec, logregProbability } from '../conformance/model-runtime.js';
import { tempDir } from '../support/runtime.js';

const SCHEMAS_DIR = fileURLToPath(new URL('../../schemas', import.meta.url));
const LOGREG = fixtureSpec('fraud-logreg');
const AT = '2026-03-01T00:00:00.000Z';

const STATUS: EngineStatus = {
  state: 'running',
  startedAt: AT,
  version: '0.0.0-test',
  log: { kind: 'embedded', location: '/tmp/x' },
  applications: [],
};

type Instance = Record<string, number>;

/** Feature rows in ranges that keep the regression away from 0 and 1, and one row far out on each side. */
const ROWS: number[][] = [
  [0.5, 1, 2, 0.5, 3, 0.25, -1, 0, 1.5, -0.5],
  [-1, 0.5, -0.5, 1, -2, 1, 0.5, 1, -1, 0.25],
  [4, 0, 0, 0, 0, 0, 0, 3, 2, 0],
  [-4, 2, 0, 0, 0, -3, 2, 0, 0, 2],
];

const byName = (row: readonly number[]): Instance => Object.fromEntries(FEATURE_NAMES.map((name, i) => [name, row[i]!]));

function expectProblem(res: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, status: number, code: string): Record<string, unknown> {
  expect(res.statusCode).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/problem\+json/);
  const body = res.json() as Record<string, unknown>;
  expect(body).toMatchObject({ status, code });
  expect(typeof body['type']).toBe('string');
  expect(typeof body['title']).toBe('string');
  return body;
}

const pointers = (body: Record<string, unknown>): string[] => ((body['issues'] ?? []) as Array<{ path: string }>).map((i) => i.path);

describe('model HTTP API', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let log: EmbeddedLog;
  let runtime: OnnxModelRuntime;
  let app: FastifyInstance;
  let direct: LoadedModel;

  beforeAll(async () => {
    dir = await tempDir('millrace-models-http-');
    log = new EmbeddedLog({ path: join(dir.path, 'log') });
    await log.open();
    await log.createTopic({ name: Topics.modelRegistry, partitions: 1 });
    const registry = new EmbeddedSchemaRegistry(log);
    await registry.open();
    runtime = new OnnxModelRuntime({ workers: 1 });
    const engine: EngineApi = {
      log,
      registry,
      metrics: new Metrics({ defaultMetrics: false }),
      schemasDir: SCHEMAS_DIR,
      topologies: () => [],
      status: async () => STATUS,
      models: new ModelService({ log, runtime: () => runtime }),
    };
    app = await buildHttpServer(engine, { bodyLimitBytes: 256 * 1024 });
    direct = await runtime.load({ ...LOGREG, name: 'direct', inputWidth: FEATURE_NAMES.length });
  });

  afterAll(async () => {
    await app?.close();
    await runtime?.close();
    await log?.close();
    await dir?.remove();
  });

  const events = (...list: ModelRegistryEvent[]) =>
    log.append(list.map((e) => ({ topic: Topics.modelRegistry, key: Buffer.from(e.model), value: Buffer.from(JSON.stringify(e)) })));
  const registered = (model: string, version: string, extra: Partial<{ path: string; sha256: string; metrics: Record<string, number> }> = {}): ModelRegistryEvent => ({
    type: 'ModelRegistered',
    model,
    version,
    artifact_uri: extra.path ?? LOGREG.path,
    sha256: extra.sha256 ?? LOGREG.sha256,
    reference_uri: `${extra.path ?? LOGREG.path}.reference.json`,
    metrics: extra.metrics ?? { auc: 0.9 },
    at: AT,
  });
  const promoted = (model: string, version: string): ModelRegistryEvent => ({ type: 'ModelPromoted', model, version, at: AT });
  const canary = (model: string, version: string, percent: number): ModelRegistryEvent => ({ type: 'CanaryStarted', model, version, percent, at: AT });
  const rolledBack = (model: string, version: string, decidedBy?: 'operator'): ModelRegistryEvent => ({
    type: 'ModelRolledBack',
    model,
    version,
    reason: 'worse',
    at: AT,
    ...(decidedBy === undefined ? {} : { decided_by: decidedBy }),
  });
  const refused = (model: string, version: string): ModelRegistryEvent => ({ type: 'ModelRefused', model, version, reason: 'cannot be served', at: AT });

  const listModels = async () => {
    const res = await app.inject({ method: 'GET', url: '/models' });
    expect(res.statusCode).toBe(200);
    return (res.json() as { models: Array<{ name: string; stable: string | null; canary: unknown; versions: Array<Record<string, unknown>> }> }).models;
  };
  const model = async (name: string) => (await listModels()).find((m) => m.name === name);
  const traffic = async (name: string) => Object.fromEntries((await model(name))!.versions.map((v) => [v.version, [v['stage'], v['trafficPercent']]]));
  const predict = (name: string, body: unknown, contentType = 'application/json') =>
    app.inject({
      method: 'POST',
      url: `/v1/models/${encodeURIComponent(name)}:predict`,
      headers: { 'content-type': contentType },
      payload: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const directProbabilities = async (rows: readonly number[][]) => Array.from(await direct.predict(Float32Array.from(rows.flat()), rows.length));

  describe('GET /models', () => {
    it('lists every version with its stage, traffic and metrics, following the registry events', async () => {
      // given: two versions registered, none promoted
      await events(registered('listed', 'v1', { metrics: { auc: 0.91, precision: 0.5 } }), registered('listed', 'v2', { metrics: { auc: 0.93 } }));
      // then
      expect(await model('listed')).toEqual({
        name: 'listed',
        stable: null,
        canary: null,
        versions: [
          { version: 'v1', stage: 'registered', trafficPercent: 0, sha256: LOGREG.sha256, artifactUri: LOGREG.path, metrics: { auc: 0.91, precision: 0.5 } },
          { version: 'v2', stage: 'registered', trafficPercent: 0, sha256: LOGREG.sha256, artifactUri: LOGREG.path, metrics: { auc: 0.93 } },
        ],
      });

      // when: v1 promoted
      await events(promoted('listed', 'v1'));
      expect(await traffic('listed')).toEqual({ v1: ['stable', 100], v2: ['registered', 0] });

      // when: v2 canaries at 10 %, then 25 %
      await events(canary('listed', 'v2', 10));
      expect(await traffic('listed')).toEqual({ v1: ['stable', 90], v2: ['canary', 10] });
      expect(await model('listed')).toMatchObject({ stable: 'v1', canary: { version: 'v2', percent: 10 } });
      await events(canary('listed', 'v2', 25));
      expect(await traffic('listed')).toEqual({ v1: ['stable', 75], v2: ['canary', 25] });

      // when: the canary is rolled back
      await events(rolledBack('listed', 'v2'));
      expect(await traffic('listed')).toEqual({ v1: ['stable', 100], v2: ['rolled-back', 0] });
      expect(await model('listed')).toMatchObject({ stable: 'v1', canary: null });

      // when: a third version canaries and is promoted, retiring v1
      await events(registered('listed', 'v3'), canary('listed', 'v3', 50), promoted('listed', 'v3'));
      expect(await traffic('listed')).toEqual({ v1: ['retired', 0], v2: ['rolled-back', 0], v3: ['stable', 100] });

      // when: an operator rolls the stable v3 back: v1, the last stable one, serves again
      await events(rolledBack('listed', 'v3', 'operator'));
      expect(await traffic('listed')).toEqual({ v1: ['stable', 100], v2: ['rolled-back', 0], v3: ['rolled-back', 0] });
      expect(await model('listed')).toMatchObject({ stable: 'v1' });
    });

    it('lists models by name, and skips records that are not registry events', async () => {
      await log.append([
        { topic: Topics.modelRegistry, key: Buffer.from('x'), value: Buffer.from('not json') },
        { topic: Topics.modelRegistry, key: Buffer.from('x'), value: Buffer.from('{"type":"ModelRegistered"}') },
        { topic: Topics.modelRegistry, key: Buffer.from('x'), value: null },
      ]);
      await events(registered('zz-last', 'v1'), registered('aa-first', 'v1'));
      const names = (await listModels()).map((m) => m.name);
      expect(names).toEqual([...names].sort((a, b) => a.localeCompare(b)));
      expect(names).toEqual(expect.arrayContaining(['aa-first', 'zz-last']));
    });
  });

  describe('POST /v1/models/:name:predict', () => {
    beforeAll(async () => {
      await events(registered('fraud', 'v1'), promoted('fraud', 'v1'));
    });

    it('scores instances given by feature name with the stable version, as the model itself does', async () => {
      // when
      const res = await predict('fraud', { instances: ROWS.map(byName) });
      // then
      expect(res.statusCode).toBe(200);
      const body = res.json() as { model: string; version: string; predictions: Array<{ class: number; probability: number }> };
      expect(body.model).toBe('fraud');
      expect(body.version).toBe('v1');
      const expected = await directProbabilities(ROWS);
      expect(body.predictions).toHaveLength(ROWS.length);
      body.predictions.forEach((p, i) => {
        expect(Object.keys(p).sort()).toEqual(['class', 'probability']);
        expect(p.probability).toBeCloseTo(expected[i]!, 6);
        expect(p.probability).toBeCloseTo(logregProbability(ROWS[i]!), 5);
        expect(p.class).toBe(p.probability >= 0.5 ? 1 : 0);
      });
      // Both classes occur: the far rows sit on either side of the threshold.
      expect(new Set(body.predictions.map((p) => p.class))).toEqual(new Set([0, 1]));
    });

    it('scores instances given as arrays in FEATURE_NAMES order the same, and mixes both forms', async () => {
      const asArrays = (await predict('fraud', { instances: ROWS })).json() as { predictions: unknown[] };
      const asObjects = (await predict('fraud', { instances: ROWS.map(byName) })).json() as { predictions: unknown[] };
      expect(asArrays.predictions).toEqual(asObjects.predictions);
      const mixed = (await predict('fraud', { instances: [ROWS[0], byName(ROWS[1]!)] })).json() as { predictions: unknown[] };
      expect(mixed.predictions).toEqual(asArrays.predictions.slice(0, 2));
    });

    it('takes the model name from the path, dots, dashes and an escaped colon included', async () => {
      await events(registered('fraud.eu-2', 'v7'), promoted('fraud.eu-2', 'v7'));
      for (const url of ['/v1/models/fraud.eu-2:predict', '/v1/models/fraud.eu-2%3Apredict']) {
        const res = await app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ instances: ROWS }) });
        expect(res.statusCode).toBe(200);
        expect(res.json()).toMatchObject({ model: 'fraud.eu-2', version: 'v7' });
      }
    });

    it('ignores extra keys of an object instance, and accepts exactly the maximum number of instances', async () => {
      const one = await predict('fraud', { instances: [{ ...byName(ROWS[0]!), note: 'x' }] });
      expect(one.statusCode).toBe(200);
      const many = Array.from({ length: MAX_PREDICT_INSTANCES }, (_, i) => ROWS[i % ROWS.length]!);
      const res = await predict('fraud', { instances: many });
      expect(res.statusCode).toBe(200);
      const expected = await directProbabilities(many);
      (res.json() as { predictions: Array<{ probability: number }> }).predictions.forEach((p, i) => expect(p.probability).toBeCloseTo(expected[i]!, 6));
    });

    describe('refuses with an RFC 7807 problem', () => {
      it(`${MAX_PREDICT_INSTANCES + 1} instances: MILLRACE_HTTP_VALIDATION at /instances`, async () => {
        const body = expectProblem(await predict('fraud', { instances: Array.from({ length: MAX_PREDICT_INSTANCES + 1 }, () => ROWS[0]) }), 422, 'MILLRACE_HTTP_VALIDATION');
        expect(pointers(body)).toEqual(['/instances']);
      });

      it.each([
        ['no instances key', { rows: ROWS }, '/instances'],
        ['instances not an array', { instances: byName(ROWS[0]!) }, '/instances'],
        ['no instance', { instances: [] }, '/instances'],
        ['an instance that is a number', { instances: [ROWS[0], 7] }, '/instances/1'],
        ['an instance that is null', { instances: [null] }, '/instances/0'],
        ['an array of 9 features', { instances: [ROWS[0]!.slice(1)] }, '/instances/0'],
        ['an array of 11 features', { instances: [[...ROWS[0]!, 1]] }, '/instances/0'],
        ['a missing feature', { instances: [ROWS[0], (({ sum_24h: _, ...rest }) => rest)(byName(ROWS[1]!))] }, '/instances/1/sum_24h'],
        ['a feature given as a string', { instances: [{ ...byName(ROWS[0]!), prev_amount: '3' }] }, '/instances/0/prev_amount'],
        ['a feature given as null', { instances: [{ ...byName(ROWS[0]!), amount: null }] }, '/instances/0/amount'],
        ['a non-numeric array entry', { instances: [ROWS[0]!.map((v, i) => (i === 4 ? true : v))] }, '/instances/0/4'],
        ['a nested array entry', { instances: [ROWS[0]!.map((v, i) => (i === 9 ? [v] : v))] }, '/instances/0/9'],
      ])('%s: MILLRACE_HTTP_VALIDATION naming the pointer', async (_, payload, pointer) => {
        const body = expectProblem(await predict('fraud', payload), 422, 'MILLRACE_HTTP_VALIDATION');
        expect(pointers(body)).toEqual([pointer]);
      });

      it('an infinite feature (1e400 in JSON): MILLRACE_HTTP_VALIDATION', async () => {
        const text = JSON.stringify({ instances: [ROWS[0]] }).replace('[[0.5,', '[[1e400,');
        const body = expectProblem(await predict('fraud', text), 422, 'MILLRACE_HTTP_VALIDATION');
        expect(pointers(body)).toEqual(['/instances/0/0']);
      });

      it.each([
        ['truncated JSON', '{"instances": [[1, 2'],
        ['a trailing comma', '{"instances": [],}'],
        ['an empty body', ''],
        ['white space', '  \n '],
      ])('%s: 400 MILLRACE_HTTP_MALFORMED_JSON', async (_, text) => {
        expectProblem(await predict('fraud', text), 400, 'MILLRACE_HTTP_MALFORMED_JSON');
      });

      it('a body that is not JSON by its content type: 415', async () => {
        expectProblem(await predict('fraud', 'amount=1', 'text/plain'), 415, 'MILLRACE_HTTP_UNSUPPORTED_MEDIA_TYPE');
      });

      it('an unknown model: 404 MILLRACE_HTTP_NOT_FOUND', async () => {
        expectProblem(await predict('no-such-model', { instances: ROWS }), 404, 'MILLRACE_HTTP_NOT_FOUND');
      });

      it('another verb after the name: 404 MILLRACE_HTTP_NOT_FOUND', async () => {
        expectProblem(await app.inject({ method: 'POST', url: '/v1/models/fraud:score', headers: { 'content-type': 'application/json' }, payload: '{}' }), 404, 'MILLRACE_HTTP_NOT_FOUND');
      });

      it('another verb on the predict route: 404 with a problem body', async () => {
        const res = await app.inject({ method: 'GET', url: '/v1/models/fraud:predict' });
        expectProblem(res, 404, 'MILLRACE_HTTP_NOT_FOUND');
      });

      it('a model with no stable version: 503 MILLRACE_MODEL_UNAVAILABLE, until one is promoted', async () => {
        // given: registered, and in canary, but never promoted
        await events(registered('unpromoted', 'v1'), canary('unpromoted', 'v1', 5));
        // then
        expectProblem(await predict('unpromoted', { instances: ROWS }), 503, 'MILLRACE_MODEL_UNAVAILABLE');
        // when promoted, it serves
        await events(promoted('unpromoted', 'v1'));
        expect((await predict('unpromoted', { instances: ROWS })).statusCode).toBe(200);
      });

      it('a model whose only stable version was refused: 503 MILLRACE_MODEL_UNAVAILABLE', async () => {
        await events(registered('withdrawn', 'v1'), promoted('withdrawn', 'v1'));
        expect((await predict('withdrawn', { instances: ROWS })).statusCode).toBe(200);
        // A rollback cannot withdraw the only stable version (nothing would serve instead); a refusal does.
        await events(refused('withdrawn', 'v1'));
        expectProblem(await predict('withdrawn', { instances: ROWS }), 503, 'MILLRACE_MODEL_UNAVAILABLE');
      });

      it('a stable version whose file is gone: 503 MILLRACE_MODEL_UNAVAILABLE', async () => {
        await events(registered('missing-file', 'v1', { path: join(dir.path, 'no-such.onnx') }), promoted('missing-file', 'v1'));
        const body = expectProblem(await predict('missing-file', { instances: ROWS }), 503, 'MILLRACE_MODEL_UNAVAILABLE');
        expect(body['reason']).toBe('model-unavailable');
      });
    });

    it('refuses a tampered model file with 500 MILLRACE_MODEL_INTEGRITY, every time, until a good version is promoted', async () => {
      // given: a copy of the fixture with one byte flipped, registered with the fixture's SHA-256 and promoted
      const tamperedPath = join(dir.path, 'tampered.onnx');
      await copyFile(LOGREG.path, tamperedPath);
      const bytes = await readFile(tamperedPath);
      bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
      await writeFile(tamperedPath, bytes);
      await events(registered('guarded', 'v1', { path: tamperedPath }), promoted('guarded', 'v1'));
      // then: refused, and refused again (a refusal is not cached as a model)
      for (let attempt = 0; attempt < 2; attempt++) {
        const body = expectProblem(await predict('guarded', { instances: ROWS }), 500, 'MILLRACE_MODEL_INTEGRITY');
        expect(body['reason']).toBe('sha256-mismatch');
      }
      // when: a good version is registered and promoted
      await events(registered('guarded', 'v2'), promoted('guarded', 'v2'));
      // then: it serves
      const res = await predict('guarded', { instances: ROWS });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ model: 'guarded', version: 'v2' });
      expect(await traffic('guarded')).toEqual({ v1: ['retired', 0], v2: ['stable', 100] });
    });

    it('a file repaired in place serves on the next request, as the refusal was not cached', async () => {
      // given
      const path = join(dir.path, 'repaired.onnx');
      await copyFile(LOGREG.path, path);
      const bytes = await readFile(path);
      bytes[10] = bytes[10]! ^ 0x01;
      await writeFile(path, bytes);
      await events(registered('repaired', 'v1', { path }), promoted('repaired', 'v1'));
      expectProblem(await predict('repaired', { instances: ROWS }), 500, 'MILLRACE_MODEL_INTEGRITY');
      // when
      await copyFile(LOGREG.path, path);
      // then
      expect((await predict('repaired', { instances: ROWS })).statusCode).toBe(200);
    });

    describe('survives hostile bodies', () => {
      const deep = (depth: number) => `{"instances":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      const hostile: ReadonlyArray<[string, string]> = [
        ['null', 'null'],
        ['a string', JSON.stringify('instances')],
        ['a number', '42'],
        ['an array', JSON.stringify(ROWS)],
        ['instances: null', '{"instances":null}'],
        ['instances: a string', JSON.stringify({ instances: 'x'.repeat(100_000) })],
        ['a huge string feature', JSON.stringify({ instances: [{ ...byName(ROWS[0]!), amount: 'x'.repeat(200_000) }] })],
        ['deeply nested arrays', deep(50_000)],
        ['deeply nested instance', JSON.stringify({ instances: [ROWS[0]!.map(() => 0)] }).replace('[[0', `[${'['.repeat(20_000)}0${']'.repeat(20_000)}`)],
        ['a wide array of arrays', JSON.stringify({ instances: Array.from({ length: 10_000 }, () => []) })],
        ['one instance with 50 000 features', JSON.stringify({ instances: [Array.from({ length: 50_000 }, () => 1)] })],
        ['a __proto__ instance', '{"instances":[{"__proto__":{"amount":1}}]}'],
        ['features as an object of arrays', JSON.stringify({ instances: [Object.fromEntries(FEATURE_NAMES.map((n) => [n, [1]]))] })],
      ];

      it.each(hostile)('%s: a 4xx problem, and the server keeps serving', async (_, text) => {
        const res = await predict('fraud', text);
        expect(res.statusCode).toBeGreaterThanOrEqual(400);
        expect(res.statusCode).toBeLessThan(500);
        expect(String(res.headers['content-type'])).toMatch(/^application\/problem\+json/);
        expect(typeof (res.json() as { code: unknown }).code).toBe('string');
        // still serving
        expect((await predict('fraud', { instances: ROWS.slice(0, 1) })).statusCode).toBe(200);
      });

      it('a body above the size limit: 413 MILLRACE_HTTP_TOO_LARGE', async () => {
        expectProblem(await predict('fraud', JSON.stringify({ instances: 'x'.repeat(300 * 1024) })), 413, 'MILLRACE_HTTP_TOO_LARGE');
      });

      it('many concurrent requests all get answers', async () => {
        const results = await Promise.all(
          Array.from({ length: 40 }, (_, i) => predict('fraud', i % 4 === 0 ? '{' : { instances: [ROWS[i % ROWS.length]] })),
        );
        expect(results.map((r) => r.statusCode)).toEqual(Array.from({ length: 40 }, (_, i) => (i % 4 === 0 ? 400 : 200)));
      });
    });
  });
});

describe('model HTTP API without a registry', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let log: EmbeddedLog;

  beforeAll(async () => {
    dir = await tempDir('millrace-models-none-');
    log = new EmbeddedLog({ path: join(dir.path, 'log') });
    await log.open();
  });

  afterAll(async () => {
    await log?.close();
    await dir?.remove();
  });

  async function server(models: ModelService | undefined): Promise<FastifyInstance> {
    const registry = new EmbeddedSchemaRegistry(log);
    await registry.open();
    return buildHttpServer({
      log,
      registry,
      metrics: new Metrics({ defaultMetrics: false }),
      schemasDir: SCHEMAS_DIR,
      topologies: () => [],
      status: async () => STATUS,
      ...(models === undefined ? {} : { models }),
    });
  }

  it.each([
    ['no model service', undefined],
    ['no model-registry topic yet', 'service'],
  ] as const)('with %s lists no model, and predict answers 404', async (_, kind) => {
    // given: the runtime is never asked for anything
    const models = kind === undefined ? undefined : new ModelService({ log, runtime: () => { throw new TypeError('no runtime in this test'); } });
    const app = await server(models);
    try {
      // when / then
      const list = await app.inject({ method: 'GET', url: '/models' });
      expect(list.statusCode).toBe(200);
      expect(list.json()).toEqual({ models: [] });
      expectProblem(
        await app.inject({ method: 'POST', url: '/v1/models/fraud:predict', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ instances: ROWS }) }),
        404,
        'MILLRACE_HTTP_NOT_FOUND',
      );
    } finally {
      await app.close();
    }
  });
});
