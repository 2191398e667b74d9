/**
 * What the pipeline's projections share: reading their input defensively, building keys, and writing each key at
 * non-decreasing event times.
 *
 * Why the last matters. A store answers a key with its version of greatest time, not the last one written (see
 * `engine/projections/store.ts`). A projection that folds many events into one value (a count, a histogram) and
 * wrote a late event's update at that event's own, older time would put it into history, under the newer value
 * that lacks it, and the update would be lost. So every value here records the greatest event time folded into it
 * (`as_of_ms`), and the next write of that key is at no earlier time: a late event still changes the latest value.
 * (The engine's default time for a change follows the same rule for keys the handler read first; passing the time
 * explicitly keeps it for keys written blind too, such as the user index of `alerts`, and shows readers in the
 * value when it last changed.)
 *
 * Keys are built from `/`-separated parts, each URI-encoded (`keyPart`), so an id holding a `/` cannot make one
 * key look like the prefix of another.
 */
import { MillraceError } from '../../engine/errors.js';
import type { ProjectionContext, ProjectionEvent } from '../../engine/projections/projection.js';
import type { JsonValue } from '../../engine/projections/store.js';

/** Every value these projections write records the greatest event time (ms) folded into it. */
export interface Versioned {
  readonly as_of_ms: number;
}

/** The country slice of events that carry none (written before the pipeline carried it). */
export const UNKNOWN = 'unknown';

/** Longest text kept from an event (a reason, a detail message): values stay small. */
export const MAX_TEXT_CHARS = 1_000;

/** One part of a key: URI-encoded, so `/` inside it cannot forge a prefix. */
export function keyPart(text: string): string {
  return encodeURIComponent(text);
}

/** Event time as it appears in keys and values: UTC, milliseconds, so that keys in byte order are in time order. */
export function isoOf(ms: number): string {
  return new Date(ms).toISOString();
}

