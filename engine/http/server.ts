import { recordView } from './codec.js';
import { registerConsoleRoutes, type ConsoleOptions } from './console-routes.js';
import { registerDeadLetterRoutes } from './dead-letter-routes.js';
import { registerLookupRoutes } from './lookup-routes.js';
import { registerModelRoutes } from './model-routes.js';
import { registerProjectionRoutes } from './projection-routes.js';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { z } from 'zod';
import {
  MillraceError,
  errorMessage,
  problemFor,
  problemFromError,
  type ErrorCode,
  type Problem,
} from '../errors.js';
import {
  TOPIC_NAME_PATTERN,
  offset as toOffset,
  type AppendRecord,
  type AppendResult,
  type Log,
  type LogRecord,
  type PartitionOffsets,
  type TopicInfo,
} from '../log/log.js';
import type { EngineApi } from '../runtime/status.js';
import {
  displayText,
  isIsoDateTime,
  registerTopicSchema,
  topicSchemaRef,
  valueDecoderFor,
  valueEncoderFor,
  type Base64Value,
  type SchemaRef,
} from './codec.js';
import { openApiDocument } from './openapi.js';

export interface HttpServerOptions {
  /** Largest request body accepted; larger ones get 413. Default 1 MiB. */
  readonly bodyLimitBytes?: number;
  /** Most records in one produce request; more get 413. Default 10 000. */
  readonly maxRecordsPerRequest?: number;
  /** Most records one `GET /topics/:topic/events` returns (its `limit` may not exceed it). Default 1000. */
  readonly maxRecordsPerRead?: number;
  /** Longest long-poll a read may ask for with `waitMs`. Default 30 s. */
  readonly maxWaitMs?: number;
  /**
   * On close, requests in flight get this long to finish before every connection is cut. A client that stops
   * reading its responses must not hold a shutdown open. Default 1 s.
   */
  readonly closeGraceMs?: number;
  /** A pino-compatible logger for requests and failures, or `false` for none (the default). */
  readonly logger?: FastifyBaseLogger | false;
  /** The ops console at `/console`. */
  readonly console?: ConsoleOptions;
}

export const HTTP_DEFAULTS = Object.freeze({
  bodyLimitBytes: 1024 * 1024,
  maxRecordsPerRequest: 10_000,
  maxRecordsPerRead: 1000,
  maxWaitMs: 30_000,
  closeGraceMs: 1_000,
});

/** Records a read returns when no `limit` is given. */
const DEFAULT_READ_LIMIT = 100;
/** Problems list at most this many record errors; `errorCount` says how many there were. */
const MAX_REPORTED_ERRORS = 100;
/** Partitions read at once by one request. */
const READ_CONCURRENCY = 32;
/** The latest time a JavaScript Date can hold, in ms since the epoch. */
const MAX_TIMESTAMP_MS = 8_640_000_000_000_000;
const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

const ENVELOPE_KEYS: ReadonlySet<string> = new Set(['key', 'value', 'timestamp', 'headers', 'partition']);

type Query = Record<string, string | string[] | undefined>;

interface RecordError {
  readonly index: number;
  /** A JSON pointer into the record: `/value/amount`, `/timestamp`. */
  readonly path: string;
  readonly message: string;
}

interface TopicView {
  readonly name: string;
  readonly partitions: number;
  readonly cleanupPolicy: TopicInfo['cleanupPolicy'];
  readonly retentionMs: number | null;
  readonly retentionBytes: number | null;
  readonly internal: boolean;
  readonly schema: SchemaRef | null;
  readonly offsets: ReadonlyArray<{ partition: number; start: number; end: number }>;
}

/**
 * The HTTP API of an engine (DESIGN §8): topics, producing and reading events, health, status, topologies and
 * Prometheus metrics. Every error is an RFC 7807 problem document with a stable `code`.
 */
