import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type avro from 'avsc';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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
import { EmbeddedSchemaRegistry } from '../../engine/serde/embedded-registry.js';
import { isIsoDateTime, parseAvroSchema, validateValue } from '../../engine/serde/logical-types.js';

const context = { topic: 'purchases', isKey: false };
const SUBJECT = 'purchases-value';

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

function thrown(fn: () => unknown): MillraceError {
  try {
    fn();
  } catch (err) {
    if (isMillraceError(err)) return err;
    throw err;
  }
  throw new Error('expected a MillraceError');
}

describe('validateValue', () => {
  const type = parseAvroSchema(purchase);

  it('accepts a valid event', () => {
    expect(validateValue(type, good)).toEqual([]);
    expect(validateValue(type, { ...good, items: undefined, proxy: undefined })).toEqual([]);
    expect(validateValue(type, { ...good, proxy: '2001:db8::1', ip: '::1' })).toEqual([]);
  });

  it('reports every problem with its path', () => {
    const { user: _user, ...withoutUser } = good;
    const issues = validateValue(type, {
      ...withoutUser,
      at: 'yesterday',
      ip: '300.1.2.3',
      amount: 1_500_000,
      foo: 1,
      items: [good.items[0], { sku: 'B', quantity: 0, ip: '1.2.3.4' }, { sku: 'C', quantity: 1, ip: '::1' }],
      proxy: '10.0.0.1',
    });
    expect(issues).toEqual([
      { path: '/foo', message: 'unknown field "foo"' },
      { path: '/user', message: 'required field missing' },
      { path: '/amount', message: '1500000 is above the maximum 1000000' },
      { path: '/at', message: 'expected an ISO 8601 date-time, got "yesterday"' },
      { path: '/ip', message: 'expected an IP address, got "300.1.2.3"' },
      { path: '/items/1/quantity', message: '0 is below the minimum 1' },
      { path: '/items/2/ip', message: 'expected an IPv4 address, got "::1"' },
      { path: '/proxy', message: 'expected an IPv6 address, got "10.0.0.1"' },
    ]);
  });

  it('names wrong types, negative amounts and undeclared fields in nested records', () => {
    expect(validateValue(type, { ...good, amount: -5 })).toEqual([{ path: '/amount', message: '-5 is below the minimum 0' }]);
    expect(validateValue(type, { ...good, amount: '5' })).toEqual([
      { path: '/amount', message: 'expected a double (a number), got "5"' },
    ]);
    expect(validateValue(type, { ...good, items: [{ ...good.items[0], quantity: 1.5, extra: true }] })).toEqual([
      { path: '/items/0/extra', message: 'unknown field "extra"' },
      { path: '/items/0/quantity', message: 'expected an int (a 32-bit integer), got 1.5' },
    ]);
    expect(validateValue(type, { ...good, items: 'none' })).toEqual([{ path: '/items', message: 'expected an array, got "none"' }]);
    expect(validateValue(type, { ...good, proxy: 7 })).toEqual([{ path: '/proxy', message: 'expected null or string, got 7' }]);
    expect(validateValue(type, null)).toEqual([{ path: '', message: 'expected an object (record dev.millrace.test.Purchase), got null' }]);
    expect(validateValue(type, [good])[0]?.message).toMatch(/expected an object/);
  });

  it('refuses a union whose branches a JSON value cannot tell apart once annotations are involved', () => {
    for (const union of [
      ['int', { type: 'double', minimum: 0 }],
      [{ type: 'enum', name: 'Where', symbols: ['HOME'] }, { type: 'string', logicalType: 'ip' }],
    ]) {
      expect(() => parseAvroSchema(union as avro.Schema)).toThrow(/two branches a JSON value cannot tell apart/);
    }
    // Two branches named alike (both strings) avsc refuses itself.
    const twoStrings = ['string', { type: 'string', logicalType: 'ip' }];
    expect(() => parseAvroSchema(twoStrings as avro.Schema)).toThrow(expect.objectContaining({ code: 'MILLRACE_SCHEMA_INVALID' }));
    // Without annotations avsc wraps such unions: values are written {"double": 1.5}.
    const wrapped = parseAvroSchema(['int', 'double']);
    expect(validateValue(wrapped, { double: 1.5 })).toEqual([]);
    expect(validateValue(wrapped, 1.5)).toEqual([{ path: '', message: 'expected int or double, written as {"<branch>": value}, got 1.5' }]);
  });

  it('escapes field names in paths as JSON pointers', () => {
    const map = parseAvroSchema({ type: 'map', values: { type: 'int', minimum: 0 } });
    expect(validateValue(map, { 'a/b': -1, 'c~d': -2 })).toEqual([
      { path: '/a~1b', message: '-1 is below the minimum 0' },
      { path: '/c~0d', message: '-2 is below the minimum 0' },
    ]);
  });

  it.each([
    ['2026-01-02T03:04:05Z', true],
    ['2026-01-02T03:04:05.123456789+05:30', true],
    ['2024-02-29T23:59:59-08:00', true],
    ['2026-01-02', false],
    ['2026-01-02T03:04:05', false],
    ['2023-02-29T00:00:00Z', false],
    ['2026-13-01T00:00:00Z', false],
    ['2026-04-31T00:00:00Z', false],
    ['2026-01-02 03:04:05Z', false],
    ['2026-01-02T24:00:00Z', false],
    ['2026-01-02T03:04:05+2:00', false],
    ['2026-01-02T03:04:05+24:00', false],
    ['yesterday', false],
  ])('iso-datetime %s → %s', (value, valid) => {
    expect(isIsoDateTime(value)).toBe(valid);
  });
});

