import { MillraceError } from '../../errors.js';
import { SCORE_DISTRIBUTION, type DriftReference, type ReferenceDistribution } from './reference.js';
import { PSI_DEFAULT_EPSILON, binCountsSorted, jensenShannon, ksTwoSampleSorted, psiOfShares } from './statistics.js';
import { MemoryDriftWindow, emptyWindowHeader, type DriftWindowHeader, type DriftWindowStorage } from './window.js';

/**
 * Drift detection for one model version: a sliding window of the last `windowRows` live rows (features and
 * score), evaluated every `evaluateEveryRows` rows against the version's reference distributions with the
 * two-sample KS test, the PSI and the Jensen–Shannon divergence. Pure: no clock, no randomness, no I/O beyond its
 * window storage, so the same rows in the same order give the same verdicts — after a restart too, when the
 * window lives in a state store.
 */

export interface DriftThresholds {
  /** A distribution drifted when its PSI is above this (the usual alert level, 0.2)… */
  readonly psi: number;
  /** …or when its KS p-value is below this… */
  readonly ksPValue: number;
  /** …and its KS statistic is above this: with thousands of rows, tiny harmless shifts are significant. */
  readonly ksStatistic: number;
}

export const DEFAULT_DRIFT_THRESHOLDS: DriftThresholds = Object.freeze({ psi: 0.2, ksPValue: 0.001, ksStatistic: 0.1 });

export interface DriftDetectorOptions {
  /** Rows in the sliding window. */
  readonly windowRows: number;
  /** Evaluate after every this many rows. */
  readonly evaluateEveryRows: number;
  /** No evaluation before the window holds this many rows (default: a full window). */
  readonly minWindowRows: number;
  /** After a verdict, no other for this many rows (default: a window's worth), so one shift is one event. */
  readonly cooldownRows: number;
  readonly thresholds: DriftThresholds;
  /** Floor of an empty bin's share in the PSI. */
  readonly psiEpsilon: number;
}

export type DriftDetectorOptionsInput = Partial<Omit<DriftDetectorOptions, 'thresholds'>> & { readonly thresholds?: Partial<DriftThresholds> };

/** Largest window a detector accepts: rows × columns doubles are held, and sorted at each evaluation. */
export const MAX_WINDOW_ROWS = 1_000_000;

/** Options objects `driftDetectorOptions` returned: a detector does not check them again. */
const validated = new WeakSet<object>();

/** Options with their defaults, checked once and frozen. Throws `MILLRACE_CONFIG_INVALID` with what to change. */
export function driftDetectorOptions(input: DriftDetectorOptionsInput = {}): DriftDetectorOptions {
  const windowRows = input.windowRows ?? 2000;
  const evaluateEveryRows = input.evaluateEveryRows ?? 500;
  const options: DriftDetectorOptions = {
    windowRows,
    evaluateEveryRows,
    minWindowRows: input.minWindowRows ?? windowRows,
    cooldownRows: input.cooldownRows ?? windowRows,
    thresholds: Object.freeze({ ...DEFAULT_DRIFT_THRESHOLDS, ...input.thresholds }),
    psiEpsilon: input.psiEpsilon ?? PSI_DEFAULT_EPSILON,
  };
  const wrong = (what: string): never => {
    throw new MillraceError('MILLRACE_CONFIG_INVALID', `drift detector: ${what}`);
  };
  const positiveInteger = (name: keyof DriftDetectorOptions, value: number, max: number): void => {
    if (!Number.isSafeInteger(value) || value < 1 || value > max) wrong(`${name} must be an integer from 1 to ${max}, got ${value}`);
  };
  positiveInteger('windowRows', options.windowRows, MAX_WINDOW_ROWS);
  positiveInteger('evaluateEveryRows', options.evaluateEveryRows, MAX_WINDOW_ROWS);
  positiveInteger('minWindowRows', options.minWindowRows, options.windowRows);
  if (!Number.isSafeInteger(options.cooldownRows) || options.cooldownRows < 0) wrong(`cooldownRows must be a non-negative integer, got ${options.cooldownRows}`);
  const t = options.thresholds;
  if (!(t.psi > 0 && Number.isFinite(t.psi))) wrong(`thresholds.psi must be a positive number (0.2 is usual), got ${t.psi}`);
  if (!(t.ksPValue > 0 && t.ksPValue < 1)) wrong(`thresholds.ksPValue must be in (0, 1), got ${t.ksPValue}`);
  if (!(t.ksStatistic >= 0 && t.ksStatistic < 1)) wrong(`thresholds.ksStatistic must be in [0, 1), got ${t.ksStatistic}`);
  if (!(options.psiEpsilon > 0 && options.psiEpsilon < 0.01)) wrong(`psiEpsilon must be in (0, 0.01), got ${options.psiEpsilon}`);
  const frozen = Object.freeze(options);
  validated.add(frozen);
  return frozen;
}

