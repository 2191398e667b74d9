/**
 * The engine's stateless consume→produce on Kafka through each Kafka client: `KafkaLog` (kafkajs) and
 * `PlatformaticKafkaLog` (@platformatic/kafka), in the same run, each on fresh topics. The scenario is
 * `benchmarks/kafka.ts`'s stateless one — a `TopologyRunner` (exactly-once: outputs and input offsets in one Kafka
 * transaction) fed while it runs, measured by `measureStreaming` — with every Kafka request of the run, the
 * producer's appends included, made by the client under test. Which client goes first alternates by round, so a
 * warm broker or JIT does not always favour the same one.
 */
import { KafkaLog } from '../engine/log/kafka/kafka-log.js';
import { PlatformaticKafkaLog } from '../engine/log/kafka-platformatic/platformatic-log.js';
import type { Log } from '../engine/log/log.js';
import { engineConsumer, kafkaStreamingRun, statelessTopology, type KafkaBenchmarkOptions } from './kafka.js';
import type { Measurement } from './measure.js';

export type KafkaClientName = 'kafkajs' | 'platformatic';

async function measure(client: KafkaClientName, options: KafkaBenchmarkOptions): Promise<Measurement> {
  const logOptions = { brokers: options.brokers, clientId: `millrace-bench-${client}` };
  const log: Log = client === 'kafkajs' ? new KafkaLog(logOptions) : new PlatformaticKafkaLog(logOptions);
  await log.open();
  try {
    return await kafkaStreamingRun(log, options, engineConsumer(log, statelessTopology));
  } finally {
    await log.close();
  }
}

/** One round: the stateless scenario on each client, kafkajs first on even rounds. */
export async function kafkaClientsRound(options: KafkaBenchmarkOptions, round: number): Promise<Record<KafkaClientName, Measurement>> {
  const order: KafkaClientName[] = round % 2 === 0 ? ['kafkajs', 'platformatic'] : ['platformatic', 'kafkajs'];
  const figures = new Map<KafkaClientName, Measurement>();
  for (const client of order) figures.set(client, await measure(client, options));
  return { kafkajs: figures.get('kafkajs')!, platformatic: figures.get('platformatic')! };
}
