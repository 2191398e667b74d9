import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isMillraceError } from '../../engine/errors.js';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { silentLogger } from '../../engine/logger.js';
import { LevelProjectionStore } from '../../engine/projections/level-store.js';
import { ProjectionManager } from '../../engine/projections/manager.js';
import { defineProjection, projectionDeadLetterTopic, type ProjectionDefinition } from '../../engine/projections/projection.js';
import type { JsonValue, ProjectionId, ProjectionItem, ProjectionStore } from '../../engine/projections/store.js';
import { ProjectionTestDriver } from '../../engine/testing/projection-test-driver.js';
import { readTopic, tempDir } from '../support/runtime.js';

/** Per account: the balance and how many events made it (a read-modify-write handler). */
const balances = defineProjection({
  name: 'balances',
  topics: ['payments'],
  async handle(event, ctx) {
    const { account, amount } = event.value as { account: string; amount: number };
    if (typeof account !== 'string' || typeof amount !== 'number') throw new Error('a payment has an account and an amount');
    const before = (await ctx.get(account)) as { balance: number; events: number } | undefined;
    const balance = (before?.balance ?? 0) + amount;
    if (balance === 0) ctx.del(account);
    else ctx.put(account, { balance, events: (before?.events ?? 0) + 1 });
  },
});

interface Harness {
  readonly log: EmbeddedLog;
  readonly store: LevelProjectionStore;
  readonly manager: ProjectionManager;
  close(): Promise<void>;
}

const harnesses: Harness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

async function harness(
  definitions: ProjectionDefinition[],
  options: { partitions?: number; maxRecordsPerRead?: number; code?: Record<string, ProjectionDefinition[]>; historyRetentionMs?: number } = {},
): Promise<Harness> {
  const dir = await tempDir('millrace-projections-runtime-');
  const log = new EmbeddedLog({ path: `${dir.path}/log` });
  await log.open();
  await log.ensureTopic({ name: 'payments', partitions: options.partitions ?? 2 });
  const store = new LevelProjectionStore({ path: `${dir.path}/projections`, historyRetentionMs: options.historyRetentionMs ?? 10 * 365 * 24 * 3_600_000 });
  await store.open();
  const manager = new ProjectionManager({
    log,
    store,
    definitions,
    logger: silentLogger(),
    idleWaitMs: 5,
    ...(options.maxRecordsPerRead === undefined ? {} : { maxRecordsPerRead: options.maxRecordsPerRead }),
    loadCode: async (path) => {
      const code = options.code?.[path];
      if (code === undefined) throw new Error(`no code at ${path}`);
      return code;
    },
  });
  await manager.start();
  const h: Harness = {
    log,
    store,
    manager,
    async close() {
      await manager.stop();
      await store.close();
      await log.close();
      await dir.remove();
    },
  };
  harnesses.push(h);
  return h;
}

const payment = (account: string, amount: number, timestamp: number) => ({
  topic: 'payments',
  key: Buffer.from(account),
  value: Buffer.from(JSON.stringify({ account, amount })),
  timestamp,
});

/** Waits until the live namespace has applied every record the log holds now. */
async function caughtUp(manager: ProjectionManager, name: string): Promise<void> {
  const ends = new Map<string, number>();
  for (const topic of manager.info(name).topics) {
    for (const p of await manager.log.partitionOffsets(topic)) ends.set(`${topic}/${p.partition}`, p.end);
  }
  for (let i = 0; i < 4_000; i++) {
    const info = manager.info(name);
    if (info.state === 'failed') throw new Error(info.error);
    const positions = await manager.store.positions({ name, namespace: info.namespace });
    const at = new Map(positions.map((p) => [`${p.topic}/${p.partition}`, p.nextOffset as number]));
    if ([...ends].every(([tp, end]) => (at.get(tp) ?? 0) >= end)) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`${name} did not catch up: ${JSON.stringify(manager.info(name))}`);
}

