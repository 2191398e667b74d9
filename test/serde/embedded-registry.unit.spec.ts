import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import avro from 'avsc';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { offset } from '../../engine/log/log.js';
import { avroSerde } from '../../engine/serde/avro-serde.js';
import { EmbeddedSchemaRegistry } from '../../engine/serde/embedded-registry.js';
import { SCHEMAS_TOPIC } from '../../engine/serde/registry.js';

const context = { topic: 'payments', isKey: false };

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

const code = (c: string) => expect.objectContaining({ code: c });

describe('avsc createResolver, the BACKWARD check (reader = new schema, writer = old)', () => {
  const canRead = (reader: avro.Schema, writer: avro.Schema): boolean => {
    try {
      avro.Type.forSchema(reader).createResolver(avro.Type.forSchema(writer));
      return true;
    } catch {
      return false;
    }
  };

  it('refuses a new field without a default, and a type change string → int', () => {
    expect(canRead(record([{ name: 'id', type: 'string' }, { name: 'n', type: 'int' }]), record([{ name: 'id', type: 'string' }]))).toBe(false);
    expect(canRead(record([{ name: 'id', type: 'int' }]), record([{ name: 'id', type: 'string' }]))).toBe(false);
  });

  it('accepts a new field with a default, a removed field and a promotion int → long', () => {
    expect(canRead(v2, v1)).toBe(true);
    expect(canRead(record([{ name: 'id', type: 'string' }]), v1)).toBe(true);
    expect(canRead(record([{ name: 'n', type: 'long' }]), record([{ name: 'n', type: 'int' }]))).toBe(true);
  });

  it('refuses a renamed record without an alias, and a union narrowed to one of its branches', () => {
    expect(canRead(record([{ name: 'id', type: 'string' }], 'Renamed'), record([{ name: 'id', type: 'string' }]))).toBe(false);
    expect(canRead(record([{ name: 'c', type: 'string' }]), record([{ name: 'c', type: ['null', 'string'] }]))).toBe(false);
  });
});

