import { MillraceError, errorMessage } from '../../engine/errors.js';
import {
  DriftDetector,
  driftDetectorOptions,
  referenceColumns,
  type DriftBins,
  type DriftDetectorOptions,
  type DriftDetectorOptionsInput,
  type DriftThresholds,
  type DriftVerdict,
} from '../../engine/ml/drift/detector.js';
import type { Metrics } from '../../engine/metrics/metrics.js';
import { SCORE_DISTRIBUTION, readDriftReference, type DriftReference } from '../../engine/ml/drift/reference.js';
import { StoreDriftWindow, driftRowSerde, driftWindowHeaderSerde, type DriftWindowHeader, type DriftWindowStores } from '../../engine/ml/drift/window.js';
import type { TopologyContext } from '../../engine/runtime/modules.js';
import { Serdes, deserializationError, type Serde } from '../../engine/serde/serde.js';
import type { Processor, ProcessorContext } from '../../engine/topology/processor.js';
import type { StreamRecord } from '../../engine/topology/record.js';
import { TopologyDraft, type Topology } from '../../engine/topology/topology.js';
import { FEATURE_NAMES, Topics, type DriftDetected, type FeatureDrift, type Features, type ModelRouting, type ModelVersionRef, type Prediction } from './contract.js';

/**
 * Drift detection (DESIGN §6.4): the live features and scores of each model's stable version against the reference
 * distributions saved with that version (`reference.json`, written by the trainer next to `model.onnx`).
 *
 *   predictions ─▶ stable-rows ─▶ <app>-by-model-repartition (1 partition) ─▶ detect ─┬▶ drift
 *                                                                                       └▶ drift-evaluations
 *
 * Predictions are keyed by transaction id over several partitions; `stable-rows` drops canary-served rows and
 * rows of other versions than the routing's stable one, and re-keys the rest by model through a one-partition
 * repartition topic, so one task sees all of a model's traffic in one order, and one window per model holds it.
 * `detect` runs a `DriftDetector` per model whose sliding window lives in changelogged stores (one entry per row:
 * each record writes a row and a small header), so a restarted or moved task resumes exactly where it was, and
 * emits a `DriftDetected` event, keyed by model, when an evaluation finds drifted columns. Every evaluation, drifted
 * or not, also goes to `drift-evaluations` (JSON `DriftEvaluation`) with each column's bins, reference against
 * live, for the console's charts; both sinks commit with the window, so each evaluation is written once. (During
 * the cool-down after a verdict the detector does not evaluate, so neither topic hears from it.) A new stable
 * version starts a new window. A reference that is missing or unreadable is logged once per version and task, and that
 * version's rows are skipped: drift detection is advisory, and must never stop the pipeline.
 */

/** What the topology needs of a logger (the engine's pino logger fits). */
export interface DriftLogger {
  warn(details: Record<string, unknown>, message: string): void;
}

export interface DriftTopologyOptions extends DriftDetectorOptionsInput {
  readonly applicationId?: string;
  readonly logger?: DriftLogger;
  /** Where each evaluation's statistics are reported (`millrace_drift_psi`, `millrace_drift_ks`). */
  readonly metrics?: Pick<Metrics, 'observeDrift'>;
  /** References kept in memory per task (one per version; a few versions are live at most). */
  readonly maxCachedReferences?: number;
  /** How a reference is read from a version's `reference_uri` (default: `readDriftReference`, a file path or URL). */
  readonly readReference?: (uri: string) => DriftReference | undefined;
}

/**
 * Defaults for the demo (a few hundred transactions a second for a few minutes): a window of 2,000 rows evaluated
 * every 500 once full, and after a verdict none for a window's worth of rows, so one shift is one event.
 */
export const DEFAULT_DRIFT_TOPOLOGY_OPTIONS = Object.freeze({ windowRows: 2_000, evaluateEveryRows: 500, maxCachedReferences: 16 });

/** The columns a detector watches: every feature, then the score. */
export const DRIFT_COLUMNS: readonly string[] = Object.freeze([...FEATURE_NAMES, SCORE_DISTRIBUTION]);

