/**
 * The ML pipeline's contract: the topics its topologies talk through, the events on them, and the features the
 * models read. Topologies meet only here (DESIGN §6): every decision — a feature vector, a prediction, a drift
 * verdict, a model trained, promoted or rolled back — is an event on one of these topics, and can be replayed.
 *
 * Avro schemas for these events live in `schemas/<event>/v<N>.avsc` (snake_case fields, as below).
 */

/** Topic names. */
export const Topics = {
  /** Card transactions as applications send them (JSON, validated by ingest). */
  transactionsRaw: 'transactions-raw',
  /** Labels arriving later: was this transaction fraud? (JSON, validated by ingest). */
  feedbackRaw: 'feedback-raw',
  /** Valid transactions (Avro `transaction`), keyed by user. */
  transactions: 'transactions',
  /** Valid labels (Avro `feedback`), keyed by transaction id. */
  feedback: 'feedback',
  /** One feature vector per transaction, in event time (Avro `feature-vector`), keyed by user. */
  features: 'features',
  /** One prediction per feature vector (Avro `prediction`), keyed by transaction id. */
  predictions: 'predictions',
  /** Predictions joined to their labels (Avro `outcome`), keyed by model name. */
  outcomes: 'outcomes',
  /** Drift verdicts (Avro `drift-detected`), keyed by model name. */
  drift: 'drift',
  /** Every drift evaluation, drifted or not, with its bins (JSON `DriftEvaluation`, drift.ts), keyed by model name. */ driftEvaluations: 'drift-evaluations',
  /** Retraining requests and job results (Avro `training-job`), keyed by model name. */
  trainingJobs: 'training-jobs',
  /** The model registry's events (Avro `model-registry-event`), keyed by model name: the source of truth. */
  modelRegistry: 'model-registry',
  /** The current routing table per model (compacted; JSON `ModelRouting`), keyed by model name. */
  modelRouting: 'model-routing',
} as const;

/** The model the demo pipeline trains and serves. */
export const FRAUD_MODEL = 'fraud';

// ---------------------------------------------------------------- events

export interface Transaction {
  readonly id: string;
  readonly user: string;
  readonly merchant: string;
  /** ISO 3166-1 alpha-2. */
  readonly country: string;
  /** In `currency`, ≥ 0 and ≤ 1,000,000. */
  readonly amount: number;
  readonly currency: string;
  /** When it happened (ISO 8601 with a zone): the event time. */
  readonly at: string;
  /** IPv4 or IPv6. */
  readonly ip: string;
  readonly card_present: boolean;
}

export interface Feedback {
  readonly transaction_id: string;
  readonly user: string;
  readonly fraud: boolean;
  /** When the label became known (ISO 8601): minutes or hours after the transaction. */
  readonly at: string;
}

/** The features a model reads, in this order (the ONNX input is a float tensor [rows, FEATURE_NAMES.length]). */
export const FEATURE_NAMES = [
  'amount',
  'count_10m',
  'sum_1h',
  'mean_1h',
  'sum_24h',
  'mean_24h',
  'seconds_since_last',
  'distinct_countries_24h',
  'amount_to_mean_24h',
  'prev_amount',
] as const;

export type FeatureName = (typeof FEATURE_NAMES)[number];
export type Features = Readonly<Record<FeatureName, number>>;

/**
 * Bumped whenever a feature's definition changes: a training run records it, and a model is only served feature
 * vectors of the version it was trained on.
 */
export const FEATURE_VERSION = 'features-v1';

export interface FeatureVector {
  readonly transaction_id: string;
  readonly user: string;
  /** The transaction's event time: every feature is computed from events at or before it. */
  readonly at: string;
  readonly feature_version: string;
  readonly features: Features;
  /** Where the transaction was read: lineage for predictions. */
  readonly source: RecordCoordinates;
  /** The transaction's country (ISO 3166-1 alpha-2), for slicing what follows; absent in vectors written before it was carried. */
  readonly country?: string;
}

