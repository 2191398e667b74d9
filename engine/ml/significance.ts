/**
 * Running summaries and Welch's t-test, for deciding canary stages on feedback outcomes. Pure and deterministic:
 * the canary controller keeps the summaries in a store, so a replay reaches the same decisions.
 */

/** Count, mean and sum of squared deviations (Welford), serialisable as JSON. */
export interface Summary {
  readonly n: number;
  readonly mean: number;
  readonly m2: number;
}

export const EMPTY_SUMMARY: Summary = { n: 0, mean: 0, m2: 0 };

export function addSample(summary: Summary, x: number): Summary {
  const n = summary.n + 1;
  const delta = x - summary.mean;
  const mean = summary.mean + delta / n;
  return { n, mean, m2: summary.m2 + delta * (x - mean) };
}

export function variance(summary: Summary): number {
  return summary.n < 2 ? 0 : summary.m2 / (summary.n - 1);
}

export interface WelchResult {
  readonly t: number;
  readonly df: number;
  /** One-sided p-value for "mean of a is lower than mean of b". */
  readonly pValue: number;
}

/**
 * Welch's unequal-variances t-test, one-sided: how likely a difference at least this large in favour of `a` having
 * the lower mean is, if both had the same mean.
 */
export function welchLower(a: Summary, b: Summary): WelchResult {
  if (a.n < 2 || b.n < 2) return { t: 0, df: 0, pValue: 1 };
  const va = variance(a) / a.n;
  const vb = variance(b) / b.n;
  const se = Math.sqrt(va + vb);
  if (se === 0) return { t: 0, df: a.n + b.n - 2, pValue: a.mean < b.mean ? 0 : 1 };
  const t = (b.mean - a.mean) / se;
  const df = (va + vb) ** 2 / ((va * va) / (a.n - 1) + (vb * vb) / (b.n - 1));
  return { t, df, pValue: 1 - studentTCdf(t, df) };
}

/** The cumulative distribution function of Student's t with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  const x = df / (df + t * t);
  const tail = 0.5 * regularizedIncompleteBeta(x, df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** I_x(a, b) by its continued fraction (Numerical Recipes' betacf), accurate to ~1e-12 for the ranges used here. */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(x, a, b)) / a;
  return 1 - (front * betaContinuedFraction(1 - x, b, a)) / b;
}

function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-14) break;
  }
  return h;
}

/** ln Γ(x) (Lanczos, g = 7, n = 9). */
export function logGamma(x: number): number {
  const g = 7;
  const coefficients = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let sum = coefficients[0]!;
  for (let i = 1; i < g + 2; i++) sum += coefficients[i]! / (z + i);
  const t = z + g + 0.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** Log loss of one prediction, clipped so a confident mistake costs a finite amount. */
export function logLoss(probability: number, label: boolean): number {
  const p = Math.min(1 - 1e-7, Math.max(1e-7, probability));
  return -(label ? Math.log(p) : Math.log(1 - p));
}

/** Area under the ROC curve (Mann–Whitney U with ties averaged); NaN without both classes. */
export function auc(scores: readonly number[], labels: readonly boolean[]): number {
  const pairs = scores.map((s, i) => [s, labels[i]!] as const).sort((x, y) => x[0] - y[0]);
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < pairs.length; ) {
    let j = i;
    while (j < pairs.length && pairs[j]![0] === pairs[i]![0]) j++;
    const averageRank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) {
      if (pairs[k]![1]) {
        positives++;
        rankSum += averageRank;
      }
    }
    i = j;
  }
  const negatives = pairs.length - positives;
  if (positives === 0 || negatives === 0) return Number.NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}
