/**
 * `drift-timeline`: what drift detection said about each model version, and the story that followed — drift,
 * retraining, canary, promotion or rollback. Three key families, every part URI-encoded and every time an ISO 8601
 * instant in UTC with milliseconds (so byte order is time order):
 *
 *   <model>/<version>/<window_end>                      one drift verdict: its window, size, drifted features,
 *                                                       and per feature (and `score`) KS, PSI and JS statistics
 *   <model>/evaluations/<version>/<window_end>          one drift evaluation, drifted or not (`drift-evaluations`):
 *                                                       the verdict's fields, and per feature the reference's bin
 *                                                       edges with the reference's and the live window's shares
 *   <model>/story/<at>/<step>-<event type>/<subject>    one step of the story, from `drift` (verdicts that found
 *                                                       drift), `training-jobs` and `model-registry`
 *
 * A prefix scan of `<model>/<version>/` lists one version's verdicts in time order; of
 * `<model>/evaluations/<version>/`, its evaluations in time order (a chart of reference against live over time); of
 * `<model>/story/`, the whole story in order. `<step>` is a digit that orders events of the same instant as the
 * story unfolds (a model is trained, then registered, then promoted, all at the job's time): 0 drift, 1 retrain
 * requested, 2 training started, 3 trained or failed, 4 registered, 5 refused, 6 canary stage, 7 promoted or rolled
 * back. `<subject>` is the version (drift, registry events) or the job id (training jobs). (A version named `story`
 * or `evaluations` would share a prefix; versions are `v<N>`.)
 */
import { defineProjection, type ProjectionContext, type ProjectionEvent } from '../../engine/projections/projection.js';
import { Topics } from '../../topologies/pipeline/contract.js';
import { Fields, clip, invalid, isoOf, keyPart, read, write, type Versioned } from './support.js';

/** Most statistics kept per verdict (the contract has one per feature and the score: eleven). */
const MAX_STATISTICS = 64;
/** Most metrics kept per trained or registered model. */
const MAX_METRICS = 32;
/**
 * Most bins kept per feature of an evaluation (the trainer writes ten). A feature with more keeps its statistics
 * and `bins: null`: a distribution cut short would chart wrong.
 */
const MAX_BINS = 100;

export interface FeatureStatistics {
  readonly ks: number;
  readonly ks_p_value: number;
  readonly psi: number;
  readonly js: number;
  readonly drifted: boolean;
}

export interface DriftVerdict extends Versioned {
  readonly kind: 'drift';
  readonly model: string;
  readonly version: string;
  readonly window_start: string;
  readonly window_end: string;
  readonly window_size: number;
  readonly drifted_features: readonly string[];
  /** By feature name (and `score`). */
  readonly statistics: Readonly<Record<string, FeatureStatistics>>;
  readonly at: string;
}

/** A feature's distribution over the reference's quantile bins (the detector's `DriftBins`). */
export interface Bins {
  /** The k + 1 edges, from the reference's minimum to its maximum. */
  readonly edges: readonly number[];
  /** The reference's share of each of the k bins. */
  readonly reference: readonly number[];
  /** The live window's share of each bin. */
  readonly live: readonly number[];
}

export interface EvaluationStatistics extends FeatureStatistics {
  /** Null when the reference has more than `MAX_BINS` bins. */
  readonly bins: Bins | null;
}

export interface DriftEvaluation extends Versioned {
  readonly kind: 'evaluation';
  readonly model: string;
  readonly version: string;
  readonly window_start: string;
  readonly window_end: string;
  readonly window_size: number;
  /** Empty when nothing drifted. */
  readonly drifted_features: readonly string[];
  /** By feature name (and `score`). */
  readonly statistics: Readonly<Record<string, EvaluationStatistics>>;
  readonly at: string;
}

export type StoryType =
  | 'DriftDetected'
  | 'RetrainRequested'
  | 'TrainingStarted'
  | 'ModelTrained'
  | 'TrainingFailed'
  | 'ModelRegistered'
  | 'ModelRefused'
  | 'CanaryStarted'
  | 'ModelPromoted'
  | 'ModelRolledBack';

/** The order of events of one instant. */
export const STORY_STEPS: Readonly<Record<StoryType, number>> = {
  DriftDetected: 0,
  RetrainRequested: 1,
  TrainingStarted: 2,
  ModelTrained: 3,
  TrainingFailed: 3,
  ModelRegistered: 4,
  ModelRefused: 5,
  CanaryStarted: 6,
  ModelPromoted: 7,
  ModelRolledBack: 7,
};

