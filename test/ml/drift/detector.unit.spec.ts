/**
 * The detector's bins: each evaluation carries, per column, the reference's quantile bins with the reference's and
 * the live window's shares — the shares the PSI and JS were computed from, rounded for the wire.
 */
import { describe, expect, it } from 'vitest';
import { BIN_SIGNIFICANT_DIGITS, DriftDetector, type DriftVerdict } from '../../../engine/ml/drift/detector.js';
import { buildReferenceDistribution, driftReference, parseDriftReference, referenceDistributionJson } from '../../../engine/ml/drift/reference.js';
import { binCountsSorted } from '../../../engine/ml/drift/statistics.js';
import { seededRandom as random } from '../../support/engine-process.js';

const columns = ['x', 'y'] as const;
const next = random(5);
const reference = driftReference(
  [...columns, 'score'].map((name) => buildReferenceDistribution(name, Array.from({ length: 5_000 }, () => 100 * next()), { bins: 8 })),
);
const rows = Array.from({ length: 400 }, (_, i) => ({
  timestampMs: 1_000 * i,
  // From row 250 on, x moves up: the evaluation after row 300 drifts; the one after row 200 does not.
  features: { x: 100 * next() + (i >= 250 ? 40 : 0), y: 100 * next() },
  score: 100 * next(),
}));
const options = { windowRows: 100, evaluateEveryRows: 100, cooldownRows: 0 };

const relative = 10 ** -(BIN_SIGNIFICANT_DIGITS - 1);

/** Every evaluation of the rows, by the row count after which it ran. */
function evaluations(ref = reference): Map<number, DriftVerdict> {
  const seen = new Map<number, DriftVerdict>();
  let n = 0;
  const detector = new DriftDetector({ model: 'm', version: 'v', features: columns, reference: ref, options, onEvaluation: (e) => seen.set(n, e) });
  for (const row of rows) {
    n++;
    detector.observe(row);
  }
  return seen;
}

/** What `binCountsSorted` says of the window's values of one column, as shares. */
function expectedShares(column: string, endRow: number): number[] {
  const window = rows.slice(endRow - options.windowRows, endRow).map((r) => (column === 'score' ? r.score : r.features[column as 'x' | 'y']));
  const sorted = Float64Array.from(window).sort();
  return Array.from(binCountsSorted(reference.distributions.get(column)!.interiorEdges, sorted), (count) => count / window.length);
}

describe('DriftDetector bins', () => {
  it('carries, per column, the reference edges and shares and the live shares binCountsSorted gives, summing to 1', () => {
    const all = evaluations();
    expect([...all.keys()]).toEqual([100, 200, 300, 400]);
    expect(all.get(200)!.drifted_features).toEqual([]);
    expect(all.get(300)!.drifted_features).toEqual(['x']);
    for (const [endRow, evaluation] of all) {
      expect(evaluation.statistics.map((s) => s.feature)).toEqual([...columns, 'score']);
      for (const { feature, bins } of evaluation.statistics) {
        const distribution = reference.distributions.get(feature)!;
        const k = distribution.proportions.length;
        expect(bins.edges).toHaveLength(k + 1);
        expect(bins.reference).toHaveLength(k);
        expect(bins.live).toHaveLength(k);
        bins.edges.forEach((edge, i) => expect(Math.abs(edge - distribution.edges[i]!)).toBeLessThanOrEqual(relative * Math.abs(distribution.edges[i]!)));
        bins.reference.forEach((share, i) => expect(Math.abs(share - distribution.proportions[i]!)).toBeLessThanOrEqual(relative * distribution.proportions[i]!));
        const expected = expectedShares(feature, endRow);
        bins.live.forEach((share, i) => expect(Math.abs(share - expected[i]!), `${feature} bin ${i} after row ${endRow}`).toBeLessThanOrEqual(relative * expected[i]!));
        for (const shares of [bins.reference, bins.live]) expect(Math.abs(shares.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-5);
      }
    }
    // Once the window holds only shifted rows, x's lower bins are empty and its top bin holds the rest.
    expect(all.get(400)!.drifted_features).toEqual(['x']);
    const x = all.get(400)!.statistics[0]!.bins;
    expect(x.live.slice(0, 3)).toEqual([0, 0, 0]);
    expect(x.live.at(-1)!).toBeGreaterThan(x.reference.at(-1)! * 2);
  });

  it('rounds to a few significant digits, so an evaluation stays small', () => {
    const evaluation = evaluations().get(400)!;
    for (const { bins } of evaluation.statistics) {
      for (const value of [...bins.edges, ...bins.reference, ...bins.live]) expect(Number(value.toPrecision(BIN_SIGNIFICANT_DIGITS))).toBe(value);
    }
    expect(JSON.stringify(evaluation).length).toBeLessThan(3_000);
  });

  it('gives k + 1 edges for a reference that lists only the k − 1 between its bins, its sample bounding the outer ones', () => {
    const full = reference.distributions.get('x')!;
    const json = referenceDistributionJson(full);
    const interiorOnly = parseDriftReference({
      features: { x: { ...json, edges: json.edges.slice(1, -1) }, y: referenceDistributionJson(reference.distributions.get('y')!) },
      score: referenceDistributionJson(reference.distributions.get('score')!),
    });
    const x = evaluations(interiorOnly).get(100)!.statistics[0]!;
    expect(x.bins.edges).toHaveLength(full.proportions.length + 1);
    expect(x.bins.edges.slice(1, -1)).toEqual(evaluations().get(100)!.statistics[0]!.bins.edges.slice(1, -1));
    expect(x.bins.edges[0]).toBe(Number(full.sortedSample[0]!.toPrecision(BIN_SIGNIFICANT_DIGITS)));
    expect(x.bins.edges.at(-1)).toBe(Number(full.sortedSample.at(-1)!.toPrecision(BIN_SIGNIFICANT_DIGITS)));
  });
});