/** What `stable-rows` sends through the repartition topic: only what the detector reads. */
export interface DriftSample {
  readonly model: string;
  readonly version: string;
  readonly at: string;
  readonly probability: number;
  readonly features: Features;
}

/** One column in a `DriftEvaluation`: the contract's `FeatureDrift`, and the bins its PSI and JS come from. */
export interface FeatureDriftEvaluation extends FeatureDrift {
  readonly bins: DriftBins;
}

export type { DriftBins };

/**
 * An evaluation on `drift-evaluations` (JSON, keyed by model): a `DriftDetected` whose statistics carry their bins,
 * written whether or not anything drifted (`drifted_features` is then empty).
 */
export interface DriftEvaluation {
  readonly model: string;
  readonly version: string;
  readonly window_start: string;
  readonly window_end: string;
  readonly window_size: number;
  readonly drifted_features: readonly string[];
  readonly statistics: readonly FeatureDriftEvaluation[];
  readonly at: string;
}

/** A verdict as the contract's `DriftDetected`: exactly its fields, so the Avro event does not grow the bins. */
export function driftDetectedEvent(verdict: DriftVerdict): DriftDetected {
  return {
    model: verdict.model,
    version: verdict.version,
    window_start: verdict.window_start,
    window_end: verdict.window_end,
    window_size: verdict.window_size,
    statistics: verdict.statistics.map(({ feature, ks, ks_p_value, psi, js, drifted }) => ({ feature, ks, ks_p_value, psi, js, drifted })),
    drifted_features: verdict.drifted_features,
    at: verdict.at,
  };
}

/** An evaluation as written to `drift-evaluations`. */
export function driftEvaluationEvent(evaluation: DriftVerdict): DriftEvaluation {
  return {
    model: evaluation.model,
    version: evaluation.version,
    window_start: evaluation.window_start,
    window_end: evaluation.window_end,
    window_size: evaluation.window_size,
    drifted_features: evaluation.drifted_features,
    statistics: evaluation.statistics.map(({ feature, ks, ks_p_value, psi, js, drifted, bins }) => ({ feature, ks, ks_p_value, psi, js, drifted, bins })),
    at: evaluation.at,
  };
}

/** The detect node's sinks, by what they write: records are forwarded to one of them by name. */
export const DRIFT_SINKS = Object.freeze({ verdicts: 'to-drift', evaluations: 'to-drift-evaluations' });

export const DRIFT_STORES = Object.freeze({
  /** Window headers (counters, cursor) by model. */
  headers: 'drift-window',
  /** Window rows by `<model>/<slot>`: the event time, the features, the score, as doubles. */
  rows: 'drift-window-rows',
  /** The stable version each model's window belongs to. */
  versions: 'drift-window-version',
});

// ------------------------------------------------------------------------------------------------ input checks

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Why a decoded value is not a prediction the detector can read, or `undefined` when it is one. */
export function predictionProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return 'expected a JSON object';
  for (const key of ['model', 'version'] as const) {
    if (typeof value[key] !== 'string' || value[key] === '') return `${key} must be a non-empty string`;
  }
  if (value['route'] !== 'stable' && value['route'] !== 'canary') return 'route must be "stable" or "canary"';
  const at = typeof value['at'] === 'string' ? Date.parse(value['at']) : Number.NaN;
  if (!Number.isSafeInteger(at) || at < 0) return 'at must be an ISO 8601 moment from 1970 on';
  const probability = value['probability'];
  if (typeof probability !== 'number' || !(probability >= 0 && probability <= 1)) return 'probability must be a number in [0, 1]';
  const features = value['features'];
  if (!isRecord(features)) return 'features must be an object';
  for (const name of FEATURE_NAMES) {
    const v = features[name];
    if (typeof v !== 'number' || !Number.isFinite(v)) return `features.${name} must be a finite number`;
  }
  return undefined;
}

/** JSON predictions, refused (`MILLRACE_DESERIALIZATION`, so dead-lettered) unless the detector can read them. */
export const predictionSerde: Serde<Prediction> = {
  name: 'json(prediction)',
  serialize(value, context) {
    return Serdes.json<Prediction>().serialize(value, context);
  },
  deserialize(bytes, context) {
    const value = Serdes.json<unknown>().deserialize(bytes, context);
    const problem = predictionProblem(value);
    if (problem !== undefined) throw deserializationError(context, `not a prediction: ${problem}`);
    return value as Prediction;
  },
};

