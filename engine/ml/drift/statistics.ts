/**
 * Two-sample statistics for drift detection: the Kolmogorov–Smirnov test, the population stability index and the
 * Jensen–Shannon divergence. Pure, deterministic and allocation-light: each sample is sorted once (or not at all,
 * when the caller passes sorted samples), and every loop is linear in the sample sizes except the exact KS p-value,
 * whose cost is bounded by `KS_EXACT_MAX_SAMPLE` as in SciPy.
 *
 * `ksTwoSample` follows `scipy.stats.ks_2samp(a, b, alternative='two-sided', method='auto')`:
 *  - samples of at most `KS_EXACT_MAX_SAMPLE` values get the exact p-value, computed as SciPy does
 *    (Hodges' lattice-path "outside square" sum for equal sizes; Viehmann's numerically stable 1 − p recursion of
 *    the "inside" method otherwise); it agrees with SciPy to about 1e-12 relative;
 *  - larger samples get SciPy's asymptotic branch, the one-sample two-sided Kolmogorov distribution
 *    `kstwo.sf(D, round(n1·n2/(n1 + n2)))`, computed by the Simard–L'Ecuyer selection of methods SciPy uses
 *    (Ruben–Gambino, Durbin's matrix as Marsaglia–Tsang–Wang, Pelz–Good, and twice the exact one-sided Smirnov
 *    tail), except that Durbin's matrix stands in for Pomeranz's recursion (both exact) and runs in double rather
 *    than extended precision; it agrees with SciPy to about 1e-9 relative.
 */

/** Values of a sample: an array or a typed array. NaN is not a value (a `RangeError`); ±Infinity is. */
export type Sample = ArrayLike<number>;

export interface KsTwoSampleResult {
  /** The largest distance between the two empirical distribution functions, in [0, 1]. */
  readonly statistic: number;
  /** Two-sided p-value: how likely a distance at least this large is when both samples share one distribution. */
  readonly pValue: number;
  /** `exact` for samples of at most `KS_EXACT_MAX_SAMPLE` values, else `asymp` (as SciPy's `method='auto'`). */
  readonly method: 'exact' | 'asymp';
}

/** Above this many values in either sample the p-value comes from the asymptotic distribution (SciPy's `MAX_AUTO_N`). */
export const KS_EXACT_MAX_SAMPLE = 10_000;

/** The empty-bin floor of `psi` by default. */
export const PSI_DEFAULT_EPSILON = 1e-4;

// ------------------------------------------------------------------------------------------------ Kolmogorov–Smirnov

/** The two-sided two-sample Kolmogorov–Smirnov test. Sorts copies of the samples; the inputs are left as they are. */
export function ksTwoSample(a: Sample, b: Sample): KsTwoSampleResult {
  return ksTwoSampleSorted(sortedCopy(a, 'a'), sortedCopy(b, 'b'));
}

