import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildHttpServer } from '../../engine/http/server.js';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { partitionForKey } from '../../engine/log/partitioner.js';
import { Metrics } from '../../engine/metrics/metrics.js';
import { EmbeddedSchemaRegistry } from '../../engine/serde/embedded-registry.js';
import { tempDir } from '../support/runtime.js';

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of open.splice(0)) await close();
});

async function harness(): Promise<{ log: EmbeddedLog; app: FastifyInstance }> {
  const dir = await tempDir('millrace-lookup-');
  const log = new EmbeddedLog({ path: dir.path });
  await log.open();
  const registry = new EmbeddedSchemaRegistry(log);
  await registry.open();
  const app = await buildHttpServer({ log, registry, metrics: new Metrics({ defaultMetrics: false }), schemasDir: 'schemas', topologies: () => [], status: async () => ({}) as never });
  open.push(async () => {
    await app.close();
    await log.close();
    await dir.remove();
  });
  return { log, app };
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

describe('lookups', () => {
  it('finds a key\'s records through the partitioner, newest first, within a bounded scan', async () => {
    const { log, app } = await harness();
    await log.ensureTopic({ name: 'orders', partitions: 3 });
    // Keyed appends go where the partitioner says; "ada" has 5 records among many others.
    const records = Array.from({ length: 300 }, (_, i) => ({ topic: 'orders', key: Buffer.from(i % 60 === 0 ? 'ada' : `user-${i}`), value: json({ i }) }));
    await log.append(records);
    const partition = partitionForKey(Buffer.from('ada'), 3);
    const found = (await app.inject({ method: 'GET', url: '/topics/orders/keys/ada?limit=3' })).json();
    expect(found).toMatchObject({ topic: 'orders', key: 'ada', partition, complete: true });
    expect(found.records.map((r: { value: { i: number } }) => r.value.i)).toEqual([240, 180, 120]);
    expect(found.records.every((r: { partition: number; key: string }) => r.partition === partition && r.key === 'ada')).toBe(true);
    const all = (await app.inject({ method: 'GET', url: '/topics/orders/keys/ada?limit=100' })).json();
    expect(all.records).toHaveLength(5);
    expect(all.complete).toBe(true);
    // A scan bounded to the newest records of the partition: only what it read, and it says it may have missed older ones.
    const bounded = (await app.inject({ method: 'GET', url: '/topics/orders/keys/ada?limit=100&maxScan=10' })).json();
    expect(bounded.scanned).toBe(10);
    expect(bounded.complete).toBe(false);
    expect((await app.inject({ method: 'GET', url: '/topics/orders/keys/nobody' })).json()).toMatchObject({ records: [], complete: true });
    expect((await app.inject({ method: 'GET', url: '/topics/nope/keys/ada' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/topics/orders/keys/ada?limit=0' })).statusCode).toBe(422);
  });

  it('follows a prediction\'s lineage to its feature vector and transaction, each once', async () => {
    const { log, app } = await harness();
    for (const name of ['transactions', 'features', 'predictions']) await log.ensureTopic({ name, partitions: 1 });
    await log.append([{ topic: 'transactions', key: Buffer.from('u1'), value: json({ id: 't1', amount: 42 }) }]);
    await log.append([{ topic: 'features', key: Buffer.from('u1'), value: json({ transaction_id: 't1', features: { amount: 42 }, source: { topic: 'transactions', partition: 0, offset: 0 } }) }]);
    await log.append([
      {
        topic: 'predictions',
        key: Buffer.from('t1'),
        value: json({
          transaction_id: 't1',
          version: 'v2',
          model_sha256: 'abc',
          lineage: { features: { topic: 'features', partition: 0, offset: 0 }, transaction: { topic: 'transactions', partition: 0, offset: 0 }, gone: { topic: 'features', partition: 0, offset: 99 } },
        }),
      },
    ]);
    const answer = (await app.inject({ method: 'GET', url: '/lineage/predictions/0/0' })).json();
    expect(answer.root).toEqual({ topic: 'predictions', partition: 0, offset: 0 });
    expect(answer.records.map((n: { depth: number; via: string | null; record: { topic: string } }) => [n.depth, n.via, n.record.topic])).toEqual([
      [0, null, 'predictions'],
      [1, 'features', 'features'],
      [1, 'transaction', 'transactions'],
    ]);
    expect(answer.records[0].links).toEqual([
      { name: 'features', topic: 'features', partition: 0, offset: 0, found: true },
      { name: 'transaction', topic: 'transactions', partition: 0, offset: 0, found: true },
      { name: 'gone', topic: 'features', partition: 0, offset: 99, found: false },
    ]);
    // The feature vector's source is the transaction already shown: linked, not repeated.
    expect(answer.records[1].links).toEqual([{ name: 'source', topic: 'transactions', partition: 0, offset: 0, found: true }]);
    expect(answer.records[2].record.value).toEqual({ id: 't1', amount: 42 });
    const missing = await app.inject({ method: 'GET', url: '/lineage/predictions/0/7' });
    expect(missing.statusCode).toBe(404);
    expect(missing.headers['content-type']).toMatch(/^application\/problem\+json/);
  });
});
