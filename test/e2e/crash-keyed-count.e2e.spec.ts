/**
 * The exactly-once guarantee, tested by force: a real `millrace up` process runs a keyed count while 200,000 events
 * are produced over HTTP; it is SIGKILLed at random moments and restarted each time. Afterwards every output
 * partition must equal, record for record, what a clean run over the same input produces: per key, the counts
 * 1, 2, …, n with no duplicate and no gap.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import type { LogRecord } from '../../engine/log/log.js';
import { freePort, requireBuild, seededRandom, startEngine, type EngineProcess } from '../support/engine-process.js';
import { readTopic, tempDir } from '../support/runtime.js';

const EVENTS = 200_000;
const BATCH = 1_000;
const KEYS = 1_000;
const PARTITIONS = 4;
const KILLS = 6;
const SEED = Number(process.env['MILLRACE_CRASH_SEED'] ?? Date.now() % 1_000_000);

const config = {
  topics: [
    { name: 'events', partitions: PARTITIONS },
    { name: 'event-counts', partitions: PARTITIONS },
  ],
  topologies: [{ module: 'examples/keyed-count', options: { input: 'events', output: 'event-counts' } }],
  runtime: { commitIntervalMs: 50 },
  log: { maintenanceIntervalMs: 0 },
};

interface Topic {
  name: string;
  offsets: Array<{ partition: number; end: number }>;
}

async function postJson(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** Waits until every task has committed up to the end of every input partition. */
async function waitCaughtUp(engine: EngineProcess, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const topics = ((await (await fetch(`${engine.url}/topics`)).json()) as { topics: Topic[] }).topics;
    const ends = new Map(topics.find((t) => t.name === 'events')!.offsets.map((o) => [o.partition, o.end]));
    const status = (await (await fetch(`${engine.url}/status`)).json()) as {
      applications: Array<{ tasks: Array<{ inputs: Array<{ topic: string; partition: number; committed: number }> }> }>;
    };
    const inputs = status.applications.flatMap((a) => a.tasks.flatMap((t) => t.inputs)).filter((i) => i.topic === 'events');
    if (inputs.length === PARTITIONS && inputs.every((i) => i.committed === ends.get(i.partition))) return;
    if (Date.now() > deadline) throw new Error(`not caught up: ${JSON.stringify({ inputs, ends: [...ends] })}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function readLog(dataDir: string, topic: string): Promise<LogRecord[]> {
  const log = new EmbeddedLog({ path: join(dataDir, 'log') });
  await log.open();
  try {
    return await readTopic(log, topic);
  } finally {
    await log.close();
  }
}

function byPartition(records: LogRecord[]): Map<number, Array<[string, number]>> {
  const out = new Map<number, Array<[string, number]>>();
  for (const r of [...records].sort((a, b) => a.partition - b.partition || a.offset - b.offset)) {
    const list = out.get(r.partition) ?? [];
    list.push([r.key!.toString('utf8'), JSON.parse(r.value!.toString('utf8')) as number]);
    out.set(r.partition, list);
  }
  return out;
}

describe('exactly-once under kill -9', () => {
  let crashDir: Awaited<ReturnType<typeof tempDir>>;
  let cleanDir: Awaited<ReturnType<typeof tempDir>>;
  let configFile: string;

  beforeAll(async () => {
    requireBuild();
    crashDir = await tempDir('millrace-crash-');
    cleanDir = await tempDir('millrace-clean-');
    configFile = join(crashDir.path, 'millrace.config.json');
    await writeFile(configFile, JSON.stringify(config));
  });

  afterAll(async () => {
    await crashDir?.remove();
    await cleanDir?.remove();
  });

  it(`keeps every count exact through ${KILLS} SIGKILLs (seed ${SEED})`, { timeout: 600_000 }, async () => {
    const random = seededRandom(SEED);
    const started = Date.now();
    const phase = (name: string): void => console.log(`${name}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const port = await freePort();
    const dataDir = join(crashDir.path, 'data');
    let engine = await startEngine({ config: configFile, dataDir, port });

    // The producer: batches in order, retrying a batch whose request failed (the engine may have died under it).
    let sent = 0;
    const producer = (async () => {
      for (let batch = 0; batch < EVENTS / BATCH; batch++) {
        const records = Array.from({ length: BATCH }, (_, i) => {
          const seq = batch * BATCH + i;
          return { key: `k${(seq * 7919) % KEYS}`, value: { seq } };
        });
        for (;;) {
          try {
            const response = await postJson(`${engine.url}/topics/events/events`, { records });
            await response.arrayBuffer();
            if (response.ok) break;
            throw new Error(`produce answered ${response.status}: ${await response.text()}`);
          } catch (err) {
            if (err instanceof Error && err.message.startsWith('produce answered')) throw err;
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        }
        sent += BATCH;
      }
    })();

    // Kill moments: random points of the input (so every kill lands while events flow), plus a random delay.
    const thresholds = Array.from({ length: KILLS }, () => Math.floor((0.05 + random() * 0.9) * EVENTS)).sort((a, b) => a - b);
    const kills: Array<{ atSent: number; delayMs: number }> = [];
    for (const threshold of thresholds) {
      while (sent < threshold) await new Promise((resolve) => setTimeout(resolve, 2));
      const delayMs = Math.round(random() * 150);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      kills.push({ atSent: sent, delayMs });
      expect(await engine.kill('SIGKILL')).toBe('SIGKILL');
      engine = await startEngine({ config: configFile, dataDir, port });
    }
    await producer;
    phase('produced');
    console.log(`seed ${SEED}: killed after ${kills.map((k) => `${k.atSent} events +${k.delayMs} ms`).join(', ')}`);
    expect(kills.filter((k) => k.atSent < EVENTS).length).toBeGreaterThanOrEqual(5);
    await waitCaughtUp(engine);
    phase('caught up');
    expect(await engine.kill('SIGTERM')).toBe(0);

    const input = await readLog(dataDir, 'events');
    phase('stopped, input read');
    const output = await readLog(dataDir, 'event-counts');
    phase('output read');
    // Every produced event is in the input (a batch retried after a kill may be there twice: that is the input).
    const seqs = new Set(input.map((r) => (JSON.parse(r.value!.toString('utf8')) as { seq: number }).seq));
    expect(seqs.size).toBe(EVENTS);
    console.log(`input: ${input.length} records (${input.length - EVENTS} from batches retried after a kill)`);

    // Per key, the output is exactly 1, 2, …, n where n is the key's number of input records.
    const expected = new Map<string, number>();
    for (const r of input) expected.set(r.key!.toString('utf8'), (expected.get(r.key!.toString('utf8')) ?? 0) + 1);
    const seen = new Map<string, number[]>();
    for (const list of byPartition(output).values()) {
      for (const [key, count] of list) {
        const counts = seen.get(key) ?? [];
        counts.push(count);
        seen.set(key, counts);
      }
    }
    expect(seen.size).toBe(expected.size);
    for (const [key, n] of expected) {
      const counts = seen.get(key)!;
      expect(counts.length, `updates for ${key}`).toBe(n);
      expect(counts.every((c, i) => c === i + 1), `no duplicate or missing update for ${key}`).toBe(true);
    }

    phase('verified');
    // A clean run over the same input, in the same per-partition order, writes the same output partitions.
    const clean = await startEngine({ config: configFile, dataDir: join(cleanDir.path, 'data'), port: await freePort() });
    const inputByPartition = new Map<number, LogRecord[]>();
    for (const r of input) {
      const list = inputByPartition.get(r.partition) ?? [];
      list.push(r);
      inputByPartition.set(r.partition, list);
    }
    for (const [partition, records] of inputByPartition) {
      records.sort((a, b) => a.offset - b.offset);
      for (let i = 0; i < records.length; i += BATCH) {
        const body = {
          records: records.slice(i, i + BATCH).map((r) => ({
            key: r.key!.toString('utf8'),
            value: JSON.parse(r.value!.toString('utf8')) as unknown,
            partition,
          })),
        };
        const response = await postJson(`${clean.url}/topics/events/events`, body);
        await response.arrayBuffer();
        expect(response.status).toBe(200);
      }
    }
    phase('clean run produced');
    await waitCaughtUp(clean);
    phase('clean run caught up');
    expect(await clean.kill('SIGTERM')).toBe(0);
    const cleanOutput = byPartition(await readLog(join(cleanDir.path, 'data'), 'event-counts'));
    const crashOutput = byPartition(output);
    for (let p = 0; p < PARTITIONS; p++) {
      expect(crashOutput.get(p)?.length, `partition ${p} length`).toBe(cleanOutput.get(p)?.length);
      expect(crashOutput.get(p), `partition ${p}`).toEqual(cleanOutput.get(p));
    }
  });
});
