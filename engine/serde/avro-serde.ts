import type avro from 'avsc';
import { MillraceError, errorMessage, isMillraceError } from '../errors.js';
import { DEFAULT_AVRO_LIMITS, avroLimits, checkAvroBounds, type AvroLimits } from './avro-guard.js';
import { validateValue, type AvroResolver, type ValidationIssue } from './logical-types.js';
import type { RegisteredSchema, SchemaRegistry } from './registry.js';
import { deserializationError, type Serde, type SerdeContext } from './serde.js';

/**
 * Avro values in the Confluent wire format, so any Kafka tool can read Millrace topics:
 * byte 0 is the magic byte 0, bytes 1–4 the schema id (big-endian), then the Avro binary body.
 */
export const MAGIC_BYTE = 0;
export const FRAME_HEADER_BYTES = 5;

export interface AvroSerdeOptions {
  /** Bounds on what a record may make the decoder allocate (see `checkAvroBounds`). */
  readonly limits?: Partial<AvroLimits>;
}

/**
 * A serde for the values of one subject. `serialize` validates against the subject's latest schema and refuses an
 * invalid value with `MILLRACE_SCHEMA_VIOLATION` (its issues in `details.issues`). `deserialize` reads a record
 * written with any registered version as the subject's latest version, through Avro schema resolution.
 */
export function avroSerde<T>(registry: SchemaRegistry, subject: string, options: AvroSerdeOptions = {}): Serde<T> {
  const limits = options.limits === undefined ? DEFAULT_AVRO_LIMITS : avroLimits(options.limits);
  return {
    name: `avro(${subject})`,
    serialize(value, context) {
      const schema = latestOrThrow(registry, subject);
      const issues = validateValue(schema.type, value);
      if (issues.length > 0) throw violationError(schema, issues, context);
      return encodeFramed(schema, value, context);
    },
    deserialize(bytes, context) {
      return decodeFramed<T>(registry, bytes, { readerSubject: subject, limits, context });
    },
    prepare(bytes, context) {
      const id = frameSchemaId(bytes);
      if (id === undefined || registry.cachedById(id) !== undefined) return undefined;
      return fetchSchema(registry, subject, id, context);
    },
  };
}

async function fetchSchema(registry: SchemaRegistry, subject: string, id: number, context: SerdeContext): Promise<void> {
  try {
    await registry.byId(id);
  } catch (err) {
    // A record naming an id no registry knows is a bad record, not a failure of the registry.
    if (isMillraceError(err, 'MILLRACE_SCHEMA_UNKNOWN')) throw deserializationError(context, `unknown schema id ${id}`, err);
    throw err;
  }
  // A new writer id may come with a new version of the subject.
  await registry.latest(subject);
}

/** The schema id of a framed record, or `undefined` if the bytes do not start with a Confluent header. */
export function frameSchemaId(bytes: Buffer): number | undefined {
  if (bytes.length < FRAME_HEADER_BYTES || bytes[0] !== MAGIC_BYTE) return undefined;
  return bytes.readUInt32BE(1);
}

// One growing buffer for encoding, so a value is copied once into a buffer of its exact size.
let scratch = Buffer.allocUnsafe(64 * 1024);
const MAX_SCRATCH_BYTES = 16 * 1024 * 1024;

/**
 * Encodes a value with a registered schema, framed. Does not run Millrace's validation first (see
 * `validateAndEncode`); throws `MILLRACE_SERIALIZATION` when avsc refuses the value.
 */
export function encodeFramed(schema: RegisteredSchema, value: unknown, context?: SerdeContext): Buffer {
  let end: number;
  try {
    for (;;) {
      end = schema.type.encode(value, scratch, FRAME_HEADER_BYTES);
      if (end >= 0) break;
      // A negative result is the number of bytes missing.
      scratch = Buffer.allocUnsafe(Math.max(scratch.length * 2, scratch.length - end));
    }
  } catch (err) {
    const where = context === undefined ? '' : ` for ${context.topic}`;
    throw new MillraceError(
      'MILLRACE_SERIALIZATION',
      `cannot encode a value${where} with ${schema.subject} v${schema.version}: ${errorMessage(err)}`,
      { cause: err, details: { subject: schema.subject, version: schema.version, schemaId: schema.id } },
    );
  }
  const out = Buffer.allocUnsafe(end);
  scratch.copy(out, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES, end);
  out[0] = MAGIC_BYTE;
  out.writeUInt32BE(schema.id, 1);
  if (scratch.length > MAX_SCRATCH_BYTES) scratch = Buffer.allocUnsafe(64 * 1024);
  return out;
}

export interface DecodeFramedOptions {
  /** Read as this subject's latest version; without it (or when the subject has none), as the writer's schema. */
  readonly readerSubject?: string;
  readonly limits?: AvroLimits;
  /** Names the topic in errors. */
  readonly context?: SerdeContext;
}

