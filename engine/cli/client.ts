import { ErrorCodes, MillraceError, errorMessage, type ErrorCode, type Problem } from '../errors.js';
import type { EngineStatus } from '../runtime/status.js';

/** Where the CLI looks for an engine unless `--url` or `MILLRACE_URL` says otherwise. */
export const DEFAULT_ENGINE_URL = 'http://127.0.0.1:8080';

/** Requests that get no answer within this long fail (long polls get their wait on top). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

/** `--url`, else `MILLRACE_URL`, else the default; `MILLRACE_CONFIG_INVALID` for anything but an http(s) URL. */
export function resolveEngineUrl(flag: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  const raw = flag ?? (env['MILLRACE_URL'] === undefined || env['MILLRACE_URL'] === '' ? DEFAULT_ENGINE_URL : env['MILLRACE_URL']);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new MillraceError('MILLRACE_CONFIG_INVALID', `--url must be an http:// or https:// URL, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new MillraceError('MILLRACE_CONFIG_INVALID', `--url must be an http:// or https:// URL, got ${JSON.stringify(raw)}`);
  }
  return url.toString().replace(/\/+$/, '');
}

// ------------------------------------------------------------------ the API's shapes, as the client sees them

export interface SchemaRef {
  readonly subject: string;
  readonly id: number;
  readonly version: number;
}

export interface TopicView {
  readonly name: string;
  readonly partitions: number;
  readonly cleanupPolicy: string;
  readonly retentionMs: number | null;
  readonly retentionBytes: number | null;
  readonly internal: boolean;
  readonly schema: SchemaRef | null;
  readonly offsets: ReadonlyArray<{ readonly partition: number; readonly start: number; readonly end: number }>;
}

export interface CreateTopicRequest {
  readonly name: string;
  readonly partitions?: number;
  /** A folder of the engine's schemas directory, or an Avro schema. */
  readonly schema?: string | object;
  readonly compacted?: boolean;
  readonly retentionMs?: number | null;
  readonly retentionBytes?: number | null;
}

export interface ProduceRecord {
  readonly key?: string | null;
  readonly value: unknown;
  readonly timestamp?: number | string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly partition?: number;
}

export interface ProduceResult {
  readonly offsets: ReadonlyArray<{ readonly partition: number; readonly offset: number; readonly timestamp: string }>;
}

export type Base64Value = { readonly base64: string };

export interface ReadRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly timestamp: string;
  readonly key: string | Base64Value | null;
  readonly value: unknown;
  readonly headers: Readonly<Record<string, string | Base64Value>>;
  readonly error?: string;
}

export interface ReadResult {
  readonly records: ReadRecord[];
  readonly next: Readonly<Record<string, number>>;
  readonly highWatermarks: Readonly<Record<string, number>>;
}

export interface ReadParams {
  readonly partition?: number;
  /** `earliest`, `latest`, a number, or starts by partition (read just those partitions). */
  readonly offset?: 'earliest' | 'latest' | number | ReadonlyMap<number, number | 'earliest' | 'latest'>;
  /** ISO 8601: start at the first record at or after this time. */
  readonly from?: string;
  readonly limit?: number;
  readonly waitMs?: number;
}

export interface HealthView {
  readonly status: 'ok' | 'degraded';
  readonly state: string;
  readonly [extra: string]: unknown;
}

// ------------------------------------------------------------------ the client

export interface ClientOptions {
  /** Defaults to the global `fetch`. */
  readonly fetch?: typeof fetch;
  readonly timeoutMs?: number;
}

export interface RequestOptions {
  readonly query?: Readonly<Record<string, string | number | undefined>>;
  readonly body?: unknown;
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
}

/** The problem document an error from the engine carries, if it came from one. */
export function problemOf(err: unknown): Problem | undefined {
  if (!(err instanceof MillraceError)) return undefined;
  const problem = err.details?.['problem'];
  return typeof problem === 'object' && problem !== null ? (problem as Problem) : undefined;
}

/**
 * A small client of the engine's HTTP API for the CLI. Errors are `MillraceError`s: a problem document answered by
 * the engine keeps its code and comes along in `details.problem`; an engine that does not answer is
 * `MILLRACE_ENGINE_UNREACHABLE`, with a message that says what to do.
 */
export class MillraceClient {
  readonly baseUrl: string;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;

