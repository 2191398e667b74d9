import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TopologyRef } from '../config.js';
import { MillraceError, errorMessage, type ErrorCode } from '../errors.js';
import type { SchemaRegistry } from '../serde/registry.js';
import type { EngineServices } from './services.js';
import { StreamsBuilder } from '../topology/builder.js';
import { Topology } from '../topology/topology.js';

/** What a topology module gets when it exports a function. */
export interface TopologyContext {
  readonly options: Readonly<Record<string, unknown>>;
  /** The engine's schema registry, for Avro serdes (`avroSerde(registry, 'transactions-value')`). */
  readonly registry: SchemaRegistry;
  /** The log, inference runtime and data directory, for topologies that need them (the ML pipeline). */
  readonly services: EngineServices;
}

/** A topology module exports (as `default` or `topology`) a Topology, a StreamsBuilder, or a function returning one. */
export type TopologyModuleExport =
  | Topology
  | StreamsBuilder
  | ((context: TopologyContext) => Topology | StreamsBuilder | Promise<Topology | StreamsBuilder>);

const BUILT_IN_ROOT = new URL('../../topologies/', import.meta.url);

/**
 * The URL of a module reference: a path (relative to `baseDir`, the config file's folder) or a built-in name
 * (`examples/keyed-count`) under `builtInRoot`. Anything else is refused with `code`.
 */
export function resolveModuleUrl(module: string, baseDir: string, builtInRoot: URL, refuse: { code: ErrorCode; kind: string }): string {
  const isPath = module.startsWith('.') || isAbsolute(module) || module.endsWith('.js') || module.endsWith('.mjs');
  if (isPath) return pathToFileURL(resolve(baseDir, module)).href;
  if (!/^[a-z0-9][a-z0-9/_-]*$/.test(module) || module.includes('..')) {
    throw new MillraceError(refuse.code, `${JSON.stringify(module)} is neither a path nor a built-in ${refuse.kind} name`);
  }
  return new URL(`${module}.js`, builtInRoot).href;
}

/** Where a topology reference points: a path (relative to the config file's folder) or a built-in name. */
export function resolveTopologyModule(module: string, baseDir: string): string {
  return resolveModuleUrl(module, baseDir, BUILT_IN_ROOT, { code: 'MILLRACE_TOPOLOGY_MODULE', kind: 'topology' });
}

export async function loadTopology(ref: TopologyRef, baseDir: string, services: EngineServices): Promise<Topology> {
  const { module, options } = typeof ref === 'string' ? { module: ref, options: {} } : ref;
  const url = resolveTopologyModule(module, baseDir);
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw new MillraceError('MILLRACE_TOPOLOGY_MODULE', `cannot load topology module ${module} (${url}): ${errorMessage(err)}`, { cause: err });
  }
  let value = (loaded['default'] ?? loaded['topology']) as TopologyModuleExport | undefined;
  if (typeof value === 'function') value = await value({ options, registry: services.registry, services });
  if (value instanceof StreamsBuilder) value = value.build();
  if (!(value instanceof Topology)) {
    throw new MillraceError(
      'MILLRACE_TOPOLOGY_MODULE',
      `topology module ${module} must export (as default or "topology") a Topology, a StreamsBuilder, or a function returning one`,
    );
  }
  return value;
}