export async function buildHttpServer(engine: EngineApi, options: HttpServerOptions = {}): Promise<FastifyInstance> {
  const bodyLimitBytes = positiveInteger('bodyLimitBytes', options.bodyLimitBytes, HTTP_DEFAULTS.bodyLimitBytes);
  const maxRecordsPerRequest = positiveInteger('maxRecordsPerRequest', options.maxRecordsPerRequest, HTTP_DEFAULTS.maxRecordsPerRequest);
  const maxRecordsPerRead = positiveInteger('maxRecordsPerRead', options.maxRecordsPerRead, HTTP_DEFAULTS.maxRecordsPerRead);
  const maxWaitMs = positiveInteger('maxWaitMs', options.maxWaitMs, HTTP_DEFAULTS.maxWaitMs);
  const logger = options.logger ?? false;

  const app = Fastify({
    ...(logger === false ? { logger: false } : { loggerInstance: logger }),
    bodyLimit: bodyLimitBytes,
    // Topic names may be 249 characters long.
    routerOptions: { maxParamLength: 512 },
    // The router's own refusals (a path that is not valid percent-encoding, a parameter over the length limit)
    // bypass the error handler: answer them as problems too.
    frameworkErrors: (error, request, reply) => {
      void sendProblem(reply, request, problemFor('MILLRACE_HTTP_BAD_REQUEST', `the request path cannot be read: ${error.message}`));
    },
  });
  const { log, metrics } = engine;

  // Long polls end when the server closes, so that closing does not wait for them.
  const waiting = new Set<AbortController>();
  const closeGraceMs = options.closeGraceMs ?? HTTP_DEFAULTS.closeGraceMs;
  let cutConnections: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    for (const controller of waiting) controller.abort();
    cutConnections = setTimeout(() => app.server.closeAllConnections(), closeGraceMs);
    cutConnections.unref();
  });
  app.addHook('onClose', async () => {
    clearTimeout(cutConnections);
  });

  app.removeAllContentTypeParsers();
  const parseJson = (_request: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim().length === 0) {
      done(new MillraceError('MILLRACE_HTTP_MALFORMED_JSON', 'the request body is empty; send a JSON document'));
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(new MillraceError('MILLRACE_HTTP_MALFORMED_JSON', `the request body is not valid JSON: ${errorMessage(err)}`));
    }
  };
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJson);
  app.addContentTypeParser(/^application\/[a-z0-9.+-]+\+json$/, { parseAs: 'string' }, parseJson);

  app.setErrorHandler(async (err, request, reply) => {
    const problem = problemOf(err);
    if (problem.status >= 500) request.log.error({ err }, 'request failed');
    await countRejectedProduce(request, problem);
    return sendProblem(reply, request, problem);
  });

  app.setNotFoundHandler(async (request, reply) => {
    const path = request.url.split('?')[0] ?? request.url;
    return sendProblem(reply, request, problemFor('MILLRACE_HTTP_NOT_FOUND', `no route ${request.method} ${path}`));
  });

  app.addHook('onResponse', async (request, reply) => {
    metrics.httpRequests.inc({
      method: request.method,
      route: request.is404 ? 'not-found' : (request.routeOptions.url ?? 'not-found'),
      status: String(reply.statusCode),
    });
  });

  /** Counts a refused produce request, whichever stage refused it (parsing the body, or the handler). */
  async function countRejectedProduce(request: FastifyRequest, problem: Problem): Promise<void> {
    if (request.method !== 'POST' || request.routeOptions.url !== '/topics/:topic/events') return;
    const reason = REJECT_REASONS[problem.code];
    if (reason === undefined) return;
    const topic = (request.params as { topic?: string }).topic ?? '';
    metrics.produceRejected.inc({ topic: await topicLabel(log, topic), reason });
  }

  // ------------------------------------------------------------------ topics

  app.post('/topics', async (request, reply) => {
    const body = parseCreateTopic(request.body);
    checkTopicName(body.name);
    if (await topicExists(log, body.name)) {
      throw new MillraceError('MILLRACE_TOPIC_EXISTS', `topic ${body.name} already exists`, { details: { topic: body.name } });
    }
    // The schema first: a topic must never exist without the schema it was created with.
    const schema = body.schema === undefined
      ? null
      : await registerTopicSchema(engine.registry, engine.schemasDir, body.name, body.schema);
    const info = await log.createTopic({
      name: body.name,
      partitions: body.partitions ?? 1,
      cleanupPolicy: body.compacted === true ? 'compact' : 'delete',
      retentionMs: body.retentionMs ?? null,
      retentionBytes: body.retentionBytes ?? null,
    });
    const view = topicView(info, schema, await log.partitionOffsets(info.name));
    return reply.code(201).header('location', `/topics/${encodeURIComponent(info.name)}`).send(view);
  });

  app.get('/topics', async () => {
    const topics = await log.listTopics();
    const views: TopicView[] = [];
    for (const info of topics) {
      views.push(topicView(info, await topicSchemaRef(engine.registry, info.name), await log.partitionOffsets(info.name)));
    }
    return { topics: views };
  });

  app.get('/topics/:topic', async (request) => {
    const { topic } = request.params as { topic: string };
    const info = await log.describeTopic(topic);
    return topicView(info, await topicSchemaRef(engine.registry, topic), await log.partitionOffsets(topic));
  });

  // ------------------------------------------------------------------ produce

  app.post('/topics/:topic/events', async (request) => {
    const { topic } = request.params as { topic: string };
    const query = request.query as Query;
    const info = await log.describeTopic(topic);
    const defaultKey = singleQueryValue(query, 'key');
    const raw = splitProduceBody(request.body, defaultKey !== undefined);
    if (raw.length > maxRecordsPerRequest) {
      throw new MillraceError(
        'MILLRACE_HTTP_TOO_LARGE',
        `a request may hold at most ${maxRecordsPerRequest} records, this one holds ${raw.length}; send smaller batches`,
        { details: { maxRecordsPerRequest } },
      );
    }
    const encoder = await valueEncoderFor(engine.registry, topic);
    const errors: RecordError[] = [];
    let schemaErrors = 0;
    const records: AppendRecord[] = [];
    raw.forEach((entry, index) => {
      const record = parseRecord(entry, index, info, defaultKey ?? null, errors);
      if (record === undefined) return;
      const encoded = encoder.encode(record.value);
      if (!encoded.ok) {
        schemaErrors += encoded.issues.length;
        for (const issue of encoded.issues) errors.push({ index, path: `/value${issue.path}`, message: issue.message });
        return;
      }
      records.push({ ...record.append, topic, value: encoded.bytes });
    });
    if (errors.length > 0) {
      const invalid = new Set(errors.map((e) => e.index)).size;
      const first = errors[0]!;
      const detail =
        `${invalid} of ${raw.length} record${raw.length === 1 ? ' is' : 's are'} invalid, so nothing was appended; ` +
        `record ${first.index}${first.path === '' ? '' : ` at ${first.path}`}: ${first.message}`;
      throw new MillraceError(schemaErrors > 0 && encoder.schema !== null ? 'MILLRACE_SCHEMA_VIOLATION' : 'MILLRACE_HTTP_VALIDATION', detail, {
        details: {
          topic,
          ...(encoder.schema === null ? {} : { schema: encoder.schema }),
          errors: errors.slice(0, MAX_REPORTED_ERRORS),
          errorCount: errors.length,
        },
      });
    }
    const results: AppendResult[] = records.length === 0 ? [] : await log.append(records);
    if (results.length > 0) metrics.produced.inc({ topic }, results.length);
    return {
      offsets: results.map((r) => ({ partition: r.partition, offset: r.offset, timestamp: isoTime(r.timestamp) })),
    };
  });

  // ------------------------------------------------------------------ read

  app.get('/topics/:topic/events', async (request, reply) => {
    const { topic } = request.params as { topic: string };
    const query = parseReadQuery(request.query as Query, maxRecordsPerRead, maxWaitMs);
    const info = await log.describeTopic(topic);
    const bounds = await log.partitionOffsets(topic);
    const starts = await startPositions(log, info, bounds, query);
    const controller = new AbortController();
    const onClose = (): void => controller.abort();
    reply.raw.once('close', onClose);
    waiting.add(controller);
    let collected: Collected;
    try {
      collected = await collect(log, topic, starts, bounds, query.limit, query.waitMs, controller.signal);
    } finally {
      waiting.delete(controller);
      reply.raw.off('close', onClose);
    }
    const decoder = await valueDecoderFor(engine.registry, topic);
    const records = [];
    for (const record of collected.records) records.push(await recordView(record, decoder));
    return { records, next: collected.next, highWatermarks: collected.highWatermarks };
  });

  // ------------------------------------------------------------------ engine

  app.get('/health', async (request, reply) => {
    let status;
    try {
      status = await engine.status();
    } catch (err) {
      request.log.error({ err }, 'engine status failed');
      const error = err instanceof MillraceError ? err.message : 'the engine status is not available';
      return reply.code(503).send({ status: 'degraded', state: 'unknown', error });
    }
    const running = status.state === 'running';
    const failed = status.applications.filter((a) => a.state === 'failed');
    return reply.code(running ? 200 : 503).send({
      status: running && failed.length === 0 ? 'ok' : 'degraded',
      state: status.state,
      version: status.version,
      startedAt: status.startedAt,
      log: status.log.kind,
      applications: status.applications.map((a) => ({ applicationId: a.applicationId, state: a.state, error: a.error })),
    });
  });

  app.get('/status', async () => engine.status());

  app.get('/topologies', async () => ({ topologies: engine.topologies() }));

  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.text();
    return reply.type(metrics.contentType).send(text);
  });

  app.get('/openapi.json', async () => openApiDocument);

  // ------------------------------------------------------------------ models

  app.get('/models', async () => ({ models: engine.models === undefined ? [] : await engine.models.list() }));

  // The parameter `name` (no colon or slash) followed by the literal `:predict` (`::` escapes the colon).
  app.post('/v1/models/:name(^[^:/]+)::predict', async (request) => {
    const { name } = request.params as { name: string };
    if (engine.models === undefined) throw new MillraceError('MILLRACE_HTTP_NOT_FOUND', `no model named ${JSON.stringify(name)} is registered`);
    return engine.models.predict(name, request.body);
  });

  // ------------------------------------------------------------------ projections and replays

  registerDeadLetterRoutes(app, log);
  registerConsoleRoutes(app, options.console);
  if (engine.models !== undefined) registerModelRoutes(app, engine.models);
  registerLookupRoutes(app, engine);

  if (engine.projections === undefined) app.get('/projections', async () => ({ projections: [] }));
  else registerProjectionRoutes(app, engine.projections);

  await app.ready();
  return app;
}

