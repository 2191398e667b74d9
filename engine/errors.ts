/**
 * The one catalogue of Millrace errors. Every error the engine raises on purpose is a `MillraceError` with a stable
 * string code from this table; codes are never reused or renamed. Tests assert codes, never messages.
 *
 * A plain `TypeError` or `RangeError` thrown by the engine means a programmer bug, not an operating error.
 */
export const ErrorCodes = {
  // configuration and start-up
  MILLRACE_CONFIG_INVALID: { status: 500, title: 'Invalid configuration', retriable: false },
  MILLRACE_TOPOLOGY_INVALID: { status: 500, title: 'Invalid topology', retriable: false },
  MILLRACE_TOPOLOGY_MODULE: { status: 500, title: 'Topology module could not be loaded', retriable: false },
  // the log
  MILLRACE_LOG_NOT_OPEN: { status: 503, title: 'Log is not open', retriable: true },
  MILLRACE_LOG_CLOSED: { status: 503, title: 'Log is closed', retriable: false },
  MILLRACE_LOG_LOCKED: { status: 500, title: 'Data directory is in use by another process', retriable: false },
  MILLRACE_LOG_UNAVAILABLE: { status: 503, title: 'No broker of the log answered', retriable: true },
  MILLRACE_LOG_WRITE_FAILED: { status: 500, title: 'Log write failed', retriable: false },
  MILLRACE_TOPIC_EXISTS: { status: 409, title: 'Topic already exists', retriable: false },
  MILLRACE_TOPIC_UNKNOWN: { status: 404, title: 'Unknown topic', retriable: false },
  MILLRACE_TOPIC_NAME_INVALID: { status: 400, title: 'Invalid topic name', retriable: false },
  MILLRACE_TOPIC_CONFIG_INVALID: { status: 400, title: 'Invalid topic configuration', retriable: false },
  MILLRACE_PARTITION_UNKNOWN: { status: 404, title: 'Unknown partition', retriable: false },
  MILLRACE_OFFSET_INVALID: { status: 400, title: 'Invalid offset', retriable: false },
  MILLRACE_RECORD_INVALID: { status: 400, title: 'Invalid record', retriable: false },
  MILLRACE_TRANSACTION_STATE: { status: 500, title: 'Transaction used in the wrong state', retriable: false },
  MILLRACE_TRANSACTION_FENCED: { status: 409, title: 'A newer writer with the same transactional id took over', retriable: false },
  // schemas and serdes
  MILLRACE_SCHEMA_INVALID: { status: 400, title: 'Invalid Avro schema', retriable: false },
  MILLRACE_SCHEMA_INCOMPATIBLE: { status: 409, title: 'Schema is incompatible with an earlier version', retriable: false },
  MILLRACE_SCHEMA_UNKNOWN: { status: 404, title: 'Unknown schema', retriable: false },
  MILLRACE_SCHEMA_REGISTRY_UNAVAILABLE: { status: 503, title: 'The schema registry did not answer', retriable: true },
  MILLRACE_SCHEMA_VIOLATION: { status: 422, title: 'Event does not match the topic schema', retriable: false },
  MILLRACE_DESERIALIZATION: { status: 422, title: 'Record could not be deserialised', retriable: false },
  MILLRACE_SERIALIZATION: { status: 422, title: 'Value could not be serialised', retriable: false },
  // processing
  MILLRACE_PROCESSING: { status: 500, title: 'Processor failed on a record', retriable: false },
  MILLRACE_STORE_UNKNOWN: { status: 500, title: 'Unknown state store', retriable: false },
  MILLRACE_TASK_FAILED: { status: 500, title: 'Task failed', retriable: false },
  MILLRACE_LATE_RECORD: { status: 422, title: 'Record arrived after its window closed', retriable: false },
  // models and inference
  MILLRACE_MODEL_INTEGRITY: { status: 500, title: 'Model file does not match its SHA-256', retriable: false },
  MILLRACE_MODEL_INVALID: { status: 500, title: 'Model file cannot be served', retriable: false },
  MILLRACE_MODEL_UNAVAILABLE: { status: 503, title: 'No model is loaded for this route', retriable: true },
  MILLRACE_INFERENCE_OVERLOADED: { status: 503, title: 'Inference queue is full', retriable: true },
  MILLRACE_INFERENCE_FAILED: { status: 500, title: 'Inference failed', retriable: false },
  MILLRACE_TRAINING_FAILED: { status: 500, title: 'Training job failed', retriable: false },
  MILLRACE_MODEL_DECISION_INVALID: { status: 400, title: 'The model version cannot be promoted or rolled back', retriable: false },
  MILLRACE_MODEL_DECISION_STALE: { status: 409, title: 'The model registry changed since the dry run', retriable: false },
  // projections and replays
  MILLRACE_PROJECTION_INVALID: { status: 500, title: 'Invalid projection definition', retriable: false },
  MILLRACE_PROJECTION_UNKNOWN: { status: 404, title: 'Unknown projection', retriable: false },
  MILLRACE_PROJECTION_KEY_ABSENT: { status: 404, title: 'Key is absent from the projection', retriable: false },
  MILLRACE_PROJECTION_NOT_RETAINED: { status: 410, title: 'That moment is older than the retained history', retriable: false },
  MILLRACE_PROJECTION_BUSY: { status: 409, title: 'The projection is already being rebuilt', retriable: true },
  MILLRACE_REPLAY_INVALID: { status: 400, title: 'Invalid replay request', retriable: false },
  MILLRACE_REPLAY_UNKNOWN: { status: 404, title: 'Unknown replay', retriable: false },
  MILLRACE_REPLAY_LIMIT: { status: 429, title: 'Too many replays are running', retriable: true },
  // operating on dead letters
  MILLRACE_REDRIVE_INVALID: { status: 400, title: 'Invalid dead-letter action', retriable: false },
  MILLRACE_REDRIVE_STALE: { status: 409, title: 'The dead letters changed since the dry run', retriable: false },
  // the HTTP edge
  MILLRACE_HTTP_BAD_REQUEST: { status: 400, title: 'Bad request', retriable: false },
  MILLRACE_HTTP_MALFORMED_JSON: { status: 400, title: 'Malformed JSON', retriable: false },
  MILLRACE_HTTP_TOO_LARGE: { status: 413, title: 'Request body too large', retriable: false },
  MILLRACE_HTTP_UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported media type', retriable: false },
  MILLRACE_HTTP_NOT_FOUND: { status: 404, title: 'Not found', retriable: false },
  MILLRACE_HTTP_VALIDATION: { status: 422, title: 'Request failed validation', retriable: false },
  MILLRACE_INTERNAL: { status: 500, title: 'Internal error', retriable: false },
  // the CLI
  MILLRACE_ENGINE_UNREACHABLE: { status: 503, title: 'No engine answers at that URL', retriable: true },
} as const satisfies Record<string, { status: number; title: string; retriable: boolean }>;

