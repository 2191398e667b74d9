import type avro from 'avsc';

/** One version of a schema under a subject, as a Confluent-compatible registry describes it. */
export interface RegisteredSchema {
  /** Global id, written after the magic byte in every framed record. */
  readonly id: number;
  readonly subject: string;
  /** 1, 2, 3… per subject. */
  readonly version: number;
  /** The Avro schema, as JSON. */
  readonly schema: avro.Schema;
  /** The parsed type (avsc), with Millrace's logical types. */
  readonly type: avro.Type;
}

/**
 * Schema ids and compatibility. Subjects follow Confluent's TopicNameStrategy: `<topic>-value`, `<topic>-key`.
 * Compatibility is BACKWARD: a new version must be able to read data written with the previous one.
 *
 * The synchronous lookups answer from memory so that decoding stays synchronous on the hot path; when they answer
 * `undefined`, the asynchronous ones may fetch (a remote registry) before the caller tries again.
 */
export interface SchemaRegistry {
  /** Registers a schema (or returns the existing registration of an identical one). `MILLRACE_SCHEMA_INCOMPATIBLE`. */
  register(subject: string, schema: avro.Schema): Promise<RegisteredSchema>;
  /** `MILLRACE_SCHEMA_UNKNOWN` when no schema has that id. */
  byId(id: number): Promise<RegisteredSchema>;
  latest(subject: string): Promise<RegisteredSchema | undefined>;
  versions(subject: string): Promise<RegisteredSchema[]>;
  subjects(): Promise<string[]>;

  cachedById(id: number): RegisteredSchema | undefined;
  cachedLatest(subject: string): RegisteredSchema | undefined;
}

export function valueSubject(topic: string): string {
  return `${topic}-value`;
}

export function keySubject(topic: string): string {
  return `${topic}-key`;
}

/** The compacted topic that holds the embedded registry, as Confluent's registry keeps `_schemas`. */
export const SCHEMAS_TOPIC = '_schemas';
