/**
 * Where the tests' Kafka broker is, for integration tests that need one.
 *
 * `test/setup/kafka.global.ts` (vitest globalSetup) starts a single-node broker with `test/infra/kafka start`
 * unless `MILLRACE_KAFKA_BROKERS` already names one, and hands its address to the test workers both through
 * the environment and through vitest's provide/inject. Without Java or Maven on a developer's machine it
 * records why instead, and Kafka tests skip with that reason; with `CI=true` a missing broker is an error.
 *
 *   import { describe } from 'vitest';
 *   import { describeWithKafka } from '../support/kafka.js';
 *   describeWithKafka('KafkaLog', (brokers) => { ... });
 */
import { describe, inject, test } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Bootstrap address of the tests' broker ("127.0.0.1:19092"), or "" when there is none. */
    millraceKafkaBrokers: string;
    /** Why there is no broker ("" when there is one). */
    millraceKafkaSkipReason: string;
  }
}

function provided(key: 'millraceKafkaBrokers' | 'millraceKafkaSkipReason'): string | undefined {
  try {
    return inject(key) || undefined;
  } catch {
    // Outside a vitest worker (or a config without the globalSetup): nothing was provided.
    return undefined;
  }
}

/** The bootstrap servers ("host:port[,host:port]") of the broker to test against, if there is one. */
export function kafkaBrokers(): string | undefined {
  return process.env.MILLRACE_KAFKA_BROKERS || provided('millraceKafkaBrokers');
}

/** The bootstrap servers as the array kafkajs wants. Throws when there is no broker. */
export function kafkaBrokerList(): string[] {
  const brokers = kafkaBrokers();
  if (!brokers) throw new Error(`no Kafka broker: ${kafkaSkipReason() ?? 'MILLRACE_KAFKA_BROKERS is not set'}`);
  return brokers.split(',').map((broker) => broker.trim()).filter(Boolean);
}

/**
 * Why Kafka tests cannot run here, or `undefined` when a broker is available. With `CI=true` there is no
 * skipping: a missing broker throws, so the test file fails instead of passing vacuously.
 */
export function kafkaSkipReason(): string | undefined {
  if (kafkaBrokers()) return undefined;
  const reason =
    process.env.MILLRACE_KAFKA_SKIP_REASON ||
    provided('millraceKafkaSkipReason') ||
    'no Kafka broker: MILLRACE_KAFKA_BROKERS is not set and the test setup did not start one';
  if (process.env.CI === 'true') {
    throw new Error(`Kafka is required when CI=true, but ${reason}`);
  }
  return reason;
}

/**
 * A `describe` block that runs against the tests' broker, or is skipped with the reason in its title when
 * there is none (and fails with `CI=true`).
 */
export function describeWithKafka(name: string, body: (brokers: string[]) => void): void {
  const reason = kafkaSkipReason();
  if (reason) {
    describe.skip(name, () => {
      test(`needs a Kafka broker (skipped: ${reason})`, () => {});
    });
    return;
  }
  describe(name, () => body(kafkaBrokerList()));
}
