/**
 * The baseline of `embedded.stateless`: what a careful developer would write by hand instead of a topology, on
 * the same `EmbeddedLog`. One loop per partition, all running at once (the engine runs a task per partition):
 *
 *   read up to `pollMaxRecords` records → parse, filter, enrich, serialise (as the stateless topology does) →
 *   one transaction: append the outputs to `out` and commit the next input offset → await it → read again.
 *
 * What it guarantees: the outputs of a batch and its input offset commit in one LevelDB batch, so a crash leaves
 * either both or neither, and a restart resumes from the committed offset without duplicates or gaps (exactly
 * once, as the engine's checkpoints); the same `fsync` setting as the engine (the log's). Each partition's writer
 * is fenced by a transactional id, as the engine's tasks are.
 * What it does not do, and the engine does: group membership and rebalancing (partitions are fixed here),
 * dead-lettering of bad records (a bad record throws), metrics, event-time tracking, state stores. It commits once
 * per read batch, where the engine commits every `commitIntervalMs` or `commitMaxRecords` and overlaps the commit
 * with the next batch's processing; both are choices a hand-written loop could make differently.
 */
import type { EmbeddedLog } from '../engine/log/embedded/embedded-log.js';
import { offset, type AppendRecord, type Offset } from '../engine/log/log.js';

export interface HandLoopOptions {
  readonly log: EmbeddedLog;
  readonly group: string;
  readonly input: string;
  readonly output: string;
  readonly partitions: number;
  readonly maxRecords: number;
  readonly maxWaitMs: number;
}

interface Event {
  readonly seq: number;
  readonly amount: number;
  readonly country: string;
}

export class HandLoop {
  readonly #options: HandLoopOptions;
  readonly #abort = new AbortController();
  #loops: Promise<void>[] = [];
  #failure: unknown;

  constructor(options: HandLoopOptions) {
    this.#options = options;
  }

  async start(): Promise<void> {
    const { log, group, input, partitions } = this.#options;
    const committed = await log.committedOffsets(group, input);
    for (let p = 0; p < partitions; p++) {
      await log.fenceWriters(`${group}-${p}`);
      const loop = this.#run(p, committed.get(p) ?? offset(0));
      loop.catch((err: unknown) => (this.#failure = err));
      this.#loops.push(loop);
    }
  }

  /** Throws the first loop's failure, if any. */
  check(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await Promise.allSettled(this.#loops);
    this.#loops = [];
    this.check();
  }

  async #run(partition: number, from: Offset): Promise<void> {
    const { log, group, input, output, maxRecords, maxWaitMs } = this.#options;
    const signal = this.#abort.signal;
    let next = from;
    while (!signal.aborted) {
      const batch = await log.read(input, partition, next, { maxRecords, maxWaitMs, signal });
      if (batch.records.length === 0) continue;
      const outputs: AppendRecord[] = [];
      for (const record of batch.records) {
        const value = JSON.parse(record.value!.toString('utf8')) as Event;
        if (!(value.amount >= 0)) continue;
        outputs.push({
          topic: output,
          key: record.key,
          value: Buffer.from(JSON.stringify({ ...value, cents: Math.round(value.amount * 100) })),
          timestamp: record.timestamp,
        });
      }
      const transaction = await log.beginTransaction({ transactionalId: `${group}-${partition}` });
      transaction.append(outputs);
      transaction.commitOffsets(group, [{ topic: input, partition, offset: batch.nextOffset }]);
      await transaction.commit();
      next = batch.nextOffset;
    }
  }
}
