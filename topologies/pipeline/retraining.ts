import { dirname, join } from 'node:path';
import { EMPTY_SUMMARY, addSample, logLoss, welchLower, type Summary } from '../../engine/ml/significance.js';
import { avroSerde } from '../../engine/serde/avro-serde.js';
import type { SchemaRegistry } from '../../engine/serde/registry.js';
import { Serdes, type Serde } from '../../engine/serde/serde.js';
import type { TopologyContext } from '../../engine/runtime/modules.js';
import { TopologyDraft, type Topology } from '../../engine/topology/topology.js';
import type { Processor, ProcessorContext } from '../../engine/topology/processor.js';
import type { StreamRecord } from '../../engine/topology/record.js';
import {
  CANARY_STAGES,
  FRAUD_MODEL,
  Topics,
  type DriftDetected,
  type Feedback,
  type ModelRegistryEvent,
  type Outcome,
  type TrainingJobEvent,
} from './contract.js';
import { applyRegistryEvent, emptyRegistry, type RegistryState } from './registry.js';

export interface ControllerOptions {
  /** Labels after the warm-up to wait for before training the first model. */
  readonly bootstrapLabels: number;
  /** The first model trains on at most this much event time before its request (0: all of it after the warm-up). */
  readonly bootstrapWindowMs: number;
  /**
   * Event time, from the first label, that the first model neither counts labels in nor trains on (0: none): a day,
   * for features over 24 hours. They settle only a day into a stream, so a model trained on the first hours learns
   * what later traffic never shows, and its drift reference, taken from those hours, calls settled traffic drift.
   */
  readonly bootstrapWarmUpMs: number;
  /** Outcomes per arm (canary, stable) before a stage is judged. */
  readonly minSamples: number;
  /**
   * Frauds per arm before a stage is judged (0: none needed). Fraud is rare, and an arm's log loss is mostly how its
   * model scores legitimate traffic until it has met a few: one or two missed frauds in a hundred outcomes then
   * decide the stage. Off by default: an arm of 5 % of traffic takes hours of event time to meet five.
   */
  readonly minPositives: number;
  /** Canary outcomes after which an undecided stage is rolled back. */
  readonly maxSamples: number;
  /**
   * Significance level of the stage test. A stage is tested again on every outcome once it can be judged, and so
   * many looks make a wrong decision likelier than one test at this level would: it is kept strict.
   */
  readonly alpha: number;
  /** A retrained model whose holdout AUC is below the serving model's on the same holdout by more than this is not tried. */
  readonly aucTolerance: number;
}

export const DEFAULT_CONTROLLER_OPTIONS: ControllerOptions = {
  bootstrapLabels: 2_000,
  bootstrapWindowMs: 0,
  bootstrapWarmUpMs: 0,
  minSamples: 150,
  minPositives: 0,
  maxSamples: 5_000,
  alpha: 0.01,
  aucTolerance: 0.01,
};

/** What the controller remembers per model (a store value): every decision follows from it and the next event. */
export interface ControllerState {
  readonly labels: number;
  /** Event time of the first label (absent in states written before it was kept). */
  readonly firstLabelAt?: number;
  /** Labels from the end of the warm-up on (absent in states written before they were counted: none yet). */
  readonly warmLabels?: number;
  readonly jobs: number;
  readonly activeJob: string | null;
  readonly registry: RegistryState;
  /** The stable version a drift verdict already caused a retraining for: one retraining per drifted version. */
  readonly retrainedFor: string | null;
  readonly stage: {
    readonly version: string;
    readonly percent: number;
    /** Event time the stage started: outcomes of earlier predictions do not count. */
    readonly startedAt: number;
    readonly canary: Summary;
    readonly stable: Summary;
    /** Frauds among each arm's outcomes (absent in states written before they were counted: none yet). */
    readonly positives?: { readonly canary: number; readonly stable: number };
  } | null;
}

const NO_POSITIVES = Object.freeze({ canary: 0, stable: 0 });

function initialState(model: string): ControllerState {
  return { labels: 0, jobs: 0, activeJob: null, registry: emptyRegistry(model), retrainedFor: null, stage: null };
}

type Input = DriftDetected | TrainingJobEvent | Outcome | Feedback | ModelRegistryEvent;

/**
 * The loop's decisions, as a processor over the model's event streams (drift verdicts, training jobs, outcomes,
 * labels). It asks for training (the first model once enough labels exist; a new one when the serving model
 * drifts), registers what training produced, and walks a new version through canary stages of 5, 10, 25 and 50 %
 * of traffic: at each stage, once both arms have `minSamples` outcomes and `minPositives` frauds, a one-sided Welch t-test on log loss
 * decides — better (p < alpha) moves to the next stage, or to promotion after 50 %; worse (p < alpha) rolls back;
 * undecided after `maxSamples` rolls back too. Every decision is an event on `training-jobs` or `model-registry`.
 *
 * It also reads `model-registry` for an operator's decisions (`decided_by: 'operator'`); its own events come back
 * there too and are skipped, as it applied them when it made them. An operator's promotion or rollback of the
 * version in stage ends the stage; so does a promotion of another version, which the registry fold answers by
 * rolling the canary back; a rollback of the stable version keeps the stage but drops the stable arm's outcomes,
 * which were those of the version that no longer serves.
 */
