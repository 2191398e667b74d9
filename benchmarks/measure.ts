/**
 * What every streaming scenario reports, measured the same way for the engine and for its baseline:
 *
 * - events/s: records appended to the input, from the first append to the last input offset committed;
 * - CPU-µs per event: `process.cpuUsage()` over the same span (user + system, every thread of the process) divided by
 *   the events. Embedded scenarios run in this process, so this is the engine's CPU *and* the producer's appends;
 *   the producer is the same for a scenario and its baseline;
 * - p50/p99 end-to-end latency: for a bounded sample of input records, the time from the record's append (the
 *   timestamp the log stamps into it) to the moment its input offset is seen committed. On the embedded log the
 *   engine (and the hand-written loop) commit outputs and input offsets in one atomic batch, so "offset committed"
 *   is "output visible". The commit positions are polled every `POLL_MS` (or `pollMs`), which bounds the resolution.
 *
 * The producer keeps at most `windowRecords` records in flight (appended, not yet committed): without a bound the
 * producer outruns the consumer and every latency is the length of the backlog. The figures are thus latencies at
 * saturation with that many records queued, comparable between a scenario and its baseline, not an idle latency.
 */
import { performance } from 'node:perf_hooks';
import type { AppendRecord, AppendResult } from '../engine/log/log.js';

/** How often the commit positions are polled; also the resolution of the latencies. */
export const POLL_MS = 2;
/** At most this many records are sampled for latency per run. */
export const MAX_LATENCY_SAMPLES = 10_000;

export interface Measurement {
  readonly eventsPerS: number;
  readonly cpuUsPerEvent: number;
  /** `NaN` when the run had no latency sample (records produced before it started). */
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** Records appended but not yet seen committed, a queue per partition in offset order, sampled every `stride`th. */
export class LatencyProbe {
  readonly #stride: number;
  readonly #pending = new Map<number, Array<{ offset: number; appendedAtMs: number }>>();
  readonly #heads = new Map<number, number>();
  readonly #latenciesMs: number[] = [];
  #seen = 0;

  constructor(events: number, maxSamples = MAX_LATENCY_SAMPLES) {
    this.#stride = Math.max(1, Math.ceil(events / maxSamples));
  }

  appended(results: readonly AppendResult[]): void {
    for (const r of results) {
      if (this.#seen++ % this.#stride !== 0) continue;
      let queue = this.#pending.get(r.partition);
      if (queue === undefined) this.#pending.set(r.partition, (queue = []));
      queue.push({ offset: r.offset, appendedAtMs: r.timestamp });
    }
  }

  /** `committed`: partition → next offset to read, as committed now. */
  committed(committed: ReadonlyMap<number, number>, nowMs: number = Date.now()): void {
    for (const [partition, queue] of this.#pending) {
      const next = committed.get(partition) ?? 0;
      let head = this.#heads.get(partition) ?? 0;
      while (head < queue.length && queue[head]!.offset < next) this.#latenciesMs.push(nowMs - queue[head++]!.appendedAtMs);
      this.#heads.set(partition, head);
    }
  }

  percentileMs(p: number): number {
    if (this.#latenciesMs.length === 0) return Number.NaN;
    const sorted = [...this.#latenciesMs].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
  }
}

export interface StreamingRunOptions {
  /** Records to append; the run ends when all of them are committed. */
  readonly events: number;
  readonly appendBatch: number;
  /** At most this many records appended and not yet committed. */
  readonly windowRecords: number;
  /** The input records, by sequence number. */
  readonly record: (i: number) => AppendRecord;
  readonly append: (records: AppendRecord[]) => Promise<AppendResult[]>;
  /** The consumer's committed positions on the input: partition → next offset to read. */
  readonly committed: () => Promise<ReadonlyMap<number, number>>;
  /** Throws when the consumer failed, so the run does not wait for it forever. */
  readonly check?: () => void;
  readonly timeoutMs?: number;
  /** How often the committed positions are read (default `POLL_MS`): a broker round trip on Kafka. */
  readonly pollMs?: number;
}

const sum = (m: ReadonlyMap<number, number>): number => {
  let total = 0;
  for (const v of m.values()) total += v;
  return total;
};

/** Feeds a running consumer and measures it: see the module comment. The consumer is started and stopped by the caller. */
export async function measureStreaming(options: StreamingRunOptions): Promise<Measurement> {
  const probe = new LatencyProbe(options.events);
  const timeoutMs = options.timeoutMs ?? 600_000;
  let done = 0;
  let finished = false;
  const cpu = process.cpuUsage();
  const started = performance.now();
  const poll = async (): Promise<void> => {
    while (!finished) {
      options.check?.();
      const committed = await options.committed();
      probe.committed(committed);
      done = sum(committed);
      if (done >= options.events) break;
      if (performance.now() - started > timeoutMs) throw new Error(`${done} of ${options.events} records committed in ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? POLL_MS));
    }
  };
  const produce = async (): Promise<void> => {
    for (let i = 0; i < options.events && !finished; i += options.appendBatch) {
      while (i - done > options.windowRecords && !finished) await new Promise((resolve) => setTimeout(resolve, 1));
      const records: AppendRecord[] = [];
      for (let j = i; j < Math.min(options.events, i + options.appendBatch); j++) records.push(options.record(j));
      probe.appended(await options.append(records));
    }
  };
  const polling = poll();
  try {
    await Promise.all([produce(), polling]);
  } finally {
    finished = true;
    await polling.catch(() => undefined);
  }
  const seconds = (performance.now() - started) / 1000;
  const usage = process.cpuUsage(cpu);
  return {
    eventsPerS: options.events / seconds,
    cpuUsPerEvent: (usage.user + usage.system) / options.events,
    p50Ms: probe.percentileMs(50),
    p99Ms: probe.percentileMs(99),
  };
}

/** Wall time and CPU of `fn`, per event, for runs that have no latency to measure (a baseline writing straight to LevelDB). */
export async function measureBatch(events: number, fn: () => Promise<void>): Promise<Measurement> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  await fn();
  const seconds = (performance.now() - started) / 1000;
  const usage = process.cpuUsage(cpu);
  return { eventsPerS: events / seconds, cpuUsPerEvent: (usage.user + usage.system) / events, p50Ms: Number.NaN, p99Ms: Number.NaN };
}

export function median(values: readonly number[]): number {
  const finite = values.filter((v) => !Number.isNaN(v));
  if (finite.length === 0) return Number.NaN;
  const sorted = [...finite].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