/** As `ksTwoSample`, for samples already sorted in ascending order (checked: a `RangeError` otherwise). */
export function ksTwoSampleSorted(a: Sample, b: Sample): KsTwoSampleResult {
  const n1 = a.length;
  const n2 = b.length;
  if (n1 === 0 || n2 === 0) throw new RangeError('ksTwoSample needs two non-empty samples');
  if (n1 * n2 > Number.MAX_SAFE_INTEGER) throw new RangeError(`ksTwoSample: samples of ${n1} and ${n2} values are too large`);
  assertSorted(a, 'a');
  assertSorted(b, 'b');

  // Walk both samples in order; after each distinct value, i/n1 − j/n2 is the difference of the empirical
  // distribution functions (right-continuous, so ties count on both sides at once). Kept as the integer
  // i·n2 − j·n1 so that the statistic is exact; SciPy's float difference is taken at the extremes only.
  let i = 0;
  let j = 0;
  let maxDiff = 0;
  let maxAt = [0, 0] as [number, number];
  let minDiff = 0;
  let minAt = [0, 0] as [number, number];
  while (i < n1 && j < n2) {
    const ai = a[i]!;
    const bj = b[j]!;
    const x = ai <= bj ? ai : bj;
    while (i < n1 && a[i]! <= x) i++;
    while (j < n2 && b[j]! <= x) j++;
    const diff = i * n2 - j * n1;
    if (diff > maxDiff) {
      maxDiff = diff;
      maxAt = [i, j];
    } else if (diff < minDiff) {
      minDiff = diff;
      minAt = [i, j];
    }
  }
  // Once one sample is used up the difference moves monotonically back to 0: the extremes are already seen.

  const maxS = maxAt[0] / n1 - maxAt[1] / n2;
  const minS = Math.min(Math.max(-(minAt[0] / n1 - minAt[1] / n2), 0), 1);
  const useMin = minS > maxS;
  let statistic = useMin ? minS : maxS;
  const g = gcd(n1, n2);
  if (Math.max(n1, n2) <= KS_EXACT_MAX_SAMPLE) {
    const lcm = (n1 / g) * n2;
    const h = (useMin ? -minDiff : maxDiff) / g;
    statistic = h / lcm;
    const pValue = ksExactPValue(n1, n2, g, h);
    if (pValue !== undefined) return { statistic, pValue, method: 'exact' };
  }
  const [m, n] = n1 >= n2 ? [n1, n2] : [n2, n1];
  const en = roundHalfEven((m * n) / (m + n));
  return { statistic, pValue: clamp01(ksDistributionSf(en, statistic)), method: 'asymp' };
}

/**
 * The exact two-sided p-value of a two-sample KS distance `h / lcm(n1, n2)`, or `undefined` where the computation
 * does not give a probability (SciPy then falls back to the asymptotic distribution; so does `ksTwoSampleSorted`).
 */
export function ksExactPValue(n1: number, n2: number, g: number, h: number): number | undefined {
  if (h === 0) return 1;
  const p = n1 === n2 ? probOutsideSquare(n1, h) : outerProbInsideMethod(n1, n2, g, h);
  return Number.isFinite(p) && p >= 0 && p <= 1 ? p : undefined;
}

/**
 * P(D(n,n) ≥ h/n) = 2·Σ_k (−1)^(k−1) C(2n, n − k·h) / C(2n, n), each term divided by C(2n, n) up front and the
 * alternating sum evaluated Horner-like (SciPy's `_compute_prob_outside_square`), which avoids the cancellation.
 */
function probOutsideSquare(n: number, h: number): number {
  let p = 0;
  for (let k = Math.floor(n / h); k >= 0; k--) {
    let p1 = 1;
    for (let j = 0; j < h; j++) p1 = ((n - k * h - j) * p1) / (n + k * h + j + 1);
    p = p1 * (1 - p);
  }
  return 2 * p;
}

/**
 * The share of lattice paths from (0, 0) to (m, n) that leave the band |x/m − y/n| < h/lcm(m, n), by the
 * recursion for 1 − p over one sliding column (Hodges 1958; Viehmann 2021, arXiv:2102.08037), as SciPy's
 * `_compute_outer_prob_inside_method`.
 */
function outerProbInsideMethod(m0: number, n0: number, g: number, h: number): number {
  const [m, n] = m0 >= n0 ? [m0, n0] : [n0, m0];
  const mg = m / g;
  const ng = n / g;
  let minj = 0;
  let maxj = Math.min(Math.ceil(h / mg), n + 1);
  let curlen = maxj - minj;
  const lenA = Math.min(2 * maxj + 2, n + 1);
  const A = new Float64Array(lenA).fill(1);
  A.fill(0, minj, Math.min(maxj, lenA));
  for (let i = 1; i <= m; i++) {
    const lastminj = minj;
    const lastlen = curlen;
    minj = Math.min(Math.max(Math.floor((ng * i - h) / mg) + 1, 0), n);
    maxj = Math.min(Math.ceil((ng * i + h) / mg), n + 1);
    if (maxj <= minj) return 1;
    let val = minj === 0 ? 0 : 1;
    for (let jj = 0; jj < maxj - minj; jj++) {
      const j = jj + minj;
      const previous = A[jj + minj - lastminj];
      if (previous === undefined) return Number.NaN;
      val = (previous * i + val * j) / (i + j);
      A[jj] = val;
    }
    curlen = maxj - minj;
    if (lastlen > curlen) A.fill(1, maxj - minj, Math.min(maxj - minj + (lastlen - curlen), lenA));
  }
  return A[maxj - minj - 1] ?? Number.NaN;
}

