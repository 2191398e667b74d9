/**
 * A projection: a read model kept by handlers that consume topics. The handler sees one event at a time and changes
 * keys of the read model through its context; the runtime (`runner.ts`) turns what it did into `ProjectionBatch`es
 * that a `ProjectionStore` applies atomically with the position they advance, so each event is applied exactly once.
 *
 *   export default defineProjection({
 *     name: 'orders-by-customer',
 *     topics: ['orders'],
 *     async handle(event, ctx) {
 *       const order = event.value as { customer: string; total: number };
 *       const before = (await ctx.get(order.customer)) as { orders: number; total: number } | undefined;
 *       ctx.put(order.customer, { orders: (before?.orders ?? 0) + 1, total: (before?.total ?? 0) + order.total });
 *     },
 *   });
 *
 * Handlers must be deterministic functions of the events and of what `ctx.get` answers: a rebuild, a replay and a
 * restart after a crash re-run them and must arrive at the same read model. A handler that throws (or a value that
 * cannot be decoded) sends the event to the projection's dead-letter topic, with the reason, and processing goes on.
 */
import { MillraceError, errorMessage } from '../errors.js';
import type { LogRecord } from '../log/log.js';
import { resolveModuleUrl } from '../runtime/modules.js';
import type { EngineServices } from '../runtime/services.js';
import type { SchemaRegistry } from '../serde/registry.js';
import { PROJECTION_NAME_PATTERN, type JsonValue } from './store.js';

/** One record of a source topic, decoded, as a handler sees it. */
export interface ProjectionEvent<V = unknown> {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  /** The record's event time (ms since the epoch): the time the changes it makes are valid from. */
  readonly timestampMs: number;
  /** The record key as UTF-8, or null. */
  readonly key: string | null;
  readonly value: V;
}

/** How a handler reads and changes its read model. Changes are applied together with the event's position. */
export interface ProjectionContext {
  /** The key's value as this projection stands, this event's own earlier changes included; undefined when absent. */
  get(key: string): Promise<JsonValue | undefined>;
  /**
   * Sets a key, valid from `timestampMs`. By default the event's time — or, for a key this handler read with `get`,
   * no earlier than the key's latest version (so an aggregate updated by an older event stays the latest, as Kafka
   * Streams times an aggregate by the max of its inputs). A blind put of an event older than the key's latest
   * version goes into history: "latest by event time", whatever order events arrive in.
   */
  put(key: string, value: JsonValue, timestampMs?: number): void;
  /** Removes a key, as of `timestampMs` (defaulted as for `put`). */
  del(key: string, timestampMs?: number): void;
}

export interface ProjectionDefinition {
  /** Names the read model (`GET /projections/:name`): letters, digits, `.`, `_`, `-`. */
  readonly name: string;
  readonly description?: string;
  /** Topics it consumes. */
  readonly topics?: readonly string[];
  /** Also consumes every topic whose name matches (found as they appear), as Kafka's pattern subscriptions do. */
  readonly topicPattern?: RegExp;
  /** Turns a record into the event's value (default: the value as JSON, null for a tombstone). Throwing dead-letters it. */
  readonly decode?: (record: LogRecord) => unknown | Promise<unknown>;
  readonly handle: (event: ProjectionEvent, ctx: ProjectionContext) => void | Promise<void>;
}

export function defineProjection<D extends ProjectionDefinition>(definition: D): D {
  validateDefinition(definition, 'defineProjection');
  return definition;
}

function validateDefinition(definition: ProjectionDefinition, where: string): void {
  const refuse = (message: string): never => {
    throw new MillraceError('MILLRACE_PROJECTION_INVALID', `${where}: ${message}`);
  };
  if (typeof definition !== 'object' || definition === null) refuse('a projection is an object');
  if (typeof definition.name !== 'string' || !PROJECTION_NAME_PATTERN.test(definition.name) || definition.name.startsWith('_')) {
    refuse(`name must match ${PROJECTION_NAME_PATTERN} and not start with "_", got ${JSON.stringify(definition.name)}`);
  }
  if (typeof definition.handle !== 'function') refuse(`projection ${definition.name}: handle must be a function`);
  const topics = definition.topics ?? [];
  if (!Array.isArray(topics) || topics.some((t) => typeof t !== 'string' || t.length === 0)) refuse(`projection ${definition.name}: topics must be topic names`);
  if (definition.topicPattern !== undefined && !(definition.topicPattern instanceof RegExp)) refuse(`projection ${definition.name}: topicPattern must be a RegExp`);
  if (topics.length === 0 && definition.topicPattern === undefined) refuse(`projection ${definition.name}: give topics or a topicPattern`);
}

