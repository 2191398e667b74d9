import { MillraceError } from '../errors.js';
import { offset, type Log } from '../log/log.js';
import { FEATURE_NAMES, Topics, type ModelRegistryEvent } from '../../topologies/pipeline/contract.js';
import { applyRegistryEvent, emptyRegistry, type RegistryState, type VersionStatus } from '../../topologies/pipeline/registry.js';
import type { LoadedModel, ModelRuntime } from './model-runtime.js';

/**
 * The HTTP face of the model registry (DESIGN §6): `GET /models` and `POST /v1/models/:name:predict`.
 *
 * The registry's state is a fold of the `model-registry` topic (the same fold the registry topology runs), kept up
 * to date by reading what was appended since the last request. Online prediction serves the model's stable
 * version, loaded through the engine's inference runtime (SHA-256 verified, off the event loop).
 */

export interface ModelVersionView {
  readonly version: string;
  readonly stage: VersionStatus;
  /** Percent of traffic it serves now. */
  readonly trafficPercent: number;
  readonly sha256: string;
  readonly artifactUri: string;
  readonly metrics: Readonly<Record<string, number>>;
}

export interface ModelView {
  readonly name: string;
  readonly stable: string | null;
  readonly canary: { readonly version: string; readonly percent: number } | null;
  readonly versions: readonly ModelVersionView[];
}

export interface Prediction {
  readonly class: 0 | 1;
  readonly probability: number;
}

/** Most instances in one predict request. */
export const MAX_PREDICT_INSTANCES = 100;

export class ModelService {
  readonly #log: Log;
  readonly #runtime: () => ModelRuntime;
  readonly #threshold: number;
  readonly #states = new Map<string, RegistryState>();
  readonly #next = new Map<number, number>();
  readonly #loaded = new Map<string, Promise<LoadedModel>>();
  #refreshing: Promise<void> | undefined;

  constructor(options: { log: Log; runtime: () => ModelRuntime; threshold?: number }) {
    this.#log = options.log;
    this.#runtime = options.runtime;
    this.#threshold = options.threshold ?? 0.5;
  }

  async list(): Promise<ModelView[]> {
    await this.#refresh();
    return [...this.#states.values()].sort((a, b) => a.model.localeCompare(b.model)).map(view);
  }

  async predict(name: string, body: unknown): Promise<{ model: string; version: string; predictions: Prediction[] }> {
    const rows = instancesOf(body);
    await this.#refresh();
    const state = this.#states.get(name);
    if (state === undefined) throw new MillraceError('MILLRACE_HTTP_NOT_FOUND', `no model named ${JSON.stringify(name)} is registered`);
    const version = state.stable === null ? undefined : state.versions[state.stable];
    if (version === undefined) throw new MillraceError('MILLRACE_MODEL_UNAVAILABLE', `model ${name} has no stable version yet`);
    const model = await this.#load(name, version.version, version.artifact_uri, version.sha256);
    const input = new Float32Array(rows.length * FEATURE_NAMES.length);
    rows.forEach((row, i) => input.set(row, i * FEATURE_NAMES.length));
    const probabilities = await model.predict(input, rows.length);
    return {
      model: name,
      version: version.version,
      predictions: Array.from(probabilities, (p) => ({ class: p >= this.#threshold ? 1 : 0, probability: p })),
    };
  }

  #load(name: string, version: string, path: string, sha256: string): Promise<LoadedModel> {
    const key = `${name}@${version}:${sha256}`;
    let loading = this.#loaded.get(key);
    if (loading === undefined) {
      loading = this.#runtime().load({ name, version, path, sha256, inputWidth: FEATURE_NAMES.length });
      // A refusal (a tampered file) is not cached: the next request tries again.
      loading.catch(() => this.#loaded.delete(key));
      this.#loaded.set(key, loading);
    }
    return loading;
  }

  #refresh(): Promise<void> {
    this.#refreshing ??= this.#readNew().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #readNew(): Promise<void> {
    let partitions;
    try {
      partitions = await this.#log.partitionOffsets(Topics.modelRegistry);
    } catch (err) {
      if (err instanceof MillraceError && err.code === 'MILLRACE_TOPIC_UNKNOWN') return;
      throw err;
    }
    for (const { partition, start, end } of partitions) {
      let at = Math.max(start, this.#next.get(partition) ?? 0);
      while (at < end) {
        const batch = await this.#log.read(Topics.modelRegistry, partition, offset(at), { maxRecords: 1_000 });
        for (const record of batch.records) {
          if (record.value === null) continue;
          let event: ModelRegistryEvent;
          try {
            event = JSON.parse(record.value.toString('utf8')) as ModelRegistryEvent;
          } catch {
            continue; // Not a registry event: the registry topology dead-letters it; here it is skipped.
          }
          if (typeof event?.model !== 'string' || typeof event.type !== 'string') continue;
          this.#states.set(event.model, applyRegistryEvent(this.#states.get(event.model) ?? emptyRegistry(event.model), event));
        }
        if (batch.nextOffset <= at) break;
        at = batch.nextOffset;
      }
      this.#next.set(partition, at);
    }
  }
}

function view(state: RegistryState): ModelView {
  const canaryPercent = state.canary?.percent ?? 0;
  return {
    name: state.model,
    stable: state.stable,
    canary: state.canary,
    versions: Object.values(state.versions).map((v) => ({
      version: v.version,
      stage: v.status,
      trafficPercent: v.version === state.canary?.version ? canaryPercent : v.version === state.stable ? 100 - canaryPercent : 0,
      sha256: v.sha256,
      artifactUri: v.artifact_uri,
      metrics: v.metrics,
    })),
  };
}

/** `{"instances":[…]}`: each an object with every feature by name, or an array of the features in order. */
export function instancesOf(body: unknown): number[][] {
  const invalid = (message: string, pointer: string): MillraceError =>
    new MillraceError('MILLRACE_HTTP_VALIDATION', message, { details: { issues: [{ path: pointer, message }] } });
  if (typeof body !== 'object' || body === null || !Array.isArray((body as { instances?: unknown }).instances)) {
    throw invalid('the body must be {"instances": [...]}', '/instances');
  }
  const instances = (body as { instances: unknown[] }).instances;
  if (instances.length === 0) throw invalid('instances must hold at least one instance', '/instances');
  if (instances.length > MAX_PREDICT_INSTANCES) throw invalid(`at most ${MAX_PREDICT_INSTANCES} instances per request, got ${instances.length}`, '/instances');
  return instances.map((instance, i) => {
    const values: unknown[] = Array.isArray(instance)
      ? instance
      : typeof instance === 'object' && instance !== null
        ? FEATURE_NAMES.map((name) => (instance as Record<string, unknown>)[name])
        : [];
    if (!Array.isArray(instance) && (typeof instance !== 'object' || instance === null)) {
      throw invalid(`instance ${i} must be an object of features (${FEATURE_NAMES.join(', ')}) or an array of ${FEATURE_NAMES.length} numbers`, `/instances/${i}`);
    }
    if (values.length !== FEATURE_NAMES.length) throw invalid(`instance ${i} has ${values.length} features, the model reads ${FEATURE_NAMES.length}`, `/instances/${i}`);
    return values.map((value, j) => {
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        const where = Array.isArray(instance) ? `/instances/${i}/${j}` : `/instances/${i}/${FEATURE_NAMES[j]}`;
        throw invalid(`${where.slice(1)} must be a finite number, got ${JSON.stringify(value) ?? 'nothing'}`, where);
      }
      return value;
    });
  });
}