async function scanAll(store: ProjectionStore, id: ProjectionId, asOfMs?: number): Promise<ProjectionItem[]> {
  const items: ProjectionItem[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.scan(id, { limit: 100, ...(cursor === undefined ? {} : { cursor }), ...(asOfMs === undefined ? {} : { asOfMs }) });
    if (page.status !== 'ok') throw new Error(page.status);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return items;
}

const model = (items: readonly ProjectionItem[]): Record<string, JsonValue> => Object.fromEntries(items.map((i) => [i.key, i.value]));

describe('projection runtime', () => {
  it('counts the changes the store dropped as older than its retained history', async () => {
    const { log, manager } = await harness([balances], { partitions: 1, historyRetentionMs: 1_000 });
    await log.append([payment('a', 5, 10_000_000)]);
    await caughtUp(manager, 'balances');
    expect(manager.info('balances').expiredOps).toBe(0);
    // An hour of event time earlier than the latest: outside the 1 s of retained history.
    await log.append([payment('b', 7, 10_000_000 - 3_600_000), payment('c', 1, 10_000_500)]);
    await caughtUp(manager, 'balances');
    expect(manager.info('balances').expiredOps).toBe(1);
    expect(await manager.get('balances', 'b')).toEqual({ status: 'absent' });
    expect(await manager.get('balances', 'c')).toMatchObject({ status: 'found' });
  });

  it('given payments, then the read model holds what the handler computed, and the position is the end of each partition', async () => {
    const { log, manager, store } = await harness([balances]);
    await log.append([payment('a', 5, 1_000), payment('b', 7, 1_001), payment('a', 3, 1_002), payment('b', -7, 1_003)]);
    await caughtUp(manager, 'balances');
    expect(await manager.get('balances', 'a')).toMatchObject({ status: 'found', value: { balance: 8, events: 2 } });
    expect(await manager.get('balances', 'b')).toEqual({ status: 'absent' });
    expect(await manager.get('balances', 'b', { asOfMs: 1_002 })).toMatchObject({ status: 'found', value: { balance: 7, events: 1 } });
    const ends = new Map((await log.partitionOffsets('payments')).map((p) => [p.partition, p.end]));
    for (const position of await store.positions({ name: 'balances', namespace: 'live' })) expect(position.nextOffset).toBe(ends.get(position.partition));
    expect(manager.info('balances')).toMatchObject({ store: 'leveldb', namespace: 'live', lag: 0, recordsApplied: 4, deadLetters: 0 });
  });

  it('given a record the handler refuses or cannot decode, then it is dead-lettered with the reason and the rest is applied', async () => {
    const { log, manager } = await harness([balances]);
    await log.append([
      payment('a', 5, 1_000),
      { topic: 'payments', key: Buffer.from('a'), value: Buffer.from('{"account": "a", "amo'), timestamp: 1_001 },
      { topic: 'payments', key: Buffer.from('a'), value: Buffer.from('{"account": "a"}'), timestamp: 1_002 },
      payment('a', 1, 1_003),
    ]);
    await caughtUp(manager, 'balances');
    expect(await manager.get('balances', 'a')).toMatchObject({ value: { balance: 6, events: 2 } });
    const dead = await readTopic(log, projectionDeadLetterTopic('balances'));
    expect(dead.map((r) => JSON.parse(r.value!.toString()).code).sort()).toEqual(['MILLRACE_DESERIALIZATION', 'MILLRACE_PROCESSING']);
    const body = JSON.parse(dead[0]!.value!.toString());
    expect(body).toMatchObject({ status: expect.any(Number), detail: expect.any(String), source: { topic: 'payments' }, original: { encoding: 'base64' } });
    expect(manager.info('balances').deadLetters).toBe(2);
  });

  it('refuses an unknown projection with MILLRACE_PROJECTION_UNKNOWN', async () => {
    const { manager } = await harness([balances]);
    const err = await manager.get('nope', 'a').then(() => undefined, (e: unknown) => e);
    expect(isMillraceError(err, 'MILLRACE_PROJECTION_UNKNOWN')).toBe(true);
  });

  it('given a rebuild while reads and writes go on, then reads never miss a key and the new generation takes over', async () => {
    const { log, manager, store } = await harness([balances]);
    const accounts = Array.from({ length: 50 }, (_, i) => `acct-${String(i).padStart(2, '0')}`);
    await log.append(accounts.flatMap((a, i) => Array.from({ length: 40 }, (_, j) => payment(a, 1 + ((i + j) % 5), 1_000 + i * 100 + j))));
    await caughtUp(manager, 'balances');
    let reading = true;
    let reads = 0;
    const missing: string[] = [];
    const reader = (async () => {
      while (reading) {
        const account = accounts[reads % accounts.length]!;
        const got = await manager.get('balances', account);
        if (got.status !== 'found') missing.push(`${account}: ${got.status}`);
        reads++;
      }
    })();
    let rebuilt;
    try {
      const status = await manager.rebuild('balances');
      expect(status).toMatchObject({ namespace: 'gen-2', state: 'running' });
      await log.append(accounts.map((a, i) => payment(a, 100, 10_000 + i)));
      rebuilt = await manager.rebuilt('balances');
      await log.append([payment('acct-00', 1_000, 20_000)]);
      await caughtUp(manager, 'balances');
    } finally {
      reading = false;
      await reader;
    }
    expect(rebuilt.state).toBe('switched');
    expect(missing).toEqual([]);
    expect(reads).toBeGreaterThan(0);
    expect(manager.info('balances').namespace).toBe('gen-2');
    expect(await store.active('balances')).toBe('gen-2');
    expect((await store.list()).filter((p) => p.name === 'balances').map((p) => p.namespace)).toEqual(['gen-2']);
    // The same read model as a driver fed every record in order.
    const driver = new ProjectionTestDriver(balances);
    for (const record of await readTopic(log, 'payments')) await driver.pipe({ topic: 'payments', key: record.key!.toString(), value: JSON.parse(record.value!.toString()), timestampMs: record.timestamp });
    expect(model(await scanAll(store, { name: 'balances', namespace: 'gen-2' }))).toEqual(Object.fromEntries(driver.entries()));
  });

  it('for random moments T, asOf=T answers what a fresh replay of the log up to T builds', async () => {
    // The ledger keeps a total over every partition, too: its versions must follow event time across partitions.
    const ledger = (await import('../fixtures/projections/ledger.mjs')).default as ProjectionDefinition;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ account: fc.constantFrom('a', 'b', 'c', 'd', 'e'), amount: fc.integer({ min: -3, max: 3 }), gapMs: fc.integer({ min: 0, max: 50 }) }), { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 0, max: 3_500 }), { minLength: 1, maxLength: 4 }),
        async (events, moments) => {
          const { log, manager, store } = await harness([balances, ledger], { partitions: 3, maxRecordsPerRead: 4 });
          let t = 1_000;
          await log.append(events.map((e) => payment(e.account, e.amount, (t += e.gapMs))));
          await caughtUp(manager, 'balances');
          await caughtUp(manager, 'ledger');
          for (const moment of moments) {
            const asOfMs = 1_000 + moment;
            for (const name of ['balances', 'ledger']) {
              const live = model(await scanAll(store, { name, namespace: 'live' }, asOfMs));
              const replay = await manager.replays.create({ projection: name, to: new Date(asOfMs).toISOString() });
              const done = await manager.replays.finished(replay.id);
              expect(done.state).toBe('finished');
              const fresh = model(await scanAll(store, { name, namespace: done.namespace }));
              expect(live).toEqual(fresh);
              await manager.replays.delete(replay.id);
            }
          }
          await harnesses.pop()!.close();
        },
      ),
      { numRuns: 15 },
    );
  });

  it('given changed handler code, then the replay diff names exactly the keys whose read model changes', async () => {
    // The new code ignores refunds (negative amounts) on accounts starting with "x".
    const changed = defineProjection({
      ...balances,
      async handle(event, ctx) {
        const { account, amount } = event.value as { account: string; amount: number };
        if (account.startsWith('x') && amount < 0) return;
        await balances.handle(event, ctx);
      },
    });
    // One partition, so that steps come in the order records were appended.
    const { log, manager } = await harness([balances], { partitions: 1, code: { '/code/changed.mjs': [changed] } });
    const accounts = ['xa', 'xb', 'xc', 'ya', 'yb', 'za'];
    const records = [];
    let t = 1_000;
    for (let i = 0; i < 300; i++) {
      const account = accounts[(i * 7) % accounts.length]!;
      // xc never gets a refund: unchanged by the new code although its name matches.
      const amount = account === 'xc' ? 2 : i % 4 === 0 ? -1 : 3;
      records.push(payment(account, amount, t++));
    }
    await log.append(records);
    await caughtUp(manager, 'balances');
    const replay = await manager.replays.create({ projection: 'balances', code: '/code/changed.mjs' });
    const done = await manager.replays.finished(replay.id);
    expect(done).toMatchObject({ state: 'finished', progress: { percent: 100, total: 300, records: 300 } });

    // What the diff must name: run both codes over the same records and compare.
    const [before, after] = [new ProjectionTestDriver(balances), new ProjectionTestDriver(changed)];
    for (const record of await readTopic(log, 'payments')) {
      const input = { topic: 'payments', key: record.key!.toString(), value: JSON.parse(record.value!.toString()), timestampMs: record.timestamp };
      await before.pipe(input);
      await after.pipe(input);
    }
    const expected = accounts.filter((a) => JSON.stringify(before.get(a)) !== JSON.stringify(after.get(a)));
    expect(expected.length).toBeGreaterThan(0);
    expect(expected).not.toContain('xc');

    const diff = [];
    let cursor: string | undefined;
    do {
      const page = await manager.replays.diff(replay.id, { limit: 2, ...(cursor === undefined ? {} : { cursor }) });
      diff.push(...page.entries);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    expect(diff.map((d) => d.key)).toEqual(expected);
    for (const entry of diff) expect(entry).toMatchObject({ change: 'changed', sandbox: after.get(entry.key), live: before.get(entry.key) });

    // Steps: every record, in order, with the state before and after.
    const steps = await manager.replays.steps(replay.id, { limit: 3 });
    expect(steps.steps).toHaveLength(3);
    expect(steps.nextCursor).toBeDefined();
    expect(steps.steps[0]).toMatchObject({ seq: 0, event: { topic: 'payments', key: 'xa', value: { account: 'xa', amount: -1 } }, before: {}, after: {}, outputs: [] });
    expect(steps.steps[1]).toMatchObject({ seq: 1, event: { key: 'xb' }, before: { xb: null }, after: { xb: { balance: 3, events: 1 } } });
    expect(steps.steps[1]).toMatchObject({ outputs: [{ type: 'put', key: 'xb', value: { balance: 3, events: 1 } }] });
  });

  it('given a replay of a later slice, then the sandbox starts from live as of the slice, and the same code gives an empty diff', async () => {
    const { log, manager } = await harness([balances]);
    let t = 1_000;
    await log.append(Array.from({ length: 200 }, (_, i) => payment(`k${i % 10}`, 1 + (i % 3), t++)));
    await caughtUp(manager, 'balances');
    const replay = await manager.replays.create({ projection: 'balances', from: new Date(1_100).toISOString() });
    const done = await manager.replays.finished(replay.id);
    expect(done).toMatchObject({ state: 'finished', seededAsOfMs: 1_099, keysChanged: 10 });
    expect(done.progress.total).toBe(100);
    expect((await manager.replays.diff(replay.id)).entries).toEqual([]);
  });

  it('refuses a replay with bad bounds, and an unknown replay id', async () => {
    const { manager } = await harness([balances]);
    for (const request of [{ projection: 'balances', from: 'yesterday' }, { projection: 'balances', to: -1 }]) {
      const err = await manager.replays.create(request).then(() => undefined, (e: unknown) => e);
      expect(isMillraceError(err, 'MILLRACE_REPLAY_INVALID'), String(err)).toBe(true);
    }
    const unknown = await manager.replays.diff('nope').then(() => undefined, (e: unknown) => e);
    expect(isMillraceError(unknown, 'MILLRACE_REPLAY_UNKNOWN')).toBe(true);
  });
});

