import avro from 'avsc';
import { MillraceError, errorMessage } from '../errors.js';
import { offset, type Log, type LogRecord } from '../log/log.js';
import { canonicalSchemaKey, parseAvroSchema } from './logical-types.js';
import { SCHEMAS_TOPIC, type RegisteredSchema, type SchemaRegistry } from './registry.js';

/** The key of a schema record in `_schemas`, as Confluent's registry writes it. */
interface SchemaKey {
  readonly keytype: 'SCHEMA';
  readonly subject: string;
  readonly version: number;
}

/** The value of a schema record; `deleted` (Confluent's soft delete) hides the version but keeps its id readable. */
interface SchemaValue {
  readonly subject: string;
  readonly version: number;
  readonly id: number;
  readonly schema: string;
  readonly deleted?: boolean;
  readonly schemaType?: string;
}

/** One parsed schema, shared by every registration of its id. */
interface ParsedSchema {
  readonly schema: avro.Schema;
  readonly type: avro.Type;
  readonly key: string;
}

const READ_BATCH_RECORDS = 500;

/**
 * A schema registry kept in the compacted topic `_schemas` of a log, with Confluent's record layout and BACKWARD
 * compatibility: a new version must read data written with the previous one. Ids are global; a schema identical to
 * one registered under another subject gets that schema's id.
 *
 * Memory only changes from records read back from the log, so what is in memory is always durable. Registrations in
 * this process are serialised; registrations from two processes at once are not coordinated (as with Confluent, run
 * one writer).
 */
export class EmbeddedSchemaRegistry implements SchemaRegistry {
  readonly #log: Log;
  readonly #subjects = new Map<string, RegisteredSchema[]>();
  /** The first registration of each id; kept after a version is deleted so old records stay readable. */
  readonly #byId = new Map<number, RegisteredSchema>();
  readonly #parsed = new Map<number, ParsedSchema>();
  readonly #idByKey = new Map<string, number>();
  readonly #maxVersion = new Map<string, number>();
  #maxId = 0;
  /** The next offset of `_schemas` to read. */
  #next = 0;
  #opening: Promise<void> | undefined;
  /** Every read of the topic and every registration runs in this chain, one at a time. */
  #tail: Promise<unknown> = Promise.resolve();

  constructor(log: Log) {
    this.#log = log;
  }

