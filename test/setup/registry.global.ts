/**
 * vitest globalSetup: a real Confluent-compatible schema registry (Apicurio Registry) for the integration tests.
 *
 * - `MILLRACE_SCHEMA_REGISTRY_URL` already set: an external registry; nothing is started or stopped.
 * - Otherwise `test/infra/schema-registry start` (the distribution from Maven Central on first use, then Apicurio
 *   Registry with in-memory storage on 127.0.0.1:18081, or MILLRACE_SCHEMA_REGISTRY_PORT, with the global
 *   compatibility set to BACKWARD), and `test/infra/schema-registry stop` in teardown. A registry that was already
 *   running before the tests (a developer's `test/infra/schema-registry start`) is reused and left running; one left
 *   behind by a test run that was killed before its teardown is replaced.
 * - Java 17+ or Maven missing: with `CI=true` the run fails here; otherwise registry tests skip with the reason
 *   (`MILLRACE_SCHEMA_REGISTRY_SKIP_REASON`). `MILLRACE_SCHEMA_REGISTRY=off` skips the registry on purpose.
 *
 * The URL (the base of the Confluent API, `http://127.0.0.1:18081/apis/ccompat/v7`) reaches the test workers through
 * the environment (forked workers inherit process.env, copied when they are spawned, after this setup) and through
 * provide/inject; `test/support/registry.ts` reads both.
 *
 * vitest 3 puts no timeout on globalSetup (the first run downloads ~140 MB); the start script bounds its own readiness
 * wait (90 s) and this file bounds the whole start at 15 minutes. The shared mechanics are in `infra-server.ts`.
 */
import type { TestProject } from 'vitest/node';
import type {} from '../support/registry.js';
import { setupInfraServer } from './infra-server.js';

export default function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  return setupInfraServer(project, {
    script: 'schema-registry',
    name: 'Schema registry',
    what: 'registry',
    addressEnv: 'MILLRACE_SCHEMA_REGISTRY_URL',
    skipReasonEnv: 'MILLRACE_SCHEMA_REGISTRY_SKIP_REASON',
    switchEnv: 'MILLRACE_SCHEMA_REGISTRY',
    startedByEnv: 'MILLRACE_SCHEMA_REGISTRY_STARTED_BY',
    addressKey: 'millraceSchemaRegistryUrl',
    skipReasonKey: 'millraceSchemaRegistrySkipReason',
    addressPattern: /^https?:\/\/\S+$/,
    advice:
      'Install Java 17+ (21+ for Apicurio 3.x) and Maven (apt-get install -y openjdk-17-jre-headless maven), or point ' +
      'MILLRACE_SCHEMA_REGISTRY_URL at a Confluent-compatible registry.',
    startTimeoutMs: 15 * 60_000,
    stopTimeoutMs: 45_000,
    normalizeExternal: (url) => url.replace(/\/+$/, ''),
  });
}
