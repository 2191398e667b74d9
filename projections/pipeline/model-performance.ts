/**
 * `model-performance`: live quality of each model version from its outcomes (predictions joined to their labels),
 * overall and by slice. Keys, every part URI-encoded:
 *
 *   <model>/<version>/all
 *   <model>/<version>/amount=<band>       bands (in the transaction's currency): 0-10, 10-50, 50-200, 200-1000,
 *                                         1000+ (each includes its lower bound), and unknown
 *   <model>/<version>/country=<CC>        ISO 3166-1 alpha-2, or unknown (outcomes written before they carried it)
 *   <model>/<version>/route=<route>       stable or canary
 *
 * so a prefix scan of `<model>/<version>/` lists one version's slices and `<model>/<version>/country=` its
 * countries. Each value holds sums from which accuracy, precision, recall and calibration follow (counts, the
 * confusion matrix at the model's decision threshold, log loss, Brier score and probability sums), a score
 * histogram per label, and those metrics computed (`auc` approximated from the histogram, see `histogramAuc`).
 */
import { logLoss } from '../../engine/ml/significance.js';
import { defineProjection, type ProjectionContext, type ProjectionEvent } from '../../engine/projections/projection.js';
import { Topics } from '../../topologies/pipeline/contract.js';
import { Fields, UNKNOWN, isoOf, keyPart, read, write, type Versioned } from './support.js';

/** The model's decision threshold when an outcome does not say (scoring's default). */
export const DEFAULT_DECISION_THRESHOLD = 0.5;

/** Amount bands: [min, max) in the transaction's currency; the last is open-ended. */
export const AMOUNT_BANDS: ReadonlyArray<{ readonly label: string; readonly min: number; readonly max: number }> = [
  { label: '0-10', min: 0, max: 10 },
  { label: '10-50', min: 10, max: 50 },
  { label: '50-200', min: 50, max: 200 },
  { label: '200-1000', min: 200, max: 1_000 },
  { label: '1000+', min: 1_000, max: Infinity },
];

/**
 * Edges of the score histogram's 20 bins: [edge i, edge i+1), the last bin including 1. Finer near 0 and 1, where
 * a fraud model's scores crowd (most transactions score below 0.01), so that the AUC read from the bins stays
 * close to the exact one; pairs of a positive and a negative within one bin count as ties.
 */
export const SCORE_BIN_EDGES: readonly number[] = [0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1];
export const SCORE_BINS = SCORE_BIN_EDGES.length - 1;

export function amountBand(amount: number | undefined): string {
  if (amount === undefined || !Number.isFinite(amount)) return UNKNOWN;
  return (AMOUNT_BANDS.find((band) => amount < band.max) ?? AMOUNT_BANDS.at(-1)!).label;
}

export function scoreBin(probability: number): number {
  let bin = 0;
  while (bin < SCORE_BINS - 1 && probability >= SCORE_BIN_EDGES[bin + 1]!) bin++;
  return bin;
}

/**
 * Area under the ROC curve from per-bin counts of positives and negatives: the chance that a random positive
 * scores in a higher bin than a random negative, plus half the chance they share one (Mann–Whitney U with ties).
 * Equals the exact AUC when no positive shares a bin with a negative. Null without both classes.
 */
export function histogramAuc(positive: readonly number[], negative: readonly number[]): number | null {
  const positives = positive.reduce((a, b) => a + b, 0);
  const negatives = negative.reduce((a, b) => a + b, 0);
  if (positives === 0 || negatives === 0) return null;
  let below = 0;
  let wins = 0;
  for (let bin = 0; bin < positive.length; bin++) {
    const n = negative[bin] ?? 0;
    wins += (positive[bin] ?? 0) * (below + n / 2);
    below += n;
  }
  return wins / (positives * negatives);
}

export interface ModelPerformance extends Versioned {
  readonly model: string;
  readonly version: string;
  /** `all`, `amount=<band>`, `country=<CC>` or `route=<route>`. */
  readonly slice: string;
  /** Decision threshold of the latest outcome (the confusion matrix counts each at its own). */
  readonly threshold: number;
  readonly count: number;
  /** Outcomes labelled fraud, and not. */
  readonly positives: number;
  readonly negatives: number;
  /** At the decision threshold: tp = fraud called fraud, fp = legitimate called fraud, … */
  readonly confusion: { readonly tp: number; readonly fp: number; readonly tn: number; readonly fn: number };
  readonly log_loss_sum: number;
  readonly brier_sum: number;
  readonly probability_sum: number;
  /** Counts per score bin (`SCORE_BIN_EDGES`) by label, and the sum of probabilities per bin (reliability diagrams). */
  readonly histogram: { readonly positive: readonly number[]; readonly negative: readonly number[]; readonly probability_sum: readonly number[] };
  /** Event time (`at`) of the earliest and latest prediction judged. */
  readonly first_at: string;
  readonly last_at: string;
  // Computed from the sums above at every update; null while undefined (no positives, nothing called fraud, …).
  readonly accuracy: number;
  readonly precision: number | null;
  readonly recall: number | null;
  readonly false_positive_rate: number | null;
  /** Share of outcomes labelled fraud, to compare with `mean_probability` (calibration in the large). */
  readonly base_rate: number;
  readonly mean_probability: number;
  readonly log_loss: number;
  readonly brier: number;
  readonly auc: number | null;
}

