import { fileURLToPath } from 'node:url';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHttpServer } from '../../engine/http/server.js';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { silentLogger } from '../../engine/logger.js';
import { Metrics } from '../../engine/metrics/metrics.js';
import { LevelProjectionStore } from '../../engine/projections/level-store.js';
import { ProjectionManager, type ProjectionInfoView } from '../../engine/projections/manager.js';
import { defineProjection } from '../../engine/projections/projection.js';
import type { DiffEntry, ReplayStep, ReplayView } from '../../engine/projections/replay.js';
import type { EngineApi, EngineStatus } from '../../engine/runtime/status.js';
import { EmbeddedSchemaRegistry } from '../../engine/serde/embedded-registry.js';
import { tempDir } from '../support/runtime.js';

/**
 * The projection and replay routes, driven through `inject` against a real manager (EmbeddedLog and
 * LevelProjectionStore in a temp dir). Every response is also checked against the OpenAPI document the server
 * serves: its status must be listed for the operation, and its body must match the listed schema.
 */

const SCHEMAS_DIR = fileURLToPath(new URL('../../schemas', import.meta.url));
const T0 = Date.parse('2026-11-24T08:00:00.000Z');
/** An hour before the events is out of reach; every event of this file is well within it. */
const HISTORY_RETENTION_MS = 60_000;
/** Polls of a condition before a test gives up (each after a short sleep): a bound, not a timing threshold. */
const MAX_POLLS = 4_000;

const iso = (ms: number): string => new Date(ms).toISOString();

/** Closed, it holds the `clicks` handler mid-record, so that a runner is reliably "running" while a test looks. */
class Gate {
  #passed: Promise<void> = Promise.resolve();
  #open: () => void = () => undefined;

  close(): void {
    this.#passed = new Promise((resolve) => {
      this.#open = resolve;
    });
  }

  open(): void {
    this.#open();
  }

  get passed(): Promise<void> {
    return this.#passed;
  }
}
const gate = new Gate();

/** Per account: the balance and how many payments made it. */
const balances = defineProjection({
  name: 'balances',
  topics: ['payments'],
  async handle(event, ctx) {
    const { account, amount } = event.value as { account: string; amount: number };
    const before = (await ctx.get(account)) as { balance: number; events: number } | undefined;
    ctx.put(account, { balance: (before?.balance ?? 0) + amount, events: (before?.events ?? 0) + 1 });
  },
});

/** Per page: how many clicks; waits at the gate before each record. */
const clicks = defineProjection({
  name: 'clicks',
  topics: ['clicks'],
  async handle(event, ctx) {
    await gate.passed;
    const { page } = event.value as { page: string };
    ctx.put(page, (((await ctx.get(page)) as number | undefined) ?? 0) + 1);
  },
});

/** Keys a URL path must carry percent-encoded; the long ones are past the router's 512-character parameter cap. */
const AWKWARD_KEYS = [
  'acct/with slash',
  '/leading',
  'trailing/',
  'two words',
  'Zürich ✓ 東京',
  'a%2Fb literally',
  'a?b#c&d=e',
  'k'.repeat(1_000),
  '東'.repeat(341), // 1023 bytes of UTF-8
];
const PAGE_KEYS = Array.from({ length: 23 }, (_, i) => `page/${String(i).padStart(2, '0')}`);
const LATEST_EVENT_MS = T0 + 4_000;

const payment = (account: string, amount: number, timestamp: number) => ({
  topic: 'payments',
  key: Buffer.from(account),
  value: Buffer.from(JSON.stringify({ account, amount })),
  timestamp,
});
const PAYMENTS = [
  payment('tt', 5, T0 + 1_000),
  payment('tt', 3, T0 + 2_000),
  ...AWKWARD_KEYS.map((key) => payment(key, 1, T0 + 3_000)),
  ...PAGE_KEYS.map((key) => payment(key, 1, LATEST_EVENT_MS)),
  payment('pagex', 1, LATEST_EVENT_MS),
  payment('pag', 1, LATEST_EVENT_MS),
];

// ------------------------------------------------------------------ checking responses against the document

