/**
 * Recovery without a full restore on Kafka: after an unclean stop (SIGKILL) a task compares its local checkpoint
 * with the changelog and replays only the tail it misses; the count of changelog records replayed is far below the
 * size of its store. For contrast, a member whose local state is gone restores the whole store from the changelog.
 */
import { randomUUID } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import type { Log } from '../../engine/log/log.js';
import { EngineCluster, kafkaClient, waitCommitted } from '../support/cluster.js';
import { requireBuild } from '../support/engine-process.js';
import { describeWithKafka } from '../support/kafka.js';
import { readTopic, tempDir } from '../support/runtime.js';

const KEYS = 20_000;
const PARTITIONS = 4;

interface Status {
  applications: Array<{ tasks: Array<{ restoredRecords: number; state: string }> }>;
}

describeWithKafka('recovery from the changelog tail on Kafka', (brokers) => {
  const suffix = randomUUID().slice(0, 8);
  const app = `rec-${suffix}`;
  const input = `rec-events-${suffix}`;
  const output = `rec-counts-${suffix}`;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let cluster: EngineCluster | undefined;
  let log: Log | undefined;

  afterAll(async () => {
    await cluster?.stopAll();
    await log?.close();
    await dir?.remove();
  });

  const produce = async (round: number) => {
    for (let i = 0; i < KEYS; i += 1_000) {
      const records = Array.from({ length: 1_000 }, (_, j) => ({ key: `k${i + j}`, value: { round } }));
      await cluster!.post(`/topics/${input}/events`, { records });
    }
  };
  const restored = async (): Promise<number> => {
    const member = cluster!.members[0]!.process!;
    const deadline = Date.now() + 180_000;
    for (;;) {
      const status = (await (await fetch(`${member.url}/status`)).json()) as Status;
      const tasks = status.applications.flatMap((a) => a.tasks);
      if (tasks.length === PARTITIONS && tasks.every((t) => t.state === 'running')) return tasks.reduce((sum, t) => sum + t.restoredRecords, 0);
      if (Date.now() > deadline) {
        throw new Error(`the tasks never all ran: ${JSON.stringify(status.applications)}\n--- engine stderr (tail) ---\n${member.stderr().slice(-4_000)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  it('replays only the missing changelog tail after a SIGKILL', { timeout: 600_000 }, async () => {
    requireBuild();
    dir = await tempDir('millrace-kafka-recovery-');
    const configFile = join(dir.path, 'millrace.config.json');
    await writeFile(configFile, JSON.stringify({
      topics: [{ name: input, partitions: PARTITIONS }, { name: output, partitions: PARTITIONS }],
      topologies: [{ module: 'examples/keyed-count', options: { applicationId: app, input, output } }],
      runtime: { commitIntervalMs: 100 },
      kafka: { sessionTimeoutMs: 6_000, heartbeatIntervalMs: 1_000 },
    }));
    cluster = new EngineCluster({ configFile, baseDir: dir.path, brokers: brokers.join(',') });
    const member = await cluster.add();
    log = await kafkaClient(brokers.join(','));

    await produce(1);
    await waitCommitted(log, app, input);
    expect(await restored()).toBe(0);
    // The store now holds 20,000 keys. More updates flow, and the process dies in the middle of them.
    const more = produce(2);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await cluster.stop(member, 'SIGKILL')).toBe('SIGKILL');
    await more.catch(() => undefined);
    await cluster.start(member);
    await produce(3);
    const tail = await restored();
    console.log(`after SIGKILL: ${tail} changelog records replayed into a store of ${KEYS} keys`);
    expect(tail).toBeLessThan(KEYS / 10);
    await waitCommitted(log, app, input);

    // Without local state, the store comes back from the whole changelog.
    await cluster.stop(member, 'SIGTERM');
    await rm(join(member.dataDir, 'state'), { recursive: true, force: true });
    await cluster.start(member);
    const full = await restored();
    console.log(`with local state gone: ${full} changelog records replayed`);
    expect(full).toBeGreaterThanOrEqual(KEYS);
    await produce(4);
    await waitCommitted(log, app, input);
    await cluster.stopAll();

    // Through all of it, every key counted each of its records exactly once.
    const inputRecords = await readTopic(log, input);
    const expected = new Map<string, number>();
    for (const r of inputRecords) expected.set(r.key!.toString(), (expected.get(r.key!.toString()) ?? 0) + 1);
    const counts = new Map<string, number[]>();
    for (const r of (await readTopic(log, output)).sort((a, b) => a.partition - b.partition || a.offset - b.offset)) {
      const list = counts.get(r.key!.toString()) ?? [];
      list.push(JSON.parse(r.value!.toString()) as number);
      counts.set(r.key!.toString(), list);
    }
    for (const [key, n] of expected) expect(counts.get(key), key).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  });
});