// -------------------------------------------------------------------- problems

function sendProblem(reply: FastifyReply, request: FastifyRequest, problem: Problem): FastifyReply {
  return reply
    .code(problem.status)
    .header('content-type', PROBLEM_CONTENT_TYPE)
    .send(JSON.stringify({ ...problem, instance: request.url }));
}

const FASTIFY_CODES: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'MILLRACE_HTTP_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'MILLRACE_HTTP_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'MILLRACE_HTTP_MALFORMED_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'MILLRACE_HTTP_MALFORMED_JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'MILLRACE_HTTP_BAD_REQUEST',
  FST_ERR_NOT_FOUND: 'MILLRACE_HTTP_NOT_FOUND',
};

/** Why a produce request was refused, as the `reason` label of `millrace_produce_rejected_total`. */
const REJECT_REASONS: Readonly<Record<string, string>> = {
  MILLRACE_HTTP_TOO_LARGE: 'too-large',
  MILLRACE_HTTP_UNSUPPORTED_MEDIA_TYPE: 'media-type',
  MILLRACE_HTTP_MALFORMED_JSON: 'malformed',
  MILLRACE_HTTP_BAD_REQUEST: 'bad-request',
  MILLRACE_HTTP_VALIDATION: 'invalid',
  MILLRACE_SCHEMA_VIOLATION: 'schema',
  MILLRACE_TOPIC_UNKNOWN: 'unknown-topic',
};

