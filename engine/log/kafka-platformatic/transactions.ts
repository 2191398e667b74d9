import { FindCoordinatorKeyTypes, addOffsetsToTxnV4, txnOffsetCommitV4, type Admin, type ConnectionPool, type MessageToProduce, type Producer } from '@platformatic/kafka';
import { MillraceError } from '../../errors.js';
import type { AppendResult, Offset } from '../log.js';
import { fenced } from '../kafka/errors.js';
import type { AppendPlan, GroupOffsets } from '../kafka/writer.js';
import { connect, type ClusterDirectory } from './cluster.js';
import { fromClientError, hasApiError, isFencedError } from './errors.js';

/** How often AddOffsetsToTxn is retried while the coordinator still completes the previous transaction. */
const CONCURRENT_TRANSACTIONS_ATTEMPTS = 100;
/** Attempts of a group-coordinator request when the coordinator moved or is loading. */
const COORDINATOR_ATTEMPTS = 8;
const COORDINATOR_ERRORS = ['NOT_COORDINATOR', 'COORDINATOR_LOAD_IN_PROGRESS', 'COORDINATOR_NOT_AVAILABLE'];

/** What sends records: a producer, or a producer's open transaction. */
interface Sender {
  send(options: { messages: MessageToProduce<Buffer, Buffer, Buffer, Buffer>[]; acks?: number }): Promise<{ offsets?: Array<{ topic: string; partition: number; offset: bigint }> }>;
}

/** A plan's records as this client takes them, by the plan's record index. */
export type PlannedMessages = readonly MessageToProduce<Buffer, Buffer, Buffer, Buffer>[];

/** Sends a plan round by round; each record's offset is its partition chunk's base offset plus its place in it. */
export async function sendPlan(sender: Sender, plan: AppendPlan, messages: PlannedMessages): Promise<AppendResult[]> {
  const results: AppendResult[] = new Array(plan.size);
  for (const round of plan.rounds) {
    const batch: MessageToProduce<Buffer, Buffer, Buffer, Buffer>[] = [];
    for (const { indexes } of round) for (const i of indexes) batch.push({ ...messages[i]! });
    const response = await sender.send({ messages: batch, acks: -1 });
    for (const { topic, partition, indexes } of round) {
      const base = response.offsets?.find((o) => o.topic === topic && o.partition === partition)?.offset;
      if (base === undefined) {
        throw new MillraceError('MILLRACE_LOG_WRITE_FAILED', `the broker did not acknowledge ${topic}/${partition}`, { details: { topic, partition } });
      }
      indexes.forEach((i, n) => {
        results[i] = { topic, partition, offset: (Number(base) + n) as Offset, timestamp: plan.records[i]!.timestamp };
      });
    }
  }
  return results;
}

/** The group coordinators of groups, asked once and asked again when one moves. */
export class GroupCoordinators {
  readonly #admin: Admin;
  readonly #pool: ConnectionPool;
  readonly #known = new Map<string, { host: string; port: number }>();

  constructor(admin: Admin, pool: ConnectionPool) {
    this.#admin = admin;
    this.#pool = pool;
  }

  /** Runs a request on the group's coordinator, finding it again when it moved. */
  async run<T>(group: string, doing: string, request: (connection: Awaited<ReturnType<ConnectionPool['get']>>) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        let broker = this.#known.get(group);
        if (broker === undefined) {
          const [found] = await this.#admin.findCoordinator({ keyType: FindCoordinatorKeyTypes.GROUP, keys: [group] });
          if (found === undefined || found.nodeId < 0) throw new MillraceError('MILLRACE_LOG_UNAVAILABLE', `no coordinator for group ${group}`, { retriable: true });
          broker = { host: found.host, port: found.port };
          this.#known.set(group, broker);
        }
        return await request(await connect(this.#pool, broker));
      } catch (err) {
        if (err instanceof MillraceError && !err.retriable) throw err;
        if (attempt < COORDINATOR_ATTEMPTS && (hasApiError(err, ...COORDINATOR_ERRORS) || (err instanceof MillraceError && err.retriable))) {
          this.#known.delete(group);
          await sleep(100 * attempt);
          continue;
        }
        throw fromClientError(err, doing, 'MILLRACE_INTERNAL');
      }
    }
  }
}

export interface TransactionalWritersOptions {
  readonly create: (transactionalId: string) => Producer;
  readonly directory: ClusterDirectory;
  readonly controlPool: ConnectionPool;
  readonly coordinators: GroupCoordinators;
}

/**
 * One transactional producer per transactional id, reused for its sequential transactions; work for one id runs one
 * step at a time. Fencing as in `../kafka/writer.ts`: within this process each `begin` and `fence` starts a new
 * generation of the id, and an older generation that has not started to commit is refused; across processes `fence`
 * runs InitProducerId with a fresh producer, which bumps the epoch, aborts the older producer's open transaction and
 * refuses its later requests.
 *
 * Records go through the client's `Transaction`; offsets are sent with AddOffsetsToTxn and TxnOffsetCommit directly,
 * because the client's `addOffset` takes one consumed message at a time, without offset metadata, and needs a
 * `Consumer` of the group.
 */
export class TransactionalWriters {
  readonly #options: TransactionalWritersOptions;
  readonly #producers = new Map<string, Producer>();
  readonly #generations = new Map<string, number>();
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(options: TransactionalWritersOptions) {
    this.#options = options;
  }

