import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { avroSerde, encodeFramed } from '../../engine/serde/avro-serde.js';
import { EmbeddedSchemaRegistry } from '../../engine/serde/embedded-registry.js';
import { parseAvroSchema, validateValue } from '../../engine/serde/logical-types.js';
import { listSchemaFolders, loadSchemaFixtures, loadSchemaVersions, registerSchemaFolder } from '../../engine/serde/schema-files.js';
import {
  FEATURE_NAMES,
  Topics,
  type DriftDetected,
  type Feedback,
  type FeatureVector,
  type ModelRegistryEvent,
  type Outcome,
  type Prediction,
  type TrainingJobEvent,
  type Transaction,
} from '../../topologies/pipeline/contract.js';

const SCHEMAS = fileURLToPath(new URL('../../schemas', import.meta.url));

/** Each event folder, the topic whose values it describes, and the contract's fields in order. */
const EVENTS = [
  { folder: 'transaction', topic: Topics.transactions, fields: fieldsOf<Transaction>()(['id', 'user', 'merchant', 'country', 'amount', 'currency', 'at', 'ip', 'card_present']) },
  { folder: 'feedback', topic: Topics.feedback, fields: fieldsOf<Feedback>()(['transaction_id', 'user', 'fraud', 'at']) },
  { folder: 'feature-vector', topic: Topics.features, fields: fieldsOf<FeatureVector>()(['transaction_id', 'user', 'at', 'feature_version', 'features', 'source', 'country']) },
  {
    folder: 'prediction',
    topic: Topics.predictions,
    fields: fieldsOf<Prediction>()(['transaction_id', 'user', 'at', 'model', 'version', 'model_sha256', 'probability', 'class', 'route', 'features', 'lineage', 'country']),
  },
  { folder: 'outcome', topic: Topics.outcomes, fields: fieldsOf<Outcome>()(['transaction_id', 'model', 'version', 'route', 'probability', 'fraud', 'at', 'country', 'amount']) },
  {
    folder: 'drift-detected',
    topic: Topics.drift,
    fields: fieldsOf<DriftDetected>()(['model', 'version', 'window_start', 'window_end', 'window_size', 'statistics', 'drifted_features', 'at']),
  },
  {
    folder: 'training-job',
    topic: Topics.trainingJobs,
    fields: fieldsOf<AllKeys<TrainingJobEvent>>()(['type', 'job_id', 'model', 'at', 'reason', 'runner', 'version', 'artifact_uri', 'sha256', 'metrics', 'reproducibility', 'since']),
  },
  {
    folder: 'model-registry-event',
    topic: Topics.modelRegistry,
    fields: fieldsOf<AllKeys<ModelRegistryEvent>>()(['type', 'model', 'version', 'at', 'artifact_uri', 'sha256', 'reference_uri', 'metrics', 'percent', 'evidence', 'reason', 'decided_by']),
  },
] as const;

/** Every key of every member of a union, as one object type. */
type AllKeys<U> = { [K in U extends unknown ? keyof U : never]: unknown };

/** A list of field names that must be exactly the keys of T (a compile error otherwise). */
function fieldsOf<T>() {
  return <const L extends ReadonlyArray<keyof T & string>>(list: L & ([Exclude<keyof T, L[number]>] extends [never] ? unknown : never)): L => list;
}

interface RecordSchema {
  readonly name: string;
  readonly namespace?: string;
  readonly fields: ReadonlyArray<{ readonly name: string; readonly type: unknown }>;
}

let dir: string;
let log: EmbeddedLog;
let registry: EmbeddedSchemaRegistry;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'millrace-pipeline-schemas-'));
  log = new EmbeddedLog({ path: join(dir, 'log') });
  await log.open();
  registry = new EmbeddedSchemaRegistry(log);
  await registry.open();
});

