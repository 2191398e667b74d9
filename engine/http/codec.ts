import { MillraceError, errorMessage, isMillraceError } from '../errors.js';
import type { LogRecord } from '../log/log.js';
import { decodeFramed, encodeFramed, frameSchemaId } from '../serde/avro-serde.js';
import { isIsoDateTime, validateValue, type ValidationIssue } from '../serde/logical-types.js';
import { valueSubject, type RegisteredSchema, type SchemaRegistry } from '../serde/registry.js';
import { registerSchemaFolder } from '../serde/schema-files.js';

/**
 * The HTTP edge's one view of the serde layer: how a JSON value becomes the bytes of a topic, how stored bytes are
 * shown as JSON, and how a topic gets its value schema. Everything the edge needs from `serde/` goes through here.
 */

export type { ValidationIssue };
export { isIsoDateTime };

/** A registered schema as the API shows it. */
export interface SchemaRef {
  readonly subject: string;
  readonly id: number;
  readonly version: number;
}

function refOf(schema: RegisteredSchema): SchemaRef {
  return { subject: schema.subject, id: schema.id, version: schema.version };
}

/** The latest schema registered for a topic's values, or `undefined` for a topic of JSON values. */
async function latestValueSchema(registry: SchemaRegistry, topic: string): Promise<RegisteredSchema | undefined> {
  const subject = valueSubject(topic);
  return registry.cachedLatest(subject) ?? (await registry.latest(subject));
}

export async function topicSchemaRef(registry: SchemaRegistry, topic: string): Promise<SchemaRef | null> {
  const schema = await latestValueSchema(registry, topic);
  return schema === undefined ? null : refOf(schema);
}

/**
 * Registers the value schema of a topic: `schema` names a folder of `schemasDir` (every version file is registered
 * in order, each checked BACKWARD compatible with the one before), or is an Avro schema itself. Returns the latest
 * registration. `MILLRACE_SCHEMA_INVALID`, `MILLRACE_SCHEMA_INCOMPATIBLE`, `MILLRACE_SCHEMA_UNKNOWN` (no such folder).
 */
export async function registerTopicSchema(
  registry: SchemaRegistry,
  schemasDir: string,
  topic: string,
  schema: unknown,
): Promise<SchemaRef> {
  const subject = valueSubject(topic);
  if (typeof schema === 'string') {
    const registered = await registerSchemaFolder(registry, subject, schemasDir, schema);
    const latest = registered[registered.length - 1];
    if (latest === undefined) throw new MillraceError('MILLRACE_SCHEMA_UNKNOWN', `schema folder ${schema} holds no versions`);
    return refOf(latest);
  }
  if (typeof schema !== 'object' || schema === null) {
    throw new MillraceError('MILLRACE_SCHEMA_INVALID', 'a schema is the name of a schemas folder or an Avro schema (an object or an array)');
  }
  return refOf(await registry.register(subject, schema as Parameters<SchemaRegistry['register']>[1]));
}

export type EncodeResult =
  | { readonly ok: true; readonly bytes: Buffer | null }
  | { readonly ok: false; readonly issues: ValidationIssue[] };

/**
 * Turns the JSON values of one topic into record bytes, with the schema pinned when the encoder was made, so a
 * request is encoded with one version throughout. `null` is a tombstone and stays `null`, as Kafka serialisers do.
 */
export interface ValueEncoder {
  /** `avro(<subject> v<n>)` or `json`. */
  readonly format: string;
  readonly schema: SchemaRef | null;
  encode(value: unknown): EncodeResult;
}

export async function valueEncoderFor(registry: SchemaRegistry, topic: string): Promise<ValueEncoder> {
  const schema = await latestValueSchema(registry, topic);
  if (schema === undefined) {
    return {
      format: 'json',
      schema: null,
      encode(value) {
        if (value === null) return { ok: true, bytes: null };
        return guardDepth(() => ({ ok: true, bytes: Buffer.from(JSON.stringify(value), 'utf8') }));
      },
    };
  }
  return {
    format: `avro(${schema.subject} v${schema.version})`,
    schema: refOf(schema),
    encode(value) {
      if (value === null) return { ok: true, bytes: null };
      return guardDepth(() => {
        const issues = validateValue(schema.type, value);
        if (issues.length > 0) return { ok: false, issues };
        try {
          return { ok: true, bytes: encodeFramed(schema, value) };
        } catch (err) {
          if (!isMillraceError(err, 'MILLRACE_SERIALIZATION')) throw err;
          return { ok: false, issues: [{ path: '', message: err.message }] };
        }
      });
    },
  };
}

/**
 * JSON.parse accepts nesting of any depth, but walking such a value (stringify, validation) overflows the stack:
 * a value nested that deeply is refused as invalid, not answered with a 500.
 */
function guardDepth(encode: () => EncodeResult): EncodeResult {
  try {
    return encode();
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    return { ok: false, issues: [{ path: '', message: 'the value is nested too deeply to encode' }] };
  }
}