  begin(transactionalId: string): number {
    const generation = (this.#generations.get(transactionalId) ?? 0) + 1;
    this.#generations.set(transactionalId, generation);
    return generation;
  }

  isCurrent(transactionalId: string, generation: number): boolean {
    return this.#generations.get(transactionalId) === generation;
  }

  async fence(transactionalId: string): Promise<void> {
    this.begin(transactionalId);
    await this.#serial(transactionalId, async () => {
      await this.#drop(transactionalId);
      const producer = this.#options.create(transactionalId);
      try {
        // Beginning a transaction runs InitProducerId; cancelling one that sent nothing sends nothing.
        const claim = await producer.beginTransaction();
        await claim.cancel();
      } catch (err) {
        await producer.close().catch(() => undefined);
        throw fromClientError(err, `claiming transactional id ${transactionalId}`, 'MILLRACE_LOG_WRITE_FAILED');
      }
      this.#producers.set(transactionalId, producer);
    });
  }

  async commit(
    transactionalId: string,
    generation: number,
    plan: AppendPlan,
    messages: PlannedMessages,
    offsets: readonly GroupOffsets[],
    settle: (results: readonly AppendResult[]) => Promise<void>,
  ): Promise<AppendResult[]> {
    return this.#serial(transactionalId, async () => {
      if (!this.isCurrent(transactionalId, generation)) throw fenced(transactionalId);
      if (plan.size === 0 && offsets.length === 0) return [];
      let producer = this.#producers.get(transactionalId);
      if (producer === undefined) {
        producer = this.#options.create(transactionalId);
        this.#producers.set(transactionalId, producer);
      }
      let transaction: Awaited<ReturnType<Producer['beginTransaction']>> | undefined;
      let results: AppendResult[] = [];
      try {
        transaction = await producer.beginTransaction();
        if (plan.size > 0) results = await sendPlan(transaction, plan, messages);
        for (const group of offsets) await this.#sendOffsets(producer, transactionalId, group);
        await transaction.commit();
      } catch (err) {
        // The producer's transaction state is unknown now: the next transaction starts from a fresh InitProducerId.
        if (this.#producers.get(transactionalId) === producer) this.#producers.delete(transactionalId);
        if (transaction !== undefined && !transaction.completed && !isFencedError(err)) await transaction.abort().catch(() => undefined);
        await producer.close().catch(() => undefined);
        if (isFencedError(err)) throw fenced(transactionalId, err);
        if (err instanceof MillraceError) throw err;
        throw fromClientError(err, `committing transaction ${transactionalId}`, 'MILLRACE_LOG_WRITE_FAILED');
      }
      await settle(results);
      return results;
    });
  }

  /** AddOffsetsToTxn on the transaction coordinator, then TxnOffsetCommit (with metadata) on the group's. */
  async #sendOffsets(producer: Producer, transactionalId: string, { group, topics }: GroupOffsets): Promise<void> {
    const producerId = producer.producerId;
    const producerEpoch = producer.producerEpoch;
    if (producerId === undefined || producerEpoch === undefined) throw new MillraceError('MILLRACE_INTERNAL', `transaction ${transactionalId} has no producer id`);
    const coordinator = await this.#options.directory.broker(producer.coordinatorId);
    const connection = await connect(this.#options.controlPool, coordinator);
    for (let attempt = 1; ; attempt++) {
      try {
        await addOffsetsToTxnV4.api.async(connection, transactionalId, producerId, producerEpoch, group);
        break;
      } catch (err) {
        // Right after a commit the coordinator may still be writing that transaction's markers.
        if (!hasApiError(err, 'CONCURRENT_TRANSACTIONS') || attempt >= CONCURRENT_TRANSACTIONS_ATTEMPTS) throw err;
        await sleep(Math.min(5 * attempt, 100));
      }
    }
    const request = topics.map((t) => ({
      name: t.topic,
      partitions: t.partitions.map((p) => ({
        partitionIndex: p.partition,
        committedOffset: BigInt(p.offset),
        committedLeaderEpoch: -1,
        committedMetadata: p.metadata,
      })),
    }));
    await this.#options.coordinators.run(group, `committing offsets of group ${group} in transaction ${transactionalId}`, async (groupConnection) => {
      try {
        await txnOffsetCommitV4.api.async(groupConnection, transactionalId, group, producerId, producerEpoch, -1, '', null, request);
      } catch (err) {
        // Fencing must reach the caller as such, not as a failed group request.
        if (isFencedError(err)) throw fenced(transactionalId, err);
        throw err;
      }
    });
  }

  async idle(): Promise<void> {
    await Promise.allSettled([...this.#queues.values()]);
  }

  async close(): Promise<void> {
    await this.idle();
    await Promise.allSettled([...this.#producers.values()].map((p) => p.close()));
    this.#producers.clear();
  }

  async #drop(transactionalId: string): Promise<void> {
    const producer = this.#producers.get(transactionalId);
    this.#producers.delete(transactionalId);
    await producer?.close().catch(() => undefined);
  }

  #serial<T>(transactionalId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(transactionalId) ?? Promise.resolve();
    const run = previous.then(work, work);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.#queues.set(transactionalId, settled);
    void settled.then(() => {
      if (this.#queues.get(transactionalId) === settled) this.#queues.delete(transactionalId);
    });
    return run;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
