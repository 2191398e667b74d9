/**
 * vitest globalSetup: a real Kafka broker for the integration tests.
 *
 * - `MILLRACE_KAFKA_BROKERS` already set: an external broker; nothing is started or stopped.
 * - Otherwise `test/infra/kafka start` (jars from Maven Central on first use, then a single-node KRaft broker on
 *   127.0.0.1:19092, or MILLRACE_KAFKA_PORT), and `test/infra/kafka stop` in teardown. A broker that was already
 *   running before the tests (a developer's `test/infra/kafka start`) is reused and left running; one left
 *   behind by a test run that was killed before its teardown is replaced.
 * - Java 17+ or Maven missing: with `CI=true` the run fails here; otherwise Kafka tests skip with the reason
 *   (`MILLRACE_KAFKA_SKIP_REASON`). `MILLRACE_KAFKA=off` skips the broker on purpose.
 *
 * The address reaches the test workers through the environment (forked workers inherit process.env, which is
 * copied when they are spawned, after this setup) and through provide/inject; `test/support/kafka.ts` reads both.
 *
 * vitest 3 puts no timeout on globalSetup (the first run downloads ~45 MB of jars); the start script bounds its
 * own readiness wait (90 s) and this file bounds the whole start at 15 minutes. Teardown runs inside vitest's
 * `teardownTimeout`, which vitest.config.ts raises so that a graceful broker shutdown is not cut short. The shared
 * mechanics are in `infra-server.ts`.
 */
import type { TestProject } from 'vitest/node';
import type {} from '../support/kafka.js';
import { setupInfraServer } from './infra-server.js';

export default function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  return setupInfraServer(project, {
    script: 'kafka',
    name: 'Kafka',
    what: 'broker',
    addressEnv: 'MILLRACE_KAFKA_BROKERS',
    skipReasonEnv: 'MILLRACE_KAFKA_SKIP_REASON',
    switchEnv: 'MILLRACE_KAFKA',
    startedByEnv: 'MILLRACE_KAFKA_STARTED_BY',
    addressKey: 'millraceKafkaBrokers',
    skipReasonKey: 'millraceKafkaSkipReason',
    addressPattern: /^[\w.-]+:\d+$/,
    advice: 'Install Java 17+ and Maven (apt-get install -y openjdk-17-jre-headless maven), or point MILLRACE_KAFKA_BROKERS at a broker.',
    startTimeoutMs: 15 * 60_000,
    stopTimeoutMs: 45_000,
  });
}
