/**
 * A windowed topology (hopping windows in event time, emitted once when they close, with late records) runs as a real
 * `millrace up` on the embedded log and is SIGKILLed at random moments while windows are open. Its output and its
 * late records must equal, partition for partition and record for record, what the TopologyTestDriver produces
 * from the same input.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import type { LogRecord } from '../../engine/log/log.js';
import { partitionForKey } from '../../engine/log/partitioner.js';
import type { TopologyContext } from '../../engine/runtime/modules.js';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import windowedSpend, { type Payment } from '../../topologies/examples/windowed-spend.js';
import { freePort, requireBuild, seededRandom, startEngine, type EngineProcess } from '../support/engine-process.js';
import { readTopic, tempDir } from '../support/runtime.js';

const PAYMENTS = 30_000;
const BATCH = 500;
const USERS = 120;
const PARTITIONS = 3;
const KILLS = 5;
const SEED = Number(process.env['MILLRACE_CRASH_SEED'] ?? Date.now() % 1_000_000);
const T0 = Date.parse('2026-01-01T00:00:00Z');
const OPTIONS = { input: 'payments', output: 'spend-windows', allowedLatenessMs: 5_000 };

const config = {
  topics: [
    { name: 'payments', partitions: PARTITIONS },
    { name: 'spend-windows', partitions: PARTITIONS },
  ],
  topologies: [{ module: 'examples/windowed-spend', options: OPTIONS }],
  runtime: { commitIntervalMs: 50 },
  log: { maintenanceIntervalMs: 0 },
};

/** Payments 40 ms apart in event time, jittered up to 30 s back (within grace + lateness) and 1 % far too late. */
function payments(random: () => number): Payment[] {
  return Array.from({ length: PAYMENTS }, (_, i) => {
    const late = random() < 0.01;
    const jitter = late ? -(120_000 + Math.floor(random() * 180_000)) : Math.floor((random() - 0.8) * 30_000);
    return {
      id: `p${i}`,
      user: `u${Math.floor(random() * USERS)}`,
      amount: Math.round(random() * 10_000) / 100,
      at: new Date(T0 + i * 40 + jitter).toISOString(),
    };
  });
}