// ------------------------------------------------------------------------------------------------ references

type CachedReference = { readonly reference: DriftReference } | { readonly failure: string };

/**
 * References by version, read on first use and kept (bounded, oldest out). A failure is cached too, so a missing
 * or bad file is read and logged once per version per task rather than once per record.
 */
class ReferenceCache {
  readonly #entries = new Map<string, CachedReference>();
  readonly #max: number;
  readonly #read: (uri: string) => DriftReference | undefined;
  readonly #logger: DriftLogger | undefined;

  constructor(max: number, read: (uri: string) => DriftReference | undefined, logger: DriftLogger | undefined) {
    this.#max = max;
    this.#read = read;
    this.#logger = logger;
  }

  get(model: string, ref: ModelVersionRef): DriftReference | undefined {
    const key = `${ref.version}\u0000${ref.reference_uri}`;
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = this.#load(model, ref);
      if (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!);
      this.#entries.set(key, entry);
      if ('failure' in entry) {
        this.#logger?.warn(
          { model, version: ref.version, reference_uri: ref.reference_uri, reason: entry.failure },
          'no usable drift reference for this version: its predictions are not checked for drift',
        );
      }
    }
    return 'reference' in entry ? entry.reference : undefined;
  }

  #load(model: string, ref: ModelVersionRef): CachedReference {
    if (ref.reference_uri === '') return { failure: 'the version has no reference_uri' };
    let reference: DriftReference | undefined;
    try {
      reference = this.#read(ref.reference_uri);
    } catch (err) {
      return { failure: errorMessage(err) };
    }
    if (reference === undefined) return { failure: `${ref.reference_uri} does not exist` };
    const columns = referenceColumns(reference, DRIFT_COLUMNS);
    if ('missing' in columns) return { failure: `the reference has no distribution for ${columns.missing.join(', ')}` };
    if ((reference.model !== undefined && reference.model !== model) || (reference.version !== undefined && reference.version !== ref.version)) {
      // Not fatal: the file is where the registry says this version's reference is. Worth a look, though.
      this.#logger?.warn(
        { model, version: ref.version, reference_uri: ref.reference_uri, file_model: reference.model, file_version: reference.version },
        'the drift reference names another model or version than the one it is registered for',
      );
    }
    return { reference };
  }
}

// ------------------------------------------------------------------------------------------------ processors

/** Keeps the rows the stable version served and re-keys them by model. */
class StableRows implements Processor<string, Prediction, string, DriftSample> {
  process(record: StreamRecord<string, Prediction>, ctx: ProcessorContext<string, DriftSample>): void {
    const p = record.value;
    if (p.route !== 'stable') return;
    // Checked again after the repartition (the table may move on meanwhile); here it only saves traffic.
    if (ctx.globalStore<string, ModelRouting>('routing').get(p.model)?.stable?.version !== p.version) return;
    ctx.forward({
      key: p.model,
      value: { model: p.model, version: p.version, at: p.at, probability: p.probability, features: p.features },
      timestamp: record.timestamp,
      headers: {},
    });
  }
}

type DetectOutput = DriftDetected | DriftEvaluation;

/** One detector per model, over windows in the `drift-window*` stores. */
class DetectProcessor implements Processor<string, DriftSample, string, DetectOutput> {
  readonly #options: DriftDetectorOptions;
  readonly #references: ReferenceCache;
  readonly #detectors = new Map<string, DriftDetector>();
  #stores: DriftWindowStores | undefined;
  /** What the detector evaluated for the record being processed (its `onEvaluation` hands it over). */
  #evaluation: DriftVerdict | undefined;

  readonly #metrics: Pick<Metrics, 'observeDrift'> | undefined;

  constructor(options: DriftDetectorOptions, references: ReferenceCache, metrics: Pick<Metrics, 'observeDrift'> | undefined) {
    this.#options = options;
    this.#references = references;
    this.#metrics = metrics;
  }

