import type { Message, Producer, RecordMetadata, TopicMessages } from 'kafkajs';
import { MillraceError } from '../../errors.js';
import type { AppendResult, Offset } from '../log.js';
import { fenced, fromKafkaError, hasKafkaType, isFencedError } from './errors.js';

/** How often AddOffsetsToTxn is retried while the coordinator still completes the previous transaction. */
const CONCURRENT_TRANSACTIONS_ATTEMPTS = 100;

/** Bytes counted per record on top of its key, value and headers (record framing, a rough upper bound). */
const RECORD_OVERHEAD_BYTES = 32;

/** One record, placed and stamped, ready to send. */
export interface PlacedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly timestamp: number;
  readonly message: Message;
  readonly sizeBytes: number;
}

/**
 * Records split into rounds of produce requests. kafkajs sends each partition's share of a request as one record
 * batch and never splits it, so a partition's records are cut into chunks of at most `maxRequestBytes` (a broker
 * refuses batches over `message.max.bytes`); round `n` carries the `n`-th chunk of every partition. Rounds are sent
 * one after another, so each partition keeps the order given.
 */
export interface AppendPlan {
  readonly size: number;
  readonly rounds: ReadonlyArray<ReadonlyArray<{ readonly topic: string; readonly partition: number; readonly indexes: readonly number[] }>>;
  readonly records: readonly PlacedRecord[];
}

export function planAppend(records: readonly PlacedRecord[], maxRequestBytes: number): AppendPlan {
  const chunksByPartition = new Map<string, { topic: string; partition: number; chunks: number[][]; bytes: number }>();
  records.forEach((record, index) => {
    const key = `${record.topic}\u0000${record.partition}`;
    let entry = chunksByPartition.get(key);
    if (entry === undefined) chunksByPartition.set(key, (entry = { topic: record.topic, partition: record.partition, chunks: [[]], bytes: 0 }));
    let chunk = entry.chunks[entry.chunks.length - 1]!;
    if (chunk.length > 0 && entry.bytes + record.sizeBytes > maxRequestBytes) {
      chunk = [];
      entry.chunks.push(chunk);
      entry.bytes = 0;
    }
    chunk.push(index);
    entry.bytes += record.sizeBytes;
  });
  const rounds: Array<Array<{ topic: string; partition: number; indexes: number[] }>> = [];
  for (const { topic, partition, chunks } of chunksByPartition.values()) {
    chunks.forEach((indexes, n) => (rounds[n] ??= []).push({ topic, partition, indexes }));
  }
  return { size: records.length, rounds, records };
}

export function recordSize(key: Buffer | null, value: Buffer | null, headers: Readonly<Record<string, Buffer>>): number {
  let size = RECORD_OVERHEAD_BYTES + (key?.length ?? 0) + (value?.length ?? 0);
  for (const [name, header] of Object.entries(headers)) size += Buffer.byteLength(name) + header.length + 8;
  return size;
}

interface Sender {
  sendBatch(batch: { acks: number; timeout?: number; topicMessages: TopicMessages[] }): Promise<RecordMetadata[]>;
}

/** Sends a plan, round by round; each record's offset is its chunk's base offset plus its place in the chunk. */
export async function sendPlan(sender: Sender, plan: AppendPlan, timeoutMs: number): Promise<AppendResult[]> {
  const results: AppendResult[] = new Array(plan.size);
  for (const round of plan.rounds) {
    const byTopic = new Map<string, Message[]>();
    for (const { topic, indexes } of round) {
      let messages = byTopic.get(topic);
      if (messages === undefined) byTopic.set(topic, (messages = []));
      for (const i of indexes) messages.push(plan.records[i]!.message);
    }
    const response = await sender.sendBatch({
      acks: -1,
      timeout: timeoutMs,
      topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
    });
    for (const { topic, partition, indexes } of round) {
      const meta = response.find((r) => r.topicName === topic && r.partition === partition);
      const base = meta?.baseOffset;
      if (base === undefined || meta?.errorCode !== 0) {
        throw new MillraceError('MILLRACE_LOG_WRITE_FAILED', `the broker did not acknowledge ${topic}/${partition}`, {
          details: { topic, partition },
        });
      }
      indexes.forEach((i, n) => {
        const record = plan.records[i]!;
        results[i] = { topic, partition, offset: (Number(base) + n) as Offset, timestamp: record.timestamp };
      });
    }
  }
  return results;
}

export interface GroupOffsets {
  readonly group: string;
  readonly topics: Array<{ topic: string; partitions: Array<{ partition: number; offset: string; metadata: string | null }> }>;
}

