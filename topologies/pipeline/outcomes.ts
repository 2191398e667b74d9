import { JoinWindows } from '../../engine/operators/joins.js';
import { avroSerde } from '../../engine/serde/avro-serde.js';
import type { SchemaRegistry } from '../../engine/serde/registry.js';
import { Serdes } from '../../engine/serde/serde.js';
import type { TopologyContext } from '../../engine/runtime/modules.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import { Topics, type Feedback, type Outcome, type Prediction } from './contract.js';

/** How long after a transaction its label may arrive and still be joined to its prediction (event time). */
export const LABEL_WINDOW_MS = 60 * 60 * 1000;

/**
 * How long the join waits for predictions when it has labels in hand and no predictions (`maxTaskIdleMs`).
 * Predictions come through features and scoring, labels straight from ingest: while a backlog drains, labels are
 * read far ahead of the predictions they judge, and without the wait stream time would run past those predictions'
 * grace and drop them as late.
 */
export const OUTCOMES_MAX_TASK_IDLE_MS = 30_000;

/**
 * Feedback joined to the predictions it judges: each label (keyed by transaction id, arriving minutes or hours
 * later) meets its prediction within `LABEL_WINDOW_MS` of event time, and the outcome goes to `outcomes`, keyed by
 * model, for live metrics and the canary decisions. It carries the transaction's country and amount, so metrics can
 * be sliced by them.
 */
export function outcomesTopology(options: { applicationId?: string; registry?: SchemaRegistry; maxTaskIdleMs?: number } = {}): StreamsBuilder {
  const builder = new StreamsBuilder(options.applicationId ?? 'outcomes', { maxTaskIdleMs: options.maxTaskIdleMs ?? OUTCOMES_MAX_TASK_IDLE_MS });
  const predictions = builder.stream<string, Prediction>(Topics.predictions, {
    name: 'predictions',
    valueSerde: Serdes.json<Prediction>(),
    timestampExtractor: (r) => Date.parse(r.value.at),
  });
  const feedback = builder.stream<string, Feedback>(Topics.feedback, {
    name: 'feedback',
    valueSerde: options.registry === undefined ? Serdes.json<Feedback>() : avroSerde<Feedback>(options.registry, `${Topics.feedback}-value`),
    timestampExtractor: (r) => Date.parse(r.value.at),
  });
  predictions
    .join(
      'with-label',
      feedback,
      (prediction, label): Outcome => ({
        transaction_id: prediction.transaction_id,
        model: prediction.model,
        version: prediction.version,
        route: prediction.route,
        probability: prediction.probability,
        fraud: label.fraud,
        at: prediction.at,
        // Carried for slicing live metrics by country and amount; old predictions have no country.
        ...(prediction.country === undefined ? {} : { country: prediction.country }),
        amount: prediction.features.amount,
      }),
      JoinWindows.of(0, LABEL_WINDOW_MS, { graceMs: 10 * 60 * 1000 }),
      { valueSerde: Serdes.json<Outcome>() },
    )
    .map('by-model', (r) => ({ key: r.value.model, value: r.value }), { keySerde: Serdes.string(), valueSerde: Serdes.json<Outcome>() })
    .to(Topics.outcomes, { name: 'to-outcomes' });
  return builder;
}

/** Options (the config's `topologies[].options`): `maxTaskIdleMs`, a non-negative integer. */
export default function outcomes({ registry, options }: TopologyContext): StreamsBuilder {
  const idle = options['maxTaskIdleMs'];
  return outcomesTopology({ registry, ...(typeof idle === 'number' ? { maxTaskIdleMs: idle } : {}) });
}