  init(ctx: ProcessorContext<string, DetectOutput>): void {
    this.#stores = {
      headers: ctx.store<string, DriftWindowHeader>(DRIFT_STORES.headers),
      rows: ctx.store<string, Float64Array>(DRIFT_STORES.rows),
    };
  }

  process(record: StreamRecord<string, DriftSample>, ctx: ProcessorContext<string, DetectOutput>): void {
    const sample = record.value;
    const model = record.key ?? sample.model;
    const stable = ctx.globalStore<string, ModelRouting>('routing').get(model)?.stable ?? null;
    if (stable === null || stable.version !== sample.version) return;

    const stores = this.#stores!;
    const versions = ctx.store<string, string>(DRIFT_STORES.versions);
    if (versions.get(model) !== stable.version) {
      // A new stable version: its traffic is compared with its own reference, from an empty window.
      const window = new StoreDriftWindow(stores, model);
      const header = window.readHeader();
      if (header !== undefined) window.clear(header);
      versions.put(model, stable.version);
    }

    const reference = this.#references.get(model, stable);
    if (reference === undefined) return;
    let detector = this.#detectors.get(model);
    if (detector === undefined || detector.version !== stable.version) {
      // Stateless besides its window, which is in the stores: rebuilding it (after a restart too) loses nothing.
      detector = new DriftDetector({
        model,
        version: stable.version,
        features: FEATURE_NAMES,
        reference: () => this.#references.get(model, stable),
        options: this.#options,
        window: new StoreDriftWindow(stores, model),
        onEvaluation: (evaluation: DriftVerdict) => {
          this.#evaluation = evaluation;
          this.#metrics?.observeDrift(evaluation);
        },
      });
      this.#detectors.set(model, detector);
    }
    this.#evaluation = undefined; // none left over from a record that failed
    const verdict = detector.observe({ timestampMs: record.timestamp, features: sample.features, score: sample.probability });
    const evaluation = this.#takeEvaluation();
    if (evaluation !== undefined) {
      ctx.forward({ key: model, value: driftEvaluationEvent(evaluation), timestamp: record.timestamp, headers: {} }, DRIFT_SINKS.evaluations);
    }
    if (verdict !== null) ctx.forward({ key: model, value: driftDetectedEvent(verdict), timestamp: record.timestamp, headers: {} }, DRIFT_SINKS.verdicts);
  }

  #takeEvaluation(): DriftVerdict | undefined {
    const evaluation = this.#evaluation;
    this.#evaluation = undefined;
    return evaluation;
  }
}

// ------------------------------------------------------------------------------------------------ the topology