const STATUS_CODES: Readonly<Record<number, ErrorCode>> = {
  404: 'MILLRACE_HTTP_NOT_FOUND',
  413: 'MILLRACE_HTTP_TOO_LARGE',
  415: 'MILLRACE_HTTP_UNSUPPORTED_MEDIA_TYPE',
};

/** The problem document for an error; messages of errors that are not the client's doing never leave the server. */
function problemOf(err: unknown): Problem {
  if (err instanceof MillraceError) return problemFromError(err);
  const e = err as { code?: unknown; statusCode?: unknown; message?: unknown };
  const message = typeof e.message === 'string' ? e.message : 'bad request';
  const mapped = typeof e.code === 'string' ? FASTIFY_CODES[e.code] : undefined;
  if (mapped !== undefined) {
    const detail = mapped === 'MILLRACE_HTTP_UNSUPPORTED_MEDIA_TYPE'
      ? 'send the body as application/json'
      : mapped === 'MILLRACE_HTTP_TOO_LARGE'
        ? 'the request body is larger than the server accepts; send smaller batches'
        : message;
    return problemFor(mapped, detail);
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) return problemFor(STATUS_CODES[status] ?? 'MILLRACE_HTTP_BAD_REQUEST', message);
  return problemFor('MILLRACE_INTERNAL', 'the engine failed to handle this request; its log has the details');
}