// ------------------------------------------------------------------ the one-sample two-sided Kolmogorov distribution

/**
 * P(D_n ≥ d) for the one-sample two-sided KS statistic with `n` values (`scipy.stats.kstwo.sf(d, n)`), choosing a
 * method by n and n·d² as Simard & L'Ecuyer (2011) and SciPy do.
 */
export function ksDistributionSf(n: number, d: number): number {
  if (!Number.isInteger(n) || n <= 0) throw new RangeError(`ksDistributionSf: n must be a positive integer, got ${n}`);
  if (Number.isNaN(d)) throw new RangeError('ksDistributionSf: d is NaN');
  if (d >= 1) return 0;
  if (d <= 0) return 1;
  const t = n * d;
  if (t <= 1) {
    // Ruben–Gambino: P(D_n ≤ d) = n!/n^n · (2t − 1)^n for 1/2n ≤ d ≤ 1/n.
    if (t <= 0.5) return 1;
    const cdf = n <= 140 ? productFactorialRatio(n, 2 * t - 1) : Math.exp(logFactorialOverPower(n) + n * Math.log(2 * t - 1));
    return clamp01(1 - cdf);
  }
  if (t >= n - 1) return clamp01(2 * (1 - d) ** n);
  if (d >= 0.5) return clamp01(2 * smirnovSf(n, d));
  const nxSquared = t * d;
  if (n <= 140) {
    // SciPy uses Pomeranz's recursion for 0.754693 < n·d² ≤ 4; Durbin's matrix is exact there too.
    if (nxSquared <= 4) return clamp01(1 - durbinMatrixCdf(n, d));
    return clamp01(2 * smirnovSf(n, d));
  }
  if (nxSquared >= 370) return 0;
  if (nxSquared >= 2.2) return clamp01(2 * smirnovSf(n, d));
  const cdf = n <= 100_000 && n * d ** 1.5 <= 1.4 ? durbinMatrixCdf(n, d) : pelzGoodCdf(n, d);
  return clamp01(1 - cdf);
}

const E128 = 2 ** 128;
const EM128 = 2 ** -128;
const SQRT2PI = Math.sqrt(2 * Math.PI);
const LOG_2PI = Math.log(2 * Math.PI);
const PI2 = Math.PI ** 2;
const PI4 = Math.PI ** 4;
const PI6 = Math.PI ** 6;
/** Stirling series coefficients B_2j / (2j (2j − 1)), j = 8 … 1. */
const STIRLING = [
  -2.955065359477124183e-2, 6.4102564102564102564e-3, -1.9175269175269175269e-3, 8.4175084175084175084e-4,
  -5.952380952380952381e-4, 7.9365079365079365079e-4, -2.7777777777777777778e-3, 8.3333333333333333333e-2,
];

/** Π_{i=1..n} (i/n)·c, in order (n!/n^n · c^n without overflow for n ≤ 140). */
function productFactorialRatio(n: number, c: number): number {
  let p = 1;
  for (let i = 1; i <= n; i++) p *= i * (1 / n) * c;
  return p;
}

/** log(n!/n^n) by Stirling's series, with n·log n taken out first. */
function logFactorialOverPower(n: number): number {
  const rn = 1 / n;
  let poly = 0;
  for (const c of STIRLING) poly = poly * (rn / n) + c;
  return Math.log(n) / 2 - n + LOG_2PI / 2 + rn * poly;
}

/**
 * P(D_n ≤ d) by Durbin's matrix: the k-th diagonal entry of H^n · n!/n^n for an m × m matrix H, m = 2k − 1,
 * k = ⌈n·d⌉ (Marsaglia, Tsang & Wang 2003), with powers of 2^128 split off to stay in range.
 */