export function clip(text: string, maxChars = MAX_TEXT_CHARS): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars - 1)}…`;
}

/** The key's current value (the caller knows its shape: only this projection writes it). */
export async function read<T extends Versioned>(ctx: ProjectionContext, key: string): Promise<T | undefined> {
  return (await ctx.get(key)) as T | undefined;
}

/** Writes `value` at the event's time, or at the time already folded into the key when that is later. */
export function write<T extends Versioned>(ctx: ProjectionContext, key: string, value: Omit<T, 'as_of_ms'>, eventMs: number, before: Versioned | undefined): T {
  const asOfMs = Math.max(eventMs, before?.as_of_ms ?? 0);
  const stored = { ...value, as_of_ms: asOfMs } as T;
  ctx.put(key, stored as unknown as JsonValue, asOfMs);
  return stored;
}

/** Removes a key, no earlier than the last time written to it. */
export function remove(ctx: ProjectionContext, key: string, eventMs: number, before: Versioned | undefined): void {
  ctx.del(key, Math.max(eventMs, before?.as_of_ms ?? 0));
}

// ---------------------------------------------------------------- reading events

/**
 * Thrown for an event that is not what its topic's contract says: the runtime sends it to the projection's
 * dead-letter topic with this reason, and goes on.
 */
export function invalid(event: ProjectionEvent, message: string): never {
  throw new MillraceError('MILLRACE_RECORD_INVALID', `${event.topic}/${event.partition}@${event.offset}: ${message}`, {
    details: { topic: event.topic, partition: event.partition, offset: event.offset },
  });
}

/** Reads the fields of one event value, refusing it (with the field's name) when one is missing or mistyped. */
export class Fields {
  readonly #event: ProjectionEvent;
  readonly #value: Readonly<Record<string, unknown>>;
  readonly #path: string;

  constructor(event: ProjectionEvent, value: unknown = event.value, path = '') {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) invalid(event, `${path || 'the value'} must be a JSON object`);
    this.#event = event;
    this.#value = value as Record<string, unknown>;
    this.#path = path;
  }

  #refuse(name: string, expected: string): never {
    return invalid(this.#event, `${this.#path}${name} must be ${expected}, got ${JSON.stringify(this.#value[name]) ?? 'nothing'}`);
  }

  text(name: string): string {
    const value = this.#value[name];
    return typeof value === 'string' && value.length > 0 ? value : this.#refuse(name, 'a non-empty string');
  }

  optionalText(name: string): string | undefined {
    const value = this.#value[name];
    return typeof value === 'string' && value.length > 0 ? value : undefined;
  }

  number(name: string, range: { min?: number; max?: number } = {}): number {
    const value = this.#value[name];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < (range.min ?? -Infinity) || value > (range.max ?? Infinity)) {
      return this.#refuse(name, `a finite number${range.min === undefined ? '' : ` ≥ ${range.min}`}${range.max === undefined ? '' : ` ≤ ${range.max}`}`);
    }
    return value;
  }

  optionalNumber(name: string): number | undefined {
    const value = this.#value[name];
    return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
  }

  boolean(name: string): boolean {
    const value = this.#value[name];
    return typeof value === 'boolean' ? value : this.#refuse(name, 'true or false');
  }

  /** An ISO 8601 date-time, as ms since the epoch. */
  time(name: string): number {
    const ms = Date.parse(this.text(name));
    return Number.isFinite(ms) ? ms : this.#refuse(name, 'an ISO 8601 date-time');
  }

  optionalTime(name: string): number | undefined {
    const text = this.optionalText(name);
    const ms = text === undefined ? Number.NaN : Date.parse(text);
    return Number.isFinite(ms) ? ms : undefined;
  }

  oneOf<const T extends string>(name: string, choices: readonly T[]): T {
    const value = this.#value[name];
    return choices.includes(value as T) ? (value as T) : this.#refuse(name, `one of ${choices.join(', ')}`);
  }

  object(name: string): Fields {
    return new Fields(this.#event, this.#value[name], `${this.#path}${name}.`);
  }

  /** The finite numbers of an object field, at most `max` of them (extra or non-numeric entries are left out). */
  numbers(name: string, max: number): Record<string, number> {
    const value = this.#value[name];
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return this.#refuse(name, 'an object of numbers');
    const out: Record<string, number> = {};
    let kept = 0;
    for (const [key, n] of Object.entries(value)) {
      if (kept >= max) break;
      if (typeof n !== 'number' || !Number.isFinite(n)) continue;
      out[key] = n;
      kept++;
    }
    return out;
  }

  /** An array field's items (the caller bounds how many it keeps). */
  list(name: string): readonly unknown[] {
    const value = this.#value[name];
    return Array.isArray(value) ? value : this.#refuse(name, 'an array');
  }

  /** Where a record was read (lineage), or null when absent or malformed: lineage is informative, not required. */
  coordinates(name: string): { topic: string; partition: number; offset: number } | null {
    const value = this.#value[name] as Record<string, unknown> | undefined;
    if (typeof value !== 'object' || value === null) return null;
    const { topic, partition, offset } = value;
    if (typeof topic !== 'string' || typeof partition !== 'number' || typeof offset !== 'number') return null;
    return { topic, partition, offset };
  }
}

/** A projection module's option, checked once when the module loads. */
export function numberOption(options: Readonly<Record<string, unknown>>, name: string, fallback: number, range: { min: number; max: number; integer?: boolean }, where: string): number {
  const value = options[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < range.min || value > range.max || (range.integer === true && !Number.isInteger(value))) {
    throw new MillraceError(
      'MILLRACE_CONFIG_INVALID',
      `${where}: option ${name} must be ${range.integer === true ? 'an integer' : 'a number'} from ${range.min} to ${range.max}, got ${JSON.stringify(value)} (leave it out for ${fallback})`,
    );
  }
  return value;
}
