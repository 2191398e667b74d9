/**
 * `dead-letters`: what went to every dead-letter topic (each topic matching `/\.dlq$/`, found as they appear).
 * Keys, every part URI-encoded:
 *
 *   <dead-letter topic>            totals: count, count per code, first and last seen
 *   <dead-letter topic>/<code>     per problem code (`MILLRACE_SCHEMA_VIOLATION`, …): count, first and last seen,
 *                                  the last detail message, and where the last few came from (`recent` of them,
 *                                  option, default 5)
 *
 * e.g. `transactions-raw.dlq` and `transactions-raw.dlq/MILLRACE_SCHEMA_VIOLATION`; a prefix scan of
 * `transactions-raw.dlq/` lists its codes. Times are event times: a dead letter keeps its input's timestamp.
 *
 * A dead letter is an RFC 7807 problem as JSON (`DeadLetter`), but a record that is not one (not JSON, a tombstone,
 * no `code`) is counted too, under the code `malformed`, with the start of its raw text as the detail: this
 * projection's `decode` never throws, so nothing about dead letters is itself dead-lettered.
 */
import type { LogRecord } from '../../engine/log/log.js';
import { defineProjection, type ProjectionContext, type ProjectionDefinition, type ProjectionEvent, type ProjectionModuleContext } from '../../engine/projections/projection.js';
import { DEAD_LETTER_SUFFIX } from '../../engine/runtime/dead-letter.js';
import { MAX_TEXT_CHARS, clip, isoOf, keyPart, numberOption, read, write, type Versioned } from './support.js';

/** The code of records that are not dead letters as the runtime writes them. */
export const MALFORMED = 'malformed';
export const DEFAULT_RECENT = 5;
const MAX_RECENT = 50;
/** Most codes a topic's totals list one by one; the rest add up under `other`. */
const MAX_CODES = 100;
const MAX_CODE_CHARS = 100;

const PATTERN = new RegExp(`${DEAD_LETTER_SUFFIX.replace('.', '\\.')}$`);

type Coordinates = { readonly topic: string; readonly partition: number; readonly offset: number; readonly timestamp: string | null };

/** A dead-letter record as this projection reads it, whatever its bytes held. */
export interface DeadLetterView {
  readonly code: string;
  readonly title: string | null;
  readonly detail: string;
  /** The record that failed: where it was read. */
  readonly source: Coordinates | null;
  readonly application: string | null;
  readonly node: string | null;
}

