import type { LatencyPercentiles } from './status.js';

/** Checkpoint latencies a task keeps for its percentiles. */
const LATENCY_SAMPLES = 256;
/** The throughput a task reports is over this much recent wall-clock time. */
const RATE_WINDOW_MS = 10_000;
/** Bound on the rate samples kept (one per checkpoint within the window). */
const RATE_SAMPLES = 512;

/**
 * What a task remembers of its recent checkpoints for status: the latency of each (for p50/p95/p99) and how many
 * records it had processed when each completed (for records per second). Fixed-size rings: status reads sort a
 * copy of a few hundred numbers at most, and the hot path only writes two slots per checkpoint.
 */
export class RecentCheckpoints {
  readonly #latencies = new Float64Array(LATENCY_SAMPLES);
  #latencyCount = 0;
  #latencyNext = 0;
  readonly #rate: Array<{ atMs: number; processed: number }> = [];

  record(atMs: number, processed: number, latencyMs: number | undefined): void {
    if (latencyMs !== undefined) {
      this.#latencies[this.#latencyNext] = latencyMs;
      this.#latencyNext = (this.#latencyNext + 1) % LATENCY_SAMPLES;
      this.#latencyCount = Math.min(this.#latencyCount + 1, LATENCY_SAMPLES);
    }
    this.#rate.push({ atMs, processed });
    while (this.#rate.length > RATE_SAMPLES || (this.#rate.length > 1 && this.#rate[0]!.atMs < atMs - RATE_WINDOW_MS)) this.#rate.shift();
  }

  latency(): LatencyPercentiles | null {
    const n = this.#latencyCount;
    if (n === 0) return null;
    const sorted = this.#latencies.slice(0, n).sort();
    const at = (q: number): number => Math.round(sorted[Math.min(n - 1, Math.ceil(q * n) - 1)]! * 10) / 10;
    return { p50: at(0.5), p95: at(0.95), p99: at(0.99), samples: n };
  }

  /** Records per second between the oldest checkpoint in the window and now (the current count). */
  recordsPerSecond(nowMs: number, processed: number): number {
    const inWindow = this.#rate.filter((s) => s.atMs >= nowMs - RATE_WINDOW_MS);
    const first = inWindow[0];
    if (first === undefined) return 0;
    const seconds = Math.max(1, nowMs - first.atMs) / 1000;
    return Math.round(((processed - first.processed) / seconds) * 10) / 10;
  }
}
