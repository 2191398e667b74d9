import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  binCounts,
  binCountsSorted,
  interiorEdges,
  jensenShannon,
  ksDistributionSf,
  ksTwoSample,
  ksTwoSampleSorted,
  psi,
  psiOfShares,
  sortedCopy,
} from '../../../engine/ml/drift/statistics.js';

/** Golden vectors written by test/fixtures/drift/generate.py (SciPy and NumPy). */
function golden<T>(name: string): T[] {
  const text = readFileSync(new URL(`../../fixtures/drift/${name}`, import.meta.url), 'utf8');
  return (JSON.parse(text) as { cases: T[] }).cases;
}

interface KsCase {
  readonly name: string;
  readonly a: number[];
  readonly b: number[];
  readonly statistic: number;
  readonly p_value: number;
  readonly method: 'exact' | 'asymp';
}

interface KstwoCase {
  readonly n: number;
  readonly d: number;
  readonly sf: number;
}

interface BinnedCase {
  readonly name: string;
  readonly edges: number[];
  readonly proportions: number[];
  readonly live: number[];
  readonly live_proportions: number[];
  readonly psi: number;
  readonly 'psi_epsilon_1e-6': number;
  readonly js: number;
  readonly js_scipy: number;
}

interface PsiJs {
  readonly epsilon: number;
  readonly binned: BinnedCase[];
  readonly pairs: Array<{ p: number[]; q: number[]; js: number; js_scipy: number }>;
}

/** |actual − expected| ≤ rel·|expected| + abs. */
function expectClose(actual: number, expected: number, rel: number, abs = 0, label = ''): void {
  const tolerance = rel * Math.abs(expected) + abs;
  if (!(Math.abs(actual - expected) <= tolerance)) {
    expect.fail(`${label}: ${actual} is not within ${tolerance} of ${expected}`);
  }
}

const finite = fc.double({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true });
const sample = fc.array(fc.oneof(finite, fc.integer({ min: -3, max: 3 })), { minLength: 1, maxLength: 60 });