/** Decodes a dead letter; never throws (see the module comment). */
export function decodeDeadLetter(record: LogRecord): DeadLetterView {
  const malformed = (detail: string): DeadLetterView => ({ code: MALFORMED, title: null, detail: clip(detail), source: null, application: null, node: null });
  if (record.value === null) return malformed('a tombstone (no value)');
  const text = record.value.toString('utf8');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: exactly the case this projection counts rather than refuses.
    return malformed(`not JSON: ${text.slice(0, MAX_TEXT_CHARS)}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body) || typeof (body as { code?: unknown }).code !== 'string' || (body as { code: string }).code === '') {
    return malformed(`not a problem document (no code): ${text.slice(0, MAX_TEXT_CHARS)}`);
  }
  const problem = body as Record<string, unknown>;
  const str = (v: unknown): string | null => (typeof v === 'string' ? clip(v) : null);
  const source = problem['source'] as Record<string, unknown> | undefined;
  const validSource =
    typeof source === 'object' && source !== null && typeof source['topic'] === 'string' && typeof source['partition'] === 'number' && typeof source['offset'] === 'number';
  return {
    code: clip(problem['code'] as string, MAX_CODE_CHARS),
    title: str(problem['title']),
    detail: str(problem['detail']) ?? '',
    source: validSource
      ? { topic: source['topic'] as string, partition: source['partition'] as number, offset: source['offset'] as number, timestamp: str(source['timestamp']) }
      : null,
    application: str(problem['application']),
    node: str(problem['node']),
  };
}

export interface RecentDeadLetter {
  /** The dead letter's event time (its input's). */
  readonly at: string;
  /** Where the dead letter itself is. */
  readonly partition: number;
  readonly offset: number;
  readonly source: Coordinates | null;
  readonly application: string | null;
  readonly node: string | null;
}

export interface DeadLettersByCode extends Versioned {
  readonly topic: string;
  readonly code: string;
  readonly title: string | null;
  readonly count: number;
  readonly first_seen: string;
  readonly last_seen: string;
  /** The detail message of the latest dead letter (greatest event time, then partition and offset). */
  readonly last_detail: string;
  /** The latest few, latest first. */
  readonly recent: readonly RecentDeadLetter[];
}

export interface DeadLetterTotals extends Versioned {
  readonly topic: string;
  readonly count: number;
  readonly codes: Readonly<Record<string, number>>;
  readonly first_seen: string;
  readonly last_seen: string;
}

export function totalsKey(topic: string): string {
  return keyPart(topic);
}

export function codeKey(topic: string, code: string): string {
  return `${keyPart(topic)}/${keyPart(code)}`;
}

/** Whether a is later than b: event time, then partition, then offset (a total order, whatever the read order). */
function later(a: RecentDeadLetter, b: RecentDeadLetter): boolean {
  if (a.at !== b.at) return a.at > b.at;
  if (a.partition !== b.partition) return a.partition > b.partition;
  return a.offset > b.offset;
}

export interface DeadLettersOptions {
  /** How many of the latest dead letters each code keeps the coordinates of (default 5, at most 50). */
  readonly recent?: number;
}

export function deadLettersProjection(options: DeadLettersOptions = {}): ProjectionDefinition {
  const keep = numberOption(options as Record<string, unknown>, 'recent', DEFAULT_RECENT, { min: 1, max: MAX_RECENT, integer: true }, 'projection pipeline/dead-letters');

  const handle = async (event: ProjectionEvent, ctx: ProjectionContext): Promise<void> => {
    const letter = event.value as DeadLetterView;
    const at = isoOf(event.timestampMs);
    const entry: RecentDeadLetter = { at, partition: event.partition, offset: event.offset, source: letter.source, application: letter.application, node: letter.node };

    const byCodeKey = codeKey(event.topic, letter.code);
    const byCode = await read<DeadLettersByCode>(ctx, byCodeKey);
    const isLatest = byCode === undefined || byCode.recent.length === 0 || later(entry, byCode.recent[0]!);
    const recent = [...(byCode?.recent ?? []), entry].sort((a, b) => (later(a, b) ? -1 : later(b, a) ? 1 : 0)).slice(0, keep);
    write<DeadLettersByCode>(
      ctx,
      byCodeKey,
      {
        topic: event.topic,
        code: letter.code,
        title: isLatest ? letter.title : byCode.title,
        count: (byCode?.count ?? 0) + 1,
        first_seen: byCode === undefined || at < byCode.first_seen ? at : byCode.first_seen,
        last_seen: byCode === undefined || at > byCode.last_seen ? at : byCode.last_seen,
        last_detail: isLatest ? letter.detail : byCode.last_detail,
        recent,
      },
      event.timestampMs,
      byCode,
    );

    const key = totalsKey(event.topic);
    const totals = await read<DeadLetterTotals>(ctx, key);
    const codes = { ...totals?.codes };
    const counted = letter.code in codes || Object.keys(codes).filter((c) => c !== 'other').length < MAX_CODES ? letter.code : 'other';
    codes[counted] = (codes[counted] ?? 0) + 1;
    write<DeadLetterTotals>(
      ctx,
      key,
      {
        topic: event.topic,
        count: (totals?.count ?? 0) + 1,
        codes,
        first_seen: totals === undefined || at < totals.first_seen ? at : totals.first_seen,
        last_seen: totals === undefined || at > totals.last_seen ? at : totals.last_seen,
      },
      event.timestampMs,
      totals,
    );
  };

  return defineProjection({
    name: 'dead-letters',
    description: 'Dead letters of every *.dlq topic: totals per topic (<topic>) and per problem code (<topic>/<code>) with the last detail and the latest coordinates.',
    topicPattern: PATTERN,
    decode: decodeDeadLetter,
    handle,
  });
}

export default function deadLetters({ options }: Pick<ProjectionModuleContext, 'options'>): ProjectionDefinition {
  return deadLettersProjection(options);
}
