import { avroSerde } from '../../engine/serde/avro-serde.js';
import { Serdes } from '../../engine/serde/serde.js';
import type { TopologyContext } from '../../engine/runtime/modules.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import type { Processor, ProcessorContext } from '../../engine/topology/processor.js';
import type { StreamRecord } from '../../engine/topology/record.js';
import type { SchemaRegistry } from '../../engine/serde/registry.js';
import { FEATURE_VERSION, Topics, type FeatureVector, type Transaction } from './contract.js';
import { computeFeatures, extendHistory, type HistoryEntry } from './feature-definitions.js';

/**
 * Per-user features in event time: one feature vector per transaction, computed from the user's history as of the
 * transaction's event time (see `feature-definitions.ts`). The history is a state store, one value per user, so
 * reading it never awaits. Replaying this topology over the transactions log reproduces the vectors exactly: that is
 * how training sets are exported.
 */
export class FeatureProcessor implements Processor<string, Transaction, string, FeatureVector> {
  process(record: StreamRecord<string, Transaction>, ctx: ProcessorContext<string, FeatureVector>): void {
    const tx = record.value;
    const store = ctx.store<string, HistoryEntry[]>('history');
    const history = store.get(tx.user) ?? [];
    const features = computeFeatures(history, record.timestamp, tx.amount, tx.country);
    store.put(tx.user, extendHistory(history, { at: record.timestamp, amount: tx.amount, country: tx.country }));
    const source = ctx.recordMetadata();
    ctx.forward({
      key: tx.user,
      value: {
        transaction_id: tx.id,
        user: tx.user,
        at: tx.at,
        feature_version: FEATURE_VERSION,
        features,
        source: source ?? { topic: Topics.transactions, partition: -1, offset: -1 },
        country: tx.country,
      },
      timestamp: record.timestamp,
      headers: record.headers,
    });
  }
}

/** The features topology on a given transaction serde (Avro from the registry, or JSON in tests). */
export function featuresTopology(options: { applicationId?: string; input?: string; output?: string; registry?: SchemaRegistry } = {}): StreamsBuilder {
  const builder = new StreamsBuilder(options.applicationId ?? 'features');
  builder.addStore({ name: 'history', kind: 'key-value', keySerde: Serdes.string(), valueSerde: Serdes.json<HistoryEntry[]>(), changelog: true });
  builder
    .stream<string, Transaction>(options.input ?? Topics.transactions, {
      name: 'transactions',
      valueSerde: options.registry === undefined ? Serdes.json<Transaction>() : avroSerde<Transaction>(options.registry, `${Topics.transactions}-value`),
      timestampExtractor: (r) => Date.parse(r.value.at),
    })
    .process('compute', () => new FeatureProcessor(), { stores: ['history'] })
    .to(options.output ?? Topics.features, { name: 'to-features', valueSerde: Serdes.json<FeatureVector>() });
  return builder;
}

export default function features({ registry, options }: TopologyContext): StreamsBuilder {
  return featuresTopology({
    registry,
    ...(typeof options['input'] === 'string' ? { input: options['input'] } : {}),
    ...(typeof options['output'] === 'string' ? { output: options['output'] } : {}),
  });
}