  /** Creates `_schemas` if needed and reads it. The log must be open. Other methods call it on first use. */
  open(): Promise<void> {
    if (this.#opening === undefined) {
      const opening = this.#serialise(async () => {
        await this.#log.ensureTopic({ name: SCHEMAS_TOPIC, partitions: 1, cleanupPolicy: 'compact' });
        await this.#catchUp();
      });
      this.#opening = opening;
      // A failed open (the log was not open yet) may be retried.
      opening.catch(() => {
        if (this.#opening === opening) this.#opening = undefined;
      });
    }
    return this.#opening;
  }

  async register(subject: string, schema: avro.Schema): Promise<RegisteredSchema> {
    checkSubject(subject);
    const json: avro.Schema = avro.Type.isType(schema) ? (schema as avro.Type).schema({ exportAttrs: true }) : schema;
    const type = parseAvroSchema(json);
    const key = canonicalSchemaKey(json, type);
    await this.open();
    return this.#serialise(async () => {
      await this.#catchUp();
      const versions = this.#subjects.get(subject) ?? [];
      const existing = versions.find((v) => this.#parsed.get(v.id)?.key === key);
      if (existing !== undefined) return existing;
      const latest = versions[versions.length - 1];
      if (latest !== undefined) checkBackward(subject, type, latest);
      const id = this.#idByKey.get(key) ?? this.#maxId + 1;
      const version = (this.#maxVersion.get(subject) ?? 0) + 1;
      const value: SchemaValue = { subject, version, id, schema: JSON.stringify(json) };
      const record = { key: encodeKey(subject, version), value: Buffer.from(JSON.stringify(value)) };
      await this.#log.append([{ topic: SCHEMAS_TOPIC, partition: 0, ...record }]);
      await this.#catchUp();
      const registered = this.#subjects.get(subject)?.find((v) => v.version === version);
      if (registered?.id !== id) {
        throw new MillraceError(
          'MILLRACE_SCHEMA_INCOMPATIBLE',
          `subject ${subject} version ${version} was registered by another writer at the same time; register again`,
          { retriable: true, details: { subject } },
        );
      }
      return registered;
    });
  }

  async byId(id: number): Promise<RegisteredSchema> {
    const cached = this.#byId.get(id);
    if (cached !== undefined) return cached;
    await this.open();
    await this.#serialise(() => this.#catchUp());
    const found = this.#byId.get(id);
    if (found === undefined) {
      throw new MillraceError('MILLRACE_SCHEMA_UNKNOWN', `no schema has id ${id}`, { details: { id } });
    }
    return found;
  }

  async latest(subject: string): Promise<RegisteredSchema | undefined> {
    await this.#refresh();
    return this.cachedLatest(subject);
  }

  async versions(subject: string): Promise<RegisteredSchema[]> {
    await this.#refresh();
    return [...(this.#subjects.get(subject) ?? [])];
  }

  async subjects(): Promise<string[]> {
    await this.#refresh();
    return [...this.#subjects.keys()].sort();
  }

  cachedById(id: number): RegisteredSchema | undefined {
    return this.#byId.get(id);
  }

  cachedLatest(subject: string): RegisteredSchema | undefined {
    const versions = this.#subjects.get(subject);
    return versions?.[versions.length - 1];
  }

  async #refresh(): Promise<void> {
    await this.open();
    await this.#serialise(() => this.#catchUp());
  }

  #serialise<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(task);
    // The chain only orders tasks; each caller gets its own task's outcome through `run`.
    this.#tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Reads `_schemas` from where the last read stopped up to its high watermark. */
  async #catchUp(): Promise<void> {
    for (;;) {
      const from = this.#next;
      const batch = await this.#log.read(SCHEMAS_TOPIC, 0, offset(from), { maxRecords: READ_BATCH_RECORDS });
      for (const record of batch.records) this.#apply(record);
      this.#next = batch.nextOffset;
      if (batch.nextOffset >= batch.highWatermark || batch.nextOffset <= from) return;
    }
  }

  #apply(record: LogRecord): void {
    if (record.key === null) return;
    const key = parseJson(record, record.key) as Partial<SchemaKey> | null;
    // Confluent's registry also writes CONFIG, NOOP and DELETE_SUBJECT records; only schemas matter here.
    if (key?.keytype !== 'SCHEMA' || typeof key.subject !== 'string' || !Number.isSafeInteger(key.version)) return;
    const subject = key.subject;
    const version = key.version!;
    this.#maxVersion.set(subject, Math.max(this.#maxVersion.get(subject) ?? 0, version));
    const value = record.value === null ? null : (parseJson(record, record.value) as SchemaValue);
    if (value === null || value.deleted === true) {
      this.#removeVersion(subject, version);
      return;
    }
    if (value.schemaType !== undefined && value.schemaType !== 'AVRO') return;
    if (!Number.isSafeInteger(value.id) || value.id <= 0 || typeof value.schema !== 'string') {
      throw corrupt(record, 'the value has no valid id and schema');
    }
    const parsed = this.#parsedFor(record, value);
    const { schema, type } = parsed;
    const registered: RegisteredSchema = Object.freeze({ id: value.id, subject, version, schema, type });
    this.#removeVersion(subject, version);
    const versions = this.#subjects.get(subject) ?? [];
    versions.push(registered);
    versions.sort((a, b) => a.version - b.version);
    this.#subjects.set(subject, versions);
    if (!this.#byId.has(value.id)) this.#byId.set(value.id, registered);
    this.#maxId = Math.max(this.#maxId, value.id);
  }

  #parsedFor(record: LogRecord, value: SchemaValue): ParsedSchema {
    const known = this.#parsed.get(value.id);
    if (known !== undefined) return known;
    let schema: avro.Schema;
    try {
      schema = JSON.parse(value.schema) as avro.Schema;
    } catch (err) {
      throw corrupt(record, `its schema is not JSON (${errorMessage(err)})`);
    }
    let type: avro.Type;
    try {
      type = parseAvroSchema(schema);
    } catch (err) {
      throw corrupt(record, errorMessage(err), err);
    }
    const parsed: ParsedSchema = { schema, type, key: canonicalSchemaKey(schema, type) };
    this.#parsed.set(value.id, parsed);
    if (!this.#idByKey.has(parsed.key)) this.#idByKey.set(parsed.key, value.id);
    return parsed;
  }

  #removeVersion(subject: string, version: number): void {
    const versions = this.#subjects.get(subject);
    if (versions === undefined) return;
    const remaining = versions.filter((v) => v.version !== version);
    if (remaining.length > 0) this.#subjects.set(subject, remaining);
    else this.#subjects.delete(subject);
  }
}

function checkSubject(subject: string): void {
  if (typeof subject !== 'string' || subject.length === 0 || subject.length > 255) {
    throw new TypeError(`a subject is a string of 1 to 255 characters, got ${JSON.stringify(subject)}`);
  }
}

/** Refuses `type` unless it can read data written with `previous` (BACKWARD compatibility). */
function checkBackward(subject: string, type: avro.Type, previous: RegisteredSchema): void {
  try {
    type.createResolver(previous.type);
  } catch (err) {
    // avsc fails with a TypeError of its own on some mismatches (a record reading a string).
    const reason =
      err instanceof TypeError ? `cannot read ${previous.type.typeName} as ${type.typeName}` : errorMessage(err);
    throw new MillraceError(
      'MILLRACE_SCHEMA_INCOMPATIBLE',
      `the new schema for subject ${subject} cannot read data written with version ${previous.version} ` +
        `(id ${previous.id}): ${reason}. A BACKWARD compatible change adds fields with defaults, ` +
        'removes fields, or widens types (int to long, string to a union with string)',
      { cause: err, details: { subject, version: previous.version, id: previous.id } },
    );
  }
}

function encodeKey(subject: string, version: number): Buffer {
  const key: SchemaKey = { keytype: 'SCHEMA', subject, version };
  return Buffer.from(JSON.stringify(key));
}

function parseJson(record: LogRecord, bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch (err) {
    throw corrupt(record, `it is not JSON (${errorMessage(err)})`);
  }
}

function corrupt(record: LogRecord, reason: string, cause?: unknown): MillraceError {
  return new MillraceError(
    'MILLRACE_SCHEMA_INVALID',
    `cannot load the schema record at ${SCHEMAS_TOPIC} offset ${record.offset}: ${reason}`,
    { cause, details: { offset: record.offset } },
  );
}