function badRequest(detail: string, extensions: Record<string, unknown> = {}): MillraceError {
  return new MillraceError('MILLRACE_HTTP_BAD_REQUEST', detail, { details: extensions });
}

// -------------------------------------------------------------------- topics

const CreateTopicBody = z.strictObject({
  name: z.string(),
  partitions: z.int().min(1).max(10_000).optional(),
  schema: z.union([z.string().min(1), z.record(z.string(), z.unknown()), z.array(z.unknown())]).optional(),
  compacted: z.boolean().optional(),
  retentionMs: z.int().min(0).nullable().optional(),
  retentionBytes: z.int().min(0).nullable().optional(),
});

function parseCreateTopic(body: unknown): z.infer<typeof CreateTopicBody> {
  if (body === undefined) throw badRequest('send the topic as JSON: {"name": "events", "partitions": 3}');
  const parsed = CreateTopicBody.safeParse(body);
  if (parsed.success) return parsed.data;
  const errors = parsed.error.issues.map((issue) => ({
    path: pointer(issue.path.map(String)),
    message: issue.message,
  }));
  const first = errors[0];
  throw badRequest(
    `the topic body is invalid${first === undefined ? '' : `: ${first.path === '' ? '' : `${first.path}: `}${first.message}`}`,
    { errors },
  );
}

function checkTopicName(name: string): void {
  if (!TOPIC_NAME_PATTERN.test(name) || name === '.' || name === '..') {
    throw new MillraceError(
      'MILLRACE_TOPIC_NAME_INVALID',
      `topic name ${JSON.stringify(name)} is invalid: use 1 to 249 of a-z A-Z 0-9 . _ -`,
    );
  }
}

async function topicExists(log: Log, name: string): Promise<boolean> {
  try {
    await log.describeTopic(name);
    return true;
  } catch (err) {
    if (err instanceof MillraceError && err.code === 'MILLRACE_TOPIC_UNKNOWN') return false;
    throw err;
  }
}

/** A topic as a metric label: unknown names collapse to one value, so that clients cannot mint label values. */
async function topicLabel(log: Log, name: string): Promise<string> {
  return (await topicExists(log, name).catch(() => false)) ? name : '';
}

function topicView(info: TopicInfo, schema: SchemaRef | null, offsets: readonly PartitionOffsets[]): TopicView {
  return {
    name: info.name,
    partitions: info.partitions,
    cleanupPolicy: info.cleanupPolicy,
    retentionMs: info.retentionMs,
    retentionBytes: info.retentionBytes,
    internal: info.internal,
    schema,
    offsets: offsets.map((o) => ({ partition: o.partition, start: o.start, end: o.end })),
  };
}

// -------------------------------------------------------------------- produce

/**
 * The records of a produce body: `{"records": [...]}` (an object with that one key, an array); an envelope (an
 * object whose keys are among key, value, timestamp, headers, partition, with `value`); or else the value itself.
 */
function splitProduceBody(body: unknown, hasQueryKey: boolean): unknown[] {
  if (body === undefined) {
    throw badRequest('send the event as a JSON body: the value itself, {"key", "value"}, or {"records": [...]}');
  }
  if (isPlainObject(body)) {
    const keys = Object.keys(body);
    if (keys.length === 1 && keys[0] === 'records' && Array.isArray(body['records'])) {
      if (hasQueryKey) throw badRequest('the key query parameter is for one event; give each record of a batch its own key');
      return body['records'] as unknown[];
    }
    if (Object.hasOwn(body, 'value') && keys.every((k) => ENVELOPE_KEYS.has(k))) return [body];
  }
  return [{ value: body }];
}

interface ParsedRecord {
  readonly value: unknown;
  readonly append: Omit<AppendRecord, 'topic' | 'value'>;
}

