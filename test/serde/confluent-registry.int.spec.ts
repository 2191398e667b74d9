import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type avro from 'avsc';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isMillraceError, type MillraceError } from '../../engine/errors.js';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import {
  FRAME_HEADER_BYTES,
  avroSerde,
  decodeFramed,
  encodeFramed,
  frameSchemaId,
  validateAndEncode,
} from '../../engine/serde/avro-serde.js';
import { ConfluentSchemaRegistry, stableSchemaText } from '../../engine/serde/confluent-registry.js';
import { EmbeddedSchemaRegistry } from '../../engine/serde/embedded-registry.js';
import type { SchemaRegistry } from '../../engine/serde/registry.js';
import { loadSchemaFixtures, registerSchemaFolder } from '../../engine/serde/schema-files.js';
import { describeWithRegistry, uniqueSubject } from '../support/registry.js';

const SCHEMAS = fileURLToPath(new URL('../../schemas', import.meta.url));
const context = { topic: 'payments', isKey: false };
const code = (c: string) => expect.objectContaining({ code: c });

const record = (fields: unknown[], name = 'Payment'): avro.Schema =>
  ({ type: 'record', name, namespace: 'dev.millrace.test', fields }) as avro.Schema;

const v1 = record([
  { name: 'id', type: 'string' },
  { name: 'amount', type: { type: 'double', minimum: 0 } },
]);
const v2 = record([
  { name: 'id', type: 'string' },
  { name: 'amount', type: { type: 'double', minimum: 0 } },
  { name: 'country', type: ['null', 'string'], default: null },
]);

// The schema and the expectations of test/serde/avro-serde.unit.spec.ts, checked here against both registries.
const purchase: avro.Schema = {
  type: 'record',
  name: 'Purchase',
  namespace: 'dev.millrace.test',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'user', type: 'string' },
    { name: 'amount', type: { type: 'double', minimum: 0, maximum: 1_000_000 } },
    { name: 'at', type: { type: 'string', logicalType: 'iso-datetime' } },
    { name: 'ip', type: { type: 'string', logicalType: 'ip' } },
    {
      name: 'items',
      type: {
        type: 'array',
        items: {
          type: 'record',
          name: 'Item',
          fields: [
            { name: 'sku', type: 'string' },
            { name: 'quantity', type: { type: 'int', minimum: 1 } },
            { name: 'ip', type: { type: 'string', logicalType: 'ipv4' } },
          ],
        },
      },
      default: [],
    },
    { name: 'proxy', type: ['null', { type: 'string', logicalType: 'ipv6' }], default: null },
  ],
} as avro.Schema;

const good = {
  id: 'p-1',
  user: 'ada',
  amount: 42.5,
  at: '2026-01-02T03:04:05.123Z',
  ip: '203.0.113.7',
  items: [{ sku: 'A-1', quantity: 2, ip: '198.51.100.1' }],
  proxy: null,
};

/** Values and the issues Millrace reports for them, whichever registry the schema came from. */
const VALIDATION_CASES: [string, unknown, { path: string; message: string }[]][] = [
  ['a valid event', good, []],
  ['an IPv6 address and a proxy', { ...good, proxy: '2001:db8::1', ip: '::1' }, []],
  ['a date without a time', { ...good, at: '2026-01-02' }, [{ path: '/at', message: 'expected an ISO 8601 date-time, got "2026-01-02"' }]],
  ['a 29 February in a common year', { ...good, at: '2023-02-29T00:00:00Z' }, [{ path: '/at', message: 'expected an ISO 8601 date-time, got "2023-02-29T00:00:00Z"' }]],
  ['a bad IP address', { ...good, ip: '300.1.2.3' }, [{ path: '/ip', message: 'expected an IP address, got "300.1.2.3"' }]],
  ['a host name for an IP', { ...good, ip: 'localhost' }, [{ path: '/ip', message: 'expected an IP address, got "localhost"' }]],
  ['an IPv6 address where IPv4 is declared', { ...good, items: [{ sku: 'C', quantity: 1, ip: '::1' }] }, [{ path: '/items/0/ip', message: 'expected an IPv4 address, got "::1"' }]],
  ['a negative amount', { ...good, amount: -5 }, [{ path: '/amount', message: '-5 is below the minimum 0' }]],
  ['an amount above the maximum', { ...good, amount: 1_500_000 }, [{ path: '/amount', message: '1500000 is above the maximum 1000000' }]],
  ['a quantity below the minimum', { ...good, items: [{ sku: 'B', quantity: 0, ip: '1.2.3.4' }] }, [{ path: '/items/0/quantity', message: '0 is below the minimum 1' }]],
  ['an IPv4 proxy', { ...good, proxy: '10.0.0.1' }, [{ path: '/proxy', message: 'expected an IPv6 address, got "10.0.0.1"' }]],
  [
    'several problems at once',
    { ...good, at: 'yesterday', amount: -1, foo: 1 },
    [
      { path: '/foo', message: 'unknown field "foo"' },
      { path: '/amount', message: '-1 is below the minimum 0' },
      { path: '/at', message: 'expected an ISO 8601 date-time, got "yesterday"' },
    ],
  ],
];

