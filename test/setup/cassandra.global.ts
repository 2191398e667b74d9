/**
 * vitest globalSetup: a real Cassandra node for the integration tests (the Cassandra projection store).
 *
 * - `MILLRACE_CASSANDRA_CONTACT_POINTS` already set ("host:port[,host:port]"): an external cluster; nothing is
 *   started or stopped. Its data centre must be `datacenter1` (or tests pass their own).
 * - Otherwise `test/infra/cassandra start` (jars from Maven Central on first use, then a single node on
 *   127.0.0.1:19042, or MILLRACE_CASSANDRA_PORT), and `test/infra/cassandra stop` in teardown. A node that was
 *   already running before the tests (a developer's `test/infra/cassandra start`) is reused and left running; one
 *   left behind by a test run that was killed before its teardown is replaced.
 * - Java 17 or Maven missing: with `CI=true` the run fails here; otherwise Cassandra tests skip with the reason
 *   (`MILLRACE_CASSANDRA_SKIP_REASON`). `MILLRACE_CASSANDRA=off` skips the node on purpose.
 *
 * The shared mechanics are in `infra-server.ts`; `test/support/cassandra.ts` reads what this provides. The start
 * script bounds its own readiness wait (180 s, MILLRACE_CASSANDRA_READY_TIMEOUT_S) and this file bounds the whole
 * start, the first download of ~67 MB of jars included, at 15 minutes. The stop is a drain (about 4 s), within
 * vitest's `teardownTimeout`.
 */
import type { TestProject } from 'vitest/node';
import type {} from '../support/cassandra.js';
import { setupInfraServer } from './infra-server.js';

export default function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  return setupInfraServer(project, {
    script: 'cassandra',
    name: 'Cassandra',
    what: 'Cassandra node',
    addressEnv: 'MILLRACE_CASSANDRA_CONTACT_POINTS',
    skipReasonEnv: 'MILLRACE_CASSANDRA_SKIP_REASON',
    switchEnv: 'MILLRACE_CASSANDRA',
    startedByEnv: 'MILLRACE_CASSANDRA_STARTED_BY',
    addressKey: 'millraceCassandraContactPoints',
    skipReasonKey: 'millraceCassandraSkipReason',
    addressPattern: /^[\w.-]+:\d+$/,
    advice:
      'Install Java 17 and Maven (apt-get install -y openjdk-17-jre-headless maven), or point ' +
      'MILLRACE_CASSANDRA_CONTACT_POINTS at a Cassandra cluster.',
    startTimeoutMs: 15 * 60_000,
    // The script waits 60 s for a drain before SIGKILL.
    stopTimeoutMs: 75_000,
  });
}
