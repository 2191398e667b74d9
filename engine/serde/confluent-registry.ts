import {
  COMPATIBILITY,
  SchemaRegistry as ConfluentClient,
  SchemaType,
} from '@kafkajs/confluent-schema-registry';
import avro from 'avsc';
import { MillraceError, errorMessage, isMillraceError, type ErrorCode } from '../errors.js';
import { parseAvroSchema } from './logical-types.js';
import type { RegisteredSchema, SchemaRegistry } from './registry.js';

export interface ConfluentSchemaRegistryOptions {
  /**
   * Base URL of the Confluent REST API: `http://host:8081` for Confluent's registry, `http://host:8080/apis/ccompat/v7`
   * for Apicurio Registry's Confluent-compatible API.
   */
  readonly url: string;
  /** HTTP basic authentication, if the registry asks for it. */
  readonly auth?: { readonly username: string; readonly password: string };
  /** Per-request timeout (default 10 s). */
  readonly requestTimeoutMs?: number;
  /**
   * The subjects `open()` preloads, so that `cachedLatest` answers for them at once. Default: every subject the
   * registry lists. A listed subject that does not exist yet is fine (it is looked up when first registered); one
   * whose latest version is not Avro or does not parse fails `open()`. When preloading everything, subjects that are
   * not Avro (Protobuf, JSON Schema) or that Millrace cannot parse are left out.
   */
  readonly subjects?: readonly string[];
  /** The client library's client id, sent in its User-Agent with registrations (default `millrace`). */
  readonly clientId?: string;
}

/** The registry's view of one version: `GET /subjects/{subject}/versions/{version}`. */
interface SubjectVersionResponse {
  readonly subject?: string;
  readonly id?: number;
  readonly version?: number;
  readonly schema?: string;
  readonly schemaType?: string;
  readonly references?: readonly unknown[];
}

/** `GET /schemas/ids/{id}`. */
interface SchemaByIdResponse {
  readonly schema?: string;
  readonly schemaType?: string;
  readonly references?: readonly unknown[];
}

interface ParsedSchema {
  readonly schema: avro.Schema;
  readonly type: avro.Type;
}

/** The one compatibility rule Millrace works with, as the registry names it. */
const REQUIRED_COMPATIBILITY = 'BACKWARD';
const DEFAULT_TIMEOUT_MS = 10_000;
const PRELOAD_CONCURRENCY = 8;
const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';
/** Stands for "no HTTP answer at all" (refused, reset, timed out) in `#statusError`; no registry sends it. */
const NO_ANSWER_STATUS = 599;
/**
 * How the client library reports a request that got no HTTP answer: its HTTP layer (mappersmith) turns the socket
 * error into a status 400 whose body is the error's message, which the library's error then quotes after this
 * prefix. A registry's own 400 carries a JSON body whose message the library quotes instead.
 */
const CLIENT_NO_ANSWER = /Error, status 400: (.*)$/s;

type ClientMiddleware = NonNullable<ConstructorParameters<typeof ConfluentClient>[0]['middlewares']>[number];

/**
 * A `SchemaRegistry` backed by a Confluent-compatible schema registry (Confluent Schema Registry, Apicurio Registry's
 * `ccompat` API, Redpanda…), through `@kafkajs/confluent-schema-registry` for registrations and the registry's REST
 * API for reading schemas back as text.
 *
 * - Compatibility is the registry's job: Millrace expects BACKWARD. A subject first registered through this class is
 *   set to BACKWARD (as the client library does); a subject whose own setting is another level is refused with
 *   `MILLRACE_CONFIG_INVALID`, a schema the registry finds incompatible with `MILLRACE_SCHEMA_INCOMPATIBLE`.
 * - Schemas are parsed with Millrace's logical types (`parseAvroSchema`), so date-times, IP addresses and ranges are
 *   validated exactly as with the embedded registry. A schema Millrace refuses is never sent
 *   (`MILLRACE_SCHEMA_INVALID`).
 * - Schemas are sent as deterministic JSON (keys in a fixed order), so the same schema written twice, or in two
 *   programs, is the same text: registries that tell schemas apart by their text (Apicurio) then return the
 *   existing id and version instead of adding one.
 * - The synchronous lookups answer from memory: `open()` preloads the latest version of the subjects; every lookup,
 *   registration and preload fills the caches. `cachedById` keeps an id for good (ids are immutable);
 *   `cachedLatest` changes when `latest`, `versions` or `register` see a newer version.
 * - Failures to reach the registry (refused, reset, timed out, 5xx) are `MILLRACE_SCHEMA_REGISTRY_UNAVAILABLE` (retriable)
 *   and a message naming the URL; an unknown id or subject is `MILLRACE_SCHEMA_UNKNOWN`.
 *
 *     const registry = new ConfluentSchemaRegistry({ url: 'http://127.0.0.1:8081' });
 *     await registry.open();
 */