export interface RecordCoordinates {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

export interface Prediction {
  readonly transaction_id: string;
  readonly user: string;
  readonly at: string;
  readonly model: string;
  readonly version: string;
  /** SHA-256 of the model file that produced it. */
  readonly model_sha256: string;
  /** Probability of fraud. */
  readonly probability: number;
  /** 1 = fraud, 0 = legitimate (probability ≥ the model's threshold). */
  readonly class: 0 | 1;
  /** `stable` or `canary`: which side of a canary split served it. */
  readonly route: 'stable' | 'canary';
  readonly features: Features;
  /** The feature vector and the transaction it came from. */
  readonly lineage: { readonly features: RecordCoordinates; readonly transaction: RecordCoordinates };
  /** The transaction's country, from its feature vector; absent in predictions of vectors without one. */
  readonly country?: string;
}

/** A prediction with its label, once the label arrived. */
export interface Outcome {
  readonly transaction_id: string;
  readonly model: string;
  readonly version: string;
  readonly route: 'stable' | 'canary';
  readonly probability: number;
  readonly fraud: boolean;
  readonly at: string;
  /** The transaction's country, from the prediction; absent when the prediction had none (read it as unknown). */
  readonly country?: string;
  /** The transaction's amount (the prediction's `amount` feature); absent in outcomes written before it was carried. */
  readonly amount?: number;
}

export interface FeatureDrift {
  readonly feature: string;
  /** Two-sample Kolmogorov–Smirnov statistic and its p-value. */
  readonly ks: number;
  readonly ks_p_value: number;
  /** Population stability index over the reference's quantile bins. */
  readonly psi: number;
  /** Jensen–Shannon divergence (base 2, in [0, 1]) over the same bins. */
  readonly js: number;
  readonly drifted: boolean;
}

export interface DriftDetected {
  readonly model: string;
  readonly version: string;
  /** Event time of the window's earliest and latest record. */
  readonly window_start: string;
  readonly window_end: string;
  readonly window_size: number;
  /** Every feature and the score, with its statistics; `drifted` marks those past the thresholds. */
  readonly statistics: readonly FeatureDrift[];
  /** The names of the drifted features (and `score` when the score distribution moved). */
  readonly drifted_features: readonly string[];
  readonly at: string;
}

/** What reproduces a training run. */
export interface Reproducibility {
  /** The log ranges the training set was exported from: topic → partition → [from, to). */
  readonly offsets: Readonly<Record<string, ReadonlyArray<{ partition: number; from: number; to: number }>>>;
  readonly feature_version: string;
  readonly seed: number;
  readonly trainer_version: string;
  readonly packages: Readonly<Record<string, string>>;
  /** How the rows were cut from those ranges (absent for a job run outside the training topology). */
  readonly training_set?: {
    /** Only transactions from this moment of event time on (ISO 8601); null: all. */
    readonly since: string | null;
    readonly holdout_fraction: number;
    readonly evaluation_percent: number;
  };
}

export type TrainingJobEvent =
  | {
      readonly type: 'RetrainRequested';
      readonly job_id: string;
      readonly model: string;
      readonly reason: string;
      readonly at: string;
      /** Train on transactions from this moment of event time on (for drift: the drifted window's start); absent: all. */
      readonly since?: string;
    }
  | { readonly type: 'TrainingStarted'; readonly job_id: string; readonly model: string; readonly runner: string; readonly at: string }
  | {
      readonly type: 'ModelTrained';
      readonly job_id: string;
      readonly model: string;
      readonly version: string;
      readonly artifact_uri: string;
      readonly sha256: string;
      readonly metrics: Readonly<Record<string, number>>;
      readonly reproducibility: Reproducibility;
      readonly at: string;
    }
  | { readonly type: 'TrainingFailed'; readonly job_id: string; readonly model: string; readonly reason: string; readonly at: string };

/** Who took a registry decision the controller did not: an operator, through `POST /models/:name/promote|rollback`. */
export type DecidedBy = 'operator';

export type ModelRegistryEvent =
  | {
      readonly type: 'ModelRegistered';
      readonly model: string;
      readonly version: string;
      readonly artifact_uri: string;
      readonly sha256: string;
      /** Reference distributions (per feature and score) saved with the model, for drift detection. */
      readonly reference_uri: string;
      readonly metrics: Readonly<Record<string, number>>;
      readonly at: string;
    }
  | { readonly type: 'CanaryStarted'; readonly model: string; readonly version: string; readonly percent: number; readonly at: string }
  | {
      readonly type: 'ModelPromoted';
      readonly model: string;
      readonly version: string;
      readonly at: string;
      readonly evidence?: string;
      /** Absent: the retraining controller decided. */
      readonly decided_by?: DecidedBy;
      /** Why an operator promoted it (the controller gives `evidence` instead). */
      readonly reason?: string;
    }
  | {
      readonly type: 'ModelRolledBack';
      readonly model: string;
      readonly version: string;
      readonly reason: string;
      readonly at: string;
      /** Absent: the retraining controller decided. */
      readonly decided_by?: DecidedBy;
    }
  | { readonly type: 'ModelRefused'; readonly model: string; readonly version: string; readonly reason: string; readonly at: string };

/** The routing table of one model, folded from its registry events. */
export interface ModelRouting {
  readonly model: string;
  readonly stable: ModelVersionRef | null;
  readonly canary: (ModelVersionRef & { readonly percent: number }) | null;
}

export interface ModelVersionRef {
  readonly version: string;
  readonly artifact_uri: string;
  readonly sha256: string;
  readonly reference_uri: string;
}

/** Canary stages, in percent of traffic, each held until the significance test decides. */
export const CANARY_STAGES = [5, 10, 25, 50, 100] as const;