function parseRecord(
  entry: unknown,
  index: number,
  info: TopicInfo,
  defaultKey: string | null,
  errors: RecordError[],
): ParsedRecord | undefined {
  const before = errors.length;
  const fail = (path: string, message: string): void => {
    errors.push({ index, path, message });
  };
  if (!isPlainObject(entry)) {
    fail('', 'a record is an object with a value: {"key"?, "value", "timestamp"?, "headers"?, "partition"?}');
    return undefined;
  }
  for (const k of Object.keys(entry)) {
    if (!ENVELOPE_KEYS.has(k)) fail(pointer([k]), `unknown field ${JSON.stringify(k)}; a record has key, value, timestamp, headers, partition`);
  }
  if (!Object.hasOwn(entry, 'value')) fail('/value', 'required field missing');

  let key: Buffer | null = defaultKey === null ? null : Buffer.from(defaultKey, 'utf8');
  const rawKey = entry['key'];
  if (rawKey === null) key = null;
  else if (typeof rawKey === 'string') key = Buffer.from(rawKey, 'utf8');
  else if (rawKey !== undefined) fail('/key', 'the key must be a string or null');
  if (key === null && info.cleanupPolicy !== 'delete' && !errors.some((e) => e.index === index && e.path === '/key')) {
    fail('/key', `topic ${info.name} is compacted: every record needs a key`);
  }

  let timestamp: number | undefined;
  const rawTimestamp = entry['timestamp'];
  if (typeof rawTimestamp === 'number') {
    if (Number.isSafeInteger(rawTimestamp) && rawTimestamp >= 0 && rawTimestamp <= MAX_TIMESTAMP_MS) timestamp = rawTimestamp;
    else fail('/timestamp', `a timestamp is a whole number of milliseconds since 1970, got ${rawTimestamp}`);
  } else if (typeof rawTimestamp === 'string') {
    const ms = parseIsoTime(rawTimestamp);
    if (Number.isFinite(ms) && ms >= 0) timestamp = ms;
    else fail('/timestamp', `expected an ISO 8601 date-time with a time zone (2026-01-02T03:04:05Z), got ${JSON.stringify(rawTimestamp)}`);
  } else if (rawTimestamp !== undefined) {
    fail('/timestamp', 'a timestamp is milliseconds since 1970 or an ISO 8601 date-time');
  }

  let headers: Record<string, Buffer> | undefined;
  const rawHeaders = entry['headers'];
  if (isPlainObject(rawHeaders)) {
    headers = {};
    for (const [name, value] of Object.entries(rawHeaders)) {
      if (typeof value === 'string') Object.defineProperty(headers, name, { value: Buffer.from(value, 'utf8'), enumerable: true });
      else fail(`/headers${pointer([name])}`, 'a header value is a string');
    }
  } else if (rawHeaders !== undefined) {
    fail('/headers', 'headers are an object of string values');
  }

  let partition: number | undefined;
  const rawPartition = entry['partition'];
  if (typeof rawPartition === 'number' && Number.isInteger(rawPartition) && rawPartition >= 0 && rawPartition < info.partitions) {
    partition = rawPartition;
  } else if (rawPartition !== undefined) {
    fail('/partition', `topic ${info.name} has partitions 0 to ${info.partitions - 1}, got ${JSON.stringify(rawPartition)}`);
  }

  if (errors.length > before) return undefined;
  return {
    value: entry['value'],
    append: {
      key,
      ...(timestamp === undefined ? {} : { timestamp }),
      ...(headers === undefined ? {} : { headers }),
      ...(partition === undefined ? {} : { partition }),
    },
  };
}

// -------------------------------------------------------------------- read

type StartSpec = 'earliest' | 'latest' | number;

interface ReadQuery {
  readonly partition: number | undefined;
  /** One start for every partition read, or a start per listed partition. */
  readonly offset: StartSpec | Map<number, StartSpec> | undefined;
  readonly from: number | undefined;
  readonly limit: number;
  readonly waitMs: number;
}

const INTEGER = /^(0|[1-9][0-9]{0,14})$/;