export class ConfluentSchemaRegistry implements SchemaRegistry {
  /** The base URL of the Confluent API, without a trailing slash. */
  readonly url: string;
  readonly #client: ConfluentClient;
  readonly #timeoutMs: number;
  readonly #authorization: string | undefined;
  readonly #preloadSubjects: readonly string[] | undefined;
  /** The first registration seen for each id (as the embedded registry answers an id with its first registration). */
  readonly #byId = new Map<number, RegisteredSchema>();
  /** One parsed type per id, shared by every registration of the id (resolvers are cached per type). */
  readonly #parsed = new Map<number, ParsedSchema>();
  readonly #latest = new Map<string, RegisteredSchema>();
  /** `subject \0 version` → registration; a version's schema never changes. */
  readonly #versions = new Map<string, RegisteredSchema>();
  readonly #fetchingId = new Map<number, Promise<RegisteredSchema>>();
  #opening: Promise<void> | undefined;
  /** Registrations from this instance run one at a time, in call order, as with the embedded registry. */
  #registering: Promise<unknown> = Promise.resolve();

  constructor(options: ConfluentSchemaRegistryOptions) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(options.url.trim());
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
      throw new MillraceError(
        'MILLRACE_CONFIG_INVALID',
        `a schema registry URL is http(s)://host[:port][/path], got ${JSON.stringify(options.url)}`,
      );
    }
    // Credentials in the URL (http://user:secret@host) become basic authentication, and stay out of messages.
    let { auth } = options;
    if (auth === undefined && parsed.username !== '') {
      auth = { username: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password) };
    }
    parsed.username = '';
    parsed.password = '';
    const url = parsed.toString().replace(/\/+$/, '');
    this.url = url;
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#preloadSubjects = options.subjects;
    this.#authorization =
      auth === undefined ? undefined : `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
    this.#client = new ConfluentClient(
      {
        host: url,
        clientId: options.clientId ?? 'millrace',
        ...(auth === undefined ? {} : { auth: { username: auth.username, password: auth.password } }),
        middlewares: [timeoutMiddleware(this.#timeoutMs)],
      },
      // The client parses every schema it registers with plain avsc; unions as Millrace parses them.
      { [SchemaType.AVRO]: { wrapUnions: 'auto' } },
    );
  }

  /**
   * Loads the latest version of the subjects (see `ConfluentSchemaRegistryOptions.subjects`), so `cachedLatest`
   * answers for them. Other methods do not need it; call it before decoding or producing. A failed open may be retried.
   */
  open(): Promise<void> {
    if (this.#opening === undefined) {
      const opening = this.#preload();
      this.#opening = opening;
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
    const text = stableSchemaText(json);
    return this.#serialise(async () => {
      const id = isNamed(type) ? await this.#registerNamed(subject, text) : await this.#registerUnnamed(subject, text);
      // Registration answers only the id; the version comes from looking the same text up under the subject.
      const found = await this.#request<SubjectVersionResponse>('POST', `/subjects/${enc(subject)}`, { schema: text });
      const registered = this.#remember(subject, found, { schema: JSON.parse(text) as avro.Schema, type });
      if (registered.id !== id) {
        throw new MillraceError(
          'MILLRACE_INTERNAL',
          `schema registry at ${this.url} registered subject ${subject} as id ${id} ` +
            `but looks it up as id ${registered.id}`,
          { details: { subject, id, lookedUp: registered.id } },
        );
      }
      const latest = this.#latest.get(subject);
      if (latest === undefined || latest.version < registered.version) this.#latest.set(subject, registered);
      return registered;
    });
  }

  async byId(id: number): Promise<RegisteredSchema> {
    const cached = this.#byId.get(id);
    if (cached !== undefined) return cached;
    if (!Number.isSafeInteger(id) || id < 0) {
      throw new MillraceError('MILLRACE_SCHEMA_UNKNOWN', `no schema has id ${id}`, { details: { id } });
    }
    // Many records may name the same new id at once: one request.
    let pending = this.#fetchingId.get(id);
    if (pending === undefined) {
      pending = this.#fetchById(id).finally(() => this.#fetchingId.delete(id));
      this.#fetchingId.set(id, pending);
    }
    return pending;
  }

  async latest(subject: string): Promise<RegisteredSchema | undefined> {
    let found: SubjectVersionResponse;
    try {
      found = await this.#request<SubjectVersionResponse>('GET', `/subjects/${enc(subject)}/versions/latest`);
    } catch (err) {
      if (!isMillraceError(err, 'MILLRACE_SCHEMA_UNKNOWN')) throw err;
      // The subject is gone (deleted) or never was.
      this.#latest.delete(subject);
      return undefined;
    }
    const registered = this.#remember(subject, found);
    this.#latest.set(subject, registered);
    return registered;
  }

  async versions(subject: string): Promise<RegisteredSchema[]> {
    let numbers: unknown;
    try {
      numbers = await this.#request<unknown>('GET', `/subjects/${enc(subject)}/versions`);
    } catch (err) {
      if (isMillraceError(err, 'MILLRACE_SCHEMA_UNKNOWN')) return [];
      throw err;
    }
    if (!Array.isArray(numbers) || !numbers.every((n) => Number.isSafeInteger(n))) {
      throw this.#badAnswer(`GET /subjects/${subject}/versions`, numbers);
    }
    const sorted = [...(numbers as number[])].sort((a, b) => a - b);
    const result = await Promise.all(
      sorted.map(async (version) => {
        const known = this.#versions.get(versionKey(subject, version));
        if (known !== undefined) return known;
        const path = `/subjects/${enc(subject)}/versions/${version}`;
        const found = await this.#request<SubjectVersionResponse>('GET', path);
        return this.#remember(subject, found);
      }),
    );
    const newest = result[result.length - 1];
    if (newest !== undefined) this.#latest.set(subject, newest);
    return result;
  }

  async subjects(): Promise<string[]> {
    const subjects = await this.#request<unknown>('GET', '/subjects');
    if (!Array.isArray(subjects) || !subjects.every((s) => typeof s === 'string')) {
      throw this.#badAnswer('GET /subjects', subjects);
    }
    return [...(subjects as string[])].sort();
  }

  cachedById(id: number): RegisteredSchema | undefined {
    return this.#byId.get(id);
  }

  cachedLatest(subject: string): RegisteredSchema | undefined {
    return this.#latest.get(subject);
  }

  async #preload(): Promise<void> {
    const explicit = this.#preloadSubjects !== undefined;
    const subjects = this.#preloadSubjects ?? (await this.subjects());
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < subjects.length) {
        const subject = subjects[next++]!;
        try {
          await this.latest(subject);
        } catch (err) {
          // Someone else's Protobuf or JSON Schema subject, or an Avro schema Millrace cannot parse, on a shared
          // registry: not ours to load unless it was asked for.
          if (explicit || !isMillraceError(err) || !SKIPPABLE_ON_PRELOAD.has(err.code)) throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PRELOAD_CONCURRENCY, subjects.length) }, worker));
  }

  async #fetchById(id: number): Promise<RegisteredSchema> {
    const [found, usedBy] = await Promise.all([
      this.#request<SchemaByIdResponse>('GET', `/schemas/ids/${id}`),
      // Where the id is used, for the subject and version a RegisteredSchema carries (Confluent 5.5+, Apicurio).
      this.#request<unknown>('GET', `/schemas/ids/${id}/versions`).catch((err: unknown) => {
        if (isMillraceError(err, 'MILLRACE_SCHEMA_UNKNOWN')) return [];
        throw err;
      }),
    ]);
    const already = this.#byId.get(id);
    if (already !== undefined) return already;
    const parsed = this.#parse(id, found, `schema id ${id}`);
    const first = Array.isArray(usedBy)
      ? (usedBy as unknown[]).find(
          (u): u is { subject: string; version: number } =>
            typeof u === 'object' &&
            u !== null &&
            typeof (u as { subject?: unknown }).subject === 'string' &&
            Number.isSafeInteger((u as { version?: unknown }).version),
        )
      : undefined;
    // An id whose every version was deleted still decodes; it just has no subject to name any more.
    const registered: RegisteredSchema = Object.freeze({
      id,
      subject: first?.subject ?? '',
      version: first?.version ?? 0,
      schema: parsed.schema,
      type: parsed.type,
    });
    if (first !== undefined) this.#versions.set(versionKey(first.subject, first.version), registered);
    this.#byId.set(id, registered);
    return registered;
  }

  /** Records one version the registry described, with the type parsed once per id. */
  #remember(subject: string, found: SubjectVersionResponse, parsedHere?: ParsedSchema): RegisteredSchema {
    const { id, version } = found;
    if (!Number.isSafeInteger(id) || !Number.isSafeInteger(version) || (found.subject ?? subject) !== subject) {
      throw this.#badAnswer(`the version of subject ${subject}`, found);
    }
    const known = this.#versions.get(versionKey(subject, version!));
    if (known !== undefined && known.id === id) return known;
    const parsed =
      this.#parsed.get(id!) ?? parsedHere ?? this.#parse(id!, found, `subject ${subject} version ${version}`);
    this.#parsed.set(id!, parsed);
    const registered: RegisteredSchema = Object.freeze({
      id: id!,
      subject,
      version: version!,
      schema: parsed.schema,
      type: parsed.type,
    });
    this.#versions.set(versionKey(subject, version!), registered);
    if (!this.#byId.has(id!)) this.#byId.set(id!, registered);
    return registered;
  }

  #parse(id: number, found: SchemaByIdResponse, what: string): ParsedSchema {
    const known = this.#parsed.get(id);
    if (known !== undefined) return known;
    const schemaType = found.schemaType ?? 'AVRO';
    if (schemaType !== 'AVRO') {
      // A record framed with a Protobuf or JSON Schema id is not an Avro record of ours: a bad record.
      throw new MillraceError('MILLRACE_SCHEMA_UNKNOWN', `${what} at ${this.url} is a ${schemaType} schema, not Avro`, {
        details: { id, schemaType },
      });
    }
    if (found.references !== undefined && found.references.length > 0) {
      throw new MillraceError(
        'MILLRACE_SCHEMA_INVALID',
        `${what} at ${this.url} refers to other subjects' schemas (schema references), which Millrace does not resolve`,
        { details: { id } },
      );
    }
    if (typeof found.schema !== 'string') throw this.#badAnswer(what, found);
    let schema: avro.Schema;
    try {
      schema = JSON.parse(found.schema) as avro.Schema;
    } catch (err) {
      throw new MillraceError('MILLRACE_SCHEMA_INVALID', `${what} at ${this.url} is not JSON: ${errorMessage(err)}`, {
        cause: err,
        details: { id },
      });
    }
    let type: avro.Type;
    try {
      type = parseAvroSchema(schema);
    } catch (err) {
      throw new MillraceError('MILLRACE_SCHEMA_INVALID', `${what} at ${this.url}: ${errorMessage(err)}`, {
        cause: err,
        details: { id },
      });
    }
    const parsed: ParsedSchema = { schema, type };
    this.#parsed.set(id, parsed);
    return parsed;
  }

  /** Records, enums and fixed types: through the client library, which pins the subject's compatibility. */
  async #registerNamed(subject: string, text: string): Promise<number> {
    try {
      const { id } = await this.#client.register(
        { type: SchemaType.AVRO, schema: text },
        { subject, compatibility: COMPATIBILITY.BACKWARD },
      );
      return id;
    } catch (err) {
      throw this.#fromClientError(err, subject);
    }
  }

  /**
   * Primitives, arrays, maps, unions: the client library registers only named types, so this does what it does over
   * the REST API: a subject's first registration also sets the subject to BACKWARD.
   */
  async #registerUnnamed(subject: string, text: string): Promise<number> {
    let firstRegistration = false;
    try {
      const config = await this.#request<{ compatibilityLevel?: string; compatibility?: string }>(
        'GET',
        `/config/${enc(subject)}`,
      );
      this.#checkCompatibility(subject, config.compatibilityLevel ?? config.compatibility);
    } catch (err) {
      if (!isMillraceError(err, 'MILLRACE_SCHEMA_UNKNOWN')) throw err;
      firstRegistration = true;
    }
    const { id } = await this.#request<{ id?: number }>('POST', `/subjects/${enc(subject)}/versions`, { schema: text });
    if (!Number.isSafeInteger(id)) throw this.#badAnswer(`registering under ${subject}`, { id });
    if (firstRegistration) {
      await this.#request('PUT', `/config/${enc(subject)}`, { compatibility: REQUIRED_COMPATIBILITY });
    }
    return id!;
  }

  #checkCompatibility(subject: string, level: string | undefined): void {
    if (level?.toUpperCase() === REQUIRED_COMPATIBILITY) return;
    throw new MillraceError(
      'MILLRACE_CONFIG_INVALID',
      `subject ${subject} at ${this.url} has compatibility ${String(level)}; Millrace needs ${REQUIRED_COMPATIBILITY} ` +
        `(set it with PUT ${this.url}/config/${subject} {"compatibility": "${REQUIRED_COMPATIBILITY}"})`,
      { details: { subject, compatibility: level } },
    );
  }

  #fromClientError(err: unknown, subject: string): MillraceError {
    if (isMillraceError(err)) return err;
    const name = err instanceof Error ? err.name : '';
    const message = errorMessage(err);
    if (name === 'ConfluentSchemaRegistryCompatibilityError') {
      const level = /!= ([A-Z_]+)\)/.exec(message)?.[1];
      try {
        this.#checkCompatibility(subject, level);
      } catch (mismatch) {
        return mismatch as MillraceError;
      }
    }
    if (name === 'ConfluentSchemaRegistryInvalidSchemaError' || name === 'ConfluentSchemaRegistryArgumentError') {
      return new MillraceError('MILLRACE_SCHEMA_INVALID', `invalid Avro schema for subject ${subject}: ${message}`, {
        cause: err,
        details: { subject },
      });
    }
    const status = (err as { status?: unknown } | null)?.status;
    const noAnswer = status === 400 ? CLIENT_NO_ANSWER.exec(message) : null;
    // The client library's messages start with its client id.
    const detail = noAnswer?.[1] ?? message.replace(/^[^ ]* - /, '');
    const effective = noAnswer !== null ? NO_ANSWER_STATUS : typeof status === 'number' ? status : undefined;
    return this.#statusError(effective, detail, `registering under ${subject}`, err, { subject });
  }

  async #request<T>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: `${CONTENT_TYPE}, application/json` };
    if (body !== undefined) headers['Content-Type'] = CONTENT_TYPE;
    if (this.#authorization !== undefined) headers['Authorization'] = this.#authorization;
    const what = `${method} ${path}`;
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.url + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      text = await response.text();
    } catch (err) {
      const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
      const reason =
        (err as { name?: unknown }).name === 'TimeoutError'
          ? `no answer within ${this.#timeoutMs} ms`
          : String(cause?.code ?? cause?.message ?? errorMessage(err));
      throw this.#statusError(NO_ANSWER_STATUS, reason, what, err);
    }
    let json: unknown;
    try {
      json = text === '' ? undefined : (JSON.parse(text) as unknown);
    } catch {
      json = undefined;
    }
    if (response.ok) {
      if (json === undefined && text !== '') throw this.#badAnswer(what, text);
      return json as T;
    }
    const message = (json as { message?: unknown } | undefined)?.message;
    const detail = typeof message === 'string' ? message : text.slice(0, 300);
    throw this.#statusError(response.status, detail, what, undefined, {
      errorCode: (json as { error_code?: unknown } | undefined)?.error_code,
    });
  }

  /** One mapping from an HTTP outcome to a Millrace error, for the client library's errors and for `#request`. */
  #statusError(
    status: number | undefined,
    detail: string,
    what: string,
    cause?: unknown,
    details: Record<string, unknown> = {},
  ): MillraceError {
    const all = { ...details, url: this.url, status };
    const options = { cause, details: all };
    switch (status) {
      case 404:
        return new MillraceError('MILLRACE_SCHEMA_UNKNOWN', `${what}: ${detail}`, options);
      case 409:
        return new MillraceError('MILLRACE_SCHEMA_INCOMPATIBLE', `the schema registry refused ${what}: ${detail}`, options);
      case 422:
        return new MillraceError('MILLRACE_SCHEMA_INVALID', `the schema registry refused ${what}: ${detail}`, options);
      default: {
        const unreachable = status === NO_ANSWER_STATUS;
        // Nothing answered, or the registry failed: worth trying again. Anything else (401, 403, 400) will not change.
        const retriable = status !== undefined && (unreachable || status >= 500 || status === 408 || status === 429);
        const reason = unreachable ? `no answer (${detail})` : status === undefined ? detail : `status ${status}: ${detail}`;
        return new MillraceError(retriable ? 'MILLRACE_SCHEMA_REGISTRY_UNAVAILABLE' : 'MILLRACE_INTERNAL', `schema registry at ${this.url}: ${what}: ${reason}`, {
          ...options,
          retriable,
        });
      }
    }
  }

  #badAnswer(what: string, answer: unknown): MillraceError {
    return new MillraceError(
      'MILLRACE_INTERNAL',
      `schema registry at ${this.url} gave an unexpected answer for ${what}: ${JSON.stringify(answer)?.slice(0, 300)}`,
      { details: { url: this.url } },
    );
  }

  #serialise<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#registering.then(task);
    this.#registering = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}