function durbinMatrixCdf(n: number, d: number): number {
  if (d >= 1) return 1;
  const nd = n * d;
  if (nd <= 0.5) return 0;
  const k = Math.ceil(nd);
  const h = k - nd;
  const m = 2 * k - 1;
  const v = new Float64Array(m);
  const w = new Float64Array(m);
  let fac = 1;
  for (let j = 1; j <= m; j++) {
    w[j - 1] = fac;
    fac /= j;
    v[j - 1] = (1 - h ** j) * fac;
  }
  v[m - 1] = (1 + (Math.max(2 * h - 1, 0) ** m - 2 * h ** m)) * fac;
  let H: Float64Array = new Float64Array(m * m);
  for (let i = 1; i < m; i++) for (let r = i - 1; r < m; r++) H[r * m + i] = w[r - (i - 1)]!;
  for (let r = 0; r < m; r++) H[r * m] = v[r]!;
  for (let c = 0; c < m; c++) H[(m - 1) * m + c] = v[m - 1 - c]!;

  let power: Float64Array = new Float64Array(m * m);
  for (let r = 0; r < m; r++) power[r * m + r] = 1;
  let exponent = 0;
  let hExponent = 0;
  for (let nn = n; nn > 0; nn = Math.floor(nn / 2)) {
    if (nn % 2 === 1) {
      power = matmul(power, H, m);
      exponent += hExponent;
    }
    H = matmul(H, H, m);
    hExponent *= 2;
    if (Math.abs(H[(k - 1) * m + (k - 1)]!) > E128) {
      for (let x = 0; x < H.length; x++) H[x]! /= E128;
      hExponent += 128;
    }
  }
  let p = power[(k - 1) * m + (k - 1)]!;
  for (let i = 1; i <= n; i++) {
    p = (i * p) / n;
    if (Math.abs(p) < EM128) {
      p *= E128;
      exponent -= 128;
    }
  }
  return clamp01(ldexp(p, exponent));
}

function matmul(a: Float64Array, b: Float64Array, m: number): Float64Array {
  const out = new Float64Array(m * m);
  for (let r = 0; r < m; r++) {
    for (let t = 0; t < m; t++) {
      const art = a[r * m + t]!;
      if (art === 0) continue;
      for (let c = 0; c < m; c++) out[r * m + c]! += art * b[t * m + c]!;
    }
  }
  return out;
}

/** The Pelz–Good (1976) expansion of P(D_n ≤ d) in powers of 1/√n, as SciPy's `_kolmogn_PelzGood`. */
function pelzGoodCdf(n: number, x: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const z = Math.sqrt(n) * x;
  const z2 = z * z;
  const z3 = z2 * z;
  const z4 = z2 * z2;
  const z6 = z4 * z2;
  const qlog = -PI2 / 8 / z2;
  if (qlog < -708) return 0;
  const q = Math.exp(qlog);
  const k1a = -z2;
  const k1b = PI2 / 4;
  const k2a = 6 * z6 + 2 * z4;
  const k2b = ((2 * z4 - 5 * z2) * PI2) / 4;
  const k2c = (PI4 * (1 - 2 * z2)) / 16;
  const k3d = (PI6 * (5 - 30 * z2)) / 64;
  const k3c = (PI4 * (-60 * z2 + 212 * z4)) / 16;
  const k3b = (PI2 * (135 * z4 - 96 * z6)) / 4;
  const k3a = -30 * z6 - 90 * z ** 8;
  let k0 = 0;
  let k1 = 0;
  let k2 = 0;
  let k3 = 0;
  const maxk = Math.ceil((16 * z) / Math.PI);
  for (let k = maxk; k > 0; k--) {
    const mm = 2 * k - 1;
    const m2 = mm * mm;
    const m4 = m2 * m2;
    const m6 = m4 * m2;
    const qpower = q ** (8 * k);
    k0 = k0 * qpower + 1;
    k1 = k1 * qpower + (k1a + k1b * m2);
    k2 = k2 * qpower + (k2a + k2b * m2 + k2c * m4);
    k3 = k3 * qpower + (k3a + k3b * m2 + k3c * m4 + k3d * m6);
  }
  k0 = (k0 * q * SQRT2PI) / z;
  k1 = (k1 * q * SQRT2PI) / (6 * z4);
  k2 = (k2 * q * SQRT2PI) / (72 * z ** 7);
  k3 = (k3 * q * SQRT2PI) / (6480 * z ** 10);
  const q2 = Math.exp(-PI2 / 2 / z2);
  const sqrt3z = Math.sqrt(3) * z;
  let k2extra = 0;
  let k3extra = 0;
  for (let k = maxk; k > 0; k--) {
    const kk = k * k;
    const qk = q2 ** kk;
    const kpi = Math.PI * k;
    k2extra += kk * qk;
    k3extra += (sqrt3z + kpi) * (sqrt3z - kpi) * kk * qk;
  }
  k2 += (k2extra * PI2 * SQRT2PI) / (-36 * z3);
  k3 += (k3extra * PI2 * SQRT2PI) / (216 * z6);
  return k0 + k1 / Math.sqrt(n) + k2 / n + k3 / n ** 1.5;
}

