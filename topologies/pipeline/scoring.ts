import { partitionForKey } from '../../engine/log/partitioner.js';
import { isModelError, type LoadedModel, type ModelRuntime } from '../../engine/ml/model-runtime.js';
import { inferenceProcessor, type BatchScored, type ModelChoice } from '../../engine/operators/infer.js';
import type { Metrics } from '../../engine/metrics/metrics.js';
import { errorMessage } from '../../engine/errors.js';
import type { Logger } from '../../engine/logger.js';
import { Serdes } from '../../engine/serde/serde.js';
import type { TopologyContext } from '../../engine/runtime/modules.js';
import type { Processor, ProcessorContext } from '../../engine/topology/processor.js';
import type { StreamRecord } from '../../engine/topology/record.js';
import { TopologyDraft, type Topology } from '../../engine/topology/topology.js';
import {
  FEATURE_NAMES,
  FRAUD_MODEL,
  Topics,
  type FeatureVector,
  type ModelRegistryEvent,
  type ModelRouting,
  type ModelVersionRef,
  type Prediction,
} from './contract.js';
import { featureRow } from './feature-definitions.js';

interface CacheEntry {
  state: 'loading' | 'loaded' | 'refused' | 'failed';
  model?: LoadedModel;
  reason?: string;
  readonly loading: Promise<void>;
}

/**
 * The models a scoring process serves, loaded in the background as the routing table names them. Loading verifies
 * the file's SHA-256 against the registry's: a file that does not match is refused (and reported), and the version
 * that served before keeps serving.
 */
export class ModelCache {
  readonly #runtime: ModelRuntime;
  readonly #logger: Logger | undefined;
  readonly #entries = new Map<string, CacheEntry>();
  /** The last stable version that loaded: it serves while a newer one loads or is refused. */
  #lastStable: LoadedModel | undefined;

  constructor(runtime: ModelRuntime, logger?: Logger) {
    this.#runtime = runtime;
    this.#logger = logger;
  }

  #key(ref: ModelVersionRef): string {
    return `${ref.version}:${ref.sha256}`;
  }

  /** Starts loading `ref` unless it is known; resolves when it is loaded, refused or failed. */
  ensure(model: string, ref: ModelVersionRef): Promise<void> {
    const key = this.#key(ref);
    const known = this.#entries.get(key);
    if (known !== undefined) return known.loading;
    const entry: CacheEntry = {
      state: 'loading',
      loading: this.#runtime
        .load({ name: model, version: ref.version, path: ref.artifact_uri, sha256: ref.sha256, inputWidth: FEATURE_NAMES.length })
        .then(
          (loaded) => {
            entry.state = 'loaded';
            entry.model = loaded;
            this.#logger?.info({ model, version: ref.version }, 'model loaded');
          },
          (err: unknown) => {
            entry.state = isModelError(err, 'integrity') ? 'refused' : 'failed';
            entry.reason = errorMessage(err);
            this.#logger?.error({ model, version: ref.version, err }, entry.state === 'refused' ? 'model refused' : 'model failed to load');
          },
        ),
    };
    this.#entries.set(key, entry);
    return entry.loading;
  }

  loaded(ref: ModelVersionRef | null): LoadedModel | undefined {
    if (ref === null) return undefined;
    return this.#entries.get(this.#key(ref))?.model;
  }

  /** Why `ref` was refused (its file did not match its SHA-256), if it was. */
  refusal(ref: ModelVersionRef | null): string | undefined {
    if (ref === null) return undefined;
    const entry = this.#entries.get(this.#key(ref));
    return entry?.state === 'refused' ? entry.reason : undefined;
  }

  /** The stable model to serve: the routing's, once loaded; until then (or if refused) the last that served. */
  stable(ref: ModelVersionRef | null): LoadedModel | undefined {
    const current = this.loaded(ref);
    if (current !== undefined) this.#lastStable = current;
    return current ?? this.#lastStable;
  }
}

interface Routed {
  readonly vector: FeatureVector;
  readonly choice: ModelChoice;
}

/**
 * Chooses the model of each feature vector from the routing table (a global store every task reads in full): the
 * canary version for the share of users its percent says (by a hash of the user, so a user stays on one side), the
 * stable one for the rest. Reports a refused version once per task to the registry.
 */
class RouteProcessor implements Processor<string, FeatureVector, string, Routed | ModelRegistryEvent> {
  readonly #models: ModelCache;

  constructor(models: ModelCache) {
    this.#models = models;
  }