export interface StoryEntry extends Versioned {
  readonly kind: 'story';
  readonly type: StoryType;
  readonly model: string;
  readonly at: string;
  readonly version: string | null;
  readonly job_id: string | null;
  /** Why: a retraining's or rollback's reason, a refusal's cause, a failed job's error. */
  readonly reason: string | null;
  /** A promotion's evidence (the canary test). */
  readonly evidence: string | null;
  /** `operator` for a promotion or roll-back an operator decided (API or console); null for the controller's. */
  readonly decided_by: string | null;
  /** A canary stage's share of traffic. */
  readonly percent: number | null;
  /** A trained or registered model's metrics (`auc`, `baseline_auc`, …). */
  readonly metrics: Readonly<Record<string, number>> | null;
  /** A retraining's start of event time; a drift's drifted features. */
  readonly since: string | null;
  readonly drifted_features: readonly string[] | null;
  readonly runner: string | null;
  readonly sha256: string | null;
}

export function verdictKey(model: string, version: string, windowEnd: string): string {
  return `${keyPart(model)}/${keyPart(version)}/${windowEnd}`;
}

export function evaluationKey(model: string, version: string, windowEnd: string): string {
  return `${keyPart(model)}/evaluations/${keyPart(version)}/${windowEnd}`;
}

export function storyKey(model: string, at: string, type: StoryType, subject: string): string {
  return `${keyPart(model)}/story/${at}/${STORY_STEPS[type]}-${type}/${keyPart(subject)}`;
}

async function put<T extends Versioned>(ctx: ProjectionContext, event: ProjectionEvent, key: string, value: Omit<T, 'as_of_ms'>): Promise<void> {
  write<T>(ctx, key, value, event.timestampMs, await read<T>(ctx, key));
}

function story(partial: Pick<StoryEntry, 'type' | 'model' | 'at'> & Partial<Omit<StoryEntry, 'kind' | 'as_of_ms'>>): Omit<StoryEntry, 'as_of_ms'> {
  return {
    kind: 'story',
    version: null,
    job_id: null,
    reason: null,
    evidence: null,
    decided_by: null,
    percent: null,
    metrics: null,
    since: null,
    drifted_features: null,
    runner: null,
    sha256: null,
    ...partial,
  };
}

async function onDrift(event: ProjectionEvent, ctx: ProjectionContext): Promise<void> {
  const d = new Fields(event);
  const model = d.text('model');
  const version = d.text('version');
  const at = isoOf(d.time('at'));
  const windowEnd = isoOf(d.time('window_end'));
  const statistics: Record<string, FeatureStatistics> = {};
  for (const item of d.list('statistics').slice(0, MAX_STATISTICS)) {
    const s = new Fields(event, item, 'statistics[].');
    statistics[s.text('feature')] = { ks: s.number('ks'), ks_p_value: s.number('ks_p_value'), psi: s.number('psi'), js: s.number('js'), drifted: s.boolean('drifted') };
  }
  const drifted = d.list('drifted_features').filter((f): f is string => typeof f === 'string').slice(0, MAX_STATISTICS);
  await put<DriftVerdict>(ctx, event, verdictKey(model, version, windowEnd), {
    kind: 'drift',
    model,
    version,
    window_start: isoOf(d.time('window_start')),
    window_end: windowEnd,
    window_size: d.number('window_size', { min: 0 }),
    drifted_features: drifted,
    statistics,
    at,
  });
  if (drifted.length > 0) {
    await put<StoryEntry>(ctx, event, storyKey(model, at, 'DriftDetected', version), story({ type: 'DriftDetected', model, at, version, drifted_features: drifted }));
  }
}

/** A feature's bins, checked for the shape the detector writes: k + 1 edges, k shares each, finite numbers. */
function readBins(event: ProjectionEvent, s: Fields): Bins | null {
  const b = s.object('bins');
  const numbers = (name: 'edges' | 'reference' | 'live'): number[] =>
    b.list(name).map((n) => (typeof n === 'number' && Number.isFinite(n) ? n : invalid(event, `statistics[].bins.${name} must hold finite numbers`)));
  const reference = numbers('reference');
  if (reference.length > MAX_BINS) return null;
  const edges = numbers('edges');
  const live = numbers('live');
  if (reference.length === 0 || live.length !== reference.length || edges.length !== reference.length + 1) {
    invalid(event, `statistics[].bins must have k + 1 edges and k reference and live shares, got ${edges.length}, ${reference.length} and ${live.length}`);
  }
  return { edges, reference, live };
}