export class RetrainingController implements Processor<string, Input, string, TrainingJobEvent | ModelRegistryEvent> {
  readonly #options: ControllerOptions;

  constructor(options: ControllerOptions) {
    this.#options = options;
  }

  process(record: StreamRecord<string, Input>, ctx: ProcessorContext<string, TrainingJobEvent | ModelRegistryEvent>): void {
    const topic = ctx.recordMetadata()?.topic;
    const model = record.key ?? FRAUD_MODEL;
    const store = ctx.store<string, ControllerState>('controller');
    let state = store.get(model) ?? initialState(model);
    const at = new Date(record.timestamp).toISOString();
    const emitJob = (event: TrainingJobEvent): void => ctx.forward({ key: model, value: event, timestamp: record.timestamp, headers: {} }, 'to-training-jobs');
    const emitRegistry = (event: ModelRegistryEvent): void => {
      state = { ...state, registry: applyRegistryEvent(state.registry, event) };
      ctx.forward({ key: model, value: event, timestamp: record.timestamp, headers: {} }, 'to-model-registry');
    };
    const requestTraining = (reason: string, since?: string): void => {
      const jobId = `${model}-${state.jobs + 1}`;
      state = { ...state, jobs: state.jobs + 1, activeJob: jobId };
      emitJob({ type: 'RetrainRequested', job_id: jobId, model, reason, at, ...(since === undefined ? {} : { since }) });
    };

    if (topic === Topics.drift) {
      const drift = record.value as DriftDetected;
      if (state.activeJob === null && state.stage === null && state.registry.stable === drift.version && state.retrainedFor !== drift.version) {
        state = { ...state, retrainedFor: drift.version };
        requestTraining(`drift in ${drift.drifted_features.join(', ')}`, drift.window_start);
      }
    } else if (topic === Topics.trainingJobs) {
      const job = record.value as TrainingJobEvent;
      if (job.job_id === state.activeJob && (job.type === 'ModelTrained' || job.type === 'TrainingFailed')) {
        state = { ...state, activeJob: null };
        if (job.type === 'ModelTrained') this.#registerTrained(job, record.timestamp, emitRegistry, (stage) => (state = { ...state, stage }), () => state);
      }
    } else if (topic === Topics.modelRegistry) {
      const event = record.value as ModelRegistryEvent | null;
      if ((event?.type === 'ModelPromoted' || event?.type === 'ModelRolledBack') && event.decided_by === 'operator') state = operatorDecided(state, event);
    } else if (topic === Topics.outcomes) {
      this.#judge(record.value as Outcome, emitRegistry, (stage) => (state = { ...state, stage }), () => state, at);
    } else {
      const { bootstrapLabels, bootstrapWarmUpMs, bootstrapWindowMs } = this.#options;
      const firstLabelAt = Math.min(state.firstLabelAt ?? record.timestamp, record.timestamp);
      const warmFrom = firstLabelAt + bootstrapWarmUpMs;
      const warmLabels = (state.warmLabels ?? (bootstrapWarmUpMs === 0 ? state.labels : 0)) + (record.timestamp >= warmFrom ? 1 : 0);
      state = { ...state, labels: state.labels + 1, firstLabelAt, warmLabels };
      if (state.registry.stable === null && state.activeJob === null && warmLabels >= bootstrapLabels) {
        // The training set starts at the end of the warm-up, or later when a window is set.
        const from = Math.max(bootstrapWarmUpMs > 0 ? warmFrom : Number.NEGATIVE_INFINITY, bootstrapWindowMs > 0 ? record.timestamp - bootstrapWindowMs : Number.NEGATIVE_INFINITY);
        const counted = bootstrapWarmUpMs > 0 ? `${warmLabels} labels after the warm-up` : `${warmLabels} labels`;
        requestTraining(`first model: ${counted}`, Number.isFinite(from) ? new Date(from).toISOString() : undefined);
      }
    }
    store.put(model, state);
  }

