import type { MillraceClient, ProduceRecord } from '../../engine/cli/client.js';
import { Topics } from './contract.js';
import { DEFAULT_LABEL_DELAY_MS, TrafficGenerator, type GeneratedEvent, type TrafficStats } from './generator.js';

/**
 * Sends the demo's traffic (the `TrafficGenerator`) to a running engine over HTTP, paced by the wall clock.
 *
 * Event time runs `timeScale` times faster than the wall clock, so labels that come minutes after their transaction
 * (as they do in a card network) arrive seconds apart in a demo. It is laid out to end at about the moment the run
 * ends: a 20-minute run at scale 180 covers the sixty hours of event time before it. Nothing is ever stamped in the future
 * (Kafka brokers refuse records too far ahead).
 */

export interface DemoTrafficOptions {
  readonly client: MillraceClient;
  readonly seed: number;
  /** Transactions sent per second of wall-clock time (labels come on top, one each). */
  readonly ratePerSecond: number;
  /** How long to send for (wall clock). */
  readonly durationMs: number;
  /** When the drift begins: `afterMs` of wall clock after the start, or `atMs` of event time; `null`: never. */
  readonly driftAt: { readonly afterMs: number } | { readonly atMs: number } | null;
  /** Event-time seconds per wall-clock second. Default 180 (three minutes a second). */
  readonly timeScale?: number;
  /** Card holders. Default 2,000. */
  readonly users?: number;
  /** A label comes this long after its transaction, in event time. Default 2 to 10 minutes. */
  readonly labelDelayMs?: readonly [number, number];
  /** Most events in one request. Default 2,000. */
  readonly maxBatch?: number;
  readonly signal?: AbortSignal;
  /** Called about every `progressEveryMs` and once at the end. */
  readonly onProgress?: (progress: DemoProgress) => void;
  readonly progressEveryMs?: number;
  /** The wall clock (tests). */
  readonly now?: () => number;
}

export interface DemoProgress {
  readonly elapsedMs: number;
  readonly sent: number;
  /** Events per second over the last interval. */
  readonly ratePerSecond: number;
  /** Event time reached. */
  readonly eventTimeMs: number;
  readonly drifted: boolean;
  readonly stats: TrafficStats;
  readonly done: boolean;
}

export interface DemoSummary extends DemoProgress {
  readonly eventStartMs: number;
  readonly driftStartMs: number | null;
}

export const DEFAULT_TIME_SCALE = 180;
export const DEFAULT_DEMO_USERS = 2_000;

/** Produces generated events in order, in requests of at most `maxBatch` per topic; returns how many were sent. */
export async function sendEvents(client: MillraceClient, events: readonly GeneratedEvent[], options: { maxBatch?: number; signal?: AbortSignal } = {}): Promise<number> {
  const maxBatch = options.maxBatch ?? 2_000;
  let sent = 0;
  for (let from = 0; from < events.length; from += maxBatch) {
    if (options.signal?.aborted) return sent;
    const chunk = events.slice(from, from + maxBatch);
    const byTopic = new Map<string, ProduceRecord[]>();
    for (const event of chunk) {
      const list = byTopic.get(event.topic) ?? [];
      list.push({ key: event.key, value: event.value, timestamp: event.atMs });
      byTopic.set(event.topic, list);
    }
    // Transactions first: a label never lands before its transaction's batch.
    for (const topic of [Topics.transactionsRaw, Topics.feedbackRaw]) {
      const records = byTopic.get(topic);
      if (records !== undefined) await client.produce(topic, records, options.signal);
    }
    sent += chunk.length;
  }
  return sent;
}

export async function runDemoTraffic(options: DemoTrafficOptions): Promise<DemoSummary> {
  const now = options.now ?? Date.now;
  const scale = options.timeScale ?? DEFAULT_TIME_SCALE;
  const progressEveryMs = options.progressEveryMs ?? 1_000;
  const maxBatch = options.maxBatch ?? 2_000;
  if (!(scale > 0) || !(options.ratePerSecond > 0) || !(options.durationMs > 0)) {
    throw new RangeError('runDemoTraffic: timeScale, ratePerSecond and durationMs must be positive');
  }
  const wallStart = now();
  // Event time ends at the run's end: it starts (scale − 1) run lengths before the run starts.
  const eventStartMs = Math.round(wallStart + options.durationMs - options.durationMs * scale);
  if (eventStartMs < 0) throw new RangeError('runDemoTraffic: durationMs × timeScale reaches back before 1970');
  const eventTimeAt = (wallMs: number): number => eventStartMs + (wallMs - wallStart) * scale;
  const driftAtMs = options.driftAt === null ? null : Math.round('afterMs' in options.driftAt ? options.driftAt.afterMs * scale : options.driftAt.atMs - eventStartMs);
  const generator = new TrafficGenerator({
    seed: options.seed,
    users: options.users ?? DEFAULT_DEMO_USERS,
    ratePerSecond: options.ratePerSecond / scale,
    driftAtMs: driftAtMs !== null && driftAtMs >= 0 ? driftAtMs : driftAtMs === null ? null : 0,
    startTimeMs: eventStartMs,
    labelDelayMs: options.labelDelayMs ?? DEFAULT_LABEL_DELAY_MS,
  });
  let sent = 0;
  let lastReport = { wallMs: wallStart, sent: 0 };
  const report = (done: boolean, wallMs: number, eventTimeMs: number): DemoProgress => {
    const intervalMs = Math.max(1, wallMs - lastReport.wallMs);
    const progress: DemoProgress = {
      elapsedMs: wallMs - wallStart,
      sent,
      ratePerSecond: ((sent - lastReport.sent) * 1000) / intervalMs,
      eventTimeMs,
      drifted: generator.drifted,
      stats: generator.stats,
      done,
    };
    lastReport = { wallMs, sent };
    options.onProgress?.(progress);
    return progress;
  };
  const end = wallStart + options.durationMs;
  let eventTimeMs = eventStartMs;
  for (;;) {
    if (options.signal?.aborted) break;
    const wallMs = Math.min(now(), end);
    eventTimeMs = eventTimeAt(wallMs);
    const due = generator.takeUntil(eventTimeMs, maxBatch);
    if (due.length > 0) {
      try {
        sent += await sendEvents(options.client, due, { maxBatch, ...(options.signal === undefined ? {} : { signal: options.signal }) });
      } catch (err) {
        // Stopped (Ctrl-C) in the middle of a request: what that request carried may or may not have landed.
        if (options.signal?.aborted) break;
        throw err;
      }
    }
    if (now() - lastReport.wallMs >= progressEveryMs) report(false, now(), eventTimeMs);
    if (wallMs >= end && due.length < maxBatch) break;
    // Behind (a full batch went): send the next at once; otherwise wait for more to fall due.
    if (due.length < maxBatch) await sleep(50, options.signal);
  }
  const last = report(true, now(), eventTimeMs);
  return { ...last, eventStartMs, driftStartMs: generator.driftStartMs };
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
