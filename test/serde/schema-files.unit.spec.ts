import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type avro from 'avsc';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { avroSerde, encodeFramed } from '../../engine/serde/avro-serde.js';
import { EmbeddedSchemaRegistry } from '../../engine/serde/embedded-registry.js';
import { parseAvroSchema, validateValue } from '../../engine/serde/logical-types.js';
import {
  listSchemaFolders,
  loadSchemaFixtures,
  loadSchemaVersions,
  registerSchemaFolder,
} from '../../engine/serde/schema-files.js';

const SCHEMAS = fileURLToPath(new URL('../../schemas', import.meta.url));
const context = { topic: 'example-events', isKey: false };
const code = (c: string) => expect.objectContaining({ code: c });

let dir: string;
let log: EmbeddedLog;
let registry: EmbeddedSchemaRegistry;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'millrace-schema-files-'));
  log = new EmbeddedLog({ path: join(dir, 'log') });
  await log.open();
  registry = new EmbeddedSchemaRegistry(log);
  await registry.open();
});

afterEach(async () => {
  await log.close();
  await rm(dir, { recursive: true, force: true });
});

describe('schemas/example-event', () => {
  it('is listed, with its versions in order', async () => {
    expect(await listSchemaFolders(SCHEMAS)).toContain('example-event');
    const versions = (await loadSchemaVersions(SCHEMAS, 'example-event')) as { name: string; fields: { name: string }[] }[];
    expect(versions.map((v) => v.fields.map((f) => f.name))).toEqual([
      ['id', 'user', 'amount', 'at', 'ip'],
      ['id', 'user', 'amount', 'at', 'ip', 'country'],
    ]);
    expect(versions.every((v) => v.name === 'ExampleEvent')).toBe(true);
  });

  it('registers every version in order, each BACKWARD compatible with the one before', async () => {
    const registered = await registerSchemaFolder(registry, 'example-events-value', SCHEMAS, 'example-event');
    expect(registered.map((r) => [r.version, r.id])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(registered[0]!.type.name).toBe('dev.millrace.examples.ExampleEvent');
    // Registering the folder again changes nothing.
    expect(await registerSchemaFolder(registry, 'example-events-value', SCHEMAS, 'example-event')).toEqual(registered);
  });

  it('declares the checks: a non-negative amount, an ISO date-time, an IP address', async () => {
    const [v1] = await loadSchemaVersions(SCHEMAS, 'example-event');
    const type = parseAvroSchema(v1!);
    const issues = validateValue(type, { id: 'e', user: 'u', amount: -1, at: '2026-01-02', ip: 'nowhere' });
    expect(issues.map((i) => i.path)).toEqual(['/amount', '/at', '/ip']);
  });

  describe('golden fixtures', async () => {
    const fixtures = await loadSchemaFixtures(SCHEMAS, 'example-event');
    const versions = await loadSchemaVersions(SCHEMAS, 'example-event');

    it('cover every version', () => {
      expect(new Set(fixtures.map((f) => f.schemaVersion))).toEqual(new Set(versions.map((_, i) => i + 1)));
    });

    it.each(fixtures.map((f) => [f.file, f] as const))('%s: valid, encodes byte for byte, decodes back, reads as the latest', async (_, fixture) => {
      const registered = await registerSchemaFolder(registry, 'example-events-value', SCHEMAS, 'example-event');
      const writer = registered[fixture.schemaVersion - 1]!;
      expect(validateValue(writer.type, fixture.value)).toEqual([]);
      const framed = encodeFramed(writer, fixture.value);
      if (fixture.avroHex !== undefined) expect(framed.subarray(5).toString('hex')).toBe(fixture.avroHex);
      expect(writer.type.fromBuffer(framed.subarray(5))).toEqual(fixture.value);
      const serde = avroSerde(registry, 'example-events-value');
      expect(serde.deserialize(framed, context)).toEqual(fixture.readAsLatest ?? fixture.value);
    });
  });
});

describe('schema folders', () => {
  const schemaDir = () => join(dir, 'schemas');
  const write = async (name: string, file: string, content: unknown) => {
    await mkdir(join(schemaDir(), name, 'fixtures'), { recursive: true });
    await writeFile(join(schemaDir(), name, file), typeof content === 'string' ? content : JSON.stringify(content));
  };
  const versionWith = (fields: number): avro.Schema =>
    ({
      type: 'record',
      name: 'Counter',
      fields: [{ name: 'n', type: 'long' }, ...Array.from({ length: fields }, (_, i) => ({ name: `f${i}`, type: 'int', default: i }))],
    }) as avro.Schema;

  it('sorts versions numerically (v10 after v9)', async () => {
    for (let v = 1; v <= 11; v++) await write('counter', `v${v}.avsc`, versionWith(v - 1));
    await write('counter', 'notes.txt', 'not a version');
    const versions = (await loadSchemaVersions(schemaDir(), 'counter')) as { fields: unknown[] }[];
    expect(versions.map((v) => v.fields.length)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
    const registered = await registerSchemaFolder(registry, 'counter-value', schemaDir(), 'counter');
    expect(registered.at(-1)?.version).toBe(11);
  });

  it('refuses a gap in the versions, invalid files, and an incompatible version', async () => {
    await write('gap', 'v1.avsc', versionWith(0));
    await write('gap', 'v3.avsc', versionWith(1));
    await expect(loadSchemaVersions(schemaDir(), 'gap')).rejects.toThrow(/no v2\.avsc/);
    await write('badjson', 'v1.avsc', '{"type": ');
    await expect(loadSchemaVersions(schemaDir(), 'badjson')).rejects.toThrow(code('MILLRACE_SCHEMA_INVALID'));
    await write('badschema', 'v1.avsc', { type: 'record', name: 'X', fields: [{ name: 'a', type: 'strin' }] });
    await expect(loadSchemaVersions(schemaDir(), 'badschema')).rejects.toThrow(/badschema[/\\]v1\.avsc: invalid Avro schema/);
    await write('breaking', 'v1.avsc', versionWith(0));
    await write('breaking', 'v2.avsc', { type: 'record', name: 'Counter', fields: [{ name: 'n', type: 'string' }] });
    await expect(registerSchemaFolder(registry, 'breaking-value', schemaDir(), 'breaking')).rejects.toThrow(
      code('MILLRACE_SCHEMA_INCOMPATIBLE'),
    );
    expect((await registry.versions('breaking-value')).length).toBe(1);
  });

  it('answers SCHEMA_UNKNOWN for a missing folder or a name that is not a folder name', async () => {
    await expect(loadSchemaVersions(schemaDir(), 'missing')).rejects.toThrow(code('MILLRACE_SCHEMA_UNKNOWN'));
    await expect(loadSchemaVersions(SCHEMAS, '../schemas')).rejects.toThrow(code('MILLRACE_SCHEMA_UNKNOWN'));
    await write('empty', 'readme.md', 'nothing here');
    await expect(loadSchemaVersions(schemaDir(), 'empty')).rejects.toThrow(/no v1\.avsc/);
    expect(await listSchemaFolders(schemaDir())).toEqual([]);
  });

  it('loads fixtures, and refuses a fixture of the wrong shape', async () => {
    await write('counter', 'v1.avsc', versionWith(0));
    expect(await loadSchemaFixtures(schemaDir(), 'counter')).toEqual([]);
    await write('counter', 'fixtures/one.json', { schemaVersion: 1, value: { n: 1 } });
    expect(await loadSchemaFixtures(schemaDir(), 'counter')).toEqual([
      { file: 'one.json', description: 'one.json', schemaVersion: 1, value: { n: 1 } },
    ]);
    await write('counter', 'fixtures/two.json', { version: 1, value: { n: 1 } });
    await expect(loadSchemaFixtures(schemaDir(), 'counter')).rejects.toThrow(code('MILLRACE_SCHEMA_INVALID'));
  });
});
