import { MillraceError, errorMessage } from '../errors.js';
import type { LogRecord } from '../log/log.js';
import { decodeJson, type ProjectionContext, type ProjectionDefinition, type ProjectionEvent } from './projection.js';
import type { JsonValue, ProjectionOp } from './store.js';

/** A key's latest value and the time it is valid from. */
export interface StoredValue {
  readonly value: JsonValue;
  readonly timestampMs: number;
}

/** Reads a key of the read model as it stands before the event (the runner layers its pending batch on top). */
export type ProjectionReader = (key: string) => Promise<StoredValue | undefined>;

/** What one event did: its changes, and each changed key's value before and after (for replay steps). */
export interface HandledEvent {
  readonly event: ProjectionEvent;
  readonly ops: readonly ProjectionOp[];
  /** Keys in the order first changed; `undefined` = absent. */
  readonly before: ReadonlyMap<string, JsonValue | undefined>;
  readonly after: ReadonlyMap<string, JsonValue | undefined>;
}

/** Most changes one event may make: a handler looping without end is a bug, not a workload. */
export const MAX_OPS_PER_EVENT = 1_000;

/** Decodes a record into the event a handler sees; a value that cannot be decoded is a `MILLRACE_DESERIALIZATION`. */
export async function decodeEvent(definition: ProjectionDefinition, record: LogRecord): Promise<ProjectionEvent> {
  let value: unknown;
  try {
    value = await (definition.decode ?? decodeJson)(record);
  } catch (err) {
    if (err instanceof MillraceError) throw err;
    throw new MillraceError('MILLRACE_DESERIALIZATION', `projection ${definition.name} cannot decode ${record.topic}/${record.partition}@${record.offset}: ${errorMessage(err)}`, { cause: err });
  }
  return {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    timestampMs: record.timestamp,
    key: record.key === null ? null : record.key.toString('utf8'),
    value,
  };
}

function copy(value: JsonValue | undefined): JsonValue | undefined {
  // Handlers get their own copies, so mutating what `get` returned cannot change a stored or pending value.
  return value === undefined ? undefined : (structuredClone(value) as JsonValue);
}

/**
 * Runs the handler on one event. Nothing it does counts unless it returns: a throw leaves no changes behind (the
 * event is then dead-lettered by the caller). Failures are `MILLRACE_PROCESSING` errors carrying the cause.
 */
export async function handleEvent(definition: ProjectionDefinition, event: ProjectionEvent, read: ProjectionReader): Promise<HandledEvent> {
  const ops: ProjectionOp[] = [];
  const before = new Map<string, JsonValue | undefined>();
  const after = new Map<string, JsonValue | undefined>();
  /** The latest version's time of every key read or changed: a change defaults to no earlier than it. */
  const versionTimes = new Map<string, number>();
  const refuse = (message: string): never => {
    throw new MillraceError('MILLRACE_PROCESSING', `projection ${definition.name}: ${message}`);
  };
  const checkKey = (key: unknown): void => {
    if (typeof key !== 'string') refuse('keys are strings');
  };
  const timeOf = (key: string, timestampMs: number | undefined): number => {
    // By default a change is valid from the event's time, or from the key's latest version if that is later:
    // otherwise an event older than a key's latest version (another partition, a late record) would write a
    // version hidden behind it, and its update would be lost to every reader of the latest — the rule Kafka
    // Streams applies to an aggregate's timestamp (the max of its inputs').
    const t = timestampMs ?? Math.max(event.timestampMs, versionTimes.get(key) ?? -1);
    if (!Number.isSafeInteger(t) || t < 0) refuse(`a change's time must be a non-negative integer of ms, got ${t}`);
    return t;
  };
  const readStored = async (key: string): Promise<StoredValue | undefined> => {
    const stored = await read(key);
    if (stored !== undefined && !versionTimes.has(key)) versionTimes.set(key, stored.timestampMs);
    return stored;
  };
  const pendingReads: Array<Promise<unknown>> = [];
  const noteBefore = (key: string): void => {
    if (before.has(key)) return;
    before.set(key, undefined); // reserved now, so the order is the order of first change
    pendingReads.push(readStored(key).then((stored) => void before.set(key, copy(stored?.value))));
  };
  const change = (key: string, op: ProjectionOp, value: JsonValue | undefined): void => {
    if (ops.length >= MAX_OPS_PER_EVENT) refuse(`one event may change at most ${MAX_OPS_PER_EVENT} keys`);
    ops.push(op);
    after.set(key, value);
    versionTimes.set(key, Math.max(versionTimes.get(key) ?? -1, op.timestampMs));
  };
  const ctx: ProjectionContext = {
    async get(key) {
      checkKey(key);
      if (after.has(key)) return copy(after.get(key));
      return copy((await readStored(key))?.value);
    },
    put(key, value, timestampMs) {
      checkKey(key);
      const stored = copy(value);
      noteBefore(key);
      change(key, { type: 'put', key, value: stored as JsonValue, timestampMs: timeOf(key, timestampMs) }, stored);
    },
    del(key, timestampMs) {
      checkKey(key);
      noteBefore(key);
      change(key, { type: 'del', key, timestampMs: timeOf(key, timestampMs) }, undefined);
    },
  };
  try {
    await definition.handle(event, ctx);
    if (ops.length > MAX_OPS_PER_EVENT) throw new MillraceError('MILLRACE_PROCESSING', `projection ${definition.name}: one event may change at most ${MAX_OPS_PER_EVENT} keys`);
    await Promise.all(pendingReads);
  } catch (err) {
    await Promise.allSettled(pendingReads);
    if (err instanceof MillraceError) throw err;
    throw new MillraceError('MILLRACE_PROCESSING', `projection ${definition.name} failed on ${event.topic}/${event.partition}@${event.offset}: ${errorMessage(err)}`, { cause: err });
  }
  return { event, ops, before, after };
}