describe('topology replay', () => {
  it('replays a topology over its inputs with steps of state and outputs; changed code names exactly the keys whose output changes', async () => {
    const { default: keyedCount } = await import('../../topologies/examples/keyed-count.js');
    const { StreamsBuilder } = await import('../../engine/topology/builder.js');
    const { Serdes } = await import('../../engine/serde/serde.js');
    const { startRunner, caughtUp: runnerCaughtUp } = await import('../support/runtime.js');
    const context = { options: {}, registry: undefined as never, services: undefined as never };
    const topology = keyedCount(context).build();
    // The changed code counts only events whose value is even.
    const changed = new StreamsBuilder('keyed-count');
    changed
      .stream<string, number>('events', { name: 'events', valueSerde: Serdes.json<number>() })
      .filter('even', (r) => r.value % 2 === 0)
      .groupByKey('by-key')
      .count('counts')
      .toStream('count-changes')
      .to('event-counts', { name: 'to-output', valueSerde: Serdes.json<number>() });

    const dir = await tempDir('millrace-topology-replay-');
    const log = new EmbeddedLog({ path: `${dir.path}/log` });
    await log.open();
    await log.ensureTopic({ name: 'events', partitions: 2 });
    await log.ensureTopic({ name: 'event-counts', partitions: 2 });
    const store = new LevelProjectionStore({ path: `${dir.path}/projections`, historyRetentionMs: 1_000_000_000 });
    await store.open();
    const runner = startRunner(log, topology);
    await runner.start();
    const manager = new ProjectionManager({
      log,
      store,
      definitions: [],
      logger: silentLogger(),
      topology: (id) => (id === 'keyed-count' ? topology : undefined),
      loadTopologyCode: async () => changed.build(),
    });
    await manager.start();
    try {
      const keys = ['a', 'b', 'c', 'd'];
      let t = 1_000;
      // "d" only ever gets odd values; "c" only even ones: the change affects a, b and d, not c.
      const values: Record<string, number[]> = { a: [1, 2, 3, 4], b: [2, 5, 7], c: [2, 4, 6], d: [1, 3] };
      await log.append(keys.flatMap((k) => values[k]!.map((v) => ({ topic: 'events', key: Buffer.from(k), value: Buffer.from(JSON.stringify(v)), timestamp: t++ }))));
      await runnerCaughtUp(runner);

      const same = await manager.replays.finished((await manager.replays.create({ topology: 'keyed-count' })).id);
      expect(same).toMatchObject({ state: 'finished', kind: 'topology', progress: { total: 12, records: 12, applied: 12 } });
      expect((await manager.replays.diff(same.id)).entries).toEqual([]);
      const steps = await manager.replays.steps(same.id, { limit: 1 });
      expect(steps.steps[0]).toMatchObject({
        seq: 0,
        event: { topic: 'events', key: 'a', value: 1 },
        before: { 'counts/"a"': null },
        after: { 'counts/"a"': expect.anything() },
        outputs: [{ topic: 'event-counts', key: 'a', value: 1 }],
      });

      const other = await manager.replays.finished((await manager.replays.create({ topology: 'keyed-count', code: '/changed.mjs' })).id);
      expect(other.state).toBe('finished');
      const diff = await manager.replays.diff(other.id);
      expect(diff.entries.map((e) => e.key)).toEqual(['event-counts/"a"', 'event-counts/"b"', 'event-counts/"d"']);
      expect(diff.entries).toEqual([
        { key: 'event-counts/"a"', change: 'changed', sandbox: 2, live: 4 },
        { key: 'event-counts/"b"', change: 'changed', sandbox: 1, live: 3 },
        { key: 'event-counts/"d"', change: 'removed', sandbox: null, live: 2 },
      ]);
      const unknown = await manager.replays.create({ topology: 'nope' }).then(() => undefined, (e: unknown) => e);
      expect(isMillraceError(unknown, 'MILLRACE_REPLAY_INVALID')).toBe(true);
    } finally {
      await manager.stop();
      await runner.stop();
      await store.close();
      await log.close();
      await dir.remove();
    }
  });
});