interface Judged {
  readonly model: string;
  readonly version: string;
  readonly probability: number;
  readonly fraud: boolean;
  readonly threshold: number;
  readonly atMs: number;
}

type Sums = Omit<ModelPerformance, 'as_of_ms' | 'accuracy' | 'precision' | 'recall' | 'false_positive_rate' | 'base_rate' | 'mean_probability' | 'log_loss' | 'brier' | 'auc'>;

function add(before: ModelPerformance | undefined, slice: string, o: Judged): Omit<ModelPerformance, 'as_of_ms'> {
  const zeros = (): number[] => Array.from({ length: SCORE_BINS }, () => 0);
  const called = o.probability >= o.threshold;
  const at = isoOf(o.atMs);
  const c = before?.confusion ?? { tp: 0, fp: 0, tn: 0, fn: 0 };
  const bin = scoreBin(o.probability);
  const positive = [...(before?.histogram.positive ?? zeros())];
  const negative = [...(before?.histogram.negative ?? zeros())];
  const probabilitySum = [...(before?.histogram.probability_sum ?? zeros())];
  (o.fraud ? positive : negative)[bin]! += 1;
  probabilitySum[bin]! += o.probability;
  const sums: Sums = {
    model: o.model,
    version: o.version,
    slice,
    threshold: o.threshold,
    count: (before?.count ?? 0) + 1,
    positives: (before?.positives ?? 0) + (o.fraud ? 1 : 0),
    negatives: (before?.negatives ?? 0) + (o.fraud ? 0 : 1),
    confusion: {
      tp: c.tp + (o.fraud && called ? 1 : 0),
      fp: c.fp + (!o.fraud && called ? 1 : 0),
      tn: c.tn + (!o.fraud && !called ? 1 : 0),
      fn: c.fn + (o.fraud && !called ? 1 : 0),
    },
    log_loss_sum: (before?.log_loss_sum ?? 0) + logLoss(o.probability, o.fraud),
    brier_sum: (before?.brier_sum ?? 0) + (o.probability - (o.fraud ? 1 : 0)) ** 2,
    probability_sum: (before?.probability_sum ?? 0) + o.probability,
    histogram: { positive, negative, probability_sum: probabilitySum },
    first_at: before === undefined || at < before.first_at ? at : before.first_at,
    last_at: before === undefined || at > before.last_at ? at : before.last_at,
  };
  return { ...sums, ...metrics(sums) };
}

export function metrics(s: Sums): Pick<ModelPerformance, 'accuracy' | 'precision' | 'recall' | 'false_positive_rate' | 'base_rate' | 'mean_probability' | 'log_loss' | 'brier' | 'auc'> {
  const { tp, fp, tn, fn } = s.confusion;
  const ratio = (a: number, b: number): number | null => (b === 0 ? null : a / b);
  return {
    accuracy: (tp + tn) / s.count,
    precision: ratio(tp, tp + fp),
    recall: ratio(tp, tp + fn),
    false_positive_rate: ratio(fp, fp + tn),
    base_rate: s.positives / s.count,
    mean_probability: s.probability_sum / s.count,
    log_loss: s.log_loss_sum / s.count,
    brier: s.brier_sum / s.count,
    auc: histogramAuc(s.histogram.positive, s.histogram.negative),
  };
}

export function performanceKey(model: string, version: string, slice: string): string {
  return `${keyPart(model)}/${keyPart(version)}/${slice}`;
}

async function handle(event: ProjectionEvent, ctx: ProjectionContext): Promise<void> {
  if (event.value === null) return;
  const o = new Fields(event);
  const judged: Judged = {
    model: o.text('model'),
    version: o.text('version'),
    probability: o.number('probability', { min: 0, max: 1 }),
    fraud: o.boolean('fraud'),
    // Outcomes do not carry the model's threshold today; one that does is taken at its word.
    threshold: o.optionalNumber('threshold') ?? DEFAULT_DECISION_THRESHOLD,
    atMs: o.time('at'),
  };
  const slices = [
    'all',
    `amount=${amountBand(o.optionalNumber('amount'))}`,
    `country=${keyPart(o.optionalText('country') ?? UNKNOWN)}`,
    `route=${o.oneOf('route', ['stable', 'canary'] as const)}`,
  ];
  for (const slice of slices) {
    const key = performanceKey(judged.model, judged.version, slice);
    const before = await read<ModelPerformance>(ctx, key);
    write<ModelPerformance>(ctx, key, add(before, slice, judged), event.timestampMs, before);
  }
}

export default defineProjection({
  name: 'model-performance',
  description: 'Live quality per model version from outcomes (<model>/<version>/all, amount=<band>, country=<CC>, route=<route>): confusion matrix, log loss, Brier, calibration, AUC.',
  topics: [Topics.outcomes],
  handle,
});