const SKIPPABLE_ON_PRELOAD: ReadonlySet<ErrorCode> = new Set(['MILLRACE_SCHEMA_UNKNOWN', 'MILLRACE_SCHEMA_INVALID']);

/** Sets the client library's request timeout (mappersmith's HTTP gateway has none by default). */
function timeoutMiddleware(timeoutMs: number): ClientMiddleware {
  return () => ({
    prepareRequest(next) {
      return next().then((request) => (request.timeout() ? request : request.enhance({ timeout: timeoutMs })));
    },
  });
}

function checkSubject(subject: string): void {
  if (typeof subject !== 'string' || subject.length === 0 || subject.length > 255) {
    throw new TypeError(`a subject is a string of 1 to 255 characters, got ${JSON.stringify(subject)}`);
  }
}

function isNamed(type: avro.Type): boolean {
  return typeof (type as { name?: unknown }).name === 'string';
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

function versionKey(subject: string, version: number): string {
  return `${subject}\0${version}`;
}

const PRIMITIVES: ReadonlySet<unknown> = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);
/** Key order for a type: what it is, its name, then its structure, then everything else alphabetically. */
const TYPE_KEY_ORDER = ['type', 'name', 'namespace', 'aliases', 'doc', 'fields', 'symbols', 'default', 'items', 'values', 'size'];
const FIELD_KEY_ORDER = ['name', 'aliases', 'doc', 'type', 'default', 'order'];

