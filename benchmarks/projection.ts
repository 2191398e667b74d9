/**
 * Projection queries while a projection runner ingests, against the same store idle, in the same process:
 *
 * - a `balances` projection (read-modify-write per account, as in the projection tests) over `payments` on the
 *   embedded log, in a `LevelProjectionStore`, run by a `ProjectionManager`; `accounts` accounts are loaded and
 *   applied before anything is measured;
 * - idle: `ProjectionManager.get` of random accounts, `concurrency` queries in flight, for `phaseMs`;
 * - ingesting: the same queries while a producer appends payments as fast as the runner applies them (at most
 *   `windowRecords` unapplied), for the same time.
 *
 * Each phase reports queries/s, CPU-µs per query (the whole process: the runner's work counts against the queries
 * while ingesting, which is the cost of serving reads beside ingestion) and p50/p99 query latency.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { EmbeddedLog } from '../engine/log/embedded/embedded-log.js';
import type { AppendRecord } from '../engine/log/log.js';
import { silentLogger } from '../engine/logger.js';
import { LevelProjectionStore } from '../engine/projections/level-store.js';
import { ProjectionManager } from '../engine/projections/manager.js';
import { defineProjection } from '../engine/projections/projection.js';
import type { Measurement } from './measure.js';

export interface ProjectionBenchmarkOptions {
  readonly accounts: number;
  readonly partitions: number;
  readonly phaseMs: number;
  readonly concurrency: number;
  readonly windowRecords: number;
}

export interface ProjectionFigures {
  readonly idle: Measurement;
  readonly ingesting: Measurement;
  /** Payments applied per second during the ingesting phase. */
  readonly ingestedPerS: number;
}

const APPEND_BATCH = 500;
const CATCH_UP_TIMEOUT_MS = 300_000;

const balances = defineProjection({
  name: 'balances',
  topics: ['payments'],
  async handle(event, ctx) {
    const { account, amount } = event.value as { account: string; amount: number };
    const before = (await ctx.get(account)) as { balance: number; events: number } | undefined;
    ctx.put(account, { balance: (before?.balance ?? 0) + amount, events: (before?.events ?? 0) + 1 });
  },
});

const account = (i: number, accounts: number): string => `acct-${(i * 7919) % accounts}`;

function payment(i: number, accounts: number): AppendRecord {
  const name = account(i, accounts);
  return { topic: 'payments', key: Buffer.from(name), value: Buffer.from(JSON.stringify({ account: name, amount: (i % 200) - 50 })) };
}

/** `concurrency` query loops for `phaseMs`: queries/s, CPU per query and latency percentiles. */
async function queryPhase(manager: ProjectionManager, options: ProjectionBenchmarkOptions): Promise<Measurement> {
  const latenciesMs: number[] = [];
  let queries = 0;
  let missing = 0;
  let seed = 12345;
  const next = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const cpu = process.cpuUsage();
  const started = performance.now();
  const until = started + options.phaseMs;
  const loop = async (): Promise<void> => {
    while (performance.now() < until) {
      const t0 = performance.now();
      const result = await manager.get('balances', account(next() % options.accounts, options.accounts));
      // Bounded: one latency in 16 is kept.
      if (queries++ % 16 === 0) latenciesMs.push(performance.now() - t0);
      if (result.status !== 'found') missing++;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
  const seconds = (performance.now() - started) / 1000;
  const usage = process.cpuUsage(cpu);
  if (missing > 0) throw new Error(`${missing} of ${queries} queries found no balance: the projection was not loaded`);
  latenciesMs.sort((a, b) => a - b);
  const at = (p: number): number => latenciesMs[Math.min(latenciesMs.length - 1, Math.floor((p / 100) * latenciesMs.length))]!;
  return { eventsPerS: queries / seconds, cpuUsPerEvent: (usage.user + usage.system) / queries, p50Ms: at(50), p99Ms: at(99) };
}

async function caughtUp(manager: ProjectionManager, appended: number): Promise<void> {
  const started = performance.now();
  while (manager.info('balances').recordsApplied < appended || manager.info('balances').lag > 0) {
    const info = manager.info('balances');
    if (info.error !== undefined) throw new Error(`the balances projection failed: ${info.error}`);
    if (performance.now() - started > CATCH_UP_TIMEOUT_MS) throw new Error(`the balances projection applied ${info.recordsApplied} of ${appended} payments`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** One round: load, then the idle phase and the ingesting phase. */
export async function projectionRound(options: ProjectionBenchmarkOptions): Promise<ProjectionFigures> {
  const dir = await mkdtemp(join(tmpdir(), 'millrace-bench-projection-'));
  const log = new EmbeddedLog({ path: join(dir, 'log') });
  const store = new LevelProjectionStore({ path: join(dir, 'projections'), historyRetentionMs: 24 * 3_600_000 });
  let manager: ProjectionManager | undefined;
  try {
    await log.open();
    await log.createTopic({ name: 'payments', partitions: options.partitions });
    await store.open();
    manager = new ProjectionManager({ log, store, definitions: [balances], logger: silentLogger(), idleWaitMs: 5 });
    await manager.start();
    let appended = 0;
    const appendBatch = async (): Promise<void> => {
      const records: AppendRecord[] = [];
      for (let i = appended; i < appended + APPEND_BATCH; i++) records.push(payment(i, options.accounts));
      await log.append(records);
      appended += APPEND_BATCH;
    };
    while (appended < options.accounts) await appendBatch();
    await caughtUp(manager, appended);
    // Applied is not yet stored: the runner's last batch may still be writing. Every account must answer first.
    for (let i = 0; i < options.accounts; i++) {
      while ((await manager.get('balances', account(i, options.accounts))).status !== 'found') {
        if (manager.info('balances').error !== undefined) throw new Error(`the balances projection failed: ${manager.info('balances').error}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }

    const idle = await queryPhase(manager, options);

    const appliedBefore = manager.info('balances').recordsApplied;
    let ingesting = true;
    const producer = (async () => {
      while (ingesting) {
        if (appended - manager.info('balances').recordsApplied > options.windowRecords) await new Promise((resolve) => setTimeout(resolve, 1));
        else await appendBatch();
      }
    })();
    const started = performance.now();
    let busy: Measurement;
    try {
      busy = await queryPhase(manager, options);
    } finally {
      ingesting = false;
      await producer;
    }
    const ingestedPerS = (manager.info('balances').recordsApplied - appliedBefore) / ((performance.now() - started) / 1000);
    return { idle, ingesting: busy, ingestedPerS };
  } finally {
    await manager?.stop();
    await store.close();
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
}
