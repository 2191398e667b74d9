import { MillraceError, errorMessage, type ErrorCode } from '../../errors.js';

/** Kafka protocol error codes used by the Kafka log (kafkajs knows most of them by `type`, not all). */
export const KAFKA_ERROR = {
  OFFSET_OUT_OF_RANGE: 1,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  NOT_LEADER_OR_FOLLOWER: 6,
  FENCED_LEADER_EPOCH: 74,
  UNKNOWN_LEADER_EPOCH: 75,
  UNKNOWN_TOPIC_ID: 100,
  /** Newer brokers answer a fenced producer with this; kafkajs 2.2.4 predates it ("Unknown error code 90"). */
  PRODUCER_FENCED: 90,
} as const;

interface KafkaErrorLike {
  readonly name?: string;
  readonly type?: string;
  readonly code?: number;
  readonly message?: string;
  readonly retriable?: boolean;
  readonly cause?: unknown;
  readonly errors?: readonly unknown[];
  readonly partitions?: ReadonlyArray<{ readonly error?: unknown }>;
}

/** Every error along the cause chain, including the members of kafkajs's aggregate errors. */
function* chain(err: unknown, depth = 0): Generator<KafkaErrorLike> {
  if (err === null || typeof err !== 'object' || depth > 8) return;
  const e = err as KafkaErrorLike;
  yield e;
  if (e.cause !== undefined && e.cause !== err) yield* chain(e.cause, depth + 1);
  for (const inner of e.errors ?? []) yield* chain(inner, depth + 1);
  for (const p of e.partitions ?? []) if (p.error !== undefined) yield* chain(p.error, depth + 1);
}

/** Does the error, or one it wraps, carry one of these kafkajs protocol error types? */
export function hasKafkaType(err: unknown, ...types: string[]): boolean {
  for (const e of chain(err)) if (e.type !== undefined && types.includes(e.type)) return true;
  return false;
}

function hasName(err: unknown, ...names: string[]): boolean {
  for (const e of chain(err)) if (e.name !== undefined && names.includes(e.name)) return true;
  return false;
}

function hasUnknownCode(err: unknown, code: number): boolean {
  for (const e of chain(err)) {
    if (e.type === 'KAFKAJS_UNKNOWN_ERROR_CODE' && e.message === `Unknown error code ${code}`) return true;
  }
  return false;
}

/** A newer producer with the same transactional id took over (or the id's producer state is gone). */
export function isFencedError(err: unknown): boolean {
  return (
    hasKafkaType(err, 'INVALID_PRODUCER_EPOCH', 'TRANSACTION_COORDINATOR_FENCED', 'INVALID_PRODUCER_ID_MAPPING') ||
    hasUnknownCode(err, KAFKA_ERROR.PRODUCER_FENCED)
  );
}

/** No broker answered: the cluster is down or unreachable, or the request timed out. */
export function isUnavailableError(err: unknown): boolean {
  return hasName(
    err,
    'KafkaJSConnectionError',
    'KafkaJSConnectionClosedError',
    'KafkaJSRequestTimeoutError',
    'KafkaJSBrokerNotFound',
    'KafkaJSNoBrokerAvailableError',
    'KafkaJSLockTimeout',
  );
}

export function isRetriableKafkaError(err: unknown): boolean {
  for (const e of chain(err)) if (e.retriable === true) return true;
  return isUnavailableError(err);
}

export function fenced(transactionalId: string, cause?: unknown): MillraceError {
  return new MillraceError(
    'MILLRACE_TRANSACTION_FENCED',
    `transaction ${transactionalId} was fenced by a newer writer with the same id`,
    cause === undefined ? { details: { transactionalId } } : { cause, details: { transactionalId } },
  );
}

export function topicUnknown(topic: string, cause?: unknown): MillraceError {
  return new MillraceError('MILLRACE_TOPIC_UNKNOWN', `topic ${topic} does not exist`, {
    details: { topic },
    ...(cause === undefined ? {} : { cause }),
  });
}

export function partitionUnknown(topic: string, partition: number, partitions: number): MillraceError {
  return new MillraceError(
    'MILLRACE_PARTITION_UNKNOWN',
    `topic ${topic} has ${partitions} partitions; partition ${partition} does not exist`,
    { details: { topic, partition } },
  );
}

/**
 * A broker failure as a Millrace error. Failures that are ours to name (fencing, unknown topics, refused records)
 * get their codes; a cluster that does not answer is `MILLRACE_LOG_UNAVAILABLE` (retriable: the log cannot be used
 * now); anything else is `fallback`, retriable when kafkajs says so.
 */
export function fromKafkaError(err: unknown, doing: string, fallback: ErrorCode): MillraceError {
  if (err instanceof MillraceError) return err;
  if (hasKafkaType(err, 'MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'CORRUPT_MESSAGE', 'INVALID_TIMESTAMP')) {
    return new MillraceError('MILLRACE_RECORD_INVALID', `${doing}: the broker refused the records: ${errorMessage(err)}`, { cause: err });
  }
  if (hasKafkaType(err, 'OFFSET_METADATA_TOO_LARGE')) {
    return new MillraceError('MILLRACE_RECORD_INVALID', `${doing}: offset metadata too large: ${errorMessage(err)}`, { cause: err });
  }
  if (isUnavailableError(err)) {
    return new MillraceError('MILLRACE_LOG_UNAVAILABLE', `${doing}: no Kafka broker answered: ${errorMessage(err)}`, {
      cause: err,
      retriable: true,
    });
  }
  return new MillraceError(fallback, `${doing}: ${errorMessage(err)}`, { cause: err, retriable: isRetriableKafkaError(err) });
}
