import { createHash } from 'node:crypto';
import { MillraceError, errorMessage } from '../errors.js';
import { offset, type AppendRecord, type Headers, type Log, type LogRecord } from '../log/log.js';
import { AUDIT_TOPIC, appendAudited, type AuditPosition, type DeadLetterAuditEvent } from './audit.js';
import { DEAD_LETTER_SUFFIX, type DeadLetter } from './dead-letter.js';

/**
 * Operating on dead letters: send a bounded range back to the topic each came from (redrive), or mark it handled
 * without sending it (skip). Always in two steps, as an operator would: a dry run shows what would happen and
 * answers a token naming exactly that plan; the action takes the token and refuses if anything changed since. Each
 * action writes an audit event to `_audit`, in the same transaction as the records it sends, so a redrive is never
 * half done and never done without its trace; dead letters already redriven or skipped are left out of later plans.
 */


/** The most dead letters one action takes. */
export const MAX_REDRIVE_RECORDS = 1_000;
/** Audit events read to find what was already handled. */
const MAX_AUDIT_RECORDS = 100_000;
/** The header a redriven record carries: where it was dead-lettered (`<dlq topic>/<partition>/<offset>`). */
export const REDRIVEN_FROM_HEADER = 'millrace.redriven-from';

export interface DeadLetterRange {
  /** A dead-letter topic (`<topic>.dlq`). */
  readonly topic: string;
  readonly partition: number;
  /** First offset, inclusive. */
  readonly from: number;
  /** Last offset, inclusive. */
  readonly to: number;
}

export interface PlannedDeadLetter {
  readonly offset: number;
  /** Where a redrive sends it: the topic and partition it was read from. */
  readonly target: { readonly topic: string; readonly partition: number } | null;
  readonly code: string | null;
  readonly detail: string | null;
  /** Redriven or skipped before: left out of this action. */
  readonly handled: boolean;
  /** Why it cannot be redriven (not a dead letter of Millrace's, its source topic is gone): left out. */
  readonly problem?: string;
}

export interface DeadLetterPlan {
  readonly action: 'redrive' | 'skip';
  readonly range: DeadLetterRange;
  readonly items: readonly PlannedDeadLetter[];
  /** Dead letters the action would take. */
  readonly count: number;
  /** Give it back to carry the action out; it names this exact plan. */
  readonly token: string;
}


export interface DeadLetterActionResult {
  readonly action: 'redrive' | 'skip';
  readonly count: number;
  readonly audit: AuditPosition;
}

function invalid(message: string): MillraceError {
  return new MillraceError('MILLRACE_REDRIVE_INVALID', message);
}