type Schema = { readonly [keyword: string]: unknown };
interface Operation {
  readonly operationId: string;
  readonly responses: Readonly<Record<string, { readonly content?: Readonly<Record<string, { readonly schema: Schema }>> }>>;
}
interface OpenApi {
  readonly paths: Readonly<Record<string, Readonly<Record<string, Operation>>>>;
  readonly components: { readonly schemas: Readonly<Record<string, Schema>> };
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Where `value` breaks `schema`, for the OpenAPI 3.0 keywords the document uses. Stricter than OpenAPI in one way: an
 * object schema that lists `properties` is closed unless it says otherwise (or is one part of an `allOf`), so that
 * every field an answer holds must be documented.
 */
function violations(doc: OpenApi, schema: Schema, value: unknown, at: string, partOfAllOf = false): string[] {
  const ref = schema['$ref'];
  if (typeof ref === 'string') return violations(doc, doc.components.schemas[ref.replace('#/components/schemas/', '')]!, value, at, partOfAllOf);
  const where = at === '' ? '/' : at;
  if (value === null) {
    const constrained = ['type', 'allOf', 'anyOf', 'oneOf', 'enum'].some((k) => k in schema);
    return schema['nullable'] === true || !constrained ? [] : [`${where}: null is not allowed`];
  }
  const out: string[] = [];
  const passes = (s: Schema): boolean => violations(doc, s, value, at).length === 0;
  for (const s of (schema['allOf'] ?? []) as Schema[]) out.push(...violations(doc, s, value, at, true));
  if (Array.isArray(schema['anyOf']) && !(schema['anyOf'] as Schema[]).some(passes)) out.push(`${where}: matches no schema of anyOf`);
  if (Array.isArray(schema['oneOf']) && (schema['oneOf'] as Schema[]).filter(passes).length !== 1) out.push(`${where}: matches not exactly one schema of oneOf`);
  if (Array.isArray(schema['enum']) && !schema['enum'].includes(value)) out.push(`${where}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema['enum'])}`);
  const type = schema['type'];
  const typed: Record<string, boolean> = {
    object: isObject(value),
    array: Array.isArray(value),
    string: typeof value === 'string',
    integer: Number.isInteger(value),
    number: typeof value === 'number',
    boolean: typeof value === 'boolean',
  };
  if (typeof type === 'string' && typed[type] !== true) return [...out, `${where}: expected ${type}, got ${JSON.stringify(value)?.slice(0, 80)}`];
  if (typeof value === 'number') {
    if (typeof schema['minimum'] === 'number' && value < schema['minimum']) out.push(`${where}: ${value} < ${schema['minimum']}`);
    if (typeof schema['maximum'] === 'number' && value > schema['maximum']) out.push(`${where}: ${value} > ${schema['maximum']}`);
  }
  if (typeof value === 'string') {
    if (typeof schema['minLength'] === 'number' && value.length < schema['minLength']) out.push(`${where}: shorter than ${schema['minLength']}`);
    if (typeof schema['pattern'] === 'string' && !new RegExp(schema['pattern']).test(value)) out.push(`${where}: does not match ${schema['pattern']}`);
  }
  if (Array.isArray(value) && isObject(schema['items'])) value.forEach((item, i) => out.push(...violations(doc, schema['items'] as Schema, item, `${at}/${i}`)));
  if (isObject(value)) {
    for (const name of (schema['required'] ?? []) as string[]) if (!Object.hasOwn(value, name)) out.push(`${at}/${name}: required`);
    const properties = (schema['properties'] ?? {}) as Record<string, Schema>;
    const additional = schema['additionalProperties'] ?? ('properties' in schema && !partOfAllOf ? false : undefined);
    for (const [name, v] of Object.entries(value)) {
      if (Object.hasOwn(properties, name)) out.push(...violations(doc, properties[name]!, v, `${at}/${name}`));
      else if (additional === false) out.push(`${at}/${name}: not allowed`);
      else if (isObject(additional)) out.push(...violations(doc, additional, v, `${at}/${name}`));
    }
  }
  return out;
}

/** The documented operation a request path reaches: of the templates that match it, the most literal. */
function operationFor(doc: OpenApi, method: string, path: string): Operation {
  const candidates = Object.entries(doc.paths)
    .filter(([template, item]) => {
      if (item[method.toLowerCase()] === undefined) return false;
      const pattern = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\}/g, '[^/]+');
      return new RegExp(`^${pattern}$`).test(path);
    })
    .sort(([a], [b]) => a.split('{').length - b.split('{').length);
  const found = candidates[0];
  if (found === undefined) throw new Error(`the OpenAPI document has no operation for ${method} ${path}`);
  return found[1][method.toLowerCase()]!;
}

