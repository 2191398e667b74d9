import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHttpServer } from '../../engine/http/server.js';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { Metrics } from '../../engine/metrics/metrics.js';
import type { EngineApi, EngineStatus } from '../../engine/runtime/status.js';
import { EmbeddedSchemaRegistry } from '../../engine/serde/embedded-registry.js';

const SCHEMAS_DIR = fileURLToPath(new URL('../../schemas', import.meta.url));

const RUNNING: EngineStatus = {
  state: 'running',
  startedAt: '2026-01-01T00:00:00.000Z',
  version: '0.0.0-test',
  log: { kind: 'embedded', location: '/tmp/x' },
  applications: [],
};

const validEvent = (id: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  id,
  user: 'ada',
  amount: 42.5,
  at: '2026-01-02T03:04:05.123Z',
  ip: '203.0.113.7',
  country: null,
  ...extra,
});

describe('HTTP server', () => {
  let dir: string;
  let log: EmbeddedLog;
  let registry: EmbeddedSchemaRegistry;
  let metrics: Metrics;
  let app: FastifyInstance;
  let status: () => Promise<EngineStatus>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'millrace-http-'));
    log = new EmbeddedLog({ path: join(dir, 'log') });
    await log.open();
    registry = new EmbeddedSchemaRegistry(log);
    await registry.open();
    metrics = new Metrics({ defaultMetrics: false });
    status = async () => RUNNING;
    const engine: EngineApi = {
      log,
      registry,
      metrics,
      schemasDir: SCHEMAS_DIR,
      topologies: () => [],
      status: () => status(),
    };
    app = await buildHttpServer(engine, { bodyLimitBytes: 64 * 1024, maxRecordsPerRequest: 100 });
  });

  afterAll(async () => {
    await app?.close();
    await log?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
    app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json', ...headers },
      payload: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const get = (url: string) => app.inject({ method: 'GET', url });
  const ends = async (topic: string) => (await log.partitionOffsets(topic)).map((p) => p.end as number);

  function expectProblem(res: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, status: number, code: string) {
    expect(res.statusCode).toBe(status);
    expect(String(res.headers['content-type'])).toMatch(/^application\/problem\+json/);
    const body = res.json() as Record<string, unknown>;
    expect(body).toMatchObject({ status, code });
    expect(typeof body['type']).toBe('string');
    expect(typeof body['title']).toBe('string');
    expect(typeof body['detail']).toBe('string');
    expect(typeof body['instance']).toBe('string');
    return body;
  }

  describe('POST /topics', () => {
    it('creates a topic with every version of a schemas folder registered', async () => {
      const res = await post('/topics', { name: 'payments', partitions: 3, schema: 'example-event' });
      expect(res.statusCode).toBe(201);
      expect(res.headers['location']).toBe('/topics/payments');
      expect(res.json()).toMatchObject({
        name: 'payments',
        partitions: 3,
        cleanupPolicy: 'delete',
        internal: false,
        schema: { subject: 'payments-value', version: 2 },
        offsets: [
          { partition: 0, start: 0, end: 0 },
          { partition: 1, start: 0, end: 0 },
          { partition: 2, start: 0, end: 0 },
        ],
      });
      expect((await registry.versions('payments-value')).map((v) => v.version)).toEqual([1, 2]);
    });

    it('creates a topic with an inline schema, and a compacted one', async () => {
      const schema = { type: 'record', name: 'Reading', fields: [{ name: 'celsius', type: 'double' }] };
      const res = await post('/topics', { name: 'readings', schema });
      expect(res.statusCode).toBe(201);
      expect(res.json()).toMatchObject({ name: 'readings', partitions: 1, schema: { subject: 'readings-value', version: 1 } });
      const compacted = await post('/topics', { name: 'profiles', compacted: true, retentionMs: 60_000 });
      expect(compacted.json()).toMatchObject({ cleanupPolicy: 'compact', retentionMs: 60_000, schema: null });
    });

    it('refuses an existing topic with 409', async () => {
      await post('/topics', { name: 'twice' });
      const body = expectProblem(await post('/topics', { name: 'twice' }), 409, 'MILLRACE_TOPIC_EXISTS');
      expect(body['instance']).toBe('/topics');
    });

    it('refuses a bad name, a bad body and an invalid schema with 400', async () => {
      expectProblem(await post('/topics', { name: 'no spaces here' }), 400, 'MILLRACE_TOPIC_NAME_INVALID');
      const bad = expectProblem(await post('/topics', { name: 'x', partitions: 0, extra: 1 }), 400, 'MILLRACE_HTTP_BAD_REQUEST');
      expect(bad['errors']).toEqual(expect.arrayContaining([expect.objectContaining({ path: '/partitions' })]));
      expectProblem(await post('/topics', { name: 'bad-schema', schema: { type: 'record', name: 'R' } }), 400, 'MILLRACE_SCHEMA_INVALID');
      expectProblem(await get('/topics/bad-schema'), 404, 'MILLRACE_TOPIC_UNKNOWN');
    });

    it('refuses an unknown schemas folder', async () => {
      expectProblem(await post('/topics', { name: 'nofolder', schema: 'no-such-event' }), 404, 'MILLRACE_SCHEMA_UNKNOWN');
      expectProblem(await post('/topics', { name: 'escape', schema: '../etc' }), 404, 'MILLRACE_SCHEMA_UNKNOWN');
    });

    it('refuses an incompatible schema with 409 and creates no topic', async () => {
      await registry.register('legacy-value', { type: 'record', name: 'L', fields: [{ name: 'a', type: 'string' }] });
      const res = await post('/topics', {
        name: 'legacy',
        schema: { type: 'record', name: 'L', fields: [{ name: 'a', type: 'string' }, { name: 'b', type: 'int' }] },
      });
      expectProblem(res, 409, 'MILLRACE_SCHEMA_INCOMPATIBLE');
      expectProblem(await get('/topics/legacy'), 404, 'MILLRACE_TOPIC_UNKNOWN');
    });
  });

  describe('GET /topics', () => {
    it('lists topics with their schema and offsets', async () => {
      await post('/topics', { name: 'listed', partitions: 2 });
      await post('/topics/listed/events', { records: [{ value: 1, partition: 1 }] });
      const res = await get('/topics');
      expect(res.statusCode).toBe(200);
      const topics = (res.json() as { topics: Array<Record<string, unknown>> }).topics;
      expect(topics.find((t) => t['name'] === 'listed')).toEqual({
        name: 'listed',
        partitions: 2,
        cleanupPolicy: 'delete',
        retentionMs: null,
        retentionBytes: null,
        internal: false,
        schema: null,
        offsets: [
          { partition: 0, start: 0, end: 0 },
          { partition: 1, start: 0, end: 1 },
        ],
      });
      expect(topics.find((t) => t['name'] === '_schemas')).toMatchObject({ internal: true, cleanupPolicy: 'compact' });
    });
  });

  describe('POST /topics/:topic/events', () => {
    it('takes a bare value keyed by the query, an envelope, and a batch', async () => {
      await post('/topics', { name: 'plain', partitions: 1 });
      const bare = await post('/topics/plain/events?key=k1', { hello: 'world' });
      expect(bare.statusCode).toBe(200);
      expect(bare.json()).toEqual({ offsets: [{ partition: 0, offset: 0, timestamp: expect.any(String) }] });

      const envelope = await post('/topics/plain/events', {
        key: 'k2',
        value: [1, 2, 3],
        timestamp: '2026-01-02T03:04:05+01:00',
        headers: { source: 'test' },
      });
      expect(envelope.json()).toEqual({ offsets: [{ partition: 0, offset: 1, timestamp: '2026-01-02T02:04:05.000Z' }] });

      const batch = await post('/topics/plain/events', {
        records: [{ value: 'a', timestamp: 1_700_000_000_000 }, { key: null, value: null }, { value: { n: 3 } }],
      });
      expect(batch.json()).toEqual({
        offsets: [
          { partition: 0, offset: 2, timestamp: '2023-11-14T22:13:20.000Z' },
          { partition: 0, offset: 3, timestamp: expect.any(String) },
          { partition: 0, offset: 4, timestamp: expect.any(String) },
        ],
      });

      const read = await get('/topics/plain/events');
      const records = (read.json() as { records: Array<Record<string, unknown>> }).records;
      expect(records.map((r) => [r['key'], r['value']])).toEqual([
        ['k1', { hello: 'world' }],
        ['k2', [1, 2, 3]],
        [null, 'a'],
        [null, null],
        [null, { n: 3 }],
      ]);
      expect(records[1]).toMatchObject({
        topic: 'plain',
        partition: 0,
        offset: 1,
        timestamp: '2026-01-02T02:04:05.000Z',
        headers: { source: 'test' },
      });
      expect(records[0]).not.toHaveProperty('error');
    });

    it('treats an object that is not an envelope as the value', async () => {
      await post('/topics', { name: 'objects' });
      await post('/topics/objects/events', { value: 1, other: 2 });
      await post('/topics/objects/events', { records: 'not an array' });
      const records = (await get('/topics/objects/events')).json().records as Array<{ value: unknown }>;
      expect(records.map((r) => r.value)).toEqual([{ value: 1, other: 2 }, { records: 'not an array' }]);
    });

    it('places a keyed record as a Kafka producer would', async () => {
      await post('/topics', { name: 'wide', partitions: 50 });
      const res = await post('/topics/wide/events', { key: 'foobar', value: 1 });
      expect(res.json().offsets[0].partition).toBe(16);
      const explicit = await post('/topics/wide/events', { key: 'foobar', value: 1, partition: 3 });
      expect(explicit.json().offsets[0].partition).toBe(3);
    });

    it('validates and Avro-encodes the values of a topic with a schema', async () => {
      const res = await post('/topics/payments/events', {
        records: [
          { key: 'ada', value: validEvent('e1') },
          { key: 'grace', value: validEvent('e2', { ip: '2001:db8::1', country: 'FR' }) },
        ],
      });
      expect(res.statusCode).toBe(200);
      const partition = res.json().offsets[0].partition as number;
      const stored = await log.read('payments', partition, 0 as never);
      expect(stored.records[0]!.value![0]).toBe(0); // the Confluent magic byte
      const read = await get('/topics/payments/events');
      const values = (read.json() as { records: Array<{ key: string; value: unknown }> }).records;
      expect(values.find((r) => r.key === 'ada')?.value).toEqual(validEvent('e1'));
      expect(values.find((r) => r.key === 'grace')?.value).toEqual(validEvent('e2', { ip: '2001:db8::1', country: 'FR' }));
    });

    it('refuses a batch with an invalid record with 422 and appends nothing', async () => {
      const before = await ends('payments');
      const res = await post('/topics/payments/events', {
        records: [
          { value: validEvent('ok') },
          { value: validEvent('neg', { amount: -1 }) },
          { value: validEvent('ip', { ip: 'not-an-ip', extra: true }) },
        ],
      });
      const body = expectProblem(res, 422, 'MILLRACE_SCHEMA_VIOLATION');
      const errors = body['errors'] as Array<{ index: number; path: string; message: string }>;
      expect(errors.map((e) => [e.index, e.path])).toEqual(
        expect.arrayContaining([
          [1, '/value/amount'],
          [2, '/value/ip'],
          [2, '/value/extra'],
        ]),
      );
      expect(errors.some((e) => e.index === 0)).toBe(false);
      expect(body['instance']).toBe('/topics/payments/events');
      expect(await ends('payments')).toEqual(before);
      const metricsText = await metrics.text();
      expect(metricsText).toMatch(/millrace_produce_rejected_total\{topic="payments",reason="schema"\} 1/);
    });

    it('refuses invalid envelope fields with 422', async () => {
      await post('/topics', { name: 'strict', partitions: 2 });
      const res = await post('/topics/strict/events', {
        records: [
          { value: 1, timestamp: 'yesterday' },
          { value: 1, key: 5 },
          { value: 1, partition: 2 },
          { value: 1, headers: { a: 1 } },
          { key: 'x' },
          7,
          { value: 1, partition: null },
        ],
      });
      const body = expectProblem(res, 422, 'MILLRACE_HTTP_VALIDATION');
      expect((body['errors'] as Array<{ index: number; path: string }>).map((e) => [e.index, e.path])).toEqual([
        [0, '/timestamp'],
        [1, '/key'],
        [2, '/partition'],
        [3, '/headers/a'],
        [4, '/value'],
        [5, ''],
        [6, '/partition'],
      ]);
      expect(await ends('strict')).toEqual([0, 0]);
      expectProblem(await post('/topics/strict/events', { value: 1, timestamp: -5 }), 422, 'MILLRACE_HTTP_VALIDATION');
      expectProblem(await post('/topics/profiles/events', { value: 1 }), 422, 'MILLRACE_HTTP_VALIDATION');
    });

    it('answers 400 for malformed JSON and a missing body', async () => {
      expectProblem(await post('/topics/plain/events', '{"value": '), 400, 'MILLRACE_HTTP_MALFORMED_JSON');
      expectProblem(await post('/topics/plain/events', ''), 400, 'MILLRACE_HTTP_MALFORMED_JSON');
      expectProblem(await app.inject({ method: 'POST', url: '/topics/plain/events' }), 400, 'MILLRACE_HTTP_BAD_REQUEST');
      expectProblem(await post('/topics/plain/events?key=a&key=b', 1), 400, 'MILLRACE_HTTP_BAD_REQUEST');
    });

    it('answers 413 for a body over the limit and for too many records', async () => {
      const big = { value: 'x'.repeat(70 * 1024) };
      expectProblem(await post('/topics/plain/events', big), 413, 'MILLRACE_HTTP_TOO_LARGE');
      const many = { records: Array.from({ length: 101 }, (_, i) => ({ value: i })) };
      const before = await ends('plain');
      expectProblem(await post('/topics/plain/events', many), 413, 'MILLRACE_HTTP_TOO_LARGE');
      expect(await ends('plain')).toEqual(before);
    });

    it('answers 415 for a body that is not JSON', async () => {
      const res = await app.inject({
        method: 'POST',
        url: '/topics/plain/events',
        headers: { 'content-type': 'text/plain' },
        payload: 'hello',
      });
      expectProblem(res, 415, 'MILLRACE_HTTP_UNSUPPORTED_MEDIA_TYPE');
      const vendor = await post('/topics/plain/events', { value: 1 }, { 'content-type': 'application/vnd.millrace+json' });
      expect(vendor.statusCode).toBe(200);
    });

    it('answers 404 for an unknown topic', async () => {
      expectProblem(await post('/topics/nope/events', { value: 1 }), 404, 'MILLRACE_TOPIC_UNKNOWN');
    });

    it('refuses a value nested too deeply to encode with 422, appending nothing', async () => {
      const depth = 30_000;
      const deep = `{"value":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      const before = await ends('plain');
      expectProblem(await post('/topics/plain/events', deep), 422, 'MILLRACE_HTTP_VALIDATION');
      expect(await ends('plain')).toEqual(before);
    });
  });

  describe('GET /topics/:topic/events', () => {
    it('pages through every partition, fairly and in order within each', async () => {
      await post('/topics', { name: 'paged', partitions: 3 });
      const records = Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 7}`, value: { i }, timestamp: 1_000 + i }));
      await post('/topics/paged/events', { records });

      const first = (await get('/topics/paged/events?limit=6')).json() as {
        records: Array<{ partition: number; offset: number; value: { i: number } }>;
        next: Record<string, number>;
        highWatermarks: Record<string, number>;
      };
      expect(first.records).toHaveLength(6);
      // Merged by timestamp: the six oldest records, whatever their partitions.
      expect(first.records.map((r) => r.value.i)).toEqual([0, 1, 2, 3, 4, 5]);
      expect(Object.keys(first.highWatermarks).sort()).toEqual(['0', '1', '2']);

      const seen: Array<{ partition: number; offset: number; value: { i: number } }> = [...first.records];
      let next = first.next;
      for (let round = 0; round < 20; round++) {
        const offset = Object.entries(next).map(([p, o]) => `${p}:${o}`).join(',');
        const page = (await get(`/topics/paged/events?limit=7&offset=${offset}`)).json() as typeof first;
        if (page.records.length === 0) break;
        seen.push(...page.records);
        next = page.next;
      }
      expect(seen.map((r) => r.value.i).sort((a, b) => a - b)).toEqual(records.map((_, i) => i));
      for (const p of [0, 1, 2]) {
        const offsets = seen.filter((r) => r.partition === p).map((r) => r.offset);
        expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
        expect(new Set(offsets).size).toBe(offsets.length);
      }
      const ends = await log.partitionOffsets('paged');
      expect(next).toEqual({ 0: ends[0]!.end, 1: ends[1]!.end, 2: ends[2]!.end });
    });

    it('reads one partition from an offset, from latest, and from a time', async () => {
      await post('/topics', { name: 'seek' });
      await post('/topics/seek/events', {
        records: [10, 20, 30, 40].map((t) => ({ value: t, timestamp: t * 1000 })),
      });
      const byOffset = (await get('/topics/seek/events?partition=0&offset=2')).json();
      expect(byOffset.records.map((r: { value: number }) => r.value)).toEqual([30, 40]);
      expect(byOffset.next).toEqual({ 0: 4 });
      const latest = (await get('/topics/seek/events?offset=latest')).json();
      expect(latest).toEqual({ records: [], next: { 0: 4 }, highWatermarks: { 0: 4 } });
      const from = (await get(`/topics/seek/events?from=${new Date(15_000).toISOString()}`)).json();
      expect(from.records.map((r: { value: number }) => r.value)).toEqual([20, 30, 40]);
      const future = (await get('/topics/seek/events?from=2100-01-01T00:00:00Z')).json();
      expect(future).toMatchObject({ records: [], next: { 0: 4 } });
    });

    it('long-polls until a record arrives', async () => {
      await post('/topics', { name: 'waiting', partitions: 2 });
      const started = Date.now();
      const pending = get('/topics/waiting/events?offset=latest&waitMs=5000');
      await new Promise((resolve) => setTimeout(resolve, 100));
      await post('/topics/waiting/events', { key: 'late', value: 'here' });
      const res = (await pending).json();
      expect(res.records.map((r: { value: string }) => r.value)).toEqual(['here']);
      expect(Date.now() - started).toBeLessThan(4000);
      const empty = await get('/topics/waiting/events?offset=latest&waitMs=50');
      expect(empty.json().records).toEqual([]);
    });

    it('answers 400 for bad query parameters and 404 for an unknown topic or partition', async () => {
      for (const query of ['limit=0', 'limit=abc', 'limit=100000', 'offset=-1', 'offset=soon', 'waitMs=999999', 'from=yesterday', 'offset=1&from=2026-01-01T00:00:00Z', 'partition=x', 'offset=0:1,0:2', 'offset=a:b']) {
        expectProblem(await get(`/topics/seek/events?${query}`), 400, 'MILLRACE_HTTP_BAD_REQUEST');
      }
      expectProblem(await get('/topics/seek/events?partition=7'), 404, 'MILLRACE_PARTITION_UNKNOWN');
      expectProblem(await get('/topics/nope/events'), 404, 'MILLRACE_TOPIC_UNKNOWN');
    });

    it('returns records it cannot decode with an error instead of failing', async () => {
      await post('/topics', { name: 'hostile-avro', schema: 'example-event' });
      await post('/topics', { name: 'hostile-json' });
      const id = (await registry.latest('hostile-avro-value'))!.id;
      const header = Buffer.alloc(5);
      header.writeUInt32BE(id, 1);
      await post('/topics/hostile-avro/events', { value: validEvent('fine') });
      await log.append([
        { topic: 'hostile-avro', value: Buffer.from('not avro at all') },
        // A framed body that claims an array of 2^31 items in a few bytes.
        { topic: 'hostile-avro', value: Buffer.concat([header, Buffer.from([0x02, 0x41, 0xfe, 0xff, 0xff, 0xff, 0x0f])]) },
        { topic: 'hostile-avro', value: Buffer.from([0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3]) },
        { topic: 'hostile-json', key: Buffer.from([0xff, 0xfe]), value: Buffer.from([0xff, 0x00, 0x13]) },
        { topic: 'hostile-json', value: Buffer.from('{"half":') },
        { topic: 'hostile-json', value: Buffer.from('{"ok":true}') },
      ]);
      const avro = await get('/topics/hostile-avro/events');
      expect(avro.statusCode).toBe(200);
      const avroRecords = avro.json().records as Array<{ value: unknown; error?: string }>;
      expect(avroRecords[0]).toMatchObject({ value: validEvent('fine') });
      expect(avroRecords[0]).not.toHaveProperty('error');
      for (const bad of avroRecords.slice(1)) {
        expect(bad.value).toBeNull();
        expect(typeof bad.error).toBe('string');
      }
      expect(avroRecords[3]!.error).toMatch(/unknown schema id/);

      const json = await get('/topics/hostile-json/events');
      expect(json.statusCode).toBe(200);
      const jsonRecords = json.json().records as Array<{ key: unknown; value: unknown; error?: string }>;
      expect(jsonRecords[0]).toMatchObject({ key: { base64: '//4=' }, value: { base64: '/wAT' }, error: expect.any(String) });
      expect(jsonRecords[1]).toMatchObject({ value: { base64: Buffer.from('{"half":').toString('base64') }, error: expect.stringMatching(/not JSON/) });
      expect(jsonRecords[2]).toEqual(expect.objectContaining({ value: { ok: true } }));
      expect(jsonRecords[2]).not.toHaveProperty('error');
    });
  });

  describe('engine routes', () => {
    it('serves Prometheus metrics', async () => {
      const res = await get('/metrics');
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/plain/);
      expect(res.body).toContain('millrace_produced_records_total{topic="plain"}');
      expect(res.body).toMatch(/millrace_http_requests_total\{method="POST",route="\/topics\/:topic\/events",status="200"\} \d+/);
    });

    it('reports health from the engine status', async () => {
      const ok = await get('/health');
      expect(ok.statusCode).toBe(200);
      expect(ok.json()).toMatchObject({ status: 'ok', state: 'running' });
      status = async () => ({ ...RUNNING, state: 'stopping' });
      const stopping = await get('/health');
      expect(stopping.statusCode).toBe(503);
      expect(stopping.json()).toMatchObject({ status: 'degraded', state: 'stopping' });
      status = async () => ({ ...RUNNING, applications: [{ applicationId: 'a', state: 'failed', tasks: [], error: 'boom' }] });
      expect((await get('/health')).json()).toMatchObject({ status: 'degraded' });
      status = async () => RUNNING;
    });

    it('serves status, topologies and the OpenAPI document', async () => {
      expect((await get('/status')).json()).toEqual(RUNNING);
      expect((await get('/topologies')).json()).toEqual({ topologies: [] });
      const doc = (await get('/openapi.json')).json();
      expect(doc.openapi).toMatch(/^3\.0/);
      expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/topics', '/topics/{topic}/events', '/health', '/metrics']));
    });

    it('answers unknown routes with a 404 problem', async () => {
      const body = expectProblem(await get('/nowhere?x=1'), 404, 'MILLRACE_HTTP_NOT_FOUND');
      expect(body['instance']).toBe('/nowhere?x=1');
      expectProblem(await app.inject({ method: 'DELETE', url: '/topics' }), 404, 'MILLRACE_HTTP_NOT_FOUND');
      const metricsText = await metrics.text();
      expect(metricsText).toMatch(/millrace_http_requests_total\{method="GET",route="not-found",status="404"\} \d+/);
    });

    it('answers a path the router cannot read (bad percent-encoding, a parameter too long) with a 400 problem', async () => {
      expectProblem(await get('/topics/%E0%A4/events'), 400, 'MILLRACE_HTTP_BAD_REQUEST');
      expectProblem(await get(`/topics/${'x'.repeat(600)}`), 400, 'MILLRACE_HTTP_BAD_REQUEST');
    });

    it('answers an unexpected failure with a 500 that leaks nothing', async () => {
      status = async () => {
        throw new Error('secret detail at /internal/path');
      };
      const body = expectProblem(await get('/status'), 500, 'MILLRACE_INTERNAL');
      expect(JSON.stringify(body)).not.toContain('secret');
      expect(JSON.stringify(body)).not.toContain('at ');
      status = async () => RUNNING;
    });
  });
});