  /** Starts with the models the routing table names already loaded, so the first records find them. */
  init(ctx: ProcessorContext<string, Routed | ModelRegistryEvent>): Promise<void> {
    const routing = ctx.globalStore<string, ModelRouting>('routing').get(FRAUD_MODEL);
    return Promise.all([routing?.stable, routing?.canary].filter((r) => r != null).map((r) => this.#models.ensure(FRAUD_MODEL, r))).then(() => undefined);
  }

  process(record: StreamRecord<string, FeatureVector>, ctx: ProcessorContext<string, Routed | ModelRegistryEvent>): void | Promise<void> {
    const routing = ctx.globalStore<string, ModelRouting>('routing').get(FRAUD_MODEL);
    const stableRef = routing?.stable ?? null;
    const canaryRef = routing?.canary ?? null;
    const loading = [stableRef, canaryRef].filter((r) => r !== null).map((r) => this.#models.ensure(FRAUD_MODEL, r));
    // Nothing loaded can serve yet, but a model is on its way: wait for it rather than turn records away.
    if (this.#models.stable(stableRef) === undefined && stableRef !== null && this.#models.refusal(stableRef) === undefined) {
      return Promise.all(loading).then(() => this.#route(record, ctx, stableRef, canaryRef));
    }
    this.#route(record, ctx, stableRef, canaryRef);
  }

  #route(
    record: StreamRecord<string, FeatureVector>,
    ctx: ProcessorContext<string, Routed | ModelRegistryEvent>,
    stableRef: ModelVersionRef | null,
    canaryRef: (ModelVersionRef & { percent: number }) | null,
  ): void {
    for (const ref of [stableRef, canaryRef]) {
      const reason = this.#models.refusal(ref);
      if (ref === null || reason === undefined) continue;
      const reported = ctx.store<string, boolean>('refusals');
      if (reported.get(ref.version) === true) continue;
      reported.put(ref.version, true);
      ctx.forward(
        {
          key: FRAUD_MODEL,
          value: { type: 'ModelRefused', model: FRAUD_MODEL, version: ref.version, reason, at: new Date(record.timestamp).toISOString() },
          timestamp: record.timestamp,
          headers: {},
        },
        'to-model-registry',
      );
    }
    const canary = this.#models.loaded(canaryRef);
    const toCanary = canary !== undefined && canaryRef !== null && partitionForKey(Buffer.from(record.value.user), 100) < canaryRef.percent;
    const choice: ModelChoice = toCanary ? { model: canary, route: 'canary' } : { model: this.#models.stable(stableRef), route: 'stable' };
    ctx.forward({ ...record, value: { vector: record.value, choice } }, 'score');
  }
}

export interface ScoringOptions {
  readonly runtime: ModelRuntime;
  readonly logger?: Logger;
  readonly applicationId?: string;
  readonly maxBatch?: number;
  readonly maxWaitMs?: number;
  /** At or above it a prediction's class is 1 (fraud). */
  readonly threshold?: number;
  /** Where model calls are reported (`millrace_inference_batch_size`, `millrace_inference_latency_seconds`). */
  readonly metrics?: Pick<Metrics, 'observeInference'>;
}

/**
 * Scoring: each feature vector is scored by the model its routing says, with micro-batching inside the task and
 * inference off the event loop (the runtime's worker threads). Each prediction carries the model name, version and
 * SHA-256, which side of a canary split served it, and the coordinates of its feature vector and transaction.
 */
export function scoringTopology(options: ScoringOptions): Topology {
  const models = new ModelCache(options.runtime, options.logger);
  const threshold = options.threshold ?? 0.5;
  const json = Serdes.json<unknown>();
  return new TopologyDraft(options.applicationId ?? 'scoring')
    .addGlobalStore({ name: 'routing', topic: Topics.modelRouting, keySerde: Serdes.string(), valueSerde: Serdes.json<ModelRouting>() })
    .addStore({ name: 'refusals', kind: 'key-value', keySerde: Serdes.string(), valueSerde: Serdes.json<boolean>(), changelog: true })
    .addSource('features', {
      topics: [Topics.features],
      keySerde: Serdes.string(),
      valueSerde: Serdes.json<FeatureVector>(),
      timestampExtractor: (r) => Date.parse((r.value as FeatureVector).at),
    })
    .addProcessor('route', () => new RouteProcessor(models), { parents: ['features'], stores: ['refusals'], operator: 'route' })
    .addProcessor(
      'score',
      inferenceProcessor<string, Routed, string, Prediction>({
        model: (record) => record.value.choice,
        toRow: (record) => featureRow(record.value.vector.features),
        emit: ({ record, probability, model, route, source }) => {
          const vector = record.value.vector;
          return {
            key: vector.transaction_id,
            value: {
              transaction_id: vector.transaction_id,
              user: vector.user,
              at: vector.at,
              model: model.name,
              version: model.version,
              model_sha256: model.sha256,
              probability,
              class: probability >= threshold ? 1 : 0,
              route,
              features: vector.features,
              lineage: {
                features: source === undefined ? { topic: Topics.features, partition: -1, offset: -1 } : { topic: source.topic, partition: source.partition, offset: source.offset },
                transaction: vector.source,
              },
              // Vectors written before they carried the country (replays of an old log) make predictions without one.
              ...(vector.country === undefined ? {} : { country: vector.country }),
            },
            timestamp: record.timestamp,
            headers: {},
          };
        },
        ...(options.maxBatch === undefined ? {} : { maxBatch: options.maxBatch }),
        ...(options.maxWaitMs === undefined ? {} : { maxWaitMs: options.maxWaitMs }),
        ...(options.metrics === undefined ? {} : { onBatch: (batch: BatchScored) => options.metrics!.observeInference(batch.model.name, batch.rows, batch.durationMs) }),
      }),
      { parents: ['route'], operator: 'infer', detail: { maxBatch: options.maxBatch ?? 64, maxWaitMs: options.maxWaitMs ?? 5, threshold } },
    )
    .addSink('to-predictions', Topics.predictions, { parents: ['score'], keySerde: Serdes.string(), valueSerde: json })
    .addSink('to-model-registry', Topics.modelRegistry, { parents: ['route'], keySerde: Serdes.string(), valueSerde: json })
    .build();
}

export default function scoring({ services, options }: TopologyContext): Topology {
  return scoringTopology({
    runtime: services.modelRuntime(),
    logger: services.logger,
    ...(services.metrics === undefined ? {} : { metrics: services.metrics }),
    ...(typeof options['maxBatch'] === 'number' ? { maxBatch: options['maxBatch'] } : {}),
    ...(typeof options['maxWaitMs'] === 'number' ? { maxWaitMs: options['maxWaitMs'] } : {}),
  });
}