afterEach(async () => {
  await log.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the pipeline schemas', () => {
  it('has a folder for every event of the contract, in namespace dev.millrace.fraud, with the contract fields in order', async () => {
    const folders = await listSchemaFolders(SCHEMAS);
    for (const { folder, fields } of EVENTS) {
      expect(folders).toContain(folder);
      const latest = ((await loadSchemaVersions(SCHEMAS, folder)) as unknown as RecordSchema[]).at(-1);
      expect(latest!.namespace).toBe('dev.millrace.fraud');
      // The latest version carries every contract field (a transaction's v2 adds an optional channel besides).
      expect(latest!.fields.map((f) => f.name).filter((name) => (fields as readonly string[]).includes(name))).toEqual(fields);
    }
  });

  it('gives features one double per FEATURE_NAMES entry, in order, in feature vectors and predictions', async () => {
    for (const folder of ['feature-vector', 'prediction']) {
      for (const version of (await loadSchemaVersions(SCHEMAS, folder)) as unknown as RecordSchema[]) {
        const features = version.fields.find((f) => f.name === 'features')!.type as RecordSchema;
        expect(features.fields).toEqual(FEATURE_NAMES.map((name) => ({ name, type: 'double' })));
      }
    }
  });

  it('registers each folder under its topic subject, every version BACKWARD compatible with the one before', async () => {
    for (const { folder, topic } of EVENTS) {
      const registered = await registerSchemaFolder(registry, `${topic}-value`, SCHEMAS, folder);
      expect(registered.map((r) => r.version)).toEqual(registered.map((_, i) => i + 1));
    }
    expect((await registry.versions('transactions-value')).map((r) => r.version)).toEqual([1, 2]);
    for (const topic of [Topics.features, Topics.predictions, Topics.outcomes]) {
      expect((await registry.versions(`${topic}-value`)).map((r) => r.version)).toEqual([1, 2]);
    }
  });

  it('adds the country (and to outcomes the amount) in v2 as optional fields, so events without them stay readable', async () => {
    for (const [folder, added] of [['feature-vector', ['country']], ['prediction', ['country']], ['outcome', ['country', 'amount']]] as const) {
      const [v1, v2] = (await loadSchemaVersions(SCHEMAS, folder)) as unknown as Array<{ fields: Array<{ name: string; type: unknown; default?: unknown }> }>;
      expect(v2!.fields.slice(0, v1!.fields.length).map((f) => f.name)).toEqual(v1!.fields.map((f) => f.name));
      expect(v2!.fields.slice(v1!.fields.length).map((f) => [f.name, (f.type as unknown[])[0], f.default])).toEqual(added.map((name) => [name, 'null', null]));
    }
  });

  it('declares the transaction checks: amount in [0, 1 000 000], an ISO date-time, an IP address, no unknown field', async () => {
    const [v1] = await loadSchemaVersions(SCHEMAS, 'transaction');
    const type = parseAvroSchema(v1!);
    const valid: Transaction = {
      id: 'tx-1',
      user: 'u',
      merchant: 'm',
      country: 'FR',
      amount: 0,
      currency: 'EUR',
      at: '2026-01-02T03:04:05Z',
      ip: '::1',
      card_present: true,
    };
    expect(validateValue(type, valid)).toEqual([]);
    expect(validateValue(type, { ...valid, amount: 1_000_000 })).toEqual([]);
    const issues = validateValue(type, { ...valid, amount: 1_000_000.01, at: '2026-01-02 03:04:05', ip: '300.1.1.1', extra: 1 });
    expect(issues.map((i) => i.path).sort()).toEqual(['/amount', '/at', '/extra', '/ip']);
    expect(validateValue(type, { ...valid, amount: -0.01 }).map((i) => i.message)).toEqual(['-0.01 is below the minimum 0']);
  });

  it('reads any v1 transaction as v2, with no channel', async () => {
    const [v1, v2] = await registerSchemaFolder(registry, 'transactions-value', SCHEMAS, 'transaction');
    const serde = avroSerde<Transaction & { channel: string | null }>(registry, 'transactions-value');
    const transaction = fc.record({
      id: fc.string({ minLength: 1 }),
      user: fc.string({ minLength: 1 }),
      merchant: fc.string(),
      country: fc.stringMatching(/^[A-Z]{2}$/),
      amount: fc.double({ min: 0, max: 1_000_000, noNaN: true }),
      currency: fc.stringMatching(/^[A-Z]{3}$/),
      at: fc.date({ min: new Date(0), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).map((d) => d.toISOString()),
      ip: fc.oneof(fc.ipV4(), fc.ipV6()),
      card_present: fc.boolean(),
    });
    fc.assert(
      fc.property(transaction, (value) => {
        expect(validateValue(v1!.type, value)).toEqual([]);
        const read = serde.deserialize(encodeFramed(v1!, value), { topic: 'transactions', isKey: false });
        expect(read).toEqual({ ...value, channel: null });
        expect(validateValue(v2!.type, read)).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });

  it('encodes the contract events of training jobs and the model registry as they are, with absent fields as null', async () => {
    for (const folder of ['training-job', 'model-registry-event']) {
      const versions = await registerSchemaFolder(registry, `${folder}-value`, SCHEMAS, folder);
      for (const fixture of await loadSchemaFixtures(SCHEMAS, folder)) {
        const registered = versions[fixture.schemaVersion - 1];
        // The contract's plain event: a kind's unused fields are absent, not null.
        const plain = Object.fromEntries(Object.entries(fixture.value as object).filter(([, v]) => v !== null));
        expect(validateValue(registered!.type, plain)).toEqual([]);
        expect(encodeFramed(registered!, plain).subarray(5).toString('hex')).toBe(fixture.avroHex);
      }
    }
  });

  describe.each(EVENTS.map((e) => [e.folder, e] as const))('%s golden fixtures', async (folder, { topic }) => {
    const fixtures = await loadSchemaFixtures(SCHEMAS, folder);
    const versions = await loadSchemaVersions(SCHEMAS, folder);

    it('are two or more, cover every version, and pin their bytes', () => {
      expect(fixtures.length).toBeGreaterThanOrEqual(2);
      expect(new Set(fixtures.map((f) => f.schemaVersion))).toEqual(new Set(versions.map((_, i) => i + 1)));
      expect(fixtures.every((f) => f.avroHex !== undefined)).toBe(true);
    });

    it.each(fixtures.map((f) => [f.file, f] as const))('%s: valid, encodes byte for byte, decodes back, reads as the latest', async (_, fixture) => {
      const registered = await registerSchemaFolder(registry, `${topic}-value`, SCHEMAS, folder);
      const writer = registered[fixture.schemaVersion - 1]!;
      expect(validateValue(writer.type, fixture.value)).toEqual([]);
      const framed = encodeFramed(writer, fixture.value);
      expect(framed.subarray(5).toString('hex')).toBe(fixture.avroHex);
      expect(writer.type.fromBuffer(framed.subarray(5))).toEqual(fixture.value);
      const serde = avroSerde(registry, `${topic}-value`);
      expect(serde.deserialize(framed, { topic, isKey: false })).toEqual(fixture.readAsLatest ?? fixture.value);
      expect(serde.deserialize(serde.serialize(fixture.readAsLatest ?? fixture.value, { topic, isKey: false }), { topic, isKey: false })).toEqual(
        fixture.readAsLatest ?? fixture.value,
      );
    });
  });
});