// ------------------------------------------------------------------ the engine under test

describe('projection and replay routes', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let log: EmbeddedLog;
  let store: LevelProjectionStore;
  let manager: ProjectionManager;
  let app: FastifyInstance;
  let doc: OpenApi;

  beforeAll(async () => {
    dir = await tempDir('millrace-http-projections-');
    log = new EmbeddedLog({ path: `${dir.path}/log` });
    await log.open();
    await log.ensureTopic({ name: 'payments', partitions: 2 });
    await log.ensureTopic({ name: 'clicks', partitions: 1 });
    store = new LevelProjectionStore({ path: `${dir.path}/projections`, historyRetentionMs: HISTORY_RETENTION_MS });
    await store.open();
    manager = new ProjectionManager({ log, store, definitions: [balances, clicks], logger: silentLogger(), idleWaitMs: 5 });
    await manager.start();
    const registry = new EmbeddedSchemaRegistry(log);
    await registry.open();
    const status: EngineStatus = {
      state: 'running',
      startedAt: '2026-01-01T00:00:00.000Z',
      version: '0.0.0-test',
      log: { kind: 'embedded', location: dir.path },
      applications: [],
    };
    const engine: EngineApi = {
      log,
      registry,
      metrics: new Metrics({ defaultMetrics: false }),
      schemasDir: SCHEMAS_DIR,
      topologies: () => [],
      status: async () => status,
      projections: manager,
    };
    app = await buildHttpServer(engine);
    doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as OpenApi;
    await log.append(PAYMENTS);
    await settled('balances');
  });

  afterAll(async () => {
    gate.open();
    await app?.close();
    await manager?.stop();
    await store?.close();
    await log?.close();
    await dir?.remove();
  });

  /** Sends a request and checks the answer against the OpenAPI document. */
  async function call(method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown): Promise<LightMyRequestResponse> {
    const res = await app.inject({
      method,
      url,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, payload: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const path = url.split('?')[0]!;
    const documented = operationFor(doc, method, path).responses[String(res.statusCode)];
    expect(documented, `${method} ${path} answered ${res.statusCode}, which the OpenAPI document does not list: ${res.body.slice(0, 300)}`).toBeDefined();
    if (res.statusCode === 204) {
      expect(res.body).toBe('');
      return res;
    }
    const contentType = String(res.headers['content-type']);
    if (res.statusCode >= 400) expect(contentType).toMatch(/^application\/problem\+json/);
    const schema = documented!.content?.[contentType.split(';')[0]!]?.schema;
    expect(schema, `${method} ${path} ${res.statusCode} answered ${contentType}, which the document does not list`).toBeDefined();
    expect(violations(doc, schema!, res.json(), ''), `${method} ${path} ${res.statusCode}`).toEqual([]);
    return res;
  }
  const get = (url: string) => call('GET', url);
  const post = (url: string, body?: unknown) => call('POST', url, body);
  const del = (url: string) => call('DELETE', url);

  function expectProblem(res: LightMyRequestResponse, status: number, code: string): Record<string, unknown> {
    expect(res.statusCode, res.body).toBe(status);
    expect(String(res.headers['content-type'])).toMatch(/^application\/problem\+json/);
    const body = res.json() as Record<string, unknown>;
    expect(body).toMatchObject({ status, code, instance: expect.any(String), detail: expect.any(String) });
    return body;
  }

  async function info(name: string): Promise<ProjectionInfoView> {
    const listed = ((await get('/projections')).json() as { projections: ProjectionInfoView[] }).projections.find((p) => p.name === name);
    if (listed === undefined) throw new Error(`GET /projections does not list ${name}`);
    return listed;
  }

  /** Polls until `done` holds, a bounded number of times. */
  async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
    for (let i = 0; i < MAX_POLLS; i++) {
      const value = await read();
      if (done(value)) return value;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    throw new Error(`gave up waiting for ${what}: ${JSON.stringify(await read()).slice(0, 1000)}`);
  }

  /** Waits until GET /projections shows every partition of the projection's topics applied up to its end now. */
  async function settled(name: string): Promise<ProjectionInfoView> {
    const ends = new Map<string, number>();
    for (const topic of manager.info(name).topics) {
      for (const p of await log.partitionOffsets(topic)) ends.set(`${topic}/${p.partition}`, p.end);
    }
    return until(`${name} to apply every record`, () => info(name), (view) => {
      const at = new Map(view.partitions.map((p) => [`${p.topic}/${p.partition}`, p.position]));
      return view.lag === 0 && [...ends].every(([tp, end]) => at.get(tp) === end);
    });
  }

  async function finished(id: string): Promise<ReplayView> {
    return until(`replay ${id} to end`, async () => (await get(`/replays/${id}`)).json() as ReplayView, (view) => view.state !== 'running');
  }

  /** Every page of a cursor-paged GET, following `nextCursor`. */
  async function pages<T>(url: string): Promise<T[]> {
    const out: T[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 1_000; i++) {
      const res = await get(cursor === undefined ? url : `${url}${url.includes('?') ? '&' : '?'}cursor=${encodeURIComponent(cursor)}`);
      expect(res.statusCode, res.body).toBe(200);
      const page = res.json() as T & { nextCursor?: string };
      out.push(page);
      cursor = page.nextCursor;
      if (cursor === undefined) return out;
    }
    throw new Error(`${url} did not end within 1000 pages`);
  }

  // ------------------------------------------------------------------ GET /projections

  describe('GET /projections', () => {
    it('lists every projection with its namespace, partitions and lag', async () => {
      const listed = ((await get('/projections')).json() as { projections: ProjectionInfoView[] }).projections;
      expect(listed.map((p) => p.name)).toEqual(['balances', 'clicks']);
      const ends = await log.partitionOffsets('payments');
      expect(listed[0]).toMatchObject({
        name: 'balances',
        topics: ['payments'],
        store: 'leveldb',
        namespace: 'live',
        lag: 0,
        recordsApplied: PAYMENTS.length,
        deadLetters: 0,
        historyRetentionMs: HISTORY_RETENTION_MS,
        partitions: ends.map((p) => ({ topic: 'payments', partition: p.partition, position: p.end, end: p.end, lag: 0 })),
      });
    });

    it('shows as lag the records read but not yet applied, and 0 once they are', async () => {
      gate.close();
      try {
        await log.append(['home', 'home', 'about'].map((page, i) => ({ topic: 'clicks', key: null, value: Buffer.from(JSON.stringify({ page })), timestamp: T0 + i })));
        const held = await until('clicks to read its records', () => info('clicks'), (view) => view.lag > 0);
        expect(held).toMatchObject({ lag: 3, partitions: [{ topic: 'clicks', partition: 0, position: 0, end: 3, lag: 3 }] });
      } finally {
        gate.open();
      }
      expect(await settled('clicks')).toMatchObject({ lag: 0, recordsApplied: 3, partitions: [{ position: 3, end: 3, lag: 0 }] });
    });
  });

  // ------------------------------------------------------------------ GET /projections/:name/:key

  describe('GET /projections/:name/:key', () => {
    it('answers the latest value with the event time it is valid from', async () => {
      const res = await get('/projections/balances/tt');
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ projection: 'balances', key: 'tt', value: { balance: 8, events: 2 }, validFrom: iso(T0 + 2_000) });
    });

    it('answers as of a moment given in ms since the epoch or as an ISO time with a zone', async () => {
      const then = { projection: 'balances', key: 'tt', asOf: iso(T0 + 1_500), value: { balance: 5, events: 1 }, validFrom: iso(T0 + 1_000) };
      expect((await get(`/projections/balances/tt?asOf=${T0 + 1_500}`)).json()).toEqual(then);
      expect((await get(`/projections/balances/tt?asOf=${encodeURIComponent(iso(T0 + 1_500))}`)).json()).toEqual(then);
      expect((await get(`/projections/balances/tt?asOf=${encodeURIComponent('2026-11-24T09:00:01.500+01:00')}`)).json()).toEqual(then);
      expect((await get(`/projections/balances/tt?asOf=${T0 + 2_000}`)).json()).toMatchObject({ value: { balance: 8, events: 2 } });
    });

    it('answers an absent key with a 404 problem that names it, also before its first version', async () => {
      const body = expectProblem(await get('/projections/balances/nobody'), 404, 'MILLRACE_PROJECTION_KEY_ABSENT');
      expect(body).toMatchObject({ projection: 'balances', key: 'nobody' });
      expect(body).not.toHaveProperty('asOf');
      const before = expectProblem(await get(`/projections/balances/tt?asOf=${T0 + 999}`), 404, 'MILLRACE_PROJECTION_KEY_ABSENT');
      expect(before).toMatchObject({ key: 'tt', asOf: iso(T0 + 999) });
    });

    it('answers an unknown projection with a 404 problem', async () => {
      expectProblem(await get('/projections/nope/tt'), 404, 'MILLRACE_PROJECTION_UNKNOWN');
      expectProblem(await get('/projections/nope'), 404, 'MILLRACE_PROJECTION_UNKNOWN');
      expectProblem(await post('/projections/nope/rebuild'), 404, 'MILLRACE_PROJECTION_UNKNOWN');
    });

    it('answers a moment older than the retained history with 410 and where history starts, and answers that moment', async () => {
      const retainedFrom = iso(LATEST_EVENT_MS - HISTORY_RETENTION_MS);
      const hourBefore = T0 - 3_600_000;
      const body = expectProblem(await get(`/projections/balances/tt?asOf=${hourBefore}`), 410, 'MILLRACE_PROJECTION_NOT_RETAINED');
      expect(body).toMatchObject({ projection: 'balances', asOf: iso(hourBefore), retainedFrom });
      const scanned = expectProblem(await get(`/projections/balances?asOf=${encodeURIComponent(iso(hourBefore))}`), 410, 'MILLRACE_PROJECTION_NOT_RETAINED');
      expect(scanned).toMatchObject({ retainedFrom });
      // The boundary itself is answered (tt did not exist yet); a millisecond before it is not.
      expectProblem(await get(`/projections/balances/tt?asOf=${encodeURIComponent(retainedFrom)}`), 404, 'MILLRACE_PROJECTION_KEY_ABSENT');
      expectProblem(await get(`/projections/balances/tt?asOf=${Date.parse(retainedFrom) - 1}`), 410, 'MILLRACE_PROJECTION_NOT_RETAINED');
    });

    it('reads keys holding / (as %2F), spaces, reserved and non-ASCII characters, and keys longer than a route parameter', async () => {
      for (const key of AWKWARD_KEYS) {
        const res = await get(`/projections/balances/${encodeURIComponent(key)}`);
        expect(res.statusCode, `${key.slice(0, 40)}: ${res.body.slice(0, 300)}`).toBe(200);
        expect(res.json()).toEqual({ projection: 'balances', key, value: { balance: 1, events: 1 }, validFrom: iso(T0 + 3_000) });
      }
      const absent = expectProblem(await get(`/projections/balances/${encodeURIComponent('no such/key ✓')}`), 404, 'MILLRACE_PROJECTION_KEY_ABSENT');
      expect(absent['key']).toBe('no such/key ✓');
      // Everything after the name is the key, so a `/` sent unencoded is part of it too.
      const raw = await app.inject({ method: 'GET', url: '/projections/balances/acct/with%20slash' });
      expect(raw.json()).toMatchObject({ key: 'acct/with slash', value: { balance: 1, events: 1 } });
    });

    it('refuses an invalid asOf or key with a 422 problem', async () => {
      for (const asOf of ['yesterday', '2026-11-24T08:00:00', '2026-11-24', '-5', '1.5', '9000000000000000', '99999999999999999']) {
        expectProblem(await get(`/projections/balances/tt?asOf=${encodeURIComponent(asOf)}`), 422, 'MILLRACE_HTTP_VALIDATION');
      }
      expectProblem(await get(`/projections/balances/tt?asOf=${T0}&asOf=${T0}`), 422, 'MILLRACE_HTTP_VALIDATION');
      expectProblem(await get(`/projections/balances/${'k'.repeat(1_025)}`), 422, 'MILLRACE_HTTP_VALIDATION');
    });
  });

  // ------------------------------------------------------------------ GET /projections/:name

  describe('GET /projections/:name', () => {
    interface Page {
      projection: string;
      namespace: string;
      asOf?: string;
      items: Array<{ key: string; value: unknown; validFrom: string }>;
      nextCursor?: string;
    }

    it('pages through a prefix by nextCursor, returning every key under it exactly once, in key order', async () => {
      const all = await pages<Page>(`/projections/balances?prefix=${encodeURIComponent('page/')}&limit=5`);
      expect(all).toHaveLength(5);
      for (const page of all.slice(0, -1)) expect(page.items).toHaveLength(5);
      expect(all.at(-1)).not.toHaveProperty('nextCursor');
      expect(all.flatMap((p) => p.items.map((i) => i.key))).toEqual(PAGE_KEYS);
      expect(all[0]).toMatchObject({ projection: 'balances', namespace: 'live' });
      expect(all[0]!.items[0]).toEqual({ key: 'page/00', value: { balance: 1, events: 1 }, validFrom: iso(LATEST_EVENT_MS) });
      expect(all[0]).not.toHaveProperty('asOf');
    });

    it('scans every key, in the byte order of their UTF-8', async () => {
      const keys = (await pages<Page>('/projections/balances?limit=7')).flatMap((p) => p.items.map((i) => i.key));
      const expected = [...new Set(PAYMENTS.map((p) => p.key.toString('utf8')))].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      expect(keys).toEqual(expected);
    });

    it('scans as of a moment', async () => {
      const page = (await get(`/projections/balances?prefix=t&asOf=${T0 + 1_500}`)).json() as Page;
      expect(page).toEqual({ projection: 'balances', namespace: 'live', asOf: iso(T0 + 1_500), items: [{ key: 'tt', value: { balance: 5, events: 1 }, validFrom: iso(T0 + 1_000) }] });
      expect(((await get(`/projections/balances?asOf=${T0 + 999}`)).json() as Page).items).toEqual([]);
    });

    it('refuses an invalid limit, asOf, prefix or cursor with a 422 problem', async () => {
      const first = (await get(`/projections/balances?prefix=${encodeURIComponent('page/')}&limit=5`)).json() as Page;
      const otherPrefix = `/projections/balances?prefix=pag&cursor=${encodeURIComponent(first.nextCursor!)}`;
      for (const query of ['limit=0', 'limit=abc', 'limit=2.5', 'limit=-1', 'limit=1001', 'limit=1&limit=2', 'asOf=soon', 'asOf=9000000000000000', 'cursor=garbage', 'cursor=', `prefix=${encodeURIComponent('\u0000')}`]) {
        expectProblem(await get(`/projections/balances?${query}`), 422, 'MILLRACE_HTTP_VALIDATION');
      }
      expectProblem(await get(otherPrefix), 422, 'MILLRACE_HTTP_VALIDATION');
    });
  });

  // ------------------------------------------------------------------ POST /projections/:name/rebuild

  describe('POST /projections/:name/rebuild', () => {
    it('answers 202, refuses a second rebuild while one runs with 409, and switches over when caught up', async () => {
      const before = (await get('/projections/clicks/home')).json() as { value: unknown };
      expect(before.value).toBe(2);
      gate.close();
      try {
        const res = await post('/projections/clicks/rebuild');
        expect(res.statusCode).toBe(202);
        expect(res.headers['location']).toBe('/projections/clicks');
        expect(res.json()).toMatchObject({ projection: 'clicks', rebuild: { namespace: 'gen-2', state: 'running' } });
        expectProblem(await post('/projections/clicks/rebuild'), 409, 'MILLRACE_PROJECTION_BUSY');
        expect(await info('clicks')).toMatchObject({ namespace: 'live', rebuild: { namespace: 'gen-2', state: 'running' } });
        // The live read model keeps serving meanwhile.
        expect(((await get('/projections/clicks/home')).json() as { value: unknown }).value).toBe(2);
      } finally {
        gate.open();
      }
      const switched = await until('clicks to switch to gen-2', () => info('clicks'), (view) => view.namespace === 'gen-2');
      expect(switched.rebuild).toMatchObject({ namespace: 'gen-2', state: 'switched', finishedAt: expect.any(String) });
      expect((await get('/projections/clicks/home')).json()).toMatchObject({ value: 2 });
      expect((await get('/projections/clicks')).json()).toMatchObject({ namespace: 'gen-2', items: [{ key: 'about', value: 1 }, { key: 'home', value: 2 }] });
    });
  });

  // ------------------------------------------------------------------ replays

  describe('replays', () => {
    it('refuses a body that is not a replay request with 422, and bad bounds with 400 MILLRACE_REPLAY_INVALID', async () => {
      for (const body of [[], 'null', { projection: '' }, { projection: 'balances', extra: 1 }, { projection: 'balances', from: -1 }, { projection: 'balances', to: true }, { projection: 'balances', from: 1.5 }]) {
        expectProblem(await post('/replays', body), 422, 'MILLRACE_HTTP_VALIDATION');
      }
      expectProblem(await post('/replays', '{"projection":'), 400, 'MILLRACE_HTTP_MALFORMED_JSON');
      for (const bounds of [{ from: 'yesterday' }, { to: '2026-11-24' }, { from: '-5' }, { to: '2026-13-45T99:00:00Z' }]) {
        expectProblem(await post('/replays', { projection: 'balances', ...bounds }), 400, 'MILLRACE_REPLAY_INVALID');
      }
      // Neither a projection nor a topology, or both.
      expectProblem(await post('/replays', {}), 400, 'MILLRACE_REPLAY_INVALID');
      expectProblem(await post('/replays', { projection: 'balances', topology: 'pipeline' }), 400, 'MILLRACE_REPLAY_INVALID');
      // This engine loads no replay code.
      expectProblem(await post('/replays', { projection: 'balances', code: './elsewhere.js' }), 400, 'MILLRACE_REPLAY_INVALID');
      expectProblem(await post('/replays', { projection: 'nope' }), 404, 'MILLRACE_PROJECTION_UNKNOWN');
      expect(((await get('/replays')).json() as { replays: unknown[] }).replays).toEqual([]);
    });

    it('replays with the live code: steps page by cursor, and the diff is empty; DELETE removes it', async () => {
      const created = await post('/replays', { projection: 'balances' });
      expect(created.statusCode).toBe(201);
      const { id } = created.json() as ReplayView;
      expect(created.headers['location']).toBe(`/replays/${id}`);

      const view = await finished(id);
      const distinctKeys = new Set(PAYMENTS.map((p) => p.key.toString('utf8'))).size;
      expect(view).toMatchObject({
        id,
        projection: 'balances',
        state: 'finished',
        request: { projection: 'balances' },
        seededAsOfMs: null,
        diffAsOfMs: LATEST_EVENT_MS,
        progress: { records: PAYMENTS.length, total: PAYMENTS.length, applied: PAYMENTS.length, errors: 0, percent: 100 },
        steps: PAYMENTS.length,
        stepsTruncated: false,
        keysChanged: distinctKeys,
      });
      expect(((await get('/replays')).json() as { replays: ReplayView[] }).replays.map((r) => r.id)).toContain(id);

      const stepPages = await pages<{ steps: ReplayStep[] }>(`/replays/${id}/steps?limit=4`);
      expect(stepPages).toHaveLength(Math.ceil(PAYMENTS.length / 4));
      const steps = stepPages.flatMap((p) => p.steps);
      expect(steps.map((s) => s.seq)).toEqual(PAYMENTS.map((_, i) => i));
      const tt = steps.filter((s) => s.event.key === 'tt');
      expect(tt).toMatchObject([
        { event: { topic: 'payments', timestamp: iso(T0 + 1_000), value: { account: 'tt', amount: 5 } }, before: { tt: null }, after: { tt: { balance: 5, events: 1 } } },
        { event: { timestamp: iso(T0 + 2_000) }, before: { tt: { balance: 5, events: 1 } }, after: { tt: { balance: 8, events: 2 } }, outputs: [{ type: 'put', key: 'tt', value: { balance: 8, events: 2 } }] },
      ]);

      const diffPages = await pages<{ asOf: string | null; entries: DiffEntry[] }>(`/replays/${id}/diff?limit=3`);
      expect(diffPages).toHaveLength(Math.ceil(distinctKeys / 3));
      for (const page of diffPages) expect(page).toMatchObject({ asOf: iso(LATEST_EVENT_MS), entries: [] });

      for (const query of ['limit=0', 'limit=x', 'cursor=garbage']) {
        expectProblem(await get(`/replays/${id}/steps?${query}`), 422, 'MILLRACE_HTTP_VALIDATION');
        expectProblem(await get(`/replays/${id}/diff?${query}`), 422, 'MILLRACE_HTTP_VALIDATION');
      }

      expect((await del(`/replays/${id}`)).statusCode).toBe(204);
      expectProblem(await get(`/replays/${id}`), 404, 'MILLRACE_REPLAY_UNKNOWN');
      expectProblem(await get(`/replays/${id}/steps`), 404, 'MILLRACE_REPLAY_UNKNOWN');
      expectProblem(await del(`/replays/${id}`), 404, 'MILLRACE_REPLAY_UNKNOWN');
      expect(((await get('/replays')).json() as { replays: ReplayView[] }).replays.map((r) => r.id)).not.toContain(id);
    });

    it('refuses the diff of a running replay with 400, and more running replays than allowed with 429', async () => {
      gate.close();
      const ids: string[] = [];
      try {
        for (let i = 0; i < manager.replays.limits.maxRunning; i++) {
          const res = await post('/replays', { projection: 'clicks' });
          expect(res.statusCode).toBe(201);
          ids.push((res.json() as ReplayView).id);
        }
        expectProblem(await post('/replays', { projection: 'clicks' }), 429, 'MILLRACE_REPLAY_LIMIT');
        expect((await get(`/replays/${ids[0]}`)).json()).toMatchObject({ state: 'running' });
        expectProblem(await get(`/replays/${ids[0]}/diff`), 400, 'MILLRACE_REPLAY_INVALID');
      } finally {
        gate.open();
      }
      for (const id of ids) {
        expect(await finished(id)).toMatchObject({ state: 'finished', steps: 3, keysChanged: 2 });
        expect(((await get(`/replays/${id}/diff`)).json() as { entries: DiffEntry[] }).entries).toEqual([]);
        expect((await del(`/replays/${id}`)).statusCode).toBe(204);
      }
    });

    it('answers an unknown replay with a 404 problem', async () => {
      expectProblem(await get('/replays/nope'), 404, 'MILLRACE_REPLAY_UNKNOWN');
      expectProblem(await get('/replays/nope/steps'), 404, 'MILLRACE_REPLAY_UNKNOWN');
      expectProblem(await get('/replays/nope/diff'), 404, 'MILLRACE_REPLAY_UNKNOWN');
      expectProblem(await del('/replays/nope'), 404, 'MILLRACE_REPLAY_UNKNOWN');
    });
  });

  // ------------------------------------------------------------------ OpenAPI

  it('lists the projection and replay operations in the OpenAPI document, each once', () => {
    const operations = {
      '/projections': ['get'],
      '/projections/{name}': ['get'],
      '/projections/{name}/{key}': ['get'],
      '/projections/{name}/rebuild': ['post'],
      '/replays': ['get', 'post'],
      '/replays/{id}': ['get', 'delete'],
      '/replays/{id}/steps': ['get'],
      '/replays/{id}/diff': ['get'],
    };
    for (const [path, methods] of Object.entries(operations)) {
      expect(Object.keys(doc.paths[path] ?? {}).sort(), path).toEqual([...methods].sort());
    }
    const ids = Object.values(doc.paths).flatMap((item) => Object.values(item).map((op) => op.operationId));
    expect(new Set(ids).size).toBe(ids.length);
  });
});
