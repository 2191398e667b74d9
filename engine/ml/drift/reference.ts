import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MillraceError, errorMessage } from '../../errors.js';
import { interiorEdges, sortedCopy, type Sample } from './statistics.js';

/**
 * Reference distributions: what a model's training data looked like, saved next to the model as `reference.json`,
 * against which live windows are compared. The field names below are those the trainer writes
 * (`training/millrace_trainer/evaluation.py`); `parseDriftReference` is the one place that reads them.
 */

/** The name of the score's distribution (the fraud probability on the holdout), beside the features'. */
export const SCORE_DISTRIBUTION = 'score';

/** Bounds on what a reference file may hold, so a bad file cannot exhaust memory. */
export const REFERENCE_LIMITS = {
  maxBins: 1_000,
  maxSampleValues: 100_000,
  maxDistributions: 1_000,
  maxFileBytes: 64 * 1024 * 1024,
} as const;

/** One distribution in reference.json: a feature's, or the score's. */
export interface ReferenceDistributionJson {
  /** Quantile bin edges: `edges[0]` the minimum, `edges[k]` the maximum, for k bins (ties merged). */
  readonly edges: readonly number[];
  /** The share of reference values in each of the k bins; sums to 1. */
  readonly proportions: readonly number[];
  /** Reference values for the two-sample KS test (the trainer keeps at most 2000, sorted). */
  readonly sample: readonly number[];
  /** Informative, not read: values per bin and in all. */
  readonly counts?: readonly number[];
  readonly rows?: number;
}

/**
 * reference.json as the trainer writes it: `features` by name, and `score`. A flat file, with each feature's
 * distribution and `score` at the top level, is read too.
 */
export interface ReferenceFileJson {
  readonly model?: string;
  readonly version?: string;
  readonly feature_version?: string;
  readonly features: Readonly<Record<string, ReferenceDistributionJson>>;
  readonly score: ReferenceDistributionJson;
}

/** A distribution ready for the statistics: typed arrays, the sample sorted once. */
export interface ReferenceDistribution {
  readonly name: string;
  /** The edges as given. */
  readonly edges: Float64Array;
  /** The edges that separate bins (see `interiorEdges`): a value's bin is the number of these at or below it. */
  readonly interiorEdges: Float64Array;
  readonly proportions: Float64Array;
  readonly sortedSample: Float64Array;
}

export interface DriftReference {
  /** Model and version the file says it belongs to, when it says. */
  readonly model: string | undefined;
  readonly version: string | undefined;
  /** Each feature's distribution and the score's (`SCORE_DISTRIBUTION`), by name. */
  readonly distributions: ReadonlyMap<string, ReferenceDistribution>;
}

