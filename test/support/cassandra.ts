/**
 * Where the tests' Cassandra node is, for integration tests that need one.
 *
 * `test/setup/cassandra.global.ts` (vitest globalSetup) starts a single node with `test/infra/cassandra start`
 * unless `MILLRACE_CASSANDRA_CONTACT_POINTS` already names a cluster, and hands its contact point to the test
 * workers both through the environment and through vitest's provide/inject. Without Java 17 or Maven on a
 * developer's machine it records why instead, and Cassandra tests skip with that reason; with `CI=true` a missing
 * node is an error.
 *
 *   import { describeWithCassandra } from '../support/cassandra.js';
 *   describeWithCassandra('CassandraProjectionStore', (contactPoints) => { ... });
 *
 * The node's data centre is `datacenter1` (SimpleSnitch). Tests create their own keyspaces and drop them.
 */
import { describe, inject, test } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Contact points of the tests' Cassandra ("127.0.0.1:19042"), or "" when there is none. */
    millraceCassandraContactPoints: string;
    /** Why there is no Cassandra ("" when there is one). */
    millraceCassandraSkipReason: string;
  }
}

/** The data centre of the test node (and of an external cluster, by convention). */
export const CASSANDRA_TEST_DATA_CENTER = 'datacenter1';

function provided(key: 'millraceCassandraContactPoints' | 'millraceCassandraSkipReason'): string | undefined {
  try {
    return inject(key) || undefined;
  } catch {
    // Outside a vitest worker (or a config without the globalSetup): nothing was provided.
    return undefined;
  }
}

/** The contact points ("host:port") of the Cassandra to test against, or `undefined` when there is none. */
export function cassandraContactPoints(): string[] | undefined {
  const value = process.env.MILLRACE_CASSANDRA_CONTACT_POINTS || provided('millraceCassandraContactPoints');
  if (!value) return undefined;
  const points = value.split(',').map((point) => point.trim()).filter(Boolean);
  return points.length > 0 ? points : undefined;
}

/**
 * Why Cassandra tests cannot run here, or `undefined` when a node is available. With `CI=true` there is no
 * skipping: a missing node throws, so the test file fails instead of passing vacuously.
 */
export function cassandraSkipReason(): string | undefined {
  if (cassandraContactPoints()) return undefined;
  const reason =
    process.env.MILLRACE_CASSANDRA_SKIP_REASON ||
    provided('millraceCassandraSkipReason') ||
    'no Cassandra: MILLRACE_CASSANDRA_CONTACT_POINTS is not set and the test setup did not start a node';
  if (process.env.CI === 'true') {
    throw new Error(`Cassandra is required when CI=true, but ${reason}`);
  }
  return reason;
}

/**
 * A `describe` block that runs against the tests' Cassandra, or is skipped with the reason in its title when there
 * is none (and fails with `CI=true`).
 */
export function describeWithCassandra(name: string, body: (contactPoints: string[]) => void): void {
  const reason = cassandraSkipReason();
  const contactPoints = cassandraContactPoints();
  if (reason || !contactPoints) {
    describe.skip(name, () => {
      test(`needs a Cassandra node (skipped: ${reason})`, () => {});
    });
    return;
  }
  describe(name, () => body(contactPoints));
}