/** The drift topology; see the comment at the top of this file. Throws `MILLRACE_CONFIG_INVALID` for bad options. */
export function driftTopology(options: DriftTopologyOptions = {}): Topology {
  const detectorOptions = driftDetectorOptions({
    ...options,
    windowRows: options.windowRows ?? DEFAULT_DRIFT_TOPOLOGY_OPTIONS.windowRows,
    evaluateEveryRows: options.evaluateEveryRows ?? DEFAULT_DRIFT_TOPOLOGY_OPTIONS.evaluateEveryRows,
  });
  const maxCachedReferences = options.maxCachedReferences ?? DEFAULT_DRIFT_TOPOLOGY_OPTIONS.maxCachedReferences;
  if (!Number.isSafeInteger(maxCachedReferences) || maxCachedReferences < 1 || maxCachedReferences > 1_000) {
    throw new MillraceError('MILLRACE_CONFIG_INVALID', `drift: maxCachedReferences must be an integer from 1 to 1000, got ${maxCachedReferences}`);
  }
  const read = options.readReference ?? readDriftReference;
  const app = options.applicationId ?? 'drift';
  const byModel = `${app}-by-model-repartition`;
  const sample = Serdes.json<DriftSample>();
  return new TopologyDraft(app)
    .addGlobalStore({ name: 'routing', topic: Topics.modelRouting, keySerde: Serdes.string(), valueSerde: Serdes.json<ModelRouting>() })
    .addInternalTopic({ name: byModel, kind: 'repartition', partitions: 1 })
    .addSource('predictions', {
      topics: [Topics.predictions],
      keySerde: Serdes.string(),
      valueSerde: predictionSerde,
      timestampExtractor: (r) => Date.parse((r.value as Prediction).at),
    })
    .addProcessor('stable-rows', () => new StableRows(), { parents: ['predictions'], operator: 'keyBy' })
    .addSink('by-model-sink', byModel, { parents: ['stable-rows'], keySerde: Serdes.string(), valueSerde: sample, internal: true })
    .addSource('by-model', { topics: [byModel], keySerde: Serdes.string(), valueSerde: sample, internal: true })
    .addStore({ name: DRIFT_STORES.headers, kind: 'key-value', keySerde: Serdes.string(), valueSerde: driftWindowHeaderSerde, changelog: true })
    .addStore({ name: DRIFT_STORES.rows, kind: 'key-value', keySerde: Serdes.string(), valueSerde: driftRowSerde, changelog: true })
    .addStore({ name: DRIFT_STORES.versions, kind: 'key-value', keySerde: Serdes.string(), valueSerde: Serdes.string(), changelog: true })
    .addProcessor(
      'detect',
      // One reference cache per task: there is one task (one partition), and each reads the files it needs.
      () => new DetectProcessor(detectorOptions, new ReferenceCache(maxCachedReferences, read, options.logger), options.metrics),
      {
        parents: ['by-model'],
        stores: [DRIFT_STORES.headers, DRIFT_STORES.rows, DRIFT_STORES.versions],
        operator: 'drift',
        detail: { ...detectorOptions, thresholds: { ...detectorOptions.thresholds }, columns: DRIFT_COLUMNS },
      },
    )
    .addSink(DRIFT_SINKS.verdicts, Topics.drift, { parents: ['detect'], keySerde: Serdes.string(), valueSerde: Serdes.json<DriftDetected>() })
    .addSink(DRIFT_SINKS.evaluations, Topics.driftEvaluations, { parents: ['detect'], keySerde: Serdes.string(), valueSerde: Serdes.json<DriftEvaluation>() })
    .build();
}

const NUMERIC_OPTIONS = ['windowRows', 'evaluateEveryRows', 'minWindowRows', 'cooldownRows', 'psiEpsilon', 'maxCachedReferences'] as const;
const THRESHOLD_OPTIONS = ['psi', 'ksPValue', 'ksStatistic'] as const satisfies ReadonlyArray<keyof DriftThresholds>;

/** The engine's options object (config file, `pipelineConfig({ drift: {...} })`) as typed options, or why not. */
export function driftOptionsFrom(options: Readonly<Record<string, unknown>>): DriftTopologyOptions {
  const wrong = (what: string): never => {
    throw new MillraceError('MILLRACE_CONFIG_INVALID', `drift topology options: ${what}`);
  };
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if ((NUMERIC_OPTIONS as readonly string[]).includes(key)) {
      if (typeof value !== 'number') wrong(`${key} must be a number, got ${JSON.stringify(value)}`);
      out[key] = value;
    } else if (key === 'thresholds') {
      if (!isRecord(value)) wrong(`thresholds must be an object with ${THRESHOLD_OPTIONS.join(', ')}`);
      const thresholds: Record<string, number> = {};
      for (const [name, threshold] of Object.entries(value as Record<string, unknown>)) {
        if (!(THRESHOLD_OPTIONS as readonly string[]).includes(name)) wrong(`unknown threshold ${name}; known: ${THRESHOLD_OPTIONS.join(', ')}`);
        if (typeof threshold !== 'number') wrong(`thresholds.${name} must be a number, got ${JSON.stringify(threshold)}`);
        thresholds[name] = threshold as number;
      }
      out['thresholds'] = thresholds;
    } else {
      wrong(`unknown option ${key}; known: ${[...NUMERIC_OPTIONS, 'thresholds'].join(', ')}`);
    }
  }
  return out as DriftTopologyOptions;
}

export default function drift({ options, services }: TopologyContext): Topology {
  return driftTopology({ ...driftOptionsFrom(options), logger: services.logger, ...(services.metrics === undefined ? {} : { metrics: services.metrics }) });
}