async function produce(engine: () => EngineProcess, records: unknown[]): Promise<void> {
  for (;;) {
    try {
      const response = await fetch(`${engine().url}/topics/payments/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ records }),
      });
      await response.arrayBuffer();
      if (response.ok) return;
      throw new Error(`produce answered ${response.status}`);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('produce answered')) throw err;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

async function waitCaughtUp(engine: EngineProcess): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const topic = (await (await fetch(`${engine.url}/topics/payments`)).json()) as { offsets: Array<{ partition: number; end: number }> };
    const status = (await (await fetch(`${engine.url}/status`)).json()) as {
      applications: Array<{ tasks: Array<{ inputs: Array<{ topic: string; partition: number; committed: number }> }> }>;
    };
    const inputs = status.applications.flatMap((a) => a.tasks.flatMap((t) => t.inputs)).filter((i) => i.topic === 'payments');
    if (inputs.length === PARTITIONS && inputs.every((i) => i.committed === topic.offsets[i.partition]!.end)) return;
    if (Date.now() > deadline) throw new Error('the engine did not catch up');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function byPartition(records: readonly LogRecord[]): Map<number, LogRecord[]> {
  const out = new Map<number, LogRecord[]>();
  for (const r of [...records].sort((a, b) => a.partition - b.partition || a.offset - b.offset)) {
    const list = out.get(r.partition) ?? [];
    list.push(r);
    out.set(r.partition, list);
  }
  return out;
}

const text = (b: Buffer | null): string | null => (b === null ? null : b.toString('utf8'));
const lateIds = (bodies: Array<{ original: { value: string | null } }>): string[] =>
  bodies.map((d) => (JSON.parse(Buffer.from(d.original.value!, 'base64').toString('utf8')) as Payment).id);

describe('a windowed topology under kill -9 equals the TopologyTestDriver', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let configFile: string;

  beforeAll(async () => {
    requireBuild();
    dir = await tempDir('millrace-windowed-');
    configFile = join(dir.path, 'millrace.config.json');
    await writeFile(configFile, JSON.stringify(config));
  });

  afterAll(async () => {
    await dir?.remove();
  });

  it(`keeps hopping windows exact through ${KILLS} SIGKILLs with windows open (seed ${SEED})`, { timeout: 600_000 }, async () => {
    const random = seededRandom(SEED);
    const input = payments(random);
    const port = await freePort();
    const dataDir = join(dir.path, 'data');
    let engine = await startEngine({ config: configFile, dataDir, port });

    let sent = 0;
    const producer = (async () => {
      for (let i = 0; i < input.length; i += BATCH) {
        await produce(() => engine, input.slice(i, i + BATCH).map((p) => ({ key: p.user, value: p })));
        sent += BATCH;
      }
      // One record a day later in every partition closes every window there (and is itself in a window left open).
      for (let p = 0; p < PARTITIONS; p++) {
        let n = 0;
        while (partitionForKey(Buffer.from(`closer-${n}`), PARTITIONS) !== p) n++;
        const closer: Payment = { id: `closer-${p}`, user: `closer-${n}`, amount: 0, at: new Date(T0 + 86_400_000).toISOString() };
        await produce(() => engine, [{ key: closer.user, value: closer }]);
      }
    })();
    const kills: number[] = [];
    const thresholds = Array.from({ length: KILLS }, () => Math.floor((0.1 + random() * 0.8) * PAYMENTS)).sort((a, b) => a - b);
    for (const threshold of thresholds) {
      while (sent < threshold) await new Promise((resolve) => setTimeout(resolve, 2));
      await new Promise((resolve) => setTimeout(resolve, Math.round(random() * 100)));
      kills.push(sent);
      expect(await engine.kill('SIGKILL')).toBe('SIGKILL');
      engine = await startEngine({ config: configFile, dataDir, port });
    }
    await producer;
    console.log(`seed ${SEED}: killed after ${kills.join(', ')} payments`);
    await waitCaughtUp(engine);
    expect(await engine.kill('SIGTERM')).toBe(0);

    const log = new EmbeddedLog({ path: join(dataDir, 'log') });
    await log.open();
    const [inputLog, outputLog, lateLog] = [
      byPartition(await readTopic(log, 'payments')),
      byPartition(await readTopic(log, 'spend-windows')),
      byPartition(await readTopic(log, 'windowed-spend-late-records')),
    ];
    await log.close();

    let windows = 0;
    let late = 0;
    for (let p = 0; p < PARTITIONS; p++) {
      // The driver runs one partition: pipe exactly what this partition's task read, in offset order.
      const driver = new TopologyTestDriver(windowedSpend({ options: OPTIONS } as unknown as TopologyContext).build());
      const pipe = driver.createInputTopic('payments');
      for (const r of inputLog.get(p) ?? []) pipe.pipeRawInput(r.key, r.value, r.timestamp);
      const expected = driver.createOutputTopic('spend-windows').readRecordsToList().map((r) => [r.key, r.value]);
      const actual = (outputLog.get(p) ?? []).map((r) => [text(r.key), JSON.parse(text(r.value)!) as unknown]);
      expect(actual.length, `windows emitted in partition ${p}`).toBe(expected.length);
      expect(actual, `partition ${p}`).toEqual(expected);
      const actualLate = lateIds((lateLog.get(p) ?? []).map((r) => JSON.parse(text(r.value)!)));
      expect(actualLate, `late records of partition ${p}`).toEqual(lateIds(driver.lateRecords()));
      windows += actual.length;
      late += actualLate.length;
    }
    console.log(`${windows} windows emitted once each, ${late} late records, identical to the TopologyTestDriver`);
    // A late record says why, and where it came from.
    const sample = JSON.parse(text([...lateLog.values()][0]![0]!.value)!) as {
      code: string;
      reason: string;
      detail: string;
      source: { topic: string; partition: number; offset: number; timestamp: string };
    };
    expect(sample).toMatchObject({ code: 'MILLRACE_LATE_RECORD', reason: 'late', source: { topic: 'payments' } });
    expect(sample.detail).toMatch(/late/);
    const original = inputLog.get(sample.source.partition)!.find((r) => r.offset === sample.source.offset)!;
    expect(original.timestamp).toBe(Date.parse(sample.source.timestamp));
    expect(windows).toBeGreaterThan(USERS * 20);
    expect(late).toBeGreaterThan(PAYMENTS / 200);
  });
});