/** One live row: a prediction's features and score at its event time. */
export interface DriftRow {
  readonly timestampMs: number;
  /** By feature name; every feature of the detector must be there. */
  readonly features: Readonly<Record<string, number>>;
  /** The model's score (fraud probability). */
  readonly score: number;
}

/**
 * A column's distribution over its reference's quantile bins, reference against live: what a drift chart draws.
 * Every number is rounded to `BIN_SIGNIFICANT_DIGITS` significant digits, which keeps an evaluation small and is
 * far finer than any chart.
 */
export interface DriftBins {
  /** The reference's k + 1 bin edges, from its minimum to its maximum. */
  readonly edges: readonly number[];
  /** The reference's share of each of the k bins. */
  readonly reference: readonly number[];
  /** The live window's share of each bin (the shares the PSI and JS divergence were computed from). */
  readonly live: readonly number[];
}

/** Significant digits kept in `DriftBins`. */
export const BIN_SIGNIFICANT_DIGITS = 6;

/** One column against its reference: the contract's `FeatureDrift`, and the bins behind its PSI and JS. */
export interface FeatureDriftStatistics {
  readonly feature: string;
  readonly ks: number;
  readonly ks_p_value: number;
  readonly psi: number;
  readonly js: number;
  readonly drifted: boolean;
  /** Not in the contract's `DriftDetected`: a consumer of verdicts leaves them out. */
  readonly bins: DriftBins;
}

/**
 * An evaluation, and a verdict when something drifted (the contract's `DriftDetected`, with each column's bins
 * besides): every column's statistics, and the names of those that drifted.
 */
export interface DriftVerdict {
  readonly model: string;
  readonly version: string;
  readonly window_start: string;
  readonly window_end: string;
  readonly window_size: number;
  readonly statistics: readonly FeatureDriftStatistics[];
  readonly drifted_features: readonly string[];
  /** The event time of the window's last row: verdicts do not depend on the clock. */
  readonly at: string;
}

/** A reference, or where to get it when an evaluation needs one (`undefined`: none for this version). */
export type DriftReferenceSource = DriftReference | (() => DriftReference | undefined);

export interface DriftDetectorInit {
  readonly model: string;
  readonly version: string;
  /** Feature names in column order; the score is the last column, named `score`. */
  readonly features: readonly string[];
  readonly reference: DriftReferenceSource;
  /** Validated options (`driftDetectorOptions`), or input for it. */
  readonly options?: DriftDetectorOptions | DriftDetectorOptionsInput;
  /** Where the window lives; memory by default. */
  readonly window?: DriftWindowStorage;
  /** Told of every scheduled evaluation, drifted or not (for metrics: PSI and KS per column over time). */
  readonly onEvaluation?: (evaluation: DriftVerdict) => void;
}

/** The reference's distributions in column order, or the names of the columns it lacks. */
export function referenceColumns(reference: DriftReference, columns: readonly string[]): { distributions: ReferenceDistribution[] } | { missing: string[] } {
  const distributions: ReferenceDistribution[] = [];
  const missing: string[] = [];
  for (const column of columns) {
    const distribution = reference.distributions.get(column);
    if (distribution === undefined) missing.push(column);
    else distributions.push(distribution);
  }
  return missing.length > 0 ? { missing } : { distributions };
}

export class DriftDetector {
  readonly model: string;
  readonly version: string;
  /** The features, then `score`. */
  readonly columns: readonly string[];
  readonly options: DriftDetectorOptions;
  readonly window: DriftWindowStorage;
  readonly #features: readonly string[];
  readonly #reference: DriftReferenceSource;
  readonly #row: Float64Array;
  readonly #onEvaluation: DriftDetectorInit['onEvaluation'];

