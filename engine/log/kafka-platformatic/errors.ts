import { MillraceError, errorMessage, type ErrorCode } from '../../errors.js';

/**
 * @platformatic/kafka's errors: a `ProtocolError` names the broker's error in `apiId` and says `canRetry`; a
 * `ResponseError` (an `AggregateError`) holds one per failed partition; a `MultipleErrors` holds every attempt of a
 * retried operation; network failures and timeouts carry the code `PLT_KFK_NETWORK`.
 */
interface ClientErrorLike {
  readonly code?: string;
  readonly apiId?: string;
  readonly canRetry?: boolean;
  readonly message?: string;
  readonly cause?: unknown;
  readonly errors?: readonly unknown[];
}

function* chain(err: unknown, depth = 0): Generator<ClientErrorLike> {
  if (err === null || typeof err !== 'object' || depth > 8) return;
  const e = err as ClientErrorLike;
  yield e;
  if (e.cause !== undefined && e.cause !== err) yield* chain(e.cause, depth + 1);
  if (Array.isArray(e.errors)) for (const inner of e.errors) yield* chain(inner, depth + 1);
}

/** Does the error, or one it wraps, carry one of these Kafka protocol errors (by name, e.g. `UNKNOWN_TOPIC_OR_PARTITION`)? */
export function hasApiError(err: unknown, ...ids: string[]): boolean {
  for (const e of chain(err)) if (e.apiId !== undefined && ids.includes(e.apiId)) return true;
  return false;
}

/** A newer producer with the same transactional id took over (or the id's producer state is gone). */
export function isFencedError(err: unknown): boolean {
  return hasApiError(err, 'INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'TRANSACTION_COORDINATOR_FENCED', 'INVALID_PRODUCER_ID_MAPPING');
}

/** No broker answered: the cluster is down or unreachable, or the request timed out. */
export function isUnavailableError(err: unknown): boolean {
  for (const e of chain(err)) if (e.code === 'PLT_KFK_NETWORK' || e.code === 'PLT_KFK_TIMEOUT') return true;
  return false;
}

export function isRetriableClientError(err: unknown): boolean {
  for (const e of chain(err)) if (e.apiId !== undefined && e.canRetry === true) return true;
  return isUnavailableError(err);
}

/** The failure as a Millrace error, as `fromKafkaError` does for kafkajs (see `../kafka/errors.ts`). */
export function fromClientError(err: unknown, doing: string, fallback: ErrorCode): MillraceError {
  if (err instanceof MillraceError) return err;
  if (hasApiError(err, 'MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'CORRUPT_MESSAGE', 'INVALID_TIMESTAMP')) {
    return new MillraceError('MILLRACE_RECORD_INVALID', `${doing}: the broker refused the records: ${describe(err)}`, { cause: err });
  }
  if (hasApiError(err, 'OFFSET_METADATA_TOO_LARGE')) {
    return new MillraceError('MILLRACE_RECORD_INVALID', `${doing}: offset metadata too large: ${describe(err)}`, { cause: err });
  }
  if (isUnavailableError(err)) {
    return new MillraceError('MILLRACE_LOG_UNAVAILABLE', `${doing}: no Kafka broker answered: ${describe(err)}`, { cause: err, retriable: true });
  }
  return new MillraceError(fallback, `${doing}: ${describe(err)}`, { cause: err, retriable: isRetriableClientError(err) });
}

/** The message with the broker's error names, which the client's aggregate messages leave out. */
export function describe(err: unknown): string {
  const ids = new Set<string>();
  for (const e of chain(err)) if (e.apiId !== undefined) ids.add(e.apiId);
  const message = errorMessage(err);
  return ids.size === 0 ? message : `${message} (${[...ids].join(', ')})`;
}
