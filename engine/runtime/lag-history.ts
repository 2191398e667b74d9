import type { ApplicationStatus } from './status.js';

/** How often lag is sampled for its trend. */
export const LAG_SAMPLE_INTERVAL_MS = 5_000;
/** Samples kept per partition: ten minutes at the interval above. */
export const LAG_SAMPLES = 120;

/**
 * Lag over time, per application, topic and partition, so status can show whether a lag is growing or draining
 * without anyone having watched it. Sampled on a timer rather than by status reads: the trend (and the stall
 * bookkeeping the sample's status read updates) then does not depend on who polls, or how often.
 */
export class LagHistory {
  readonly #series = new Map<string, number[]>();

  static key(applicationId: string, topic: string, partition: number): string {
    return `${applicationId}\u0000${topic}\u0000${partition}`;
  }

  sample(applications: readonly ApplicationStatus[]): void {
    const seen = new Set<string>();
    for (const app of applications) {
      for (const task of app.tasks) {
        for (const input of task.inputs) {
          const key = LagHistory.key(app.applicationId, input.topic, input.partition);
          seen.add(key);
          let series = this.#series.get(key);
          if (series === undefined) this.#series.set(key, (series = []));
          series.push(input.lag);
          if (series.length > LAG_SAMPLES) series.shift();
        }
      }
    }
    // Partitions no longer served here (a task moved away) are forgotten.
    for (const key of this.#series.keys()) if (!seen.has(key)) this.#series.delete(key);
  }

  /** Lag in records, oldest first, one sample per interval. */
  of(applicationId: string, topic: string, partition: number): readonly number[] {
    return this.#series.get(LagHistory.key(applicationId, topic, partition)) ?? [];
  }
}