/**
 * The one-sided one-sample tail P(D_n⁺ ≥ x) by the Birnbaum–Tingey sum
 * x·Σ_{j=0}^{⌊n(1−x)⌋} C(n, j)·(1 − x − j/n)^(n−j)·(x + j/n)^(j−1), summed in logs (all terms are positive).
 */
export function smirnovSf(n: number, x: number): number {
  if (x <= 0) return 1;
  if (x >= 1) return 0;
  const last = Math.floor(n * (1 - x));
  let logBinomial = 0;
  let max = -Infinity;
  let scaled = 0;
  for (let j = 0; j <= last; j++) {
    if (j > 0) logBinomial += Math.log((n - j + 1) / j);
    const below = (n - j - n * x) / n;
    if (below > 0) {
      const logTerm = logBinomial + (n - j) * Math.log(below) + (j - 1) * Math.log(x + j / n);
      if (logTerm > max) {
        scaled = scaled * Math.exp(max - logTerm) + 1;
        max = logTerm;
      } else {
        scaled += Math.exp(logTerm - max);
      }
    }
  }
  if (scaled === 0) return 0;
  return clamp01(Math.exp(Math.log(x) + max + Math.log(scaled)));
}

// ------------------------------------------------------------------------------------------------------------ bins

/**
 * Bins of a reference distribution, as the trainer writes them: `edges` are the quantile edges with `edges[0]` the
 * reference's minimum and `edges[k]` its maximum (k + 1 edges for k bins); a value's bin is the number of interior
 * edges `edges[1..k−1]` at or below it. So bins are closed on the left, values below the minimum fall in the first
 * bin and values above the maximum in the last, and ties merged into one edge leave no empty bin between them.
 * Edges given without the outer two (k − 1 edges for k bins) are read the same way.
 */
export function interiorEdges(edges: Sample, bins: number): Sample {
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`a distribution needs at least one bin, got ${bins}`);
  if (edges.length === bins + 1) return subarray(edges, 1, bins);
  if (edges.length === bins - 1) return edges;
  throw new RangeError(`${edges.length} bin edges do not fit ${bins} bins: give ${bins + 1} (with the minimum and maximum) or ${bins - 1}`);
}

/** How many of `values` fall in each of the `interior.length + 1` bins (see `interiorEdges`); values may be unsorted. */
export function binCounts(interior: Sample, values: Sample): Float64Array {
  const counts = new Float64Array(interior.length + 1);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) throw new RangeError('binCounts: a value is NaN');
    counts[upperBound(interior, v)]!++;
  }
  return counts;
}

/** As `binCounts`, for values sorted in ascending order: one merge pass. */
export function binCountsSorted(interior: Sample, sorted: Sample): Float64Array {
  const counts = new Float64Array(interior.length + 1);
  let bin = 0;
  for (let i = 0; i < sorted.length; i++) {
    const v = sorted[i]!;
    while (bin < interior.length && interior[bin]! <= v) bin++;
    counts[bin]!++;
  }
  return counts;
}

/**
 * The population stability index of live values against a reference: Σ (a − e)·ln(a / e) over the reference's
 * bins, where e is the reference's share of a bin and a the live values' share, each floored at `epsilon` so that
 * an empty bin counts as a share of `epsilon` (not renormalised). 0 for identical shares, ≥ 0 always; above 0.2 is
 * the usual alert level.
 */