/**
 * The schema as deterministic JSON: keys in a fixed order (Avro's own first, then the rest alphabetically), no
 * whitespace, `{"type": "string"}` written `"string"`. Two schemas that differ only in key order or layout give the
 * same text.
 */
export function stableSchemaText(schema: avro.Schema): string {
  return JSON.stringify(stableType(schema));
}

function stableType(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(stableType);
  if (typeof node !== 'object' || node === null) return node;
  const attrs = node as Record<string, unknown>;
  const keys = Object.keys(attrs);
  if (keys.length === 1 && keys[0] === 'type' && PRIMITIVES.has(attrs['type'])) return attrs['type'];
  const out: Record<string, unknown> = {};
  for (const key of orderedKeys(attrs, TYPE_KEY_ORDER)) {
    const value = attrs[key];
    if (key === 'type' || key === 'items' || key === 'values') out[key] = stableType(value);
    else if (key === 'fields' && Array.isArray(value)) out[key] = value.map(stableField);
    else out[key] = stableValue(value);
  }
  return out;
}

function stableField(field: unknown): unknown {
  if (typeof field !== 'object' || field === null || Array.isArray(field)) return field;
  const attrs = field as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of orderedKeys(attrs, FIELD_KEY_ORDER)) {
    out[key] = key === 'type' ? stableType(attrs[key]) : stableValue(attrs[key]);
  }
  return out;
}

/** Defaults and other attribute values: objects with sorted keys. */
function stableValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stableValue);
  if (typeof value !== 'object' || value === null) return value;
  const attrs = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(attrs).sort()) out[key] = stableValue(attrs[key]);
  return out;
}

function orderedKeys(attrs: Record<string, unknown>, order: readonly string[]): string[] {
  const present = Object.keys(attrs).filter((key) => attrs[key] !== undefined);
  const known = order.filter((key) => present.includes(key));
  const rest = present.filter((key) => !order.includes(key)).sort();
  return [...known, ...rest];
}