/**
 * Decodes a framed record whose writer schema is in the registry's cache. Throws `MILLRACE_DESERIALIZATION` for
 * anything else: short or unframed bytes, an id not cached (call the serde's `prepare` first), bytes that fail
 * `checkAvroBounds`, or a writer schema the reader cannot resolve.
 */
export function decodeFramed<T = unknown>(
  registry: SchemaRegistry,
  bytes: Buffer,
  options: DecodeFramedOptions = {},
): T {
  const { context } = options;
  if (bytes.length < FRAME_HEADER_BYTES) {
    throw decodeError(context, `${bytes.length} bytes is too short for the 5-byte Confluent header`);
  }
  if (bytes[0] !== MAGIC_BYTE) throw decodeError(context, `unknown magic byte ${bytes[0]!}, expected ${MAGIC_BYTE}`);
  const id = bytes.readUInt32BE(1);
  const writer = registry.cachedById(id);
  if (writer === undefined) throw decodeError(context, `unknown schema id ${id}`);
  const latest = options.readerSubject === undefined ? undefined : registry.cachedLatest(options.readerSubject);
  const reader = latest ?? writer;
  checkAvroBounds(writer.type, bytes, FRAME_HEADER_BYTES, options.limits ?? DEFAULT_AVRO_LIMITS, context);
  const resolver = reader.type === writer.type ? undefined : resolverFor(reader, writer, context);
  try {
    const decoded = reader.type.decode(bytes, FRAME_HEADER_BYTES, resolver);
    if (decoded.offset !== bytes.length) throw new Error('the body does not end where the value does');
    return decoded.value as T;
  } catch (err) {
    throw decodeError(context, errorMessage(err), err);
  }
}

// Resolvers by reader type, then writer type: registered types live as long as their registry, and so do these.
const resolvers = new WeakMap<avro.Type, WeakMap<avro.Type, AvroResolver>>();

function resolverFor(
  reader: RegisteredSchema,
  writer: RegisteredSchema,
  context: SerdeContext | undefined,
): AvroResolver {
  let byWriter = resolvers.get(reader.type);
  if (byWriter === undefined) {
    byWriter = new WeakMap();
    resolvers.set(reader.type, byWriter);
  }
  let resolver = byWriter.get(writer.type);
  if (resolver === undefined) {
    try {
      resolver = reader.type.createResolver(writer.type);
    } catch (err) {
      throw decodeError(
        context,
        `schema id ${writer.id} (${writer.subject} v${writer.version}) cannot be read as ` +
          `${reader.subject} v${reader.version}: ${errorMessage(err)}`,
        err,
      );
    }
    byWriter.set(writer.type, resolver);
  }
  return resolver;
}

function decodeError(context: SerdeContext | undefined, reason: string, cause?: unknown): MillraceError {
  return context === undefined
    ? new MillraceError('MILLRACE_DESERIALIZATION', `cannot deserialise an Avro record: ${reason}`, { cause })
    : deserializationError(context, reason, cause);
}

export type ValidateAndEncodeResult =
  | { readonly ok: true; readonly bytes: Buffer; readonly schema: RegisteredSchema }
  | { readonly ok: false; readonly issues: ValidationIssue[]; readonly schema: RegisteredSchema };

/**
 * Validates a value against the subject's latest (cached) schema and encodes it, or returns the issues: the HTTP edge
 * answers 422 with them and appends nothing. `MILLRACE_SCHEMA_UNKNOWN` when the subject has no schema.
 */
export function validateAndEncode(registry: SchemaRegistry, subject: string, value: unknown): ValidateAndEncodeResult {
  const schema = latestOrThrow(registry, subject);
  const issues = validateValue(schema.type, value);
  if (issues.length > 0) return { ok: false, issues, schema };
  return { ok: true, bytes: encodeFramed(schema, value), schema };
}

function latestOrThrow(registry: SchemaRegistry, subject: string): RegisteredSchema {
  const schema = registry.cachedLatest(subject);
  if (schema === undefined) {
    throw new MillraceError(
      'MILLRACE_SCHEMA_UNKNOWN',
      `no schema is registered under subject ${subject}; register one (or load the registry) before producing`,
      { details: { subject } },
    );
  }
  return schema;
}

function violationError(schema: RegisteredSchema, issues: ValidationIssue[], context: SerdeContext): MillraceError {
  const first = issues[0]!;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return new MillraceError(
    'MILLRACE_SCHEMA_VIOLATION',
    `value for ${context.topic} does not match ${schema.subject} v${schema.version}: ` +
      `${first.path === '' ? '' : `${first.path}: `}${first.message}${more}`,
    { details: { issues, subject: schema.subject, version: schema.version, schemaId: schema.id } },
  );
}
