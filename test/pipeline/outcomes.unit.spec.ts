import { describe, expect, it } from 'vitest';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import { Topics, type Feedback, type Outcome, type Prediction } from '../../topologies/pipeline/contract.js';
import { outcomesTopology } from '../../topologies/pipeline/outcomes.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const iso = (ms: number) => new Date(T0 + ms).toISOString();

function prediction(id: string, atMs: number, version: string, probability: number, country?: string): Prediction {
  const zero = { amount: 0, count_10m: 0, sum_1h: 0, mean_1h: 0, sum_24h: 0, mean_24h: 0, seconds_since_last: 0, distinct_countries_24h: 0, amount_to_mean_24h: 0, prev_amount: 0 };
  return {
    transaction_id: id, user: 'u', at: iso(atMs), model: 'fraud', version, model_sha256: 'sha', probability, class: probability >= 0.5 ? 1 : 0,
    route: version === 'v2' ? 'canary' : 'stable', features: zero,
    lineage: { features: { topic: 'features', partition: 0, offset: 0 }, transaction: { topic: 'transactions', partition: 0, offset: 0 } },
    ...(country === undefined ? {} : { country }),
  };
}

describe('outcomes', () => {
  it('joins each label to the prediction it judges, within the label window, keyed by model, with its country and amount', () => {
    const driver = new TopologyTestDriver(outcomesTopology().build());
    const predictions = driver.createInputTopic<string, Prediction>(Topics.predictions);
    const feedback = driver.createInputTopic<string, Feedback>(Topics.feedback);
    const outcomes = driver.createOutputTopic<string, Outcome>(Topics.outcomes);
    predictions.pipeInput('a', prediction('a', 0, 'v1', 0.9, 'FR'));
    predictions.pipeInput('b', prediction('b', 1_000, 'v2', 0.2));
    feedback.pipeInput('a', { transaction_id: 'a', user: 'u', fraud: true, at: iso(5 * 60_000) });
    feedback.pipeInput('b', { transaction_id: 'b', user: 'u', fraud: false, at: iso(7 * 60_000) });
    feedback.pipeInput('zzz', { transaction_id: 'zzz', user: 'u', fraud: false, at: iso(8 * 60_000) }); // no prediction
    expect(outcomes.readKeyValuesToList()).toEqual([
      { key: 'fraud', value: { transaction_id: 'a', model: 'fraud', version: 'v1', route: 'stable', probability: 0.9, fraud: true, at: iso(0), country: 'FR', amount: 0 } },
      // A prediction from before predictions carried the country: the outcome has none (read as unknown).
      { key: 'fraud', value: { transaction_id: 'b', model: 'fraud', version: 'v2', route: 'canary', probability: 0.2, fraud: false, at: iso(1_000), amount: 0 } },
    ]);
  });
});
