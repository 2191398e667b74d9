import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import cassandra from 'cassandra-driver';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { isMillraceError, type ErrorCode } from '../../engine/errors.js';
import { offset } from '../../engine/log/log.js';
import { CassandraProjectionStore, type CassandraProjectionStoreOptions } from '../../engine/projections/cassandra-store.js';
import { DEFAULT_PROJECTION_LIMITS, LIVE_NAMESPACE, type ProjectionId, type ProjectionStoreOptions } from '../../engine/projections/store.js';
import { ReferenceProjection, runProjectionStoreSuite, type ProjectionStoreFixture } from '../conformance/projection-store.js';
import { CASSANDRA_TEST_DATA_CENTER, describeWithCassandra } from '../support/cassandra.js';

interface CassandraFixture extends ProjectionStoreFixture {
  readonly store: CassandraProjectionStore;
  readonly keyspace: string;
  reopen(): Promise<CassandraProjectionStore>;
  /** Another store on the same keyspace, as another engine process would open it; closed with the fixture. */
  another(options?: Partial<CassandraProjectionStoreOptions>): Promise<CassandraProjectionStore>;
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<unknown> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(isMillraceError(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
  return err;
}

const put = (key: string, value: number | string, timestampMs: number) => ({ type: 'put' as const, key, value, timestampMs });
const del = (key: string, timestampMs: number) => ({ type: 'del' as const, key, timestampMs });
const at = (nextOffset: number, partition = 0) => ({ topic: 'events', partition, nextOffset: offset(nextOffset) });
const projection = (label: string): ProjectionId => ({ name: `${label}-${randomBytes(4).toString('hex')}`, namespace: LIVE_NAMESPACE });

/** A port nothing listens on: connections to it are refused at once. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describeWithCassandra('CassandraProjectionStore', (contactPoints) => {
  let admin: cassandra.Client | undefined;
  /** One client for the tests' own CQL (dropping keyspaces, looking under the store). */
  const adminClient = async (): Promise<cassandra.Client> => {
    if (admin === undefined) {
      admin = new cassandra.Client({ contactPoints, localDataCenter: CASSANDRA_TEST_DATA_CENTER });
      await admin.connect();
    }
    return admin;
  };
  afterAll(async () => {
    await admin?.shutdown();
  });

  /** Each fixture has a keyspace of its own, dropped when it closes. */
  async function cassandraFixture(options: ProjectionStoreOptions): Promise<CassandraFixture> {
    const keyspace = `millrace_test_${randomBytes(6).toString('hex')}`;
    const make = (extra: Partial<CassandraProjectionStoreOptions> = {}): CassandraProjectionStore =>
      new CassandraProjectionStore({ ...options, contactPoints, localDataCenter: CASSANDRA_TEST_DATA_CENTER, keyspace, ...extra });
    const others: CassandraProjectionStore[] = [];
    let store = make();
    await store.open();
    return {
      keyspace,
      get store() {
        return store;
      },
      async reopen() {
        await store.close();
        store = make();
        await store.open();
        return store;
      },
      async another(extra = {}) {
        const other = make(extra);
        others.push(other);
        await other.open();
        return other;
      },
      async close() {
        await Promise.all([store, ...others].map((s) => s.close()));
        await (await adminClient()).execute(`DROP KEYSPACE IF EXISTS "${keyspace}"`);
      },
    };
  }

  runProjectionStoreSuite('CassandraProjectionStore', cassandraFixture);

  describe('on Cassandra', () => {
    const fixtures: CassandraFixture[] = [];
    const open = async (options: Partial<ProjectionStoreOptions> = {}): Promise<CassandraFixture> => {
      const fixture = await cassandraFixture({ historyRetentionMs: 1_000, ...options });
      fixtures.push(fixture);
      return fixture;
    };
    afterEach(async () => {
      for (const fixture of fixtures.splice(0)) await fixture.close();
    });

    it('given two processes applying the same batches to one partition, then each offset is applied by exactly one', async () => {
      const fixture = await open();
      const [a, b] = [fixture.store, await fixture.another()];
      const p = projection('race');
      for (let n = 1; n <= 20; n++) {
        const batch = { source: at(n), ops: [put('k', n, n), put(`only-${n}`, n, n)] };
        const results = await Promise.all([a.apply(p, batch), b.apply(p, batch)]);
        expect(results.map((r) => r.status).sort(), `offset ${n}`).toEqual(['applied', 'skipped']);
        expect(results.map((r) => r.position)).toEqual([n, n]);
      }
      expect(await b.positions(p)).toEqual([{ topic: 'events', partition: 0, nextOffset: 20, maxTimestampMs: 20 }]);
      expect(await a.get(p, 'k')).toEqual({ status: 'found', value: 20, timestampMs: 20 });
      const scanned = await b.scan(p, { limit: 100 });
      expect(scanned.status === 'ok' && scanned.items.length).toBe(21);
    });

    it('given two processes applying the same batches of several sources, then each is applied by exactly one', async () => {
      const fixture = await open();
      const [a, b] = [fixture.store, await fixture.another()];
      const p = projection('race-sources');
      for (let n = 1; n <= 10; n++) {
        const batch = { sources: [at(n, 0), at(2 * n, 1)], ops: [put('k', n, n)] };
        const results = await Promise.all([a.apply(p, batch), b.apply(p, batch)]);
        expect(results.map((r) => r.status).sort(), `round ${n}`).toEqual(['applied', 'skipped']);
      }
      expect((await a.positions(p)).map((x) => x.nextOffset)).toEqual([10, 20]);
    });

    it('given two processes applying to two partitions at once, then expiry follows one order of the two', async () => {
      const fixture = await open();
      const [a, b] = [fixture.store, await fixture.another()];
      for (let round = 0; round < 8; round++) {
        const p = projection('stream-race');
        await a.apply(p, { source: at(1, 0), ops: [put('seed', 1, 5_000)] });
        // Applied before `a`'s batch, `b`'s op is within the history; applied after it, it is 9 s too old.
        const [, late] = await Promise.all([
          a.apply(p, { source: at(2, 0), ops: [put('ahead', 1, 15_000)] }),
          b.apply(p, { source: at(1, 1), ops: [put('late', 1, 5_000)] }),
        ]);
        if (late.status !== 'applied') throw new Error(`expected applied, got ${late.status}`);
        const stored = await a.get(p, 'late');
        expect(stored.status === 'found' ? 0 : 1, `round ${round}`).toBe(late.expiredOps);
      }
    });

    it('given prunes racing the applies of another process, then every answer is the reference model\'s', async () => {
      const fixture = await open();
      const [a, b] = [fixture.store, await fixture.another()];
      const p = projection('prune-race');
      const reference = new ReferenceProjection(1_000);
      const keys = ['a', 'b', 'c', 'd'];
      const batches = Array.from({ length: 30 }, (_, i) => ({
        source: at(i + 1),
        ops: keys.map((key, j) => ((i + j) % 3 === 0 ? del(key, i * 100 + j) : put(key, i, i * 100 + j))),
      }));
      let applying = true;
      let prunes = 0;
      const pruning = (async () => {
        while (applying) {
          await a.prune(p);
          prunes++;
        }
      })();
      try {
        for (const batch of batches) {
          reference.apply(batch);
          await b.apply(p, batch);
        }
      } finally {
        applying = false;
        await pruning;
      }
      expect(prunes).toBeGreaterThan(0);
      await a.prune(p);
      for (const key of keys) {
        for (const asOfMs of [undefined, reference.boundaryMs, reference.boundaryMs + 150, 2_900]) {
          expect(await b.get(p, key, { asOfMs }), `${key} as of ${asOfMs}`).toEqual(reference.get(key, asOfMs));
        }
      }
    });

    it('shows one process the projections another applied, dropped and re-created', async () => {
      const fixture = await open();
      const [a, b] = [fixture.store, await fixture.another()];
      const p = projection('shared');
      await a.apply(p, { source: at(3), ops: [put('k', 'first', 1)] });
      await a.activate(p);
      expect(await b.get(p, 'k')).toMatchObject({ value: 'first' });
      expect(await b.active(p.name)).toBe(LIVE_NAMESPACE);
      await b.drop(p);
      expect(await a.get(p, 'k')).toEqual({ status: 'absent' });
      expect(await a.active(p.name)).toBeUndefined();
      expect(await a.apply(p, { source: at(1), ops: [put('k', 'second', 2)] })).toMatchObject({ status: 'applied' });
      expect(await b.get(p, 'k')).toMatchObject({ value: 'second' });
      expect(await b.positions(p)).toEqual([{ topic: 'events', partition: 0, nextOffset: 1, maxTimestampMs: 2 }]);
      // The pointer named the dropped projection, not only its namespace: the re-created one is not active.
      expect(await b.active(p.name)).toBeUndefined();
      expect((await b.list()).filter((x) => x.name === p.name)).toEqual([{ name: p.name, namespace: LIVE_NAMESPACE, active: false }]);
    });

    it('given a reopened store, then what was applied is there and replays are skipped', async () => {
      const fixture = await open();
      const p = projection('reopen');
      await fixture.store.apply(p, { source: at(2), ops: [put('k', 'v', 10)] });
      const reopened = await fixture.reopen();
      expect(await reopened.get(p, 'k')).toEqual({ status: 'found', value: 'v', timestampMs: 10 });
      expect(await reopened.apply(p, { source: at(2), ops: [put('k', 'replayed', 11)] })).toEqual({ status: 'skipped', position: 2 });
    });

    it('finishes a drop that a crash interrupted when a store opens', async () => {
      const fixture = await open();
      const p = projection('interrupted');
      await fixture.store.apply(p, { source: at(1), ops: [put('a', 1, 1)] });
      const cql = await adminClient();
      const ks = `"${fixture.keyspace}"`;
      const id = (await cql.execute(`SELECT id FROM ${ks}.projections WHERE bucket = 'all' AND name = ? AND namespace = ?`, [p.name, p.namespace], { prepare: true })).first().get('id');
      // What a drop does before its housekeeping: record the drop, then remove the registry row.
      await cql.execute(`INSERT INTO ${ks}.drops (bucket, id, name, namespace) VALUES ('all', ?, ?, ?)`, [id, p.name, p.namespace], { prepare: true });
      await cql.execute(`DELETE FROM ${ks}.projections WHERE bucket = 'all' AND name = ? AND namespace = ? IF id = ?`, [p.name, p.namespace, id], { prepare: true });
      expect((await cql.execute(`SELECT k FROM ${ks}.projection_data WHERE id = ?`, [id], { prepare: true })).rowLength).toBeGreaterThan(0);
      await fixture.another();
      expect((await cql.execute(`SELECT k FROM ${ks}.projection_data WHERE id = ?`, [id], { prepare: true })).rowLength).toBe(0);
      expect((await cql.execute(`SELECT id FROM ${ks}.drops`)).rowLength).toBe(0);
      expect(await fixture.store.list()).toEqual([]);
    });

    it('given no server at its contact points, then open fails with MILLRACE_LOG_UNAVAILABLE and nothing else works', async () => {
      const unreachable = `127.0.0.1:${await closedPort()}`;
      const store = new CassandraProjectionStore({
        contactPoints: [unreachable],
        keyspace: 'millrace_unreachable',
        historyRetentionMs: 1_000,
        connectTimeoutMs: 2_000,
      });
      const err = await expectCode(store.open(), 'MILLRACE_LOG_UNAVAILABLE');
      expect((err as Error).message).toContain(unreachable);
      expect((err as { retriable?: boolean }).retriable).toBe(true);
      await expectCode(store.get(projection('x'), 'k'), 'MILLRACE_LOG_NOT_OPEN');
      await store.close();
      await expectCode(store.open(), 'MILLRACE_LOG_CLOSED');
    });

    it('given a data centre the cluster does not have, then open fails with MILLRACE_CONFIG_INVALID', async () => {
      const store = new CassandraProjectionStore({ contactPoints, localDataCenter: 'nowhere', keyspace: 'millrace_no_dc', historyRetentionMs: 1_000 });
      const err = await expectCode(store.open(), 'MILLRACE_CONFIG_INVALID');
      expect((err as Error).message).toContain('nowhere');
      await store.close();
    });

    it('shares a client it was given, and leaves it open when it closes', async () => {
      const fixture = await open();
      const client = await adminClient();
      const shared = new CassandraProjectionStore({ contactPoints: [], client, keyspace: fixture.keyspace, historyRetentionMs: 1_000 });
      await shared.open();
      const p = projection('shared-client');
      await fixture.store.apply(p, { source: at(1), ops: [put('k', 1, 1)] });
      expect(await shared.get(p, 'k')).toMatchObject({ value: 1 });
      await shared.close();
      await expectCode(shared.get(p, 'k'), 'MILLRACE_LOG_CLOSED');
      expect((await client.execute('SELECT release_version FROM system.local')).rowLength).toBe(1);
    });

    it('applies a batch at the default limits: one partition, so Cassandra\'s batch size threshold does not apply', async () => {
      const fixture = await open({ limits: DEFAULT_PROJECTION_LIMITS });
      const p = projection('big');
      const valueBytes = DEFAULT_PROJECTION_LIMITS.maxValueBytes - 2; // plus the JSON quotes
      const count = Math.floor(DEFAULT_PROJECTION_LIMITS.maxBatchBytes / (valueBytes + 10));
      const ops = Array.from({ length: count }, (_, i) => put(`k${String(i).padStart(3, '0')}`, 'x'.repeat(valueBytes), 1));
      expect(await fixture.store.apply(p, { source: at(1), ops })).toMatchObject({ status: 'applied' });
      const page = await fixture.store.scan(p, { limit: 1000 });
      expect(page.status === 'ok' && page.items.length).toBe(count);
    });

    it('refuses nonsense options as programmer errors', () => {
      const base = { contactPoints, historyRetentionMs: 1 };
      expect(() => new CassandraProjectionStore({ ...base, keyspace: 'no-dashes' })).toThrow(RangeError);
      expect(() => new CassandraProjectionStore({ ...base, keyspace: 'k'.repeat(49) })).toThrow(RangeError);
      expect(() => new CassandraProjectionStore({ ...base, keyspace: 'ok', contactPoints: [] })).toThrow(RangeError);
      expect(() => new CassandraProjectionStore({ ...base, keyspace: 'ok', maxConflictRetries: 0 })).toThrow(RangeError);
      expect(() => new CassandraProjectionStore({ ...base, keyspace: 'ok', serialConsistency: cassandra.types.consistencies.quorum })).toThrow(RangeError);
    });
  });
});