/** A stored value shown as JSON; `error` says why the bytes could not be read as the topic's format. */
export interface DisplayValue {
  readonly value: unknown;
  readonly error?: string;
}

/** Bytes that are not text, as JSON shows them. */
export interface Base64Value {
  readonly base64: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 text, or `{"base64": …}` for bytes that are not UTF-8. */
export function displayText(bytes: Buffer): string | Base64Value {
  try {
    return utf8.decode(bytes);
  } catch {
    return { base64: bytes.toString('base64') };
  }
}

/**
 * Shows the stored values of one topic as JSON. Bytes in a log are hostile: decoding never throws for bad bytes, it
 * reports them in `error`. Avro values of a topic with a schema are read as its latest version; values of a topic
 * without one are JSON text, or Confluent-framed Avro with a known schema id, or else shown as base64.
 */
export interface ValueDecoder {
  decode(bytes: Buffer | null): Promise<DisplayValue>;
}

export async function valueDecoderFor(registry: SchemaRegistry, topic: string): Promise<ValueDecoder> {
  const subject = valueSubject(topic);
  const reader = await latestValueSchema(registry, topic);
  const unknownIds = new Set<number>();

  /** Makes the writer schema of framed bytes available to `decodeFramed`; false when no registry knows its id. */
  const writerKnown = async (id: number): Promise<boolean> => {
    if (registry.cachedById(id) !== undefined) return true;
    if (unknownIds.has(id)) return false;
    try {
      await registry.byId(id);
      return true;
    } catch (err) {
      if (!isMillraceError(err, 'MILLRACE_SCHEMA_UNKNOWN')) throw err;
      unknownIds.add(id);
      return false;
    }
  };

  const decodeAvro = (bytes: Buffer, readerSubject: string | undefined): DisplayValue => {
    try {
      const decoded = decodeFramed(registry, bytes, readerSubject === undefined ? {} : { readerSubject });
      return { value: toJson(decoded) };
    } catch (err) {
      if (!isMillraceError(err)) throw err;
      return { value: null, error: err.message };
    }
  };

  return {
    async decode(bytes) {
      if (bytes === null) return { value: null };
      const id = frameSchemaId(bytes);
      if (reader !== undefined) {
        if (id === undefined) {
          return { value: null, error: `not a Confluent-framed Avro record of ${subject} (${describeStart(bytes)})` };
        }
        if (!(await writerKnown(id))) return { value: null, error: `unknown schema id ${id}` };
        return decodeAvro(bytes, subject);
      }
      // JSON text never starts with a zero byte, so framed Avro is told apart by its first byte.
      if (id !== undefined && (await writerKnown(id))) {
        const decoded = decodeAvro(bytes, undefined);
        if (decoded.error === undefined) return decoded;
        return { value: { base64: bytes.toString('base64') }, error: decoded.error };
      }
      let text: string;
      try {
        text = utf8.decode(bytes);
      } catch {
        return { value: { base64: bytes.toString('base64') }, error: 'the value is not UTF-8 text' };
      }
      try {
        return { value: JSON.parse(text) as unknown };
      } catch (err) {
        return { value: { base64: bytes.toString('base64') }, error: `the value is not JSON (${errorMessage(err)})` };
      }
    },
  };
}

function describeStart(bytes: Buffer): string {
  if (bytes.length === 0) return 'the value is empty';
  if (bytes.length < 5) return `${bytes.length} bytes is too short for the 5-byte header`;
  return `first byte ${bytes[0]!}, expected the magic byte 0`;
}

/**
 * A decoded Avro value as plain JSON: records become objects, bytes and fixed become `{"base64": …}`, numbers JSON
 * cannot hold (NaN, ±Infinity) become strings, and bigints become numbers when safe, else strings.
 */
export function toJson(value: unknown): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint') {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(value) : value.toString();
  }
  if (Buffer.isBuffer(value)) return { base64: value.toString('base64') };
  if (Array.isArray(value)) return value.map(toJson);
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      // Defined, not assigned: a map key `__proto__` must stay a key.
      if (v !== undefined) Object.defineProperty(out, k, { value: toJson(v), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  return null;
}

/** A record as the HTTP API shows it: its value decoded (Avro by its schema id, else JSON or text), times in ISO 8601. */
export async function recordView(record: LogRecord, decoder: ValueDecoder): Promise<Record<string, unknown>> {
  const decoded = await decoder.decode(record.value);
  const headers: Record<string, string | Base64Value> = {};
  for (const [name, value] of Object.entries(record.headers)) {
    Object.defineProperty(headers, name, { value: displayText(value), enumerable: true });
  }
  const date = new Date(record.timestamp);
  return {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    timestamp: Number.isNaN(date.getTime()) ? String(record.timestamp) : date.toISOString(),
    key: record.key === null ? null : displayText(record.key),
    value: decoded.value,
    headers,
    ...(decoded.error === undefined ? {} : { error: decoded.error }),
  };
}