describe('EmbeddedSchemaRegistry', () => {
  let dir: string;
  let log: EmbeddedLog;
  let registry: EmbeddedSchemaRegistry;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'millrace-registry-'));
    log = new EmbeddedLog({ path: dir });
    await log.open();
    registry = new EmbeddedSchemaRegistry(log);
    await registry.open();
  });

  afterEach(async () => {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function reopen(): Promise<EmbeddedSchemaRegistry> {
    await log.close();
    log = new EmbeddedLog({ path: dir });
    await log.open();
    registry = new EmbeddedSchemaRegistry(log);
    await registry.open();
    return registry;
  }

  it('stores registrations in the compacted topic _schemas, in Confluent’s layout', async () => {
    await registry.register('payments-value', v1);
    const info = await log.describeTopic(SCHEMAS_TOPIC);
    expect(info).toMatchObject({ partitions: 1, cleanupPolicy: 'compact', internal: true });
    const batch = await log.read(SCHEMAS_TOPIC, 0, offset(0));
    expect(batch.records).toHaveLength(1);
    const stored = batch.records[0]!;
    expect(JSON.parse(stored.key!.toString())).toEqual({ keytype: 'SCHEMA', subject: 'payments-value', version: 1 });
    const value = JSON.parse(stored.value!.toString()) as { schema: string };
    expect(value).toMatchObject({ subject: 'payments-value', version: 1, id: 1 });
    expect(JSON.parse(value.schema)).toEqual(v1);
  });

  it('numbers versions per subject and ids globally, and returns an identical schema’s registration', async () => {
    const a1 = await registry.register('payments-value', v1);
    const b1 = await registry.register('refunds-value', record([{ name: 'ref', type: 'string' }], 'Refund'));
    const a2 = await registry.register('payments-value', v2);
    expect([a1, b1, a2].map((s) => [s.subject, s.version, s.id])).toEqual([
      ['payments-value', 1, 1],
      ['refunds-value', 1, 2],
      ['payments-value', 2, 3],
    ]);
    expect(await registry.register('payments-value', v1)).toBe(a1);
    expect(await registry.register('payments-value', JSON.parse(JSON.stringify(v2)) as avro.Schema)).toBe(a2);
    expect((await registry.versions('payments-value')).map((s) => s.version)).toEqual([1, 2]);
    expect(await registry.latest('payments-value')).toBe(a2);
    expect(registry.cachedLatest('payments-value')).toBe(a2);
    expect(await registry.latest('nothing-value')).toBeUndefined();
    expect(await registry.subjects()).toEqual(['payments-value', 'refunds-value']);
    expect(await registry.byId(3)).toBe(a2);
    expect(registry.cachedById(2)).toBe(b1);
  });

  it('reuses the id of an identical schema registered under another subject', async () => {
    const a = await registry.register('payments-value', v1);
    const b = await registry.register('payments-copy-value', v1);
    expect(b).toMatchObject({ subject: 'payments-copy-value', version: 1, id: a.id });
    expect(b.type).toBe(a.type);
    // The id answers with its first registration.
    expect(await registry.byId(a.id)).toBe(a);
    const next = await registry.register('other-value', record([{ name: 'x', type: 'int' }], 'Other'));
    expect(next.id).toBe(a.id + 1);
  });

  it('counts Millrace’s annotations and other attributes when telling schemas apart', async () => {
    const withRange = (minimum: number) => record([{ name: 'n', type: { type: 'double', minimum } }], 'N');
    const s0 = await registry.register('n-value', withRange(0));
    const s1 = await registry.register('n-value', withRange(1));
    expect(s1.version).toBe(2);
    expect(s1.id).not.toBe(s0.id);
    const ip = (logicalType: string) => record([{ name: 'ip', type: { type: 'string', logicalType } }], 'Ip');
    expect((await registry.register('ip-value', ip('ip'))).version).toBe(1);
    expect((await registry.register('ip-value', ip('ipv4'))).version).toBe(2);
    // A logical type Millrace does not implement: avsc drops it, the registry still sees it.
    const ts = (type: avro.Schema) => record([{ name: 't', type }], 'T');
    expect((await registry.register('t-value', ts('long'))).version).toBe(1);
    expect((await registry.register('t-value', ts({ type: 'long', logicalType: 'timestamp-millis' } as avro.Schema))).version).toBe(2);
    expect((await registry.register('t-value', ts({ type: 'long', logicalType: 'timestamp-millis' } as avro.Schema))).version).toBe(2);
  });

  it('refuses a schema that is not BACKWARD compatible with the latest version', async () => {
    await registry.register('payments-value', v1);
    const noDefault = record([
      { name: 'id', type: 'string' },
      { name: 'amount', type: { type: 'double', minimum: 0 } },
      { name: 'country', type: 'string' },
    ]);
    await expect(registry.register('payments-value', noDefault)).rejects.toThrow(code('MILLRACE_SCHEMA_INCOMPATIBLE'));
    await expect(registry.register('payments-value', noDefault)).rejects.toThrow(/payments-value.*version 1.*country/);
    const retyped = record([
      { name: 'id', type: 'int' },
      { name: 'amount', type: { type: 'double', minimum: 0 } },
    ]);
    await expect(registry.register('payments-value', retyped)).rejects.toThrow(code('MILLRACE_SCHEMA_INCOMPATIBLE'));
    await expect(registry.register('payments-value', 'string')).rejects.toThrow(code('MILLRACE_SCHEMA_INCOMPATIBLE'));
    // Nothing was written for the refused ones.
    expect((await registry.versions('payments-value')).map((s) => s.version)).toEqual([1]);
    expect((await log.partitionOffsets(SCHEMAS_TOPIC))[0]!.end).toBe(1);
    // Compatible changes pass: a field with a default, a removed field.
    expect((await registry.register('payments-value', v2)).version).toBe(2);
    expect((await registry.register('payments-value', record([{ name: 'id', type: 'string' }]))).version).toBe(3);
  });

  it('refuses invalid schemas with MILLRACE_SCHEMA_INVALID', async () => {
    await expect(registry.register('x-value', { type: 'record', name: 'X' } as avro.Schema)).rejects.toThrow(code('MILLRACE_SCHEMA_INVALID'));
    await expect(registry.register('x-value', { type: 'nope' } as unknown as avro.Schema)).rejects.toThrow(code('MILLRACE_SCHEMA_INVALID'));
    await expect(registry.register('x-value', { type: 'string', minimum: 1 } as avro.Schema)).rejects.toThrow(code('MILLRACE_SCHEMA_INVALID'));
    await expect(registry.register('x-value', { type: 'int', logicalType: 'ipv4' } as avro.Schema)).rejects.toThrow(code('MILLRACE_SCHEMA_INVALID'));
    await expect(
      registry.register('x-value', record([{ name: 'at', type: 'string', logicalType: 'iso-datetime' }])),
    ).rejects.toThrow(/put it on the field's type/);
    await expect(
      registry.register('x-value', record([{ name: 'n', type: { type: 'int', minimum: 0 }, default: -1 }])),
    ).rejects.toThrow(/default of field n.*-1 is below the minimum 0/);
    expect(await registry.subjects()).toEqual([]);
  });

  it('keeps everything across closing and reopening the log', async () => {
    const a1 = await registry.register('payments-value', v1);
    await registry.register('payments-copy-value', v1);
    const a2 = await registry.register('payments-value', v2);
    const reopened = await reopen();
    expect(await reopened.subjects()).toEqual(['payments-copy-value', 'payments-value']);
    expect((await reopened.versions('payments-value')).map((s) => [s.version, s.id])).toEqual([
      [1, a1.id],
      [2, a2.id],
    ]);
    expect(reopened.cachedById(a1.id)?.schema).toEqual(v1);
    expect(JSON.stringify(reopened.cachedLatest('payments-value')?.type.schema({ exportAttrs: true }))).toBe(
      JSON.stringify(a2.type.schema({ exportAttrs: true })),
    );
    expect(await reopened.register('payments-value', v2)).toMatchObject({ version: 2, id: a2.id });
    expect((await reopened.register('other-value', 'string')).id).toBe(a2.id + 1);
  });

  it('reads an event written with v1 as v2: the new optional field comes out null', async () => {
    const serde = avroSerde<Record<string, unknown>>(registry, 'payments-value');
    await registry.register('payments-value', v1);
    const old = serde.serialize({ id: 'p-1', amount: 12.5 }, context);
    expect(old.readUInt32BE(1)).toBe(1);
    await registry.register('payments-value', v2);
    expect(serde.deserialize(old, context)).toEqual({ id: 'p-1', amount: 12.5, country: null });
    // After a restart too.
    const reopened = await reopen();
    const again = avroSerde<Record<string, unknown>>(reopened, 'payments-value');
    expect(again.deserialize(old, context)).toEqual({ id: 'p-1', amount: 12.5, country: null });
    expect(again.deserialize(again.serialize({ id: 'p-2', amount: 1, country: 'NO' }, context), context)).toEqual({
      id: 'p-2',
      amount: 1,
      country: 'NO',
    });
  });

  it('serialises concurrent registrations', async () => {
    const schemas = Array.from({ length: 12 }, (_, i) =>
      record([{ name: 'id', type: 'string' }, ...Array.from({ length: i }, (_, j) => ({ name: `f${j}`, type: 'int', default: 0 }))]),
    );
    const results = await Promise.all(schemas.map((s) => registry.register('grow-value', s)));
    expect(new Set(results.map((r) => r.version)).size).toBe(12);
    expect(new Set(results.map((r) => r.id)).size).toBe(12);
    // Registered in call order, each checked against the one before.
    expect(results.map((r) => r.version)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    const same = await Promise.all([1, 2, 3].map(() => registry.register('same-value', v1)));
    expect(new Set(same).size).toBe(1);
  });

  it('answers SCHEMA_UNKNOWN for an unknown id, and finds ids another registry on the log wrote', async () => {
    await expect(registry.byId(42)).rejects.toThrow(code('MILLRACE_SCHEMA_UNKNOWN'));
    const other = new EmbeddedSchemaRegistry(log);
    const written = await other.register('payments-value', v1);
    expect(registry.cachedById(written.id)).toBeUndefined();
    expect((await registry.byId(written.id)).subject).toBe('payments-value');
    expect(registry.cachedLatest('payments-value')?.id).toBe(written.id);
  });

  it('hides deleted versions but keeps their ids readable', async () => {
    const a1 = await registry.register('payments-value', v1);
    await registry.register('payments-value', v2);
    const deleted = { subject: 'payments-value', version: 2, id: 2, schema: JSON.stringify(v2), deleted: true };
    await log.append([
      {
        topic: SCHEMAS_TOPIC,
        key: Buffer.from(JSON.stringify({ keytype: 'SCHEMA', subject: 'payments-value', version: 2 })),
        value: Buffer.from(JSON.stringify(deleted)),
      },
      // Records Confluent's registry writes besides schemas are ignored.
      { topic: SCHEMAS_TOPIC, key: Buffer.from('{"keytype":"NOOP","magic":0}'), value: null },
    ]);
    expect((await registry.versions('payments-value')).map((s) => s.version)).toEqual([1]);
    expect(await registry.latest('payments-value')).toBe(a1);
    expect((await registry.byId(2)).version).toBe(2);
    // Versions are never reused: the next one is 3.
    expect((await registry.register('payments-value', v2)).version).toBe(3);
  });

  it('refuses to load a corrupt schema record', async () => {
    await log.ensureTopic({ name: SCHEMAS_TOPIC, partitions: 1, cleanupPolicy: 'compact' });
    await log.append([
      {
        topic: SCHEMAS_TOPIC,
        key: Buffer.from(JSON.stringify({ keytype: 'SCHEMA', subject: 's', version: 1 })),
        value: Buffer.from(JSON.stringify({ subject: 's', version: 1, id: 1, schema: '{"type":"rec' })),
      },
    ]);
    await expect(new EmbeddedSchemaRegistry(log).open()).rejects.toThrow(code('MILLRACE_SCHEMA_INVALID'));
  });
});