  #registerTrained(
    job: Extract<TrainingJobEvent, { type: 'ModelTrained' }>,
    timestamp: number,
    emit: (event: ModelRegistryEvent) => void,
    setStage: (stage: ControllerState['stage']) => void,
    current: () => ControllerState,
  ): void {
    emit({
      type: 'ModelRegistered',
      model: job.model,
      version: job.version,
      artifact_uri: job.artifact_uri,
      sha256: job.sha256,
      reference_uri: join(dirname(job.artifact_uri), 'reference.json'),
      metrics: job.metrics,
      at: job.at,
    });
    if (current().registry.stable === null) {
      emit({ type: 'ModelPromoted', model: job.model, version: job.version, at: job.at, evidence: 'first model' });
      return;
    }
    const auc = job.metrics['auc'];
    const baseline = job.metrics['baseline_auc'];
    if (auc !== undefined && baseline !== undefined && auc < baseline - this.#options.aucTolerance) {
      emit({ type: 'ModelRolledBack', model: job.model, version: job.version, reason: `holdout AUC ${auc.toFixed(4)} below the serving model's ${baseline.toFixed(4)}`, at: job.at });
      return;
    }
    const percent = CANARY_STAGES[0];
    emit({ type: 'CanaryStarted', model: job.model, version: job.version, percent, at: job.at });
    setStage({ version: job.version, percent, startedAt: timestamp, canary: EMPTY_SUMMARY, stable: EMPTY_SUMMARY, positives: NO_POSITIVES });
  }

  #judge(
    outcome: Outcome,
    emit: (event: ModelRegistryEvent) => void,
    setStage: (stage: ControllerState['stage']) => void,
    current: () => ControllerState,
    at: string,
  ): void {
    const { stage, registry } = current();
    if (stage === null || Date.parse(outcome.at) < stage.startedAt) return;
    const loss = logLoss(outcome.probability, outcome.fraud);
    let { canary, stable } = stage;
    let positives = stage.positives ?? NO_POSITIVES;
    const fraud = outcome.fraud ? 1 : 0;
    if (outcome.version === stage.version && outcome.route === 'canary') {
      canary = addSample(canary, loss);
      positives = { ...positives, canary: positives.canary + fraud };
    } else if (outcome.version === registry.stable && outcome.route === 'stable') {
      stable = addSample(stable, loss);
      positives = { ...positives, stable: positives.stable + fraud };
    } else {
      return;
    }
    const { minSamples, minPositives, maxSamples, alpha } = this.#options;
    // Built only for a decision: most outcomes decide nothing.
    const evidence = (): string => `stage ${stage.percent}%: log loss canary ${canary.mean.toFixed(4)} (n=${canary.n}, ${positives.canary} fraud) vs stable ${stable.mean.toFixed(4)} (n=${stable.n}, ${positives.stable} fraud)`;
    if (canary.n < minSamples || stable.n < minSamples || positives.canary < minPositives || positives.stable < minPositives) {
      if (canary.n >= maxSamples) {
        emit({ type: 'ModelRolledBack', model: outcome.model, version: stage.version, reason: `too few outcomes to judge after ${canary.n}: ${evidence()}`, at });
        setStage(null);
      } else {
        setStage({ ...stage, canary, stable, positives });
      }
      return;
    }
    const better = welchLower(canary, stable).pValue;
    const worse = welchLower(stable, canary).pValue;
    if (better < alpha) {
      const next = CANARY_STAGES[CANARY_STAGES.indexOf(stage.percent as (typeof CANARY_STAGES)[number]) + 1];
      if (next === undefined || next === 100) {
        emit({ type: 'ModelPromoted', model: outcome.model, version: stage.version, at, evidence: `${evidence()}, p = ${better.toExponential(2)}` });
        setStage(null);
      } else {
        emit({ type: 'CanaryStarted', model: outcome.model, version: stage.version, percent: next, at });
        setStage({ version: stage.version, percent: next, startedAt: Date.parse(outcome.at), canary: EMPTY_SUMMARY, stable: EMPTY_SUMMARY, positives: NO_POSITIVES });
      }
    } else if (worse < alpha || canary.n >= maxSamples) {
      const reason = worse < alpha ? `worse on feedback: ${evidence()}, p = ${worse.toExponential(2)}` : `no significant difference after ${canary.n} outcomes: ${evidence()}`;
      emit({ type: 'ModelRolledBack', model: outcome.model, version: stage.version, reason, at });
      setStage(null);
    } else {
      setStage({ ...stage, canary, stable, positives });
    }
  }
}

/** The controller's state once an operator's decision is applied to its copy of the registry. */
function operatorDecided(state: ControllerState, event: ModelRegistryEvent): ControllerState {
  const applied = applyRegistryEvent(state.registry, event);
  if (applied === state.registry) return state;
  // A new stable version (promoted, or an earlier one back after a rollback) may drift and be retrained afresh.
  const retrainedFor = applied.stable !== state.registry.stable ? null : state.retrainedFor;
  return withStage({ ...state, retrainedFor }, applied);
}