function parseReadQuery(query: Query, maxLimit: number, maxWaitMs: number): ReadQuery {
  const partitionText = singleQueryValue(query, 'partition');
  const offsetText = singleQueryValue(query, 'offset');
  const fromText = singleQueryValue(query, 'from');
  const limitText = singleQueryValue(query, 'limit');
  const waitText = singleQueryValue(query, 'waitMs');

  let partition: number | undefined;
  if (partitionText !== undefined) {
    if (!INTEGER.test(partitionText)) throw badRequest(`partition must be a partition number, got ${JSON.stringify(partitionText)}`);
    partition = Number(partitionText);
  }
  let offset: ReadQuery['offset'];
  if (offsetText !== undefined) {
    if (offsetText.includes(':')) {
      if (partition !== undefined) throw badRequest('give either partition and offset, or offset as partition:offset pairs');
      const starts = new Map<number, StartSpec>();
      for (const pair of offsetText.split(',')) {
        const [p, o, extra] = pair.split(':');
        if (p === undefined || o === undefined || extra !== undefined || !INTEGER.test(p)) {
          throw badRequest(`offset pairs are partition:offset separated by commas (0:15,1:20), got ${JSON.stringify(pair)}`);
        }
        if (starts.has(Number(p))) throw badRequest(`partition ${p} appears twice in offset`);
        starts.set(Number(p), parseStart(o));
      }
      offset = starts;
    } else {
      offset = parseStart(offsetText);
    }
  }
  let from: number | undefined;
  if (fromText !== undefined) {
    if (offset !== undefined) throw badRequest('give either offset or from, not both');
    from = parseIsoTime(fromText);
    if (!Number.isFinite(from)) {
      throw badRequest(`from must be an ISO 8601 date-time with a time zone (2026-01-02T03:04:05Z), got ${JSON.stringify(fromText)}`);
    }
  }
  let limit = Math.min(DEFAULT_READ_LIMIT, maxLimit);
  if (limitText !== undefined) {
    limit = INTEGER.test(limitText) ? Number(limitText) : Number.NaN;
    if (!(limit >= 1 && limit <= maxLimit)) throw badRequest(`limit must be a whole number from 1 to ${maxLimit}, got ${JSON.stringify(limitText)}`);
  }
  let waitMs = 0;
  if (waitText !== undefined) {
    waitMs = INTEGER.test(waitText) ? Number(waitText) : Number.NaN;
    if (!(waitMs >= 0 && waitMs <= maxWaitMs)) throw badRequest(`waitMs must be a whole number from 0 to ${maxWaitMs}, got ${JSON.stringify(waitText)}`);
  }
  return { partition, offset, from, limit, waitMs };
}

function parseStart(text: string): StartSpec {
  if (text === 'earliest' || text === 'latest') return text;
  if (!INTEGER.test(text)) throw badRequest(`offset must be earliest, latest or a whole number, got ${JSON.stringify(text)}`);
  return Number(text);
}

function unknownPartition(info: TopicInfo, partition: number): MillraceError {
  return new MillraceError(
    'MILLRACE_PARTITION_UNKNOWN',
    `topic ${info.name} has ${info.partitions} partitions; partition ${partition} does not exist`,
    { details: { topic: info.name, partition } },
  );
}

/** Where each partition to read starts, in partition order. */
async function startPositions(
  log: Log,
  info: TopicInfo,
  bounds: readonly PartitionOffsets[],
  query: ReadQuery,
): Promise<Map<number, number>> {
  const specs = new Map<number, StartSpec | undefined>();
  if (query.offset instanceof Map) {
    for (const [p, spec] of [...query.offset].sort((a, b) => a[0] - b[0])) {
      if (p >= info.partitions) throw unknownPartition(info, p);
      specs.set(p, spec);
    }
  } else if (query.partition !== undefined) {
    if (query.partition >= info.partitions) throw unknownPartition(info, query.partition);
    specs.set(query.partition, query.offset);
  } else {
    for (let p = 0; p < info.partitions; p++) specs.set(p, query.offset);
  }
  const starts = new Map<number, number>();
  for (const [p, spec] of specs) {
    const bound = bounds[p]!;
    if (query.from !== undefined) {
      starts.set(p, (await log.offsetForTimestamp(info.name, p, query.from)) ?? bound.end);
    } else if (spec === undefined || spec === 'earliest') {
      starts.set(p, bound.start);
    } else if (spec === 'latest') {
      starts.set(p, bound.end);
    } else {
      starts.set(p, spec);
    }
  }
  return starts;
}

interface Cursor {
  readonly partition: number;
  readonly records: LogRecord[];
  /** Where the next read of this partition starts. */
  next: number;
  highWatermark: number;
  exhausted: boolean;
}

interface Collected {
  readonly records: LogRecord[];
  readonly next: Record<string, number>;
  readonly highWatermarks: Record<string, number>;
}

/**
 * Reads up to `limit` records over the partitions in `starts`, fairly: each round asks every partition that may
 * have more for an equal share of what is still wanted, then the records are merged by timestamp (each partition in
 * offset order) and cut at `limit`. When nothing is there and `waitMs` > 0, waits for the first record to arrive.
 */
