import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.spec.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // One test file at a time: the end-to-end tests run servers and engine processes that a 2-core machine cannot
    // run side by side without starving one another (a starved Kafka member misses its session and rebalances).
    fileParallelism: false,
    reporters: ['default'],
    // Starts a single-node Kafka broker for the integration tests (or records why Kafka tests skip) and stops
    // it afterwards; see test/setup/kafka.global.ts. globalSetup itself has no timeout in vitest 3.
    // test/setup/registry.global.ts does the same for a Confluent-compatible schema registry (Apicurio Registry).
    // test/setup/trainer.global.ts makes the Python trainer's virtual environment (training/setup) for the tests
    // that train models, or records why they skip. test/setup/cassandra.global.ts starts a single-node Cassandra
    // (test/infra/cassandra) for the Cassandra projection store, or records why its tests skip.
    // test/setup/chromium.global.ts installs Debian's Chromium (test/infra/chromium) for the browser tests and checks
    // that it launches, or records why they skip.
    globalSetup: ['test/setup/kafka.global.ts', 'test/setup/registry.global.ts', 'test/setup/trainer.global.ts', 'test/setup/cassandra.global.ts', 'test/setup/chromium.global.ts'],
    // Teardown (a graceful broker shutdown) runs inside this budget; vitest's default is 10 s.
    teardownTimeout: 60_000,
  },
});