  constructor(init: DriftDetectorInit) {
    if (init.features.length === 0) throw new RangeError('a drift detector needs at least one feature');
    if (new Set(init.features).size !== init.features.length || init.features.includes(SCORE_DISTRIBUTION)) {
      throw new RangeError(`feature names must be distinct and not "${SCORE_DISTRIBUTION}": ${init.features.join(', ')}`);
    }
    this.model = init.model;
    this.version = init.version;
    this.#features = [...init.features];
    this.columns = Object.freeze([...init.features, SCORE_DISTRIBUTION]);
    this.options = isValidated(init.options) ? init.options : driftDetectorOptions(init.options);
    this.window = init.window ?? new MemoryDriftWindow();
    this.#reference = init.reference;
    this.#onEvaluation = init.onEvaluation;
    this.#row = new Float64Array(1 + this.columns.length);
  }

  /** The window's counters, or `undefined` before the first row. */
  get header(): DriftWindowHeader | undefined {
    return this.window.readHeader();
  }

  /**
   * Adds a row to the window (dropping the oldest when full) and, every `evaluateEveryRows` rows once the window
   * holds `minWindowRows` and outside a cool-down, evaluates it: the verdict when at least one column drifted,
   * else `null`. Without a reference (or one lacking a column) the evaluation is skipped and counted.
   */
  observe(row: DriftRow): DriftVerdict | null {
    const o = this.options;
    const width = this.#row.length;
    let header = this.window.readHeader();
    if (header !== undefined && (header.capacityRows !== o.windowRows || header.rowWidth !== width)) {
      // Options changed since the window was stored: its rows no longer fit; start again.
      this.window.clear(header);
      header = undefined;
    }
    header ??= emptyWindowHeader(o.windowRows, width);
    this.#encode(row);
    this.window.writeRow(header.next, this.#row);

    let next: DriftWindowHeader = {
      ...header,
      size: Math.min(header.size + 1, header.capacityRows),
      next: (header.next + 1) % header.capacityRows,
      rowsSeen: header.rowsSeen + 1,
      rowsSinceEvaluation: header.rowsSinceEvaluation + 1,
      cooldownRows: Math.max(header.cooldownRows - 1, 0),
      lastTimestampMs: row.timestampMs,
    };
    let verdict: DriftVerdict | null = null;
    if (next.rowsSinceEvaluation >= o.evaluateEveryRows && next.size >= o.minWindowRows) {
      next = { ...next, rowsSinceEvaluation: 0 };
      if (next.cooldownRows === 0) {
        const reference = typeof this.#reference === 'function' ? this.#reference() : this.#reference;
        const columns = reference === undefined ? undefined : referenceColumns(reference, this.columns);
        if (columns === undefined || 'missing' in columns) {
          next = { ...next, missingReference: next.missingReference + 1 };
        } else {
          const evaluation = this.#evaluate(next, columns.distributions);
          this.#onEvaluation?.(evaluation);
          next = { ...next, evaluations: next.evaluations + 1 };
          if (evaluation.drifted_features.length > 0) {
            verdict = evaluation;
            next = { ...next, events: next.events + 1, cooldownRows: o.cooldownRows };
          }
        }
      }
    }
    this.window.writeHeader(next);
    return verdict;
  }

  /**
   * The current window against a reference, whatever the schedule, without changing any counter; `undefined` for
   * an empty window. The verdict shape, with an empty `drifted_features` when nothing drifted.
   */
  evaluate(reference: DriftReference): DriftVerdict | undefined {
    const header = this.window.readHeader();
    if (header === undefined || header.size === 0) return undefined;
    const columns = referenceColumns(reference, this.columns);
    if ('missing' in columns) throw new RangeError(`the reference has no distribution for ${columns.missing.join(', ')}`);
    return this.#evaluate(header, columns.distributions);
  }

  #encode(row: DriftRow): void {
    const out = this.#row;
    if (!Number.isFinite(row.timestampMs)) throw new RangeError(`a drift row needs a finite timestamp, got ${row.timestampMs}`);
    out[0] = row.timestampMs;
    for (let c = 0; c < this.#features.length; c++) {
      const name = this.#features[c]!;
      const value = row.features[name];
      if (typeof value !== 'number' || !Number.isFinite(value)) throw new RangeError(`feature ${name} must be a finite number, got ${value}`);
      out[1 + c] = value;
    }
    if (!Number.isFinite(row.score)) throw new RangeError(`the score must be a finite number, got ${row.score}`);
    out[1 + this.#features.length] = row.score;
  }

  #evaluate(header: DriftWindowHeader, distributions: readonly ReferenceDistribution[]): DriftVerdict {
    const { size, rowWidth } = header;
    const columnCount = this.columns.length;
    const values = Array.from({ length: columnCount }, () => new Float64Array(size));
    const row = new Float64Array(rowWidth);
    // The window's event-time span: rows merged from several partitions arrive out of event-time order, so the
    // earliest and latest rows, not the first and last to arrive.
    let startMs = Number.POSITIVE_INFINITY;
    let endMs = Number.NEGATIVE_INFINITY;
    for (let slot = 0; slot < size; slot++) {
      this.window.readRow(slot, row);
      for (let c = 0; c < columnCount; c++) values[c]![slot] = row[1 + c]!;
      startMs = Math.min(startMs, row[0]!);
      endMs = Math.max(endMs, row[0]!);
    }
    const t = this.options.thresholds;
    const statistics: FeatureDriftStatistics[] = [];
    for (let c = 0; c < columnCount; c++) {
      const live = values[c]!.sort();
      const reference = distributions[c]!;
      const ks = ksTwoSampleSorted(live, reference.sortedSample);
      const shares = binCountsSorted(reference.interiorEdges, live);
      for (let b = 0; b < shares.length; b++) shares[b]! /= size;
      const psi = psiOfShares(reference.proportions, shares, this.options.psiEpsilon);
      const js = jensenShannon(reference.proportions, shares);
      const drifted = psi > t.psi || (ks.pValue < t.ksPValue && ks.statistic > t.ksStatistic);
      const bins: DriftBins = { ...referenceBins(reference), live: Array.from(shares, significant) };
      statistics.push({ feature: this.columns[c]!, ks: ks.statistic, ks_p_value: ks.pValue, psi, js, drifted, bins });
    }
    const end = new Date(endMs).toISOString();
    return {
      model: this.model,
      version: this.version,
      window_start: new Date(startMs).toISOString(),
      window_end: end,
      window_size: size,
      statistics,
      drifted_features: statistics.filter((s) => s.drifted).map((s) => s.feature),
      at: end,
    };
  }
}