function checkRange(range: DeadLetterRange): void {
  if (!range.topic.endsWith(DEAD_LETTER_SUFFIX)) throw invalid(`${range.topic} is not a dead-letter topic (its name ends in ${DEAD_LETTER_SUFFIX})`);
  for (const [name, value] of [['partition', range.partition], ['from', range.from], ['to', range.to]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw invalid(`${name} must be a non-negative integer, got ${value}`);
  }
  if (range.to < range.from) throw invalid(`to (${range.to}) is before from (${range.from})`);
  if (range.to - range.from + 1 > MAX_REDRIVE_RECORDS) throw invalid(`one action takes at most ${MAX_REDRIVE_RECORDS} dead letters; split the range`);
}

async function readRange(log: Log, range: DeadLetterRange): Promise<LogRecord[]> {
  const partitions = await log.partitionOffsets(range.topic);
  const bounds = partitions.find((p) => p.partition === range.partition);
  if (bounds === undefined) throw new MillraceError('MILLRACE_PARTITION_UNKNOWN', `${range.topic} has no partition ${range.partition}`);
  const records: LogRecord[] = [];
  for (let at = Math.max(range.from, bounds.start); at <= range.to && at < bounds.end; ) {
    const batch = await log.read(range.topic, range.partition, offset(at), { maxRecords: Math.min(500, range.to - at + 1) });
    if (batch.records.length === 0) break;
    for (const r of batch.records) if (r.offset <= range.to) records.push(r);
    at = batch.nextOffset;
  }
  return records;
}

/** Offsets of this dead-letter partition that an earlier action took. */
async function handledOffsets(log: Log, topic: string, partition: number): Promise<Set<number>> {
  const handled = new Set<number>();
  const exists = (await log.listTopics()).some((t) => t.name === AUDIT_TOPIC);
  if (!exists) return handled;
  let read = 0;
  for (const { partition: p, start, end } of await log.partitionOffsets(AUDIT_TOPIC)) {
    for (let at: number = start; at < end; ) {
      const batch = await log.read(AUDIT_TOPIC, p, offset(at), { maxRecords: 1_000 });
      if (batch.records.length === 0) break;
      for (const r of batch.records) {
        if (++read > MAX_AUDIT_RECORDS) throw new MillraceError('MILLRACE_INTERNAL', `the audit topic holds more than ${MAX_AUDIT_RECORDS} events`);
        let event: Partial<DeadLetterAuditEvent>;
        try {
          event = JSON.parse(r.value?.toString('utf8') ?? 'null') as Partial<DeadLetterAuditEvent>;
        } catch {
          continue; // not one of ours
        }
        if (event?.topic === topic && event.partition === partition && Array.isArray(event.offsets)) for (const o of event.offsets) handled.add(o);
      }
      at = batch.nextOffset;
    }
  }
  return handled;
}

function describe(record: LogRecord, topics: ReadonlyMap<string, number>, handled: boolean): PlannedDeadLetter & { body?: DeadLetter } {
  let body: DeadLetter | undefined;
  try {
    body = JSON.parse(record.value?.toString('utf8') ?? 'null') as DeadLetter;
  } catch (err) {
    return { offset: record.offset, target: null, code: null, detail: null, handled, problem: `not a dead letter: ${errorMessage(err)}` };
  }
  const source = body?.source;
  if (body === null || typeof source?.topic !== 'string' || !Number.isInteger(source.partition) || typeof body.original !== 'object' || body.original === null) {
    return { offset: record.offset, target: null, code: null, detail: null, handled, problem: 'not a dead letter: no source or original record' };
  }
  const code = typeof body.code === 'string' ? body.code : null;
  const detail = typeof body.detail === 'string' ? body.detail : null;
  const partitions = topics.get(source.topic);
  if (partitions === undefined) return { offset: record.offset, target: null, code, detail, handled, problem: `its source topic ${source.topic} does not exist` };
  const target = { topic: source.topic, partition: source.partition < partitions ? source.partition : 0 };
  return { offset: record.offset, target, code, detail, handled, body };
}

async function plan(log: Log, action: 'redrive' | 'skip', range: DeadLetterRange): Promise<{ plan: DeadLetterPlan; records: Map<number, DeadLetter> }> {
  checkRange(range);
  const topics = new Map((await log.listTopics()).map((t) => [t.name, t.partitions]));
  if (!topics.has(range.topic)) throw new MillraceError('MILLRACE_TOPIC_UNKNOWN', `no topic ${range.topic}`);
  const handled = await handledOffsets(log, range.topic, range.partition);
  const records = new Map<number, DeadLetter>();
  const items: PlannedDeadLetter[] = [];
  for (const record of await readRange(log, range)) {
    const { body, ...item } = describe(record, topics, handled.has(record.offset));
    items.push(item);
    if (!item.handled && (action === 'skip' || (item.problem === undefined && body !== undefined))) records.set(record.offset, body!);
  }
  const taken = [...records.keys()];
  const token = createHash('sha256')
    .update(JSON.stringify({ action, range, taken, items: items.map((i) => [i.offset, i.target, i.handled]) }))
    .digest('hex')
    .slice(0, 24);
  return { plan: { action, range, items, count: taken.length, token }, records };
}

/** What a redrive of the range would send where, and its token. Changes nothing. */
export async function planDeadLetterAction(log: Log, action: 'redrive' | 'skip', range: DeadLetterRange): Promise<DeadLetterPlan> {
  return (await plan(log, action, range)).plan;
}

/**
 * Carries out a planned action: the dead letters of the range not handled before are redriven (their original key,
 * value and headers appended to their source topic and partition) or skipped, and the audit event is written, in
 * one transaction. Refused with `MILLRACE_REDRIVE_STALE` when the plan is no longer the one the token names.
 */
export async function runDeadLetterAction(
  log: Log,
  action: 'redrive' | 'skip',
  range: DeadLetterRange,
  options: { token: string; actor: string; reason?: string; nowMs?: number },
): Promise<DeadLetterActionResult> {
  // One action at a time per dead-letter partition in this process: two confirmations of one plan take it once.
  const key = `${range.topic}\u0000${range.partition}`;
  const before = inFlight.get(key) ?? Promise.resolve();
  const run = before.catch(() => undefined).then(() => act(log, action, range, options));
  inFlight.set(key, run);
  try {
    return await run;
  } finally {
    if (inFlight.get(key) === run) inFlight.delete(key);
  }
}

const inFlight = new Map<string, Promise<unknown>>();

async function act(
  log: Log,
  action: 'redrive' | 'skip',
  range: DeadLetterRange,
  options: { token: string; actor: string; reason?: string; nowMs?: number },
): Promise<DeadLetterActionResult> {
  const { plan: current, records } = await plan(log, action, range);
  if (current.token !== options.token) {
    throw new MillraceError('MILLRACE_REDRIVE_STALE', 'the dead letters changed since the dry run (or the token is not from one): run the dry run again and confirm what it shows', {
      details: { token: current.token },
    });
  }
  if (current.count === 0) throw invalid('nothing to do: every dead letter of the range was handled before, or cannot be redriven');
  const appends: AppendRecord[] = [];
  const redriven: Array<{ from: number; topic: string; partition: number }> = [];
  if (action === 'redrive') {
    for (const [at, body] of records) {
      const target = current.items.find((i) => i.offset === at)!.target!;
      const headers: Record<string, Buffer> = {};
      for (const [name, value] of Object.entries(body.original.headers ?? {})) headers[name] = Buffer.from(String(value), 'base64');
      headers[REDRIVEN_FROM_HEADER] = Buffer.from(`${range.topic}/${range.partition}/${at}`);
      appends.push({
        topic: target.topic,
        partition: target.partition,
        key: body.original.key === null ? null : Buffer.from(body.original.key, 'base64'),
        value: body.original.value === null ? null : Buffer.from(body.original.value, 'base64'),
        ...(typeof body.source.timestamp === 'string' && !Number.isNaN(Date.parse(body.source.timestamp)) ? { timestamp: Date.parse(body.source.timestamp) } : {}),
        headers: headers as Headers,
      });
      redriven.push({ from: at, ...target });
    }
  }
  const event: DeadLetterAuditEvent = {
    type: action === 'redrive' ? 'DeadLettersRedriven' : 'DeadLettersSkipped',
    at: new Date(options.nowMs ?? Date.now()).toISOString(),
    actor: options.actor,
    topic: range.topic,
    partition: range.partition,
    offsets: [...records.keys()],
    ...(options.reason === undefined ? {} : { reason: options.reason }),
    ...(action === 'redrive' ? { redriven } : {}),
  };
  const audit = await appendAudited(log, {
    transactionalId: `millrace-dead-letters-${range.topic}-${range.partition}`,
    records: appends,
    key: range.topic,
    event,
  });
  return { action, count: records.size, audit };
}