describe('avroSerde', () => {
  let dir: string;
  let log: EmbeddedLog;
  let registry: EmbeddedSchemaRegistry;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'millrace-avro-serde-'));
    log = new EmbeddedLog({ path: dir });
    await log.open();
    registry = new EmbeddedSchemaRegistry(log);
    await registry.open();
  });

  afterEach(async () => {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes the Confluent framing: magic byte 0, the schema id big-endian, the Avro body', async () => {
    await registry.register('other-value', 'string');
    const schema = await registry.register(SUBJECT, purchase);
    const serde = avroSerde<typeof good>(registry, SUBJECT);
    expect(serde.name).toBe('avro(purchases-value)');
    const bytes = serde.serialize(good, context);
    expect(bytes[0]).toBe(0);
    expect(bytes.readUInt32BE(1)).toBe(schema.id);
    expect(frameSchemaId(bytes)).toBe(2);
    expect(bytes.subarray(FRAME_HEADER_BYTES).equals(schema.type.toBuffer(good))).toBe(true);
    expect(serde.deserialize(bytes, context)).toEqual(good);
    expect(serde.prepare!(bytes, context)).toBeUndefined();
  });

  it('refuses to serialise without a schema, or an invalid value, with the issues in the details', async () => {
    const serde = avroSerde(registry, SUBJECT);
    expect(thrown(() => serde.serialize(good, context)).code).toBe('MILLRACE_SCHEMA_UNKNOWN');
    await registry.register(SUBJECT, purchase);
    const err = thrown(() => serde.serialize({ ...good, at: 'yesterday', amount: -1 }, context));
    expect(err.code).toBe('MILLRACE_SCHEMA_VIOLATION');
    expect(err.message).toMatch(/purchases-value v1: \/amount: -1 is below the minimum 0 \(and 1 more\)/);
    expect(err.details?.['issues']).toEqual([
      { path: '/amount', message: '-1 is below the minimum 0' },
      { path: '/at', message: 'expected an ISO 8601 date-time, got "yesterday"' },
    ]);
  });

  it('validateAndEncode returns the bytes or the issues', async () => {
    expect(thrown(() => validateAndEncode(registry, SUBJECT, good)).code).toBe('MILLRACE_SCHEMA_UNKNOWN');
    const schema = await registry.register(SUBJECT, purchase);
    const ok = validateAndEncode(registry, SUBJECT, good);
    expect(ok.ok).toBe(true);
    if (ok.ok) expect(decodeFramed(registry, ok.bytes)).toEqual(good);
    const bad = validateAndEncode(registry, SUBJECT, { ...good, ip: 'localhost' });
    expect(bad).toEqual({ ok: false, schema, issues: [{ path: '/ip', message: 'expected an IP address, got "localhost"' }] });
  });

  it('encodes values larger than its scratch buffer', async () => {
    const schema = await registry.register('big-value', 'string');
    const big = 'x'.repeat(300_000);
    expect(decodeFramed(registry, encodeFramed(schema, big))).toBe(big);
    expect(decodeFramed(registry, encodeFramed(schema, 'small'))).toBe('small');
    expect(() => encodeFramed(schema, 42)).toThrow(expect.objectContaining({ code: 'MILLRACE_SERIALIZATION' }));
  });

  it('refuses bytes it cannot decode with MILLRACE_DESERIALIZATION', async () => {
    const serde = avroSerde(registry, SUBJECT);
    const schema = await registry.register(SUBJECT, purchase);
    const bytes = serde.serialize(good, context);
    const withId = (id: number, body: Buffer) => {
      const header = Buffer.from([0, 0, 0, 0, 0]);
      header.writeUInt32BE(id, 1);
      return Buffer.concat([header, body]);
    };
    const cases: Buffer[] = [
      Buffer.alloc(0),
      Buffer.from([0, 0, 0]),
      Buffer.from([1, ...bytes.subarray(1)]),
      withId(999, bytes.subarray(5)),
      bytes.subarray(0, bytes.length - 1),
      Buffer.concat([bytes, Buffer.from([0])]),
      // The poison record: an empty string, then an array block count of 2×10^8.
      withId(schema.id, Buffer.from([0x00, 0x80, 0x88, 0xde, 0xbe, 0x01])),
      withId(schema.id, Buffer.from([0xfe, 0xff, 0xff, 0xff, 0x0f])),
    ];
    for (const input of cases) {
      expect(thrown(() => serde.deserialize(input, context)).code, input.toString('hex')).toBe('MILLRACE_DESERIALIZATION');
    }
    expect(thrown(() => serde.deserialize(withId(999, bytes.subarray(5)), context)).message).toMatch(
      /value of a record on purchases: unknown schema id 999/,
    );
  });

  it('applies its limits', async () => {
    const schema = await registry.register('list-value', { type: 'array', items: 'int' });
    const serde = avroSerde<number[]>(registry, 'list-value', { limits: { maxCollectionItems: 10 } });
    expect(serde.deserialize(encodeFramed(schema, [1, 2, 3]), context)).toEqual([1, 2, 3]);
    expect(thrown(() => serde.deserialize(encodeFramed(schema, Array.from({ length: 11 }, () => 1)), context)).code).toBe(
      'MILLRACE_DESERIALIZATION',
    );
    expect(() => avroSerde(registry, 'list-value', { limits: { maxDepth: -1 } })).toThrow(
      expect.objectContaining({ code: 'MILLRACE_CONFIG_INVALID' }),
    );
  });

  it('reads every version as the latest, and refuses a writer the reader cannot resolve', async () => {
    const v1 = await registry.register(SUBJECT, purchase);
    const serde = avroSerde<Record<string, unknown>>(registry, SUBJECT);
    const old = serde.serialize(good, context);
    const v2Schema = {
      ...(purchase as { fields: unknown[] }),
      fields: [...(purchase as { fields: unknown[] }).fields, { name: 'note', type: 'string', default: '' }],
    } as avro.Schema;
    const v2 = await registry.register(SUBJECT, v2Schema);
    expect(v2.version).toBe(2);
    expect(serde.deserialize(old, context)).toEqual({ ...good, note: '' });
    // Read without a reader subject: as written.
    expect(decodeFramed(registry, old)).toEqual(good);
    expect(decodeFramed(registry, old, { readerSubject: SUBJECT })).toEqual({ ...good, note: '' });
    // A record written under another subject with an unrelated schema.
    const other = await registry.register('other-value', 'long');
    const err = thrown(() => serde.deserialize(encodeFramed(other, 7), context));
    expect(err.code).toBe('MILLRACE_DESERIALIZATION');
    expect(err.message).toMatch(new RegExp(`schema id ${other.id} \\(other-value v1\\) cannot be read as purchases-value v2`));
    expect(v1.id).not.toBe(v2.id);
  });

  it('prepare fetches a schema id it has not seen, and only then', async () => {
    const reader = new EmbeddedSchemaRegistry(log);
    await reader.open();
    const serde = avroSerde<typeof good>(reader, SUBJECT);
    const writerSerde = avroSerde<typeof good>(registry, SUBJECT);
    await registry.register(SUBJECT, purchase);
    const bytes = writerSerde.serialize(good, context);
    expect(thrown(() => serde.deserialize(bytes, context)).code).toBe('MILLRACE_DESERIALIZATION');
    const pending = serde.prepare!(bytes, context);
    expect(pending).toBeInstanceOf(Promise);
    await pending;
    expect(serde.prepare!(bytes, context)).toBeUndefined();
    expect(serde.deserialize(bytes, context)).toEqual(good);
    // Not framed, or framed with an id no registry has.
    expect(serde.prepare!(Buffer.from([7]), context)).toBeUndefined();
    await expect(serde.prepare!(Buffer.from([0, 0, 0, 3, 0x39, 0]), context)).rejects.toThrow(
      expect.objectContaining({ code: 'MILLRACE_DESERIALIZATION' }),
    );
  });
});