async function onEvaluation(event: ProjectionEvent, ctx: ProjectionContext): Promise<void> {
  const d = new Fields(event);
  const model = d.text('model');
  const version = d.text('version');
  const windowEnd = isoOf(d.time('window_end'));
  const statistics: Record<string, EvaluationStatistics> = {};
  for (const item of d.list('statistics').slice(0, MAX_STATISTICS)) {
    const s = new Fields(event, item, 'statistics[].');
    statistics[s.text('feature')] = {
      ks: s.number('ks'),
      ks_p_value: s.number('ks_p_value'),
      psi: s.number('psi'),
      js: s.number('js'),
      drifted: s.boolean('drifted'),
      bins: readBins(event, s),
    };
  }
  await put<DriftEvaluation>(ctx, event, evaluationKey(model, version, windowEnd), {
    kind: 'evaluation',
    model,
    version,
    window_start: isoOf(d.time('window_start')),
    window_end: windowEnd,
    window_size: d.number('window_size', { min: 0 }),
    drifted_features: d.list('drifted_features').filter((f): f is string => typeof f === 'string').slice(0, MAX_STATISTICS),
    statistics,
    at: isoOf(d.time('at')),
  });
}

async function onTrainingJob(event: ProjectionEvent, ctx: ProjectionContext): Promise<void> {
  const j = new Fields(event);
  const type = j.oneOf('type', ['RetrainRequested', 'TrainingStarted', 'ModelTrained', 'TrainingFailed'] as const);
  const model = j.text('model');
  const jobId = j.text('job_id');
  const at = isoOf(j.time('at'));
  const since = j.optionalTime('since');
  const reason = j.optionalText('reason');
  await put<StoryEntry>(
    ctx,
    event,
    storyKey(model, at, type, jobId),
    story({
      type,
      model,
      at,
      job_id: jobId,
      version: j.optionalText('version') ?? null,
      reason: reason === undefined ? null : clip(reason),
      since: since === undefined ? null : isoOf(since),
      runner: j.optionalText('runner') ?? null,
      sha256: j.optionalText('sha256') ?? null,
      metrics: type === 'ModelTrained' ? j.numbers('metrics', MAX_METRICS) : null,
    }),
  );
}

async function onRegistry(event: ProjectionEvent, ctx: ProjectionContext): Promise<void> {
  const r = new Fields(event);
  const type = r.oneOf('type', ['ModelRegistered', 'CanaryStarted', 'ModelPromoted', 'ModelRolledBack', 'ModelRefused'] as const);
  const model = r.text('model');
  const version = r.text('version');
  const at = isoOf(r.time('at'));
  const reason = r.optionalText('reason');
  const evidence = r.optionalText('evidence');
  await put<StoryEntry>(
    ctx,
    event,
    storyKey(model, at, type, version),
    story({
      type,
      model,
      at,
      version,
      reason: reason === undefined ? null : clip(reason),
      evidence: evidence === undefined ? null : clip(evidence),
      decided_by: r.optionalText('decided_by') ?? null,
      percent: type === 'CanaryStarted' ? r.number('percent', { min: 0, max: 100 }) : null,
      metrics: type === 'ModelRegistered' ? r.numbers('metrics', MAX_METRICS) : null,
      sha256: r.optionalText('sha256') ?? null,
    }),
  );
}

export default defineProjection({
  name: 'drift-timeline',
  description:
    'Drift verdicts per model version (<model>/<version>/<window end>), every evaluation with reference and live bins ' +
    '(<model>/evaluations/<version>/<window end>), and the drift → retrain → canary → promote or roll back story (<model>/story/<at>/…).',
  topics: [Topics.drift, Topics.driftEvaluations, Topics.trainingJobs, Topics.modelRegistry],
  async handle(event, ctx) {
    if (event.value === null) return;
    if (event.topic === Topics.drift) await onDrift(event, ctx);
    else if (event.topic === Topics.driftEvaluations) await onEvaluation(event, ctx);
    else if (event.topic === Topics.trainingJobs) await onTrainingJob(event, ctx);
    else await onRegistry(event, ctx);
  },
});