/**
 * One transactional producer per transactional id, reused for its sequential transactions, all on one shared set
 * of connections. Work for one id runs one step at a time (a producer has one transaction at a time).
 *
 * Fencing has two halves: within this process, each `begin` and `fence` starts a new generation of the id, and a
 * transaction of an older generation that has not started to commit is refused; across processes, `fence` calls
 * InitProducerId again (a fresh producer for the id), which bumps the epoch on the transaction coordinator: it
 * aborts the open transaction of any older producer with the id and refuses its later requests.
 */
export class TransactionalWriters {
  readonly #create: (transactionalId: string) => Promise<Producer>;
  readonly #producers = new Map<string, Producer>();
  readonly #generations = new Map<string, number>();
  readonly #queues = new Map<string, Promise<unknown>>();
  readonly #timeoutMs: number;

  constructor(options: { create: (transactionalId: string) => Promise<Producer>; requestTimeoutMs: number }) {
    this.#create = options.create;
    this.#timeoutMs = options.requestTimeoutMs;
  }

  /** A new generation of the id: open transactions of older generations can no longer commit. */
  begin(transactionalId: string): number {
    const generation = (this.#generations.get(transactionalId) ?? 0) + 1;
    this.#generations.set(transactionalId, generation);
    return generation;
  }

  isCurrent(transactionalId: string, generation: number): boolean {
    return this.#generations.get(transactionalId) === generation;
  }

  /** Claims the id: refuses older transactions here, and fences older producers with the id anywhere. */
  async fence(transactionalId: string): Promise<void> {
    this.begin(transactionalId);
    await this.#serial(transactionalId, async () => {
      this.#producers.delete(transactionalId);
      const producer = await this.#create(transactionalId);
      try {
        // Beginning a transaction runs InitProducerId; aborting one that sent nothing sends nothing.
        const claim = await producer.transaction();
        await claim.abort();
      } catch (err) {
        throw fromKafkaError(err, `claiming transactional id ${transactionalId}`, 'MILLRACE_LOG_WRITE_FAILED');
      }
      this.#producers.set(transactionalId, producer);
    });
  }

  /** Commits one transaction: records (already planned and validated) and offsets, all or nothing. */
  async commit(
    transactionalId: string,
    generation: number,
    plan: AppendPlan,
    offsets: readonly GroupOffsets[],
    /** Runs after the commit, before the id's next step: waits until what was committed can be read. */
    settle: (results: readonly AppendResult[]) => Promise<void>,
  ): Promise<AppendResult[]> {
    return this.#serial(transactionalId, async () => {
      if (!this.isCurrent(transactionalId, generation)) throw fenced(transactionalId);
      if (plan.size === 0 && offsets.length === 0) return [];
      let producer = this.#producers.get(transactionalId);
      if (producer === undefined) {
        producer = await this.#create(transactionalId);
        this.#producers.set(transactionalId, producer);
      }
      let transaction: Awaited<ReturnType<Producer['transaction']>> | undefined;
      let results: AppendResult[] = [];
      try {
        transaction = await producer.transaction();
        if (plan.size > 0) results = await sendPlan(transaction, plan, this.#timeoutMs);
        for (const { group, topics } of offsets) {
          const open = transaction;
          // kafkajs passes each partition's `metadata` through to TxnOffsetCommit as given.
          await retryConcurrentTransactions(() =>
            open.sendOffsets({ consumerGroupId: group, topics: topics as Parameters<typeof open.sendOffsets>[0]['topics'] }),
          );
        }
        await transaction.commit();
      } catch (err) {
        // The producer's transaction state is unknown now: the next transaction starts from a fresh InitProducerId.
        if (this.#producers.get(transactionalId) === producer) this.#producers.delete(transactionalId);
        if (transaction?.isActive() === true && !isFencedError(err)) await transaction.abort().catch(() => undefined);
        if (isFencedError(err)) throw fenced(transactionalId, err);
        if (err instanceof MillraceError) throw err;
        throw fromKafkaError(err, `committing transaction ${transactionalId}`, 'MILLRACE_LOG_WRITE_FAILED');
      }
      await settle(results);
      return results;
    });
  }

  /** Resolves once no work for any id is in flight. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#queues.values()]);
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

/**
 * Right after a commit the coordinator is still writing that transaction's markers, and answers AddOffsetsToTxn
 * with CONCURRENT_TRANSACTIONS until it is done (Java's producer retries it; kafkajs does not, for this request).
 */
async function retryConcurrentTransactions<T>(request: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await request();
    } catch (err) {
      if (!hasKafkaType(err, 'CONCURRENT_TRANSACTIONS') || attempt >= CONCURRENT_TRANSACTIONS_ATTEMPTS) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.min(5 * attempt, 100)));
    }
  }
}