export function psi(referenceEdges: Sample, referenceProportions: Sample, live: Sample, epsilon = PSI_DEFAULT_EPSILON): number {
  if (live.length === 0) throw new RangeError('psi needs at least one live value');
  const counts = binCounts(interiorEdges(referenceEdges, referenceProportions.length), live);
  return psiOfShares(referenceProportions, scaled(counts, 1 / live.length), epsilon);
}

/** The PSI of two vectors of bin shares (expected, actual), with the `epsilon` floor of `psi`. */
export function psiOfShares(expected: Sample, actual: Sample, epsilon = PSI_DEFAULT_EPSILON): number {
  if (expected.length !== actual.length) throw new RangeError(`psi: ${expected.length} reference bins but ${actual.length} live bins`);
  if (!(epsilon > 0)) throw new RangeError(`psi: epsilon must be positive, got ${epsilon}`);
  let sum = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.max(checkedShare(expected[i]!), epsilon);
    const a = Math.max(checkedShare(actual[i]!), epsilon);
    sum += (a - e) * Math.log(a / e);
  }
  return Math.max(sum, 0);
}

/**
 * The Jensen–Shannon divergence of two distributions over the same bins, with base-2 logarithms: in [0, 1], 0 for
 * identical distributions, 1 for disjoint ones, and symmetric. Inputs are normalised to sum to 1 first (as SciPy's
 * `jensenshannon`, whose square this is); an empty bin contributes nothing (0·log 0 = 0).
 */
export function jensenShannon(p: Sample, q: Sample): number {
  if (p.length !== q.length) throw new RangeError(`jensenShannon: ${p.length} bins against ${q.length}`);
  const sp = total(p);
  const sq = total(q);
  if (!(sp > 0) || !(sq > 0)) throw new RangeError('jensenShannon: each distribution needs a positive total');
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i]! / sp;
    const qi = q[i]! / sq;
    const mi = (pi + qi) / 2;
    // Each bin's two halves are added in a fixed order of (p, q) roles, so swapping p and q gives the same sum.
    const tp = pi > 0 ? pi * Math.log2(pi / mi) : 0;
    const tq = qi > 0 ? qi * Math.log2(qi / mi) : 0;
    sum += (tp + tq) / 2;
  }
  return clamp01(sum);
}

// --------------------------------------------------------------------------------------------------------- helpers

/** A sorted copy as a Float64Array (numeric order); NaN is refused. */
export function sortedCopy(values: Sample, name = 'sample'): Float64Array {
  const out = Float64Array.from(values);
  for (let i = 0; i < out.length; i++) if (Number.isNaN(out[i]!)) throw new RangeError(`${name}[${i}] is NaN`);
  return out.sort();
}

function assertSorted(values: Sample, name: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) throw new RangeError(`${name}[${i}] is NaN`);
    if (i > 0 && values[i - 1]! > v) throw new RangeError(`${name} is not sorted in ascending order (index ${i})`);
  }
}

/** The number of `sorted` values at or below `v` (NumPy's `searchsorted(…, side='right')`). */
function upperBound(sorted: Sample, v: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function subarray(values: Sample, from: number, to: number): Sample {
  if (values instanceof Float64Array) return values.subarray(from, to);
  return Array.prototype.slice.call(values, from, to) as number[];
}

function scaled(values: Float64Array, factor: number): Float64Array {
  for (let i = 0; i < values.length; i++) values[i]! *= factor;
  return values;
}

function total(values: Sample): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += checkedShare(values[i]!);
  return sum;
}

function checkedShare(v: number): number {
  if (!(v >= 0) || !Number.isFinite(v)) throw new RangeError(`a bin share must be a finite non-negative number, got ${v}`);
  return v;
}

function clamp01(p: number): number {
  return p < 0 ? 0 : p > 1 ? 1 : p;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** NumPy's `round`: halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** x·2^e without overflowing on the way when x·2^e itself is in range. */
function ldexp(x: number, e: number): number {
  let out = x;
  let rest = e;
  while (rest > 1000) {
    out *= 2 ** 1000;
    rest -= 1000;
  }
  while (rest < -1000) {
    out *= 2 ** -1000;
    rest += 1000;
  }
  return out * 2 ** rest;
}