  constructor(baseUrl: string, options: ClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.#fetch = options.fetch ?? fetch;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(this.baseUrl + path);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]);
    const init: RequestInit = { method, signal, headers: { accept: 'application/json, application/problem+json' } };
    if (options.body !== undefined) {
      init.headers = { ...init.headers, 'content-type': 'application/json' };
      init.body = JSON.stringify(options.body);
    }
    let response: Response;
    let text: string;
    try {
      response = await this.#fetch(url, init);
      text = await response.text();
    } catch (err) {
      if (options.signal?.aborted === true) throw err;
      if (timeout.aborted) {
        throw new MillraceError(
          'MILLRACE_ENGINE_UNREACHABLE',
          `The Millrace engine at ${this.baseUrl} did not answer within ${Math.round(timeoutMs / 1000)} s.`,
          { cause: err, details: { url: this.baseUrl } },
        );
      }
      throw unreachable(this.baseUrl, err);
    }
    if (!response.ok) throw errorFromResponse(this.baseUrl, method, url, response, text);
    if (text.length === 0) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new MillraceError(
        'MILLRACE_INTERNAL',
        `${this.baseUrl} answered ${method} ${url.pathname} with something that is not JSON; is it a Millrace engine?`,
        { cause: err },
      );
    }
  }

  async listTopics(): Promise<TopicView[]> {
    return (await this.request<{ topics: TopicView[] }>('GET', '/topics')).topics;
  }

  describeTopic(name: string): Promise<TopicView> {
    return this.request('GET', `/topics/${encodeURIComponent(name)}`);
  }

  createTopic(request: CreateTopicRequest): Promise<TopicView> {
    return this.request('POST', '/topics', { body: request });
  }

  produce(topic: string, records: readonly ProduceRecord[], signal?: AbortSignal): Promise<ProduceResult> {
    return this.request('POST', `/topics/${encodeURIComponent(topic)}/events`, {
      body: { records },
      ...(signal === undefined ? {} : { signal }),
    });
  }

  readEvents(topic: string, params: ReadParams = {}, signal?: AbortSignal): Promise<ReadResult> {
    const offset = params.offset instanceof Map
      ? [...params.offset].map(([p, o]) => `${p}:${o}`).join(',')
      : (params.offset as string | number | undefined);
    return this.request('GET', `/topics/${encodeURIComponent(topic)}/events`, {
      query: { partition: params.partition, offset, from: params.from, limit: params.limit, waitMs: params.waitMs },
      timeoutMs: this.#timeoutMs + (params.waitMs ?? 0),
      ...(signal === undefined ? {} : { signal }),
    });
  }

  status(): Promise<EngineStatus> {
    return this.request('GET', '/status');
  }

  /** The health document; a 503 answer is an answer here, not an error. */
  async health(): Promise<HealthView> {
    try {
      return await this.request<HealthView>('GET', '/health');
    } catch (err) {
      const body = err instanceof MillraceError ? err.details?.['body'] : undefined;
      if (typeof body === 'object' && body !== null && 'status' in body) return body as HealthView;
      throw err;
    }
  }
}

function unreachable(baseUrl: string, err: unknown): MillraceError {
  return new MillraceError(
    'MILLRACE_ENGINE_UNREACHABLE',
    `No Millrace engine answers at ${baseUrl} (${connectionFailure(err)}). Start one with \`millrace up\`, or pass --url.`,
    { cause: err, details: { url: baseUrl } },
  );
}

const FAILURES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed',
  EPIPE: 'connection closed',
};

/** A short reason from what `fetch` threw: its cause carries a system error code, or several (dual-stack hosts). */
function connectionFailure(err: unknown): string {
  const codes: string[] = [];
  const visit = (e: unknown, depth: number): void => {
    if (typeof e !== 'object' || e === null || depth > 4) return;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
    if (e instanceof AggregateError) for (const inner of e.errors) visit(inner, depth + 1);
    visit((e as { cause?: unknown }).cause, depth + 1);
  };
  visit(err, 0);
  for (const code of codes) if (FAILURES[code] !== undefined) return FAILURES[code];
  return codes[0] ?? errorMessage((err as { cause?: unknown }).cause ?? err);
}

const STATUS_FALLBACK: Readonly<Record<number, ErrorCode>> = {
  400: 'MILLRACE_HTTP_BAD_REQUEST',
  404: 'MILLRACE_HTTP_NOT_FOUND',
  413: 'MILLRACE_HTTP_TOO_LARGE',
  415: 'MILLRACE_HTTP_UNSUPPORTED_MEDIA_TYPE',
  422: 'MILLRACE_HTTP_VALIDATION',
};

function errorFromResponse(baseUrl: string, method: string, url: URL, response: Response, text: string): MillraceError {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const problem = body as Partial<Problem> | undefined;
  const fallback = STATUS_FALLBACK[response.status] ?? 'MILLRACE_INTERNAL';
  if (typeof problem === 'object' && problem !== null && typeof problem.detail === 'string') {
    const code = typeof problem.code === 'string' && problem.code in ErrorCodes ? (problem.code as ErrorCode) : fallback;
    return new MillraceError(code, problem.detail, { details: { problem, status: response.status } });
  }
  const snippet = text.length > 200 ? `${text.slice(0, 200)}…` : text;
  return new MillraceError(
    fallback,
    `${baseUrl} answered ${method} ${url.pathname} with HTTP ${response.status}${snippet.trim() === '' ? '' : `: ${snippet.trim()}`}`,
    { details: { status: response.status, body } },
  );
}