/** Schemas Millrace refuses (test/serde/embedded-registry.unit.spec.ts), before anything reaches a registry. */
const INVALID_SCHEMAS: [string, avro.Schema, RegExp | undefined][] = [
  ['a record without fields', { type: 'record', name: 'X' } as avro.Schema, undefined],
  ['an unknown type', { type: 'nope' } as unknown as avro.Schema, undefined],
  ['a range on a string', { type: 'string', minimum: 1 } as avro.Schema, undefined],
  ['an IP logical type on an int', { type: 'int', logicalType: 'ipv4' } as avro.Schema, undefined],
  ['an annotation on the field', record([{ name: 'at', type: 'string', logicalType: 'iso-datetime' }]), /put it on the field's type/],
  ['a default outside the range', record([{ name: 'n', type: { type: 'int', minimum: 0 }, default: -1 }]), /default of field n.*-1 is below the minimum 0/],
];

/**
 * The schema with a doc of its own: the registry is shared by every test (and may be a developer's, reused across
 * runs), and an identical schema registered anywhere before would already have an id.
 */
function own(schema: avro.Schema): avro.Schema {
  return { ...(schema as object), doc: `test schema ${randomUUID()}` } as avro.Schema;
}

/** The same schema with every object's keys in reverse order. */
function reverseKeys<T>(node: T): T {
  if (Array.isArray(node)) return node.map(reverseKeys) as T;
  if (typeof node !== 'object' || node === null) return node;
  return Object.fromEntries(Object.entries(node).reverse().map(([k, v]) => [k, reverseKeys(v)])) as T;
}

async function rejection(promise: Promise<unknown>): Promise<MillraceError> {
  try {
    await promise;
  } catch (err) {
    if (isMillraceError(err)) return err;
    throw err;
  }
  throw new Error('expected a MillraceError');
}

function thrown(fn: () => unknown): MillraceError {
  try {
    fn();
  } catch (err) {
    if (isMillraceError(err)) return err;
    throw err;
  }
  throw new Error('expected a MillraceError');
}

async function rawRequest(url: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(url + path, {
    method,
    headers: { 'Content-Type': 'application/vnd.schemaregistry.v1+json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
  return JSON.parse(text) as unknown;
}

describeWithRegistry('ConfluentSchemaRegistry against a real registry', (url) => {
  let registry: ConfluentSchemaRegistry;

  beforeEach(async () => {
    registry = new ConfluentSchemaRegistry({ url });
    await registry.open();
  });

  it('numbers versions per subject, returns an existing registration, and answers every lookup', async () => {
    const subject = uniqueSubject('payments');
    const [s1, s2] = [own(v1), own(v2)];
    const a1 = await registry.register(subject, s1);
    const a2 = await registry.register(subject, s2);
    expect([a1.version, a2.version]).toEqual([1, 2]);
    expect(a2.id).not.toBe(a1.id);
    expect(a1).toMatchObject({ subject, schema: s1 });
    expect(a1.type.name).toBe('dev.millrace.test.Payment');
    // The same schema again, also written with its keys in another order: its existing registration.
    expect(await registry.register(subject, s1)).toBe(a1);
    const reordered = reverseKeys(s2);
    expect(JSON.stringify(reordered)).not.toBe(JSON.stringify(s2));
    expect(await registry.register(subject, reordered)).toBe(a2);
    expect((await registry.versions(subject)).map((s) => [s.version, s.id])).toEqual([
      [1, a1.id],
      [2, a2.id],
    ]);
    expect(await registry.latest(subject)).toBe(a2);
    expect(registry.cachedLatest(subject)).toBe(a2);
    expect(await registry.subjects()).toContain(subject);
    expect(await registry.byId(a2.id)).toBe(a2);
    expect(registry.cachedById(a1.id)).toBe(a1);
  });

  it('refuses a schema that is not BACKWARD compatible with MILLRACE_SCHEMA_INCOMPATIBLE', async () => {
    const subject = uniqueSubject('payments');
    await registry.register(subject, v1);
    await registry.register(subject, v2);
    const noDefault = record([
      { name: 'id', type: 'string' },
      { name: 'amount', type: { type: 'double', minimum: 0 } },
      { name: 'country', type: ['null', 'string'], default: null },
      { name: 'channel', type: 'string' },
    ]);
    await expect(registry.register(subject, noDefault)).rejects.toThrow(code('MILLRACE_SCHEMA_INCOMPATIBLE'));
    const retyped = record([
      { name: 'id', type: 'int' },
      { name: 'amount', type: { type: 'double', minimum: 0 } },
      { name: 'country', type: ['null', 'string'], default: null },
    ]);
    const err = await rejection(registry.register(subject, retyped));
    expect(err).toMatchObject({ code: 'MILLRACE_SCHEMA_INCOMPATIBLE', retriable: false, status: 409 });
    expect(err.message).toContain(subject);
    // Nothing was added for the refused ones; compatible changes still pass.
    expect((await registry.versions(subject)).map((s) => s.version)).toEqual([1, 2]);
    expect((await registry.register(subject, record([{ name: 'id', type: 'string' }]))).version).toBe(3);
  });

  it('registers unnamed schemas too, and holds their subjects to BACKWARD', async () => {
    const subject = uniqueSubject('payments', 'key');
    const key = await registry.register(subject, 'string');
    expect(key).toMatchObject({ subject, version: 1, schema: 'string' });
    expect(await rawRequest(url, 'GET', `/config/${subject}`)).toMatchObject({ compatibilityLevel: 'BACKWARD' });
    await expect(registry.register(subject, 'int')).rejects.toThrow(code('MILLRACE_SCHEMA_INCOMPATIBLE'));
    const list = await registry.register(uniqueSubject('amounts'), { type: 'array', items: { type: 'double', minimum: 0 } });
    expect(list.version).toBe(1);
    const serde = avroSerde<number[]>(registry, list.subject);
    expect(serde.deserialize(serde.serialize([1, 2.5], context), context)).toEqual([1, 2.5]);
    expect(thrown(() => serde.serialize([-1], context)).code).toBe('MILLRACE_SCHEMA_VIOLATION');
  });

  it('refuses to register under a subject whose compatibility is not BACKWARD', async () => {
    const subject = uniqueSubject('loose');
    await registry.register(subject, v1);
    await rawRequest(url, 'PUT', `/config/${subject}`, { compatibility: 'NONE' });
    await expect(registry.register(subject, v2)).rejects.toThrow(code('MILLRACE_CONFIG_INVALID'));
    await expect(registry.register(subject, v2)).rejects.toThrow(/compatibility NONE; Millrace needs BACKWARD/);
    await rawRequest(url, 'PUT', `/config/${subject}`, { compatibility: 'BACKWARD' });
    expect((await registry.register(subject, v2)).version).toBe(2);
  });

  it('reuses the id of an identical schema registered under another subject', async () => {
    const schema = own(v1);
    const a = await registry.register(uniqueSubject('payments'), schema);
    const b = await registry.register(uniqueSubject('payments-copy'), schema);
    expect(b.version).toBe(1);
    expect(b.id).toBe(a.id);
    expect(b.type).toBe(a.type);
    // The id answers with its first registration, here and in a registry that never saw either.
    expect(await registry.byId(a.id)).toBe(a);
    const other = new ConfluentSchemaRegistry({ url });
    expect(await other.byId(a.id)).toMatchObject({ id: a.id, subject: a.subject, version: 1 });
  });

  it('refuses invalid schemas with MILLRACE_SCHEMA_INVALID before sending them', async () => {
    const subject = uniqueSubject('invalid');
    for (const [what, schema, message] of INVALID_SCHEMAS) {
      const err = await rejection(registry.register(subject, schema));
      expect(err, what).toMatchObject({ code: 'MILLRACE_SCHEMA_INVALID' });
      if (message) expect(err.message, what).toMatch(message);
    }
    expect(await registry.subjects()).not.toContain(subject);
    expect(await registry.versions(subject)).toEqual([]);
  });

  it('answers unknown ids and subjects', async () => {
    await expect(registry.byId(2_000_000_000)).rejects.toThrow(code('MILLRACE_SCHEMA_UNKNOWN'));
    expect(await registry.latest(uniqueSubject('nothing'))).toBeUndefined();
    expect(await registry.versions(uniqueSubject('nothing'))).toEqual([]);
    expect(registry.cachedById(2_000_000_000)).toBeUndefined();
  });

  it('counts Millrace’s annotations when telling schemas apart', async () => {
    const subject = uniqueSubject('ranges');
    const withRange = (minimum: number) => record([{ name: 'n', type: { type: 'double', minimum } }], 'N');
    const s0 = await registry.register(subject, withRange(0));
    const s1 = await registry.register(subject, withRange(1));
    expect(s1.version).toBe(2);
    expect(s1.id).not.toBe(s0.id);
    const ip = (logicalType: string) => record([{ name: 'ip', type: { type: 'string', logicalType } }], 'Ip');
    const ipSubject = uniqueSubject('ips');
    expect((await registry.register(ipSubject, ip('ip'))).version).toBe(1);
    expect((await registry.register(ipSubject, ip('ipv4'))).version).toBe(2);
    // What the registry stores is what Millrace parses back: the annotations survive the round trip.
    const fresh = new ConfluentSchemaRegistry({ url });
    const back = await fresh.byId(s1.id);
    expect(back.schema).toEqual(withRange(1));
    expect(thrown(() => validateAndEncode(fresh, subject, { n: 0.5 })).code).toBe('MILLRACE_SCHEMA_UNKNOWN');
    await fresh.latest(subject);
    expect(validateAndEncode(fresh, subject, { n: 0.5 })).toMatchObject({
      ok: false,
      issues: [{ path: '/n', message: '0.5 is below the minimum 1' }],
    });
  });

  it('registers concurrent calls one at a time, in call order', async () => {
    const subject = uniqueSubject('grow');
    const schemas = Array.from({ length: 6 }, (_, i) =>
      record([{ name: 'id', type: 'string' }, ...Array.from({ length: i }, (_, j) => ({ name: `f${j}`, type: 'int', default: 0 }))]),
    );
    const results = await Promise.all(schemas.map((s) => registry.register(subject, s)));
    expect(results.map((r) => r.version)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(new Set(results.map((r) => r.id)).size).toBe(6);
  });

  it('preloads the latest version of every subject on open, so the synchronous lookups answer', async () => {
    const subject = uniqueSubject('preload');
    await registry.register(subject, v1);
    const latest = await registry.register(subject, v2);
    const opened = new ConfluentSchemaRegistry({ url });
    expect(opened.cachedLatest(subject)).toBeUndefined();
    await opened.open();
    expect(opened.cachedLatest(subject)).toMatchObject({ id: latest.id, version: 2, schema: v2 });
    expect(opened.cachedById(latest.id)?.version).toBe(2);
    // Only the listed subjects, when they are listed.
    const other = uniqueSubject('preload-other');
    await registry.register(other, v1);
    const some = new ConfluentSchemaRegistry({ url, subjects: [subject] });
    await some.open();
    expect(some.cachedLatest(subject)?.version).toBe(2);
    expect(some.cachedLatest(other)).toBeUndefined();
  });

  describe('avroSerde through the registry', () => {
    it('writes the Confluent framing and reads it back', async () => {
      const subject = uniqueSubject('purchases');
      const schema = await registry.register(subject, purchase);
      const serde = avroSerde<typeof good>(registry, subject);
      const bytes = serde.serialize(good, context);
      expect(bytes[0]).toBe(0);
      expect(frameSchemaId(bytes)).toBe(schema.id);
      expect(bytes.subarray(FRAME_HEADER_BYTES).equals(schema.type.toBuffer(good))).toBe(true);
      expect(serde.prepare!(bytes, context)).toBeUndefined();
      expect(serde.deserialize(bytes, context)).toEqual(good);
      expect(decodeFramed(registry, bytes)).toEqual(good);
    });

    it('reads an event written with v1 as v2: the new optional field comes out null', async () => {
      const subject = uniqueSubject('payments');
      const serde = avroSerde<Record<string, unknown>>(registry, subject);
      const first = await registry.register(subject, own(v1));
      const old = serde.serialize({ id: 'p-1', amount: 12.5 }, context);
      expect(frameSchemaId(old)).toBe(first.id);
      await registry.register(subject, own(v2));
      expect(serde.deserialize(old, context)).toEqual({ id: 'p-1', amount: 12.5, country: null });
      // In another process's registry, which learns both ids only from the registry.
      const reader = new ConfluentSchemaRegistry({ url });
      await reader.open();
      const again = avroSerde<Record<string, unknown>>(reader, subject);
      const pending = again.prepare!(old, context);
      expect(pending).toBeInstanceOf(Promise);
      await pending;
      expect(again.deserialize(old, context)).toEqual({ id: 'p-1', amount: 12.5, country: null });
      expect(again.deserialize(again.serialize({ id: 'p-2', amount: 1, country: 'NO' }, context), context)).toEqual({
        id: 'p-2',
        amount: 1,
        country: 'NO',
      });
    });

    it('prepare fetches a schema id that a second client registered, and only then', async () => {
      const subject = uniqueSubject('purchases');
      const writer = new ConfluentSchemaRegistry({ url });
      const writerSerde = avroSerde<typeof good>(writer, subject);
      const serde = avroSerde<typeof good>(registry, subject);
      const schema = await writer.register(subject, own(purchase));
      const bytes = writerSerde.serialize(good, context);
      expect(registry.cachedById(schema.id)).toBeUndefined();
      expect(thrown(() => serde.deserialize(bytes, context)).code).toBe('MILLRACE_DESERIALIZATION');
      const pending = serde.prepare!(bytes, context);
      expect(pending).toBeInstanceOf(Promise);
      await pending;
      expect(registry.cachedById(schema.id)).toMatchObject({ id: schema.id, subject, version: 1 });
      expect(registry.cachedLatest(subject)?.id).toBe(schema.id);
      expect(serde.prepare!(bytes, context)).toBeUndefined();
      expect(serde.deserialize(bytes, context)).toEqual(good);
      // Framed with an id the registry does not have: a bad record.
      await expect(serde.prepare!(Buffer.from([0, 0x77, 0x35, 0x94, 0x00, 0x02]), context)).rejects.toThrow(
        code('MILLRACE_DESERIALIZATION'),
      );
    });
  });

  describe('validation is the same as with the embedded registry', () => {
    let dir: string;
    let log: EmbeddedLog;
    let embedded: EmbeddedSchemaRegistry;
    const subject = uniqueSubject('purchases');

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'millrace-confluent-registry-'));
      log = new EmbeddedLog({ path: dir });
      await log.open();
      embedded = new EmbeddedSchemaRegistry(log);
      await embedded.open();
      await embedded.register(subject, purchase);
      await new ConfluentSchemaRegistry({ url }).register(subject, purchase);
    });

    afterAll(async () => {
      await log.close();
      await rm(dir, { recursive: true, force: true });
    });

    it.each(VALIDATION_CASES)('%s', async (_, value, issues) => {
      await registry.latest(subject);
      const results = ([embedded, registry] as SchemaRegistry[]).map((r) => validateAndEncode(r, subject, value));
      for (const result of results) {
        if (issues.length === 0) expect(result.ok).toBe(true);
        else expect(result).toMatchObject({ ok: false, issues });
      }
      const serde = avroSerde(registry, subject);
      if (issues.length === 0) {
        expect(serde.deserialize(serde.serialize(value, context), context)).toEqual(value);
      } else {
        const err = thrown(() => serde.serialize(value, context));
        expect(err.code).toBe('MILLRACE_SCHEMA_VIOLATION');
        expect(err.details?.['issues']).toEqual(issues);
      }
      // Both registries encode a valid value to the same Avro body.
      const [fromEmbedded, fromRemote] = results;
      if (fromEmbedded?.ok && fromRemote?.ok) {
        expect(fromRemote.bytes.subarray(FRAME_HEADER_BYTES)).toEqual(fromEmbedded.bytes.subarray(FRAME_HEADER_BYTES));
      }
    });
  });

  describe('schemas/example-event', () => {
    it('registers every version in order, and the golden fixtures encode and decode through it', async () => {
      const subject = uniqueSubject('example-events');
      const registered = await registerSchemaFolder(registry, subject, SCHEMAS, 'example-event');
      expect(registered.map((r) => r.version)).toEqual([1, 2]);
      expect(registered[0]!.type.name).toBe('dev.millrace.examples.ExampleEvent');
      // Registering the folder again changes nothing.
      expect(await registerSchemaFolder(registry, subject, SCHEMAS, 'example-event')).toEqual(registered);
      const serde = avroSerde(registry, subject);
      const fixtures = await loadSchemaFixtures(SCHEMAS, 'example-event');
      expect(fixtures.length).toBeGreaterThan(0);
      for (const fixture of fixtures) {
        const writer = registered[fixture.schemaVersion - 1]!;
        const framed = encodeFramed(writer, fixture.value);
        if (fixture.avroHex !== undefined) {
          expect(framed.subarray(FRAME_HEADER_BYTES).toString('hex'), fixture.file).toBe(fixture.avroHex);
        }
        expect(decodeFramed(registry, framed), fixture.file).toEqual(fixture.value);
        expect(serde.deserialize(framed, context), fixture.file).toEqual(fixture.readAsLatest ?? fixture.value);
      }
      // The v1 schema's checks hold: a negative amount, a bad date-time, a bad IP.
      const bad = validateAndEncode(registry, subject, { id: 'e', user: 'u', amount: -1, at: '2026-01-02', ip: 'nowhere', country: null });
      expect(bad.ok ? [] : bad.issues.map((i) => i.path)).toEqual(['/amount', '/at', '/ip']);
    });
  });
});

/** A stand-in for a registry that fails, to check how each failure is reported. Needs no real registry. */
describe('ConfluentSchemaRegistry failures', () => {
  let server: Server;
  let base: string;
  let answer: (path: string) => { status: number; body: unknown } | 'hang';

  beforeAll(async () => {
    server = createServer((req, res) => {
      const reply = answer(req.url ?? '');
      if (reply === 'hang') return;
      res.writeHead(reply.status, { 'Content-Type': 'application/vnd.schemaregistry.v1+json' });
      res.end(JSON.stringify(reply.body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/apis/ccompat/v7`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  afterEach(() => {
    answer = () => ({ status: 500, body: { error_code: 50001, message: 'unset' } });
  });

  it('maps the registry’s statuses to Millrace codes', async () => {
    const registry = new ConfluentSchemaRegistry({ url: base });
    answer = () => ({ status: 404, body: { error_code: 40403, message: 'Schema not found' } });
    await expect(registry.byId(7)).rejects.toThrow(code('MILLRACE_SCHEMA_UNKNOWN'));
    answer = (path) =>
      path.startsWith('/apis/ccompat/v7/config/')
        ? { status: 404, body: { error_code: 40401, message: 'Subject not found' } }
        : { status: 422, body: { error_code: 42201, message: 'Invalid schema' } };
    await expect(registry.register('x-value', v1)).rejects.toThrow(code('MILLRACE_SCHEMA_INVALID'));
    await expect(registry.register('x-value', 'string')).rejects.toThrow(code('MILLRACE_SCHEMA_INVALID'));
    answer = () => ({ status: 500, body: { error_code: 50001, message: 'Error in the backend data store' } });
    const failed = await rejection(registry.byId(7));
    expect(failed).toMatchObject({ code: 'MILLRACE_SCHEMA_REGISTRY_UNAVAILABLE', retriable: true });
    expect(failed.message).toContain(base);
    answer = () => ({ status: 401, body: { error_code: 40101, message: 'Unauthorized' } });
    expect(await rejection(registry.subjects())).toMatchObject({ code: 'MILLRACE_INTERNAL', retriable: false });
    answer = () => ({ status: 200, body: { surprise: true } });
    await expect(registry.subjects()).rejects.toThrow(code('MILLRACE_INTERNAL'));
  });

  it('reports a registry that does not answer as retriable, naming the URL', async () => {
    answer = () => 'hang';
    const slow = new ConfluentSchemaRegistry({ url: base, requestTimeoutMs: 300 });
    for (const attempt of [() => slow.byId(1), () => slow.register('x-value', v1), () => slow.open()]) {
      const err = await rejection(attempt());
      expect(err).toMatchObject({ code: 'MILLRACE_SCHEMA_REGISTRY_UNAVAILABLE', retriable: true });
      expect(err.message).toMatch(new RegExp(`schema registry at ${base.replaceAll('.', '\\.')}: .*no answer`));
    }
    // Nothing listens: refused at once.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const gone = new ConfluentSchemaRegistry({ url: `http://127.0.0.1:${port}` });
    for (const attempt of [() => gone.byId(1), () => gone.register('x-value', v1), () => gone.register('x-key', 'string')]) {
      const err = await rejection(attempt());
      expect(err).toMatchObject({ code: 'MILLRACE_SCHEMA_REGISTRY_UNAVAILABLE', retriable: true });
      expect(err.message).toMatch(/no answer \(.*ECONNREFUSED/);
    }
  });

  it('refuses a URL that is not http(s), and keeps credentials in a URL out of messages', async () => {
    expect(() => new ConfluentSchemaRegistry({ url: 'localhost:8081' })).toThrow(code('MILLRACE_CONFIG_INVALID'));
    expect(() => new ConfluentSchemaRegistry({ url: 'not a url' })).toThrow(code('MILLRACE_CONFIG_INVALID'));
    let authorization: string | undefined;
    answer = () => ({ status: 200, body: ['a-value'] });
    server.once('request', (req: { headers: Record<string, string | undefined> }) => (authorization = req.headers['authorization']));
    const withUser = new ConfluentSchemaRegistry({ url: base.replace('http://', 'http://ada:s%40cret@') + '/' });
    expect(withUser.url).toBe(base);
    expect(await withUser.subjects()).toEqual(['a-value']);
    expect(authorization).toBe(`Basic ${Buffer.from('ada:s@cret').toString('base64')}`);
  });
});

describe('stableSchemaText', () => {
  it('writes a schema the same way whatever its key order and layout', () => {
    const a = stableSchemaText(v2);
    expect(a).toBe(
      '{"type":"record","name":"Payment","namespace":"dev.millrace.test","fields":[{"name":"id","type":"string"},' +
        '{"name":"amount","type":{"type":"double","minimum":0}},{"name":"country","type":["null","string"],"default":null}]}',
    );
    expect(stableSchemaText(reverseKeys(v2))).toBe(a);
    expect(stableSchemaText({ type: 'string' } as avro.Schema)).toBe('"string"');
    expect(stableSchemaText({ type: 'string', logicalType: 'ip' } as avro.Schema)).toBe('{"type":"string","logicalType":"ip"}');
  });
});