function invalid(source: string, path: string, reason: string, cause?: unknown): MillraceError {
  return new MillraceError('MILLRACE_DESERIALIZATION', `drift reference ${source}: ${path}: ${reason}`, {
    ...(cause === undefined ? {} : { cause }),
    details: { source, path },
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function numbers(value: unknown, source: string, path: string, maxLength: number): Float64Array {
  if (!Array.isArray(value)) throw invalid(source, path, 'expected an array of numbers');
  if (value.length > maxLength) throw invalid(source, path, `${value.length} values, more than the ${maxLength} allowed`);
  const out = new Float64Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const v: unknown = value[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(source, `${path}[${i}]`, `expected a finite number, got ${JSON.stringify(v)}`);
    out[i] = v;
  }
  return out;
}

/**
 * A distribution from its edges, bin shares and sample, checked: k ≥ 1 bins, k + 1 (or k − 1 interior) edges in
 * ascending order, shares ≥ 0 summing to 1 (± 1e-6), a non-empty sample of finite values.
 */
export function referenceDistribution(name: string, json: unknown, source = 'reference'): ReferenceDistribution {
  if (!isRecord(json)) throw invalid(source, name, 'expected an object with edges, proportions and sample');
  const proportions = numbers(json['proportions'], source, `${name}.proportions`, REFERENCE_LIMITS.maxBins);
  const edges = numbers(json['edges'], source, `${name}.edges`, REFERENCE_LIMITS.maxBins + 1);
  const sample = numbers(json['sample'], source, `${name}.sample`, REFERENCE_LIMITS.maxSampleValues);
  if (proportions.length === 0) throw invalid(source, `${name}.proportions`, 'at least one bin is needed');
  let sum = 0;
  for (let i = 0; i < proportions.length; i++) {
    if (proportions[i]! < 0) throw invalid(source, `${name}.proportions[${i}]`, 'a share cannot be negative');
    sum += proportions[i]!;
  }
  if (Math.abs(sum - 1) > 1e-6) throw invalid(source, `${name}.proportions`, `shares sum to ${sum}, not 1`);
  for (let i = 1; i < edges.length; i++) {
    if (edges[i]! < edges[i - 1]!) throw invalid(source, `${name}.edges[${i}]`, 'edges must be in ascending order');
  }
  let interior: Sample;
  try {
    interior = interiorEdges(edges, proportions.length);
  } catch (err) {
    throw invalid(source, `${name}.edges`, errorMessage(err), err);
  }
  if (sample.length === 0) throw invalid(source, `${name}.sample`, 'the sample is empty');
  return { name, edges, interiorEdges: Float64Array.from(interior), proportions, sortedSample: sortedCopy(sample) };
}

/** Reads reference.json's parsed contents (see `ReferenceFileJson`). Throws `MILLRACE_DESERIALIZATION` when it does not fit. */
export function parseDriftReference(json: unknown, source = 'reference.json'): DriftReference {
  if (!isRecord(json)) throw invalid(source, '$', 'expected an object');
  const distributions = new Map<string, ReferenceDistribution>();
  const add = (name: string, value: unknown): void => {
    if (distributions.size >= REFERENCE_LIMITS.maxDistributions) throw invalid(source, name, `more than ${REFERENCE_LIMITS.maxDistributions} distributions`);
    distributions.set(name, referenceDistribution(name, value, source));
  };
  const features = json['features'];
  if (features !== undefined) {
    if (!isRecord(features)) throw invalid(source, 'features', 'expected an object of distributions by feature name');
    for (const [name, value] of Object.entries(features)) add(name, value);
    if (json[SCORE_DISTRIBUTION] !== undefined) add(SCORE_DISTRIBUTION, json[SCORE_DISTRIBUTION]);
  } else {
    // The flat layout: every object with edges at the top level is a distribution.
    for (const [name, value] of Object.entries(json)) if (isRecord(value) && 'edges' in value) add(name, value);
  }
  if (distributions.size === 0) throw invalid(source, '$', 'no distributions (expected "features" and "score")');
  const text = (key: string): string | undefined => {
    const value = json[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw invalid(source, key, 'expected a string');
    return value;
  };
  return { model: text('model'), version: text('version'), distributions };
}

/** A file path, or a `file:` URL, to the path to read. */
export function referencePath(uri: string): string {
  return uri.startsWith('file:') ? fileURLToPath(uri) : uri;
}

/**
 * Reads and parses a reference file synchronously (processors run synchronously). `undefined` when the file does
 * not exist; `MILLRACE_DESERIALIZATION` when it is not a valid reference.
 */
export function readDriftReference(uri: string): DriftReference | undefined {
  const path = referencePath(uri);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    if (isNodeError(err) && (err.code === 'ENOENT' || err.code === 'ENOTDIR')) return undefined;
    throw err;
  }
  if (bytes.length > REFERENCE_LIMITS.maxFileBytes) throw invalid(uri, '$', `${bytes.length} bytes, more than the ${REFERENCE_LIMITS.maxFileBytes} allowed`);
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw invalid(uri, '$', `not valid JSON (${errorMessage(err)})`, err);
  }
  return parseDriftReference(json, uri);
}

function isNodeError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string';
}

/**
 * Builds a reference distribution from values, as the trainer does: quantile edges at 0, 1/bins, …, 1 (NumPy's
 * linear interpolation) with duplicates merged, the share of values per bin, and an evenly spaced sample of the
 * sorted values (the trainer draws its sample at random). For tests and for references computed in process.
 */
export function buildReferenceDistribution(name: string, values: Sample, options: { bins?: number; sampleSize?: number } = {}): ReferenceDistribution {
  const bins = options.bins ?? 10;
  const sampleSize = options.sampleSize ?? 2000;
  const sorted = sortedCopy(values);
  const n = sorted.length;
  if (n === 0) throw new RangeError(`${name}: no values to build a reference from`);
  const edgeList: number[] = [];
  for (let i = 0; i <= bins; i++) {
    const edge = quantileLinear(sorted, i / bins);
    if (edgeList.length === 0 || edge !== edgeList[edgeList.length - 1]) edgeList.push(edge);
  }
  if (edgeList.length === 1) edgeList.push(edgeList[0]!);
  const edges = Float64Array.from(edgeList);
  const interior = edges.subarray(1, edges.length - 1);
  const proportions = new Float64Array(edges.length - 1);
  let bin = 0;
  for (let i = 0; i < n; i++) {
    while (bin < interior.length && interior[bin]! <= sorted[i]!) bin++;
    proportions[bin]!++;
  }
  for (let i = 0; i < proportions.length; i++) proportions[i]! /= n;
  const size = Math.min(sampleSize, n);
  const sample = new Float64Array(size);
  for (let i = 0; i < size; i++) sample[i] = sorted[Math.floor(((i + 0.5) * n) / size)]!;
  return { name, edges, interiorEdges: Float64Array.from(interior), proportions, sortedSample: sample };
}

function quantileLinear(sorted: Float64Array, q: number): number {
  const position = (sorted.length - 1) * q;
  const lo = Math.floor(position);
  const hi = Math.min(lo + 1, sorted.length - 1);
  const t = position - lo;
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  // NumPy's lerp: from the nearer end, so that the result stays within [a, b].
  return t < 0.5 ? a + (b - a) * t : b - (b - a) * (1 - t);
}

/** A reference from distributions built in process (`buildReferenceDistribution`). */
export function driftReference(distributions: Iterable<ReferenceDistribution>, about: { model?: string; version?: string } = {}): DriftReference {
  return { model: about.model, version: about.version, distributions: new Map([...distributions].map((d) => [d.name, d])) };
}

/** The JSON form of a distribution (as the trainer writes it), e.g. to write a reference file in tests. */
export function referenceDistributionJson(distribution: ReferenceDistribution): ReferenceDistributionJson {
  return { edges: [...distribution.edges], proportions: [...distribution.proportions], sample: [...distribution.sortedSample] };
}
