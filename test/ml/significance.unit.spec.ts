import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EMPTY_SUMMARY, addSample, auc, logGamma, studentTCdf, variance, welchLower } from '../../engine/ml/significance.js';

describe('significance', () => {
  it('computes Student t probabilities that match published tables', () => {
    // scipy.stats.t.cdf values.
    expect(studentTCdf(2.0, 10)).toBeCloseTo(0.9633059826146299, 9);
    expect(studentTCdf(1.8124611228107335, 10)).toBeCloseTo(0.95, 9);
    expect(studentTCdf(-1, 5)).toBeCloseTo(0.18160873382456126, 9);
    expect(studentTCdf(0, 3)).toBeCloseTo(0.5, 12);
    expect(studentTCdf(2.5758293035489, 1e6)).toBeCloseTo(0.995, 5);
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(logGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 12);
  });

  it('keeps running means and variances exactly as a two-pass computation would', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1e3, max: 1e3, noNaN: true }), { minLength: 2, maxLength: 200 }), (xs) => {
        const summary = xs.reduce(addSample, EMPTY_SUMMARY);
        const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
        const v = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1);
        expect(summary.mean).toBeCloseTo(mean, 6);
        expect(variance(summary)).toBeCloseTo(v, 4);
      }),
    );
  });

  it('finds a lower mean significant only when it is', () => {
    const summarize = (xs: number[]) => xs.reduce(addSample, EMPTY_SUMMARY);
    const low = summarize(Array.from({ length: 200 }, (_, i) => 0.2 + ((i * 37) % 100) / 1000));
    const high = summarize(Array.from({ length: 200 }, (_, i) => 0.3 + ((i * 53) % 100) / 1000));
    expect(welchLower(low, high).pValue).toBeLessThan(1e-6);
    expect(welchLower(high, low).pValue).toBeGreaterThan(0.999);
    const same = summarize(Array.from({ length: 200 }, (_, i) => 0.25 + ((i * 37) % 100) / 1000));
    expect(welchLower(same, same).pValue).toBeCloseTo(0.5, 6);
    // By hand: t = 2.5 / sqrt(5/12 + 1/2) = 2.6112, Welch df = 6.981, one-sided p = 0.01747.
    const welch = welchLower(summarize([1, 2, 3, 4]), summarize([3, 4, 5, 6, 7]));
    expect(welch.t).toBeCloseTo(2.6112, 4);
    expect(welch.df).toBeCloseTo(6.981, 3);
    expect(welch.pValue).toBeCloseTo(0.01747, 4);
  });

  it('computes AUC as the probability a positive outranks a negative', () => {
    expect(auc([0.1, 0.2, 0.8, 0.9], [false, false, true, true])).toBe(1);
    expect(auc([0.9, 0.8, 0.2, 0.1], [false, false, true, true])).toBe(0);
    expect(auc([0.5, 0.5, 0.5, 0.5], [false, true, false, true])).toBe(0.5);
    expect(auc([0.1, 0.4, 0.35, 0.8], [false, false, true, true])).toBe(0.75);
    expect(auc([0.3], [true])).toBeNaN();
  });
});