function withStage(state: ControllerState, registry: RegistryState): ControllerState {
  const { stage } = state;
  if (stage === null) return { ...state, registry };
  // The fold says what became of the canary: no longer the version in stage means the stage is over.
  if (registry.canary?.version !== stage.version) return { ...state, registry, stage: null };
  if (registry.stable !== state.registry.stable) {
    return { ...state, registry, stage: { ...stage, stable: EMPTY_SUMMARY, positives: { canary: stage.positives?.canary ?? 0, stable: 0 } } };
  }
  return { ...state, registry };
}

/**
 * The retraining and canary controller. Its inputs are all keyed by model name and have one partition each
 * (labels are re-keyed to the model through a one-partition repartition topic), so one task sees every event of a
 * model in order.
 */
export function retrainingTopology(options: Partial<ControllerOptions> & { applicationId?: string; registry?: SchemaRegistry } = {}): TopologyDraft {
  const settings: ControllerOptions = {
    bootstrapLabels: options.bootstrapLabels ?? DEFAULT_CONTROLLER_OPTIONS.bootstrapLabels,
    bootstrapWindowMs: options.bootstrapWindowMs ?? DEFAULT_CONTROLLER_OPTIONS.bootstrapWindowMs,
    bootstrapWarmUpMs: options.bootstrapWarmUpMs ?? DEFAULT_CONTROLLER_OPTIONS.bootstrapWarmUpMs,
    minSamples: options.minSamples ?? DEFAULT_CONTROLLER_OPTIONS.minSamples,
    minPositives: options.minPositives ?? DEFAULT_CONTROLLER_OPTIONS.minPositives,
    maxSamples: options.maxSamples ?? DEFAULT_CONTROLLER_OPTIONS.maxSamples,
    alpha: options.alpha ?? DEFAULT_CONTROLLER_OPTIONS.alpha,
    aucTolerance: options.aucTolerance ?? DEFAULT_CONTROLLER_OPTIONS.aucTolerance,
  };
  const app = options.applicationId ?? 'retraining';
  const json = Serdes.json<unknown>();
  const labels = `${app}-labels-repartition`;
  return new TopologyDraft(app)
    .addInternalTopic({ name: labels, kind: 'repartition', partitions: 1 })
    .addSource('feedback', {
      topics: [Topics.feedback],
      keySerde: Serdes.string(),
      // Labels are Avro on `feedback` (ingest writes them); tests may write them as JSON without a registry.
      valueSerde: options.registry === undefined ? json : (avroSerde<Feedback>(options.registry, `${Topics.feedback}-value`) as Serde<unknown>),
    })
    .addProcessor(
      'labels-by-model',
      () => ({
        process(record: StreamRecord<string, unknown>, ctx: ProcessorContext<string, unknown>) {
          ctx.forward({ ...record, key: FRAUD_MODEL });
        },
      }),
      { parents: ['feedback'], operator: 'keyBy' },
    )
    .addSink('labels-sink', labels, { parents: ['labels-by-model'], keySerde: Serdes.string(), valueSerde: json, internal: true })
    .addSource('labels', { topics: [labels], keySerde: Serdes.string(), valueSerde: json, internal: true })
    .addSource('drift', { topics: [Topics.drift], keySerde: Serdes.string(), valueSerde: json })
    .addSource('jobs', { topics: [Topics.trainingJobs], keySerde: Serdes.string(), valueSerde: json })
    .addSource('outcomes', { topics: [Topics.outcomes], keySerde: Serdes.string(), valueSerde: json })
    .addSource('registry', { topics: [Topics.modelRegistry], keySerde: Serdes.string(), valueSerde: json })
    .addStore({ name: 'controller', kind: 'key-value', keySerde: Serdes.string(), valueSerde: Serdes.json<ControllerState>(), changelog: true })
    .addProcessor('controller', () => new RetrainingController(settings), {
      parents: ['labels', 'drift', 'jobs', 'outcomes', 'registry'],
      stores: ['controller'],
      detail: { ...settings },
    })
    .addSink('to-training-jobs', Topics.trainingJobs, { parents: ['controller'], keySerde: Serdes.string(), valueSerde: json })
    .addSink('to-model-registry', Topics.modelRegistry, { parents: ['controller'], keySerde: Serdes.string(), valueSerde: json });
}

export default function retraining({ options, registry }: TopologyContext): Topology {
  const numeric = (name: keyof ControllerOptions): Partial<ControllerOptions> =>
    typeof options[name] === 'number' ? { [name]: options[name] } : {};
  return retrainingTopology({
    registry,
    ...numeric('bootstrapLabels'),
    ...numeric('bootstrapWindowMs'),
    ...numeric('bootstrapWarmUpMs'),
    ...numeric('minSamples'),
    ...numeric('minPositives'),
    ...numeric('maxSamples'),
    ...numeric('alpha'),
    ...numeric('aucTolerance'),
  }).build();
}
