/**
 * Several `millrace up` processes on one Kafka cluster, forming one consumer group: start, SIGKILL, restart, and
 * produce through whichever is alive.
 */
import { join } from 'node:path';
import { KafkaLog } from '../../engine/log/kafka/kafka-log.js';
import type { Log } from '../../engine/log/log.js';
import { freePort, startEngine, type EngineProcess } from './engine-process.js';

export interface Member {
  readonly index: number;
  readonly port: number;
  readonly dataDir: string;
  process: EngineProcess | undefined;
  /** Everything the member wrote to stderr across its restarts. */
  logs: string;
}

export class EngineCluster {
  readonly members: Member[] = [];
  readonly #configFile: string;
  readonly #baseDir: string;
  readonly brokers: string;

  constructor(options: { configFile: string; baseDir: string; brokers: string }) {
    this.#configFile = options.configFile;
    this.#baseDir = options.baseDir;
    this.brokers = options.brokers;
  }

  async add(): Promise<Member> {
    const member: Member = {
      index: this.members.length,
      port: await freePort(),
      dataDir: join(this.#baseDir, `member-${this.members.length}`),
      process: undefined,
      logs: '',
    };
    this.members.push(member);
    await this.start(member);
    return member;
  }

  async start(member: Member): Promise<void> {
    member.process = await startEngine({ config: this.#configFile, dataDir: member.dataDir, port: member.port, brokers: this.brokers, timeoutMs: 90_000 });
  }

  async stop(member: Member, signal: NodeJS.Signals): Promise<number | string> {
    const process = member.process;
    if (process === undefined) return 'not running';
    member.process = undefined;
    const exit = await process.kill(signal);
    member.logs += process.stderr();
    return exit;
  }

  live(): Member[] {
    return this.members.filter((m) => m.process !== undefined);
  }

  /** POSTs to a live member, trying others (and again) while members die and come back. */
  async post(path: string, body: unknown): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const live = this.live();
      const member = live[attempt % Math.max(1, live.length)];
      if (member?.process !== undefined) {
        try {
          const response = await fetch(`${member.process.url}${path}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
          });
          await response.arrayBuffer();
          if (response.ok) return;
          if (response.status < 500) throw new Error(`POST ${path} answered ${response.status}`);
        } catch (err) {
          if (err instanceof Error && err.message.startsWith('POST')) throw err;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async stopAll(): Promise<void> {
    for (const member of this.live()) await this.stop(member, 'SIGTERM');
  }
}

/** A client of the tests' broker, for reading what the engines wrote (read_committed). */
export async function kafkaClient(brokers: string): Promise<Log> {
  const log = new KafkaLog({ brokers: brokers.split(','), clientId: 'millrace-test' });
  await log.open();
  return log;
}

/** Waits until the group has committed every partition of `topic` up to its end. */
export async function waitCommitted(log: Log, group: string, topic: string, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ends = await log.partitionOffsets(topic);
    const committed = await log.committedOffsets(group, topic);
    if (ends.every((p) => (committed.get(p.partition) ?? 0) >= p.end)) return;
    if (Date.now() > deadline) {
      throw new Error(`group ${group} did not catch up on ${topic}: ${JSON.stringify(ends.map((p) => [p.partition, committed.get(p.partition) ?? null, p.end]))}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
