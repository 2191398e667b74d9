/**
 * Scale-out on Kafka: a fourth `millrace up` joining a group of three takes over some tasks, and leaving gives them
 * back, while events keep flowing; no output is lost or duplicated. Prints the processing pause each rebalance cost.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import type { Log } from '../../engine/log/log.js';
import { EngineCluster, kafkaClient, waitCommitted, type Member } from '../support/cluster.js';
import { requireBuild } from '../support/engine-process.js';
import { describeWithKafka } from '../support/kafka.js';
import { readTopic, tempDir } from '../support/runtime.js';

const PARTITIONS = 8;
const KEYS = 500;

interface Status {
  applications: Array<{ tasks: Array<{ taskId: string; state: string }> }>;
}

async function tasksOf(member: Member): Promise<string[]> {
  if (member.process === undefined) return [];
  try {
    const status = (await (await fetch(`${member.process.url}/status`)).json()) as Status;
    return status.applications.flatMap((a) => a.tasks.filter((t) => t.state === 'running').map((t) => t.taskId)).sort();
  } catch {
    return [];
  }
}

/** The pauses the members logged, from a rebalance starting to their new tasks being handed out. */
function pauses(members: readonly Member[]): number[] {
  const found: number[] = [];
  for (const member of members) {
    for (const line of (member.logs + (member.process?.stderr() ?? '')).split('\n')) {
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line) as { msg?: string; pauseMs?: number };
      if (typeof entry.pauseMs === 'number' && /rebalance/i.test(entry.msg ?? '')) found.push(entry.pauseMs);
    }
  }
  return found;
}

describeWithKafka('rebalancing on Kafka', (brokers) => {
  const suffix = randomUUID().slice(0, 8);
  const app = `rb-${suffix}`;
  const input = `rb-events-${suffix}`;
  const output = `rb-counts-${suffix}`;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let cluster: EngineCluster | undefined;
  let log: Log | undefined;

  afterAll(async () => {
    await cluster?.stopAll();
    await log?.close();
    await dir?.remove();
  });

  it('moves tasks to a fourth member and back with no lost or duplicated output', { timeout: 600_000 }, async () => {
    requireBuild();
    dir = await tempDir('millrace-kafka-rebalance-');
    const configFile = join(dir.path, 'millrace.config.json');
    await writeFile(configFile, JSON.stringify({
      topics: [{ name: input, partitions: PARTITIONS }, { name: output, partitions: PARTITIONS }],
      topologies: [{ module: 'examples/keyed-count', options: { applicationId: app, input, output } }],
      runtime: { commitIntervalMs: 100 },
      kafka: { sessionTimeoutMs: 6_000, heartbeatIntervalMs: 1_000 },
    }));
    cluster = new EngineCluster({ configFile, baseDir: dir.path, brokers: brokers.join(',') });
    for (let i = 0; i < 3; i++) await cluster.add();
    log = await kafkaClient(brokers.join(','));

    let producing = true;
    let sent = 0;
    const producer = (async () => {
      while (producing) {
        const records = Array.from({ length: 200 }, (_, j) => ({ key: `k${(sent + j) % KEYS}`, value: { seq: sent + j } }));
        await cluster!.post(`/topics/${input}/events`, { records });
        sent += records.length;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const allOwned = async (members: readonly Member[]) => (await Promise.all(members.map(tasksOf))).flat();
    const waitFor = async (what: string, check: () => Promise<boolean>) => {
      const deadline = Date.now() + 120_000;
      while (!(await check())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    };
    const [a, b, c] = cluster.members as [Member, Member, Member];
    await waitFor('three members to share all tasks', async () => (await allOwned([a, b, c])).length === PARTITIONS);
    const before = await Promise.all([a, b, c].map(tasksOf));

    const fourth = await cluster.add();
    await waitFor('the fourth member to own tasks', async () => (await tasksOf(fourth)).length > 0);
    await waitFor('every task owned exactly once', async () => {
      const owned = await allOwned(cluster!.members);
      return owned.length === PARTITIONS && new Set(owned).size === PARTITIONS;
    });
    const withFour = await Promise.all(cluster.members.map(tasksOf));
    console.log(`tasks with four members: ${JSON.stringify(withFour)}`);
    expect(withFour[3]!.length).toBeGreaterThan(0);
    // Sticky: the tasks the fourth member did not take stayed where they were.
    for (let i = 0; i < 3; i++) for (const task of withFour[i]!) expect(before[i]).toContain(task);

    await cluster.stop(fourth, 'SIGTERM');
    await waitFor('the three members to own every task again', async () => {
      const owned = await allOwned([a, b, c]);
      return owned.length === PARTITIONS && new Set(owned).size === PARTITIONS;
    });
    console.log(`tasks after the fourth left: ${JSON.stringify(await Promise.all([a, b, c].map(tasksOf)))}`);

    await new Promise((resolve) => setTimeout(resolve, 2_000));
    producing = false;
    await producer;
    await waitCommitted(log, app, input);
    await cluster.stopAll();
    console.log(`rebalance pauses (ms): ${JSON.stringify(pauses(cluster.members))}`);
    expect(pauses(cluster.members).length).toBeGreaterThan(0);

    const inputRecords = await readTopic(log, input);
    const expected = new Map<string, number>();
    for (const r of inputRecords) expected.set(r.key!.toString(), (expected.get(r.key!.toString()) ?? 0) + 1);
    const counts = new Map<string, number[]>();
    for (const r of (await readTopic(log, output)).sort((x, y) => x.partition - y.partition || x.offset - y.offset)) {
      const list = counts.get(r.key!.toString()) ?? [];
      list.push(JSON.parse(r.value!.toString()) as number);
      counts.set(r.key!.toString(), list);
    }
    console.log(`${inputRecords.length} events counted through two rebalances`);
    for (const [key, n] of expected) expect(counts.get(key), key).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  });
});