/** The default decoding: the value's bytes as JSON. */
export function decodeJson(record: LogRecord): unknown {
  if (record.value === null) return null;
  try {
    return JSON.parse(record.value.toString('utf8')) as unknown;
  } catch (err) {
    throw new MillraceError('MILLRACE_DESERIALIZATION', `${record.topic}/${record.partition}@${record.offset} is not JSON: ${errorMessage(err)}`, { cause: err });
  }
}

/** Whether a definition consumes a topic. */
export function consumes(definition: ProjectionDefinition, topic: string): boolean {
  if (definition.topics?.includes(topic) === true) return true;
  // Dead-letter topics of the projection itself are never its own input, even when a pattern matches them.
  if (topic === projectionDeadLetterTopic(definition.name)) return false;
  return definition.topicPattern?.test(topic) === true;
}

/** Where events a projection cannot apply go, each with the reason (an RFC 7807 problem) and its original bytes. */
export function projectionDeadLetterTopic(name: string): string {
  return `_projection.${name}.dlq`;
}

// ---------------------------------------------------------------- modules

/** What a projection module gets when it exports a function. */
export interface ProjectionModuleContext {
  readonly options: Readonly<Record<string, unknown>>;
  readonly registry: SchemaRegistry;
  readonly services: EngineServices;
}

export type ProjectionModuleExport =
  | ProjectionDefinition
  | readonly ProjectionDefinition[]
  | ((context: ProjectionModuleContext) => ProjectionDefinition | readonly ProjectionDefinition[] | Promise<ProjectionDefinition | readonly ProjectionDefinition[]>);

export type ProjectionRef = string | { readonly module: string; readonly options?: Readonly<Record<string, unknown>> };

const BUILT_IN_ROOT = new URL('../../projections/', import.meta.url);

/** A path (relative to `baseDir`) or a built-in name (`pipeline/alerts`). */
export function resolveProjectionModule(module: string, baseDir: string): string {
  return resolveModuleUrl(module, baseDir, BUILT_IN_ROOT, { code: 'MILLRACE_PROJECTION_INVALID', kind: 'projection' });
}

/**
 * Loads the projections a module exports (as `default` or `projections`): a definition, an array of them, or a
 * function of the context returning either. `fresh` imports the file anew even if it was loaded before (replays
 * with edited code).
 */
export async function loadProjections(
  ref: ProjectionRef,
  baseDir: string,
  context: Omit<ProjectionModuleContext, 'options'>,
  options: { fresh?: boolean } = {},
): Promise<ProjectionDefinition[]> {
  const { module, options: moduleOptions } = typeof ref === 'string' ? { module: ref, options: {} } : { module: ref.module, options: ref.options ?? {} };
  let url = resolveProjectionModule(module, baseDir);
  if (options.fresh === true) url = `${url}?v=${Date.now()}-${Math.random().toString(36).slice(2)}`;
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw new MillraceError('MILLRACE_PROJECTION_INVALID', `cannot load projection module ${module}: ${errorMessage(err)}`, { cause: err });
  }
  let value = (loaded['default'] ?? loaded['projections']) as ProjectionModuleExport | undefined;
  if (typeof value === 'function') value = await value({ ...context, options: moduleOptions });
  const definitions = Array.isArray(value) ? (value as ProjectionDefinition[]) : value === undefined ? [] : [value as ProjectionDefinition];
  if (definitions.length === 0) {
    throw new MillraceError('MILLRACE_PROJECTION_INVALID', `projection module ${module} must export (as default or "projections") a projection, an array of them, or a function returning either`);
  }
  for (const definition of definitions) validateDefinition(definition, `projection module ${module}`);
  return definitions;
}
