/**
 * Exactly-once on Apache Kafka, tested by force: three `millrace up --brokers` processes in one group run a keyed
 * count while 200,000 events are produced; random members are SIGKILLed and restarted again and again. The
 * read_committed output must hold, per key, the counts 1, 2, …, n with no duplicate and no gap, and every output
 * partition must equal, record for record, what one clean process writes from the same input. Once per Kafka client
 * (`kafka.client`: kafkajs, the default, and @platformatic/kafka).
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import type { Log, LogRecord } from '../../engine/log/log.js';
import { EngineCluster, kafkaClient, waitCommitted } from '../support/cluster.js';
import { requireBuild, seededRandom } from '../support/engine-process.js';
import { describeWithKafka } from '../support/kafka.js';
import { readTopic, tempDir } from '../support/runtime.js';

const EVENTS = 200_000;
const BATCH = 1_000;
const KEYS = 2_000;
const PARTITIONS = 6;
const KILLS = 6;
/** Events are produced over about this long, so that every kill lands while they flow. */
const PRODUCE_MS = 60_000;
const SEED = Number(process.env['MILLRACE_CRASH_SEED'] ?? Date.now() % 1_000_000);

function byPartition(records: readonly LogRecord[]): Map<number, Array<[string, number]>> {
  const out = new Map<number, Array<[string, number]>>();
  for (const r of [...records].sort((a, b) => a.partition - b.partition || a.offset - b.offset)) {
    const list = out.get(r.partition) ?? [];
    list.push([r.key!.toString('utf8'), JSON.parse(r.value!.toString('utf8')) as number]);
    out.set(r.partition, list);
  }
  return out;
}

for (const client of ['kafkajs', 'platformatic'] as const) describeWithKafka(`exactly-once on Kafka (${client})`, (brokers) => {
  const suffix = randomUUID().slice(0, 8);
  const names = { input: `eo-events-${suffix}`, output: `eo-counts-${suffix}`, clean: `eo-clean-${suffix}` };
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let cluster: EngineCluster | undefined;
  let log: Log | undefined;

  afterAll(async () => {
    await cluster?.stopAll();
    await log?.close();
    await dir?.remove();
  });

  it(`keeps every count exact with three members and ${KILLS} SIGKILLs (seed ${SEED})`, { timeout: 900_000 }, async () => {
    requireBuild();
    dir = await tempDir('millrace-kafka-eo-');
    const configFile = join(dir.path, 'millrace.config.json');
    const config = (applicationId: string, output: string) => ({
      topics: [
        { name: names.input, partitions: PARTITIONS },
        { name: output, partitions: PARTITIONS },
      ],
      topologies: [{ module: 'examples/keyed-count', options: { applicationId, input: names.input, output } }],
      runtime: { commitIntervalMs: 100 },
      // A killed member's tasks move once the group stops hearing from it.
      kafka: { sessionTimeoutMs: 6_000, heartbeatIntervalMs: 1_000, client },
    });
    await writeFile(configFile, JSON.stringify(config(`eo-${suffix}`, names.output)));
    cluster = new EngineCluster({ configFile, baseDir: dir.path, brokers: brokers.join(',') });
    // One at a time: the first creates the topics.
    for (let i = 0; i < 3; i++) await cluster.add();
    log = await kafkaClient(brokers.join(','));

    const random = seededRandom(SEED);
    let sent = 0;
    const producer = (async () => {
      for (let batch = 0; batch < EVENTS / BATCH; batch++) {
        const records = Array.from({ length: BATCH }, (_, i) => {
          const seq = batch * BATCH + i;
          return { key: `k${(seq * 7919) % KEYS}`, value: { seq } };
        });
        await cluster!.post(`/topics/${names.input}/events`, { records });
        sent += BATCH;
        // Paced, so the input keeps flowing through the kills and restarts.
        await new Promise((resolve) => setTimeout(resolve, PRODUCE_MS / (EVENTS / BATCH)));
      }
    })();
    const started = Date.now();
    const moments = Array.from({ length: KILLS }, () => Math.round((0.05 + random() * 0.85) * PRODUCE_MS)).sort((a, b) => a - b);
    const kills: Array<{ member: number; sent: number }> = [];
    const restarts: Array<Promise<void>> = [];
    const restarting = new Set<number>();
    for (const moment of moments) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + moment - Date.now())));
      // A member still coming back from an earlier kill is left alone, and one member always stays up.
      let live = cluster.members.filter((m) => m.process !== undefined && !restarting.has(m.index));
      while (live.length < 2) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        live = cluster.members.filter((m) => m.process !== undefined && !restarting.has(m.index));
      }
      const victim = live[Math.floor(random() * live.length)]!;
      kills.push({ member: victim.index, sent });
      expect(await cluster.stop(victim, 'SIGKILL')).toBe('SIGKILL');
      restarting.add(victim.index);
      const pause = Math.round(random() * 1_000);
      restarts.push((async () => {
        await new Promise((resolve) => setTimeout(resolve, pause));
        await cluster!.start(victim);
        restarting.delete(victim.index);
      })());
    }
    await producer;
    await Promise.all(restarts);
    console.log(`seed ${SEED}: killed ${kills.map((k) => `member ${k.member} after ${k.sent} events`).join('; ')}`);
    expect(kills.filter((k) => k.sent < EVENTS).length).toBeGreaterThanOrEqual(5);
    await waitCommitted(log, `eo-${suffix}`, names.input);
    await cluster.stopAll();

    const input = await readTopic(log, names.input);
    const output = await readTopic(log, names.output);
    const seqs = new Set(input.map((r) => (JSON.parse(r.value!.toString('utf8')) as { seq: number }).seq));
    expect(seqs.size).toBe(EVENTS);
    console.log(`input: ${input.length} records (${input.length - EVENTS} from batches retried after a kill)`);
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

    // A clean run: one member, its own application id, over the same input.
    await writeFile(configFile, JSON.stringify(config(`eo-clean-${suffix}`, names.clean)));
    const clean = new EngineCluster({ configFile, baseDir: join(dir.path, 'clean'), brokers: brokers.join(',') });
    await clean.add();
    try {
      await waitCommitted(log, `eo-clean-${suffix}`, names.input);
    } finally {
      await clean.stopAll();
    }
    const cleanOutput = byPartition(await readTopic(log, names.clean));
    const crashOutput = byPartition(output);
    for (let p = 0; p < PARTITIONS; p++) {
      expect(crashOutput.get(p)?.length, `partition ${p} length`).toBe(cleanOutput.get(p)?.length);
      expect(crashOutput.get(p), `partition ${p}`).toEqual(cleanOutput.get(p));
    }
  });
});