async function collect(
  log: Log,
  topic: string,
  starts: ReadonlyMap<number, number>,
  bounds: readonly PartitionOffsets[],
  limit: number,
  waitMs: number,
  signal: AbortSignal,
): Promise<Collected> {
  const cursors: Cursor[] = [...starts].map(([partition, start]) => {
    const end = bounds[partition]!.end;
    return { partition, records: [], next: start, highWatermark: end, exhausted: start >= end };
  });

  const fill = async (): Promise<number> => {
    let total = cursors.reduce((n, c) => n + c.records.length, 0);
    for (;;) {
      const active = cursors.filter((c) => !c.exhausted);
      const wanted = limit - total;
      if (active.length === 0 || wanted <= 0) return total;
      const share = Math.max(1, Math.ceil(wanted / active.length));
      await forEachLimited(active, READ_CONCURRENCY, async (c) => {
        const batch = await log.read(topic, c.partition, toOffset(c.next), { maxRecords: share });
        c.records.push(...batch.records);
        c.next = batch.nextOffset;
        c.highWatermark = batch.highWatermark;
        if (batch.records.length < share || c.next >= c.highWatermark) c.exhausted = true;
      });
      total = cursors.reduce((n, c) => n + c.records.length, 0);
    }
  };

  let total = await fill();
  if (total === 0 && waitMs > 0 && cursors.length > 0 && !signal.aborted) {
    await waitForAny(log, topic, cursors, waitMs, signal);
    for (const c of cursors) c.exhausted = false;
    total = await fill();
  }

  // Merge by timestamp, keeping each partition's offset order; ties go to the lower partition.
  const taken = new Array<number>(cursors.length).fill(0);
  const records: LogRecord[] = [];
  while (records.length < limit) {
    let best = -1;
    for (let i = 0; i < cursors.length; i++) {
      const head = cursors[i]!.records[taken[i]!];
      if (head === undefined) continue;
      if (best < 0 || head.timestamp < cursors[best]!.records[taken[best]!]!.timestamp) best = i;
    }
    if (best < 0) break;
    records.push(cursors[best]!.records[taken[best]!]!);
    taken[best]!++;
  }
  const next: Record<string, number> = {};
  const highWatermarks: Record<string, number> = {};
  cursors.forEach((c, i) => {
    const firstLeft = c.records[taken[i]!];
    next[String(c.partition)] = firstLeft === undefined ? c.next : firstLeft.offset;
    highWatermarks[String(c.partition)] = c.highWatermark;
  });
  return { records, next, highWatermarks };
}

/** Resolves when any partition has a record past its cursor, when `waitMs` passes, or when `signal` aborts. */
async function waitForAny(log: Log, topic: string, cursors: readonly Cursor[], waitMs: number, signal: AbortSignal): Promise<void> {
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  const waits = cursors.map((c) =>
    log.read(topic, c.partition, toOffset(c.next), { maxRecords: 1, maxWaitMs: waitMs, signal: stop.signal }).then(
      (batch) => batch.records.length > 0,
      // A failing wait ends the wait; the read that follows reports the failure.
      () => true,
    ),
  );
  try {
    await new Promise<void>((resolve) => {
      let pending = waits.length;
      for (const wait of waits) {
        void wait.then((arrived) => {
          pending--;
          if (arrived || pending === 0) resolve();
        });
      }
    });
  } finally {
    stop.abort();
    signal.removeEventListener('abort', onAbort);
    await Promise.all(waits);
  }
}

async function forEachLimited<T>(items: readonly T[], concurrency: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await run(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}


// -------------------------------------------------------------------- helpers

/** Milliseconds since the epoch of an ISO 8601 date-time with a time zone (RFC 3339 allows `t` and `z`), else NaN. */
function parseIsoTime(text: string): number {
  const upper = text.toUpperCase();
  return isIsoDateTime(upper) ? Date.parse(upper) : Number.NaN;
}

function isoTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
}

function singleQueryValue(query: Query, name: string): string | undefined {
  const value = query[name];
  if (Array.isArray(value)) throw badRequest(`give the ${name} query parameter once`);
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function pointer(path: readonly string[]): string {
  let out = '';
  for (const segment of path) out += '/' + segment.replaceAll('~', '~0').replaceAll('/', '~1');
  return out;
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new MillraceError('MILLRACE_CONFIG_INVALID', `HTTP option ${name} must be a positive whole number, got ${value}`);
  }
  return value;
}