export type ErrorCode = keyof typeof ErrorCodes;

export interface MillraceErrorOptions {
  cause?: unknown;
  /** Structured detail carried into problem documents (RFC 7807 extension members). */
  details?: Record<string, unknown>;
  retriable?: boolean;
}

export class MillraceError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: MillraceErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    const entry = ErrorCodes[code];
    this.retriable = options.retriable ?? entry.retriable;
    this.status = entry.status;
    this.details = options.details;
  }
}

export function isMillraceError(err: unknown, code?: ErrorCode): err is MillraceError {
  return err instanceof MillraceError && (code === undefined || err.code === code);
}

/** A problem document as in RFC 7807 (`application/problem+json`). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  code: string;
  [extension: string]: unknown;
}

export const PROBLEM_TYPE_BASE = 'https://millrace.dev/problems/';

export function problemFor(code: ErrorCode, detail: string, extensions: Record<string, unknown> = {}): Problem {
  const entry = ErrorCodes[code];
  return {
    type: PROBLEM_TYPE_BASE + code.slice('MILLRACE_'.length).toLowerCase().replaceAll('_', '-'),
    title: entry.title,
    status: entry.status,
    detail,
    code,
    ...extensions,
  };
}

export function problemFromError(err: unknown, extensions: Record<string, unknown> = {}): Problem {
  if (err instanceof MillraceError) return problemFor(err.code, err.message, { ...err.details, ...extensions });
  const message = err instanceof Error ? err.message : String(err);
  return problemFor('MILLRACE_INTERNAL', message, extensions);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
