import { offset, type LogRecord } from '../log/log.js';
import { decodeEvent, handleEvent, type HandledEvent } from '../projections/apply.js';
import { consumes, type ProjectionDefinition } from '../projections/projection.js';
import type { JsonValue } from '../projections/store.js';

export interface ProjectionTestInput {
  readonly topic: string;
  readonly key?: string | null;
  /** Encoded as JSON unless it is a Buffer (given to the projection's `decode` as is). */
  readonly value: unknown;
  readonly timestampMs?: number;
  readonly partition?: number;
}

/**
 * Runs a projection's handlers in memory, event by event, for given / when / then tests:
 *
 *   const driver = new ProjectionTestDriver(alerts);
 *   await driver.pipe({ topic: 'predictions', key: 't1', value: prediction });
 *   expect(driver.get('t1')).toMatchObject({ probability: 0.97 });
 *
 * It keeps the latest version per key only (no history, no store): what the handlers decide, not how it is stored;
 * a change older than a key's latest version goes to history, so `get` does not see it (as with the stores).
 * Events a handler refuses are kept in `deadLetters` with the error, as the runtime would dead-letter them.
 */
export class ProjectionTestDriver {
  readonly #definition: ProjectionDefinition;
  readonly #model = new Map<string, { value: JsonValue; timestampMs: number }>();
  readonly #offsets = new Map<string, number>();
  #clockMs = 0;
  readonly deadLetters: Array<{ readonly input: ProjectionTestInput; readonly error: Error }> = [];

  constructor(definition: ProjectionDefinition) {
    this.#definition = definition;
  }

  /** Feeds one event; answers what it changed, or undefined when it was dead-lettered or not consumed. */
  async pipe(input: ProjectionTestInput): Promise<HandledEvent | undefined> {
    if (!consumes(this.#definition, input.topic)) return undefined;
    const partition = input.partition ?? 0;
    const at = `${input.topic}/${partition}`;
    const next = this.#offsets.get(at) ?? 0;
    this.#offsets.set(at, next + 1);
    this.#clockMs = input.timestampMs ?? this.#clockMs + 1;
    const record: LogRecord = {
      topic: input.topic,
      partition,
      offset: offset(next),
      timestamp: this.#clockMs,
      key: input.key === undefined || input.key === null ? null : Buffer.from(input.key, 'utf8'),
      value: Buffer.isBuffer(input.value) ? input.value : input.value === null ? null : Buffer.from(JSON.stringify(input.value), 'utf8'),
      headers: {},
    };
    try {
      const event = await decodeEvent(this.#definition, record);
      const handled = await handleEvent(this.#definition, event, async (key) => this.#model.get(key));
      for (const op of handled.ops) {
        const current = this.#model.get(op.key);
        if (current !== undefined && current.timestampMs > op.timestampMs) continue; // history, not the latest
        if (op.type === 'put') this.#model.set(op.key, { value: op.value, timestampMs: op.timestampMs });
        else this.#model.delete(op.key);
      }
      return handled;
    } catch (err) {
      this.deadLetters.push({ input, error: err instanceof Error ? err : new Error(String(err)) });
      return undefined;
    }
  }

  async pipeAll(inputs: Iterable<ProjectionTestInput>): Promise<void> {
    for (const input of inputs) await this.pipe(input);
  }

  get(key: string): JsonValue | undefined {
    return this.#model.get(key)?.value;
  }

  /** Every key and value, in key order (UTF-8 byte order, as the stores scan). */
  entries(): Array<[string, JsonValue]> {
    return [...this.#model.entries()].map(([key, { value }]): [string, JsonValue] => [key, value]).sort(([a], [b]) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
  }
}