describe('ksTwoSample', () => {
  const cases = golden<KsCase>('ks-2samp.json');

  it('matches scipy.stats.ks_2samp on every golden pair (exact p-values to 1e-12, asymptotic to 1e-9)', () => {
    expect(cases.length).toBeGreaterThan(70);
    for (const c of cases) {
      const result = ksTwoSample(c.a, c.b);
      expect(result.method, c.name).toBe(c.method);
      expectClose(result.statistic, c.statistic, 1e-14, 1e-15, `${c.name} statistic`);
      const rel = c.method === 'exact' ? 1e-12 : 1e-9;
      expectClose(result.pValue, c.p_value, rel, 1e-300, `${c.name} p-value`);
    }
  });

  it('gives the same result with the samples swapped, sorted or not', () => {
    for (const c of cases.slice(0, 40)) {
      const forward = ksTwoSample(c.a, c.b);
      expect(ksTwoSample(c.b, c.a)).toEqual(forward);
      expect(ksTwoSampleSorted(sortedCopy(c.a), sortedCopy(c.b))).toEqual(forward);
    }
  });

  it('has a statistic in [0, 1] and a p-value in [0, 1], symmetric in its samples', () => {
    fc.assert(
      fc.property(sample, sample, (a, b) => {
        const ab = ksTwoSample(a, b);
        const ba = ksTwoSample(b, a);
        expect(ab.statistic).toBeGreaterThanOrEqual(0);
        expect(ab.statistic).toBeLessThanOrEqual(1);
        expect(ab.pValue).toBeGreaterThanOrEqual(0);
        expect(ab.pValue).toBeLessThanOrEqual(1);
        expect(ba).toEqual(ab);
      }),
    );
  });

  it('is 0 with p-value 1 for identical samples, however they are ordered', () => {
    fc.assert(
      fc.property(sample, (a) => {
        expect(ksTwoSample(a, [...a].reverse())).toEqual({ statistic: 0, pValue: 1, method: 'exact' });
      }),
    );
  });

  it('is 1 for samples that do not overlap', () => {
    fc.assert(
      fc.property(fc.array(finite, { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 30 }), (a, n) => {
        const above = Array.from({ length: n }, (_, i) => 2e6 + i);
        expect(ksTwoSample(a, above).statistic).toBe(1);
      }),
    );
  });

  it('refuses empty samples, NaN and unsorted input to the sorted variant', () => {
    expect(() => ksTwoSample([], [1])).toThrow(RangeError);
    expect(() => ksTwoSample([1, Number.NaN], [1])).toThrow(RangeError);
    expect(() => ksTwoSampleSorted([2, 1], [1])).toThrow(RangeError);
  });

  it('computes the exact p-value of two 2000-value windows quickly', () => {
    const a = Array.from({ length: 2000 }, (_, i) => Math.sin(i) * 3);
    const b = Array.from({ length: 1999 }, (_, i) => Math.cos(i * 1.3) * 3 + 0.5);
    const started = performance.now();
    const result = ksTwoSample(a, b);
    expect(result.method).toBe('exact');
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe('ksDistributionSf (scipy.stats.kstwo.sf, the asymptotic branch)', () => {
  it('matches SciPy over n from 1 to 200,000 and the whole range of d', () => {
    const cases = golden<KstwoCase>('kstwo-sf.json');
    expect(cases.length).toBeGreaterThan(300);
    for (const c of cases) expectClose(ksDistributionSf(c.n, c.d), c.sf, 1e-9, 1e-300, `kstwo.sf(${c.d}, ${c.n})`);
  });
});

describe('psi and jensenShannon', () => {
  const data = golden<PsiJs>('psi-js.json')[0] ?? (JSON.parse(readFileSync(new URL('../../fixtures/drift/psi-js.json', import.meta.url), 'utf8')) as { cases: PsiJs }).cases;

  it('match the NumPy reference over the trainer’s quantile bins, live values in and out of range', () => {
    const { binned } = data as PsiJs;
    expect(binned.length).toBeGreaterThan(20);
    for (const c of binned) {
      const interior = interiorEdges(c.edges, c.proportions.length);
      const counts = binCounts(interior, c.live);
      expect([...counts].map((n) => n / c.live.length), c.name).toEqual(c.live_proportions);
      expect([...binCountsSorted(interior, sortedCopy(c.live))], c.name).toEqual([...counts]);
      expectClose(psi(c.edges, c.proportions, c.live), c.psi, 1e-12, 1e-15, `${c.name} psi`);
      expectClose(psi(c.edges, c.proportions, c.live, 1e-6), c['psi_epsilon_1e-6'], 1e-12, 1e-15, `${c.name} psi ε=1e-6`);
      expectClose(jensenShannon(c.proportions, c.live_proportions), c.js, 1e-12, 1e-15, `${c.name} js`);
      expectClose(jensenShannon(c.proportions, c.live_proportions), c.js_scipy, 1e-9, 1e-12, `${c.name} js (scipy)`);
    }
  });

  it('read edges given without the outer two the same way', () => {
    const c = (data as PsiJs).binned[1]!;
    expect(psi(c.edges.slice(1, -1), c.proportions, c.live)).toBe(psi(c.edges, c.proportions, c.live));
    expect(() => psi(c.edges.slice(1), c.proportions, c.live)).toThrow(RangeError);
  });

  it('jensenShannon matches SciPy on random distributions with empty bins', () => {
    for (const c of (data as PsiJs).pairs) {
      expectClose(jensenShannon(c.p, c.q), c.js, 1e-12, 1e-15, 'js');
      expectClose(jensenShannon(c.p, c.q), c.js_scipy, 1e-9, 1e-12, 'js (scipy)');
    }
  });

  const shares = fc
    .array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 12 })
    .filter((xs) => xs.reduce((s, x) => s + x, 0) > 1e-9);

  it('PSI is ≥ 0, and 0 for identical shares', () => {
    fc.assert(
      fc.property(shares, shares, (p, q) => {
        const n = Math.min(p.length, q.length);
        expect(psiOfShares(p.slice(0, n), q.slice(0, n))).toBeGreaterThanOrEqual(0);
        expect(psiOfShares(p, p)).toBe(0);
      }),
    );
  });

  it('JS is symmetric, in [0, 1], and 0 for identical distributions', () => {
    fc.assert(
      fc.property(shares, shares, (p, q) => {
        const n = Math.min(p.length, q.length);
        const [a, b] = [p.slice(0, n), q.slice(0, n)];
        if (a.reduce((s, x) => s + x, 0) <= 1e-9 || b.reduce((s, x) => s + x, 0) <= 1e-9) return;
        const js = jensenShannon(a, b);
        expect(js).toBeGreaterThanOrEqual(0);
        expect(js).toBeLessThanOrEqual(1);
        expect(jensenShannon(b, a)).toBe(js);
        expect(jensenShannon(a, a)).toBeLessThan(1e-15);
      }),
    );
  });

  it('PSI of live values drawn to the reference’s shares is 0', () => {
    const edges = [0, 1, 2, 3, 4];
    const proportions = [0.25, 0.25, 0.25, 0.25];
    expect(psi(edges, proportions, [0.5, 1.5, 2.5, 3.5])).toBe(0);
    // Bins are closed on the left: an edge value belongs to the bin above it; out-of-range values to the end bins.
    expect([...binCounts(interiorEdges(edges, 4), [-10, 0, 1, 2, 3, 4, 10])]).toEqual([2, 1, 1, 3]);
  });
});