function significant(value: number): number {
  return Number(value.toPrecision(BIN_SIGNIFICANT_DIGITS));
}

/** A reference's side of its bins, rounded once per distribution: evaluations share it and only add their shares. */
const referenceBinsCache = new WeakMap<ReferenceDistribution, Pick<DriftBins, 'edges' | 'reference'>>();

function referenceBins(distribution: ReferenceDistribution): Pick<DriftBins, 'edges' | 'reference'> {
  let bins = referenceBinsCache.get(distribution);
  if (bins === undefined) {
    const { edges, interiorEdges: interior, proportions, sortedSample: sample } = distribution;
    // A reference may give only the k − 1 edges between bins; its sample's extremes then stand for the outer ones.
    const lowest = sample[0]!;
    const highest = sample[sample.length - 1]!;
    const outer =
      edges.length === proportions.length + 1
        ? edges
        : [Math.min(lowest, interior[0] ?? lowest), ...interior, Math.max(highest, interior[interior.length - 1] ?? highest)];
    bins = { edges: Object.freeze(Array.from(outer, significant)), reference: Object.freeze(Array.from(proportions, significant)) };
    referenceBinsCache.set(distribution, bins);
  }
  return bins;
}

function isValidated(options: DriftDetectorOptions | DriftDetectorOptionsInput | undefined): options is DriftDetectorOptions {
  return options !== undefined && validated.has(options);
}

// Options that went through `driftDetectorOptions` are not checked again (a topology builds a detector per record).
const validate = driftDetectorOptions;
export { validate as validateDriftDetectorOptions };
