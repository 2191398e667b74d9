import { problemFromError, type MillraceError } from '../errors.js';
import type { Headers, LogRecord } from '../log/log.js';
import type { OutputRecord } from './task-executor.js';

/** What a task does with a record it cannot process: a fixed choice, as Kafka Streams' handlers return. */
export type ErrorPolicy = 'dead-letter' | 'fail';

export const DEAD_LETTER_SUFFIX = '.dlq';

export function deadLetterTopic(topic: string): string {
  return `${topic}${DEAD_LETTER_SUFFIX}`;
}

/** The body of a dead-letter record: an RFC 7807 problem with where the record came from and its original bytes. */
export interface DeadLetter {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: string;
  readonly source: { readonly topic: string; readonly partition: number; readonly offset: number; readonly timestamp: string };
  readonly application: string;
  readonly task: string;
  readonly node: string;
  readonly original: {
    readonly key: string | null;
    readonly value: string | null;
    /** How `key` and `value` are written. */
    readonly encoding: 'base64';
    readonly headers: Readonly<Record<string, string>>;
  };
  readonly [extension: string]: unknown;
}

export interface DeadLetterTarget {
  readonly topic: string;
  readonly partition: number;
  readonly node: string;
  readonly applicationId: string;
  readonly taskId: string;
}

/**
 * Builds the dead-letter record for a failed input record. The original key is kept as the record key (so a
 * redrive lands in the same partition) and the original bytes are in the body, so nothing is lost.
 */
export function deadLetterFor(input: LogRecord, error: MillraceError, target: DeadLetterTarget): OutputRecord {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(input.headers)) headers[name] = value.toString('base64');
  const body: DeadLetter = {
    ...problemFromError(error),
    source: {
      topic: input.topic,
      partition: input.partition,
      offset: input.offset,
      timestamp: new Date(input.timestamp).toISOString(),
    },
    application: target.applicationId,
    task: target.taskId,
    node: target.node,
    original: {
      key: input.key === null ? null : input.key.toString('base64'),
      value: input.value === null ? null : input.value.toString('base64'),
      encoding: 'base64',
      headers,
    },
  } as DeadLetter;
  const outHeaders: Headers = {
    'millrace.dlq.code': Buffer.from(error.code),
    'millrace.source.topic': Buffer.from(input.topic),
    'millrace.source.partition': Buffer.from(String(input.partition)),
    'millrace.source.offset': Buffer.from(String(input.offset)),
  };
  return {
    topic: target.topic,
    partition: target.partition,
    key: input.key,
    value: Buffer.from(JSON.stringify(body)),
    timestamp: input.timestamp,
    headers: outHeaders,
  };
}
