/**
 * Exactly-once projection updates, tested by force: a real `millrace up` keeps the `ledger` projection
 * (test/fixtures/projections/ledger.mjs: per account a count, a sum and an order-sensitive hash chain, plus a total
 * over every partition) while payments are produced over HTTP; it is SIGKILLed at random moments and restarted each
 * time. Afterwards the read model, read over HTTP, must equal what a clean run of the same handler over the log's
 * records builds: a record applied twice, lost or reordered changes a chain or the total.
 *
 * Runs on the LevelDB store and on Cassandra (test/infra/cassandra, started by the test setup).
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import cassandra from 'cassandra-driver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import type { ProjectionDefinition } from '../../engine/projections/projection.js';
import { ProjectionTestDriver } from '../../engine/testing/projection-test-driver.js';
import { describeWithCassandra } from '../support/cassandra.js';
import { freePort, REPO_ROOT, requireBuild, seededRandom, startEngine, type EngineProcess } from '../support/engine-process.js';
import { readTopic, tempDir } from '../support/runtime.js';

const EVENTS = 30_000;
const BATCH = 500;
const ACCOUNTS = 400;
const PARTITIONS = 4;
const KILLS = 5;
const SEED = Number(process.env['MILLRACE_CRASH_SEED'] ?? Date.now() % 1_000_000);
const LEDGER = join(REPO_ROOT, 'test', 'fixtures', 'projections', 'ledger.mjs');

interface ProjectionView {
  name: string;
  lag: number;
  partitions: Array<{ topic: string; partition: number; position: number }>;
}

async function postJson(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** Waits until the projection has applied every record the topic holds. */
async function waitApplied(engine: EngineProcess, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const topic = (await (await fetch(`${engine.url}/topics/payments`)).json()) as { offsets: Array<{ partition: number; end: number }> };
    const ends = new Map(topic.offsets.map((o) => [o.partition, o.end]));
    const { projections } = (await (await fetch(`${engine.url}/projections`)).json()) as { projections: ProjectionView[] };
    const ledger = projections.find((p) => p.name === 'ledger')!;
    if (ledger.partitions.length === PARTITIONS && ledger.partitions.every((p) => p.position === ends.get(p.partition))) return;
    if (Date.now() > deadline) throw new Error(`not applied: ${JSON.stringify({ ledger, ends: [...ends] })}\n${engine.stderr().slice(-3_000)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Every key and value of the projection, over HTTP, page by page. */
async function readModel(engine: EngineProcess): Promise<Record<string, unknown>> {
  const model: Record<string, unknown> = {};
  let cursor: string | undefined;
  do {
    const url = new URL(`${engine.url}/projections/ledger`);
    url.searchParams.set('limit', '250');
    if (cursor !== undefined) url.searchParams.set('cursor', cursor);
    const page = (await (await fetch(url)).json()) as { items: Array<{ key: string; value: unknown }>; nextCursor?: string };
    for (const item of page.items) model[item.key] = item.value;
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return model;
}

/** The clean run: the same handler over every record of the log, in order, in memory. */
async function cleanRun(dataDir: string): Promise<Record<string, unknown>> {
  const log = new EmbeddedLog({ path: join(dataDir, 'log') });
  await log.open();
  try {
    const ledger = (await import(LEDGER)).default as ProjectionDefinition;
    const driver = new ProjectionTestDriver(ledger);
    const records = (await readTopic(log, 'payments')).sort((a, b) => a.partition - b.partition || a.offset - b.offset);
    for (const r of records) {
      await driver.pipe({ topic: 'payments', partition: r.partition, key: r.key!.toString(), value: JSON.parse(r.value!.toString()), timestampMs: r.timestamp });
    }
    return Object.fromEntries(driver.entries());
  } finally {
    await log.close();
  }
}

function crashTest(storeName: string, projectionStore: () => Record<string, unknown>): void {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let configFile: string;

  beforeAll(async () => {
    requireBuild();
    dir = await tempDir(`millrace-projection-crash-${storeName}-`);
    configFile = join(dir.path, 'millrace.config.json');
    await writeFile(
      configFile,
      JSON.stringify({
        topics: [{ name: 'payments', partitions: PARTITIONS }],
        projections: [LEDGER],
        projectionStore: projectionStore(),
        log: { maintenanceIntervalMs: 0 },
      }),
    );
  });

  afterAll(async () => {
    await dir?.remove();
  });

  it(`applies every payment exactly once through ${KILLS} SIGKILLs on ${storeName} (seed ${SEED})`, { timeout: 600_000 }, async () => {
    const random = seededRandom(SEED);
    const port = await freePort();
    const dataDir = join(dir.path, 'data');
    let engine = await startEngine({ config: configFile, dataDir, port, timeoutMs: 60_000 });

    // The producer: batches in order, retrying a batch whose request failed (the engine may have died under it; a
    // retried batch may then be in the log twice, which the clean run sees too).
    let sent = 0;
    const producer = (async () => {
      for (let batch = 0; batch < EVENTS / BATCH; batch++) {
        const records = Array.from({ length: BATCH }, (_, i) => {
          const seq = batch * BATCH + i;
          const account = `acct-${(seq * 7919) % ACCOUNTS}`;
          return { key: account, value: { account, amount: 1 + (seq % 97) } };
        });
        for (;;) {
          try {
            const response = await postJson(`${engine.url}/topics/payments/events`, { records });
            await response.arrayBuffer();
            if (response.ok) break;
            throw new Error(`produce answered ${response.status}`);
          } catch (err) {
            if (err instanceof Error && err.message.startsWith('produce answered')) throw err;
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        }
        sent += BATCH;
      }
    })();

    const thresholds = Array.from({ length: KILLS }, () => Math.floor((0.05 + random() * 0.9) * EVENTS)).sort((a, b) => a - b);
    const kills: string[] = [];
    for (const threshold of thresholds) {
      while (sent < threshold) await new Promise((resolve) => setTimeout(resolve, 2));
      const delayMs = Math.round(random() * 200);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      const { projections } = (await (await fetch(`${engine.url}/projections`)).json()) as { projections: ProjectionView[] };
      kills.push(`${sent} sent +${delayMs} ms (lag ${projections[0]?.lag})`);
      expect(await engine.kill('SIGKILL')).toBe('SIGKILL');
      engine = await startEngine({ config: configFile, dataDir, port, timeoutMs: 60_000 });
    }
    await producer;
    console.log(`${storeName}, seed ${SEED}: killed after ${kills.join(', ')}`);
    await waitApplied(engine);
    const crashed = await readModel(engine);
    expect(await engine.kill('SIGTERM')).toBe(0);

    const clean = await cleanRun(dataDir);
    expect(Object.keys(crashed).length).toBe(ACCOUNTS + 1);
    expect((crashed['_totals'] as { count: number }).count).toBeGreaterThanOrEqual(EVENTS);
    expect(crashed).toEqual(clean);
  });
}

describe('projection exactly-once under kill -9: LevelDB', () => {
  crashTest('leveldb', () => ({ kind: 'level' }));
});

describeWithCassandra('projection exactly-once under kill -9: Cassandra', (contactPoints) => {
  const keyspace = `crash_${randomBytes(4).toString('hex')}`;
  afterAll(async () => {
    const client = new cassandra.Client({ contactPoints, localDataCenter: 'datacenter1' });
    try {
      await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    } finally {
      await client.shutdown();
    }
  });
  crashTest('cassandra', () => ({ kind: 'cassandra', cassandra: { contactPoints, keyspace } }));
});
