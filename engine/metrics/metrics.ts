import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One input partition of a task, as lag reporting sees it. */
export interface LagSample {
  readonly application: string;
  readonly task: string;
  readonly topic: string;
  readonly partition: number;
  /** Next offset the task will read. */
  readonly position: number;
  readonly highWatermark: number;
  /** Timestamp of the record at `position`, when the task has it in hand (for lag in seconds). */
  readonly nextTimestampMs?: number;
}

/** A model version's share of traffic. */
export interface TrafficSample {
  readonly model: string;
  readonly version: string;
  readonly route: 'stable' | 'canary';
  /** 0 to 1. */
  readonly share: number;
}

/**
 * The engine's Prometheus metrics, on a registry of its own. Names are stable: dashboards and alerts depend on them.
 * Hot paths count in plain numbers and add them here once per batch, never once per record.
 */
/** A projection as the metrics see it. */
export interface ProjectionSample {
  readonly projection: string;
  readonly partitions: ReadonlyArray<{ readonly topic: string; readonly partition: number; readonly lag: number }>;
  readonly recordsApplied: number;
  readonly deadLetters: number;
  readonly expiredOps: number;
}

export class Metrics {
  readonly registry = new Registry();
  readonly recordsIn: Counter<'application' | 'task' | 'topic'>;
  readonly recordsOut: Counter<'application' | 'task' | 'topic'>;
  readonly deadLetters: Counter<'application' | 'task' | 'topic'>;
  readonly commitDuration: Histogram<'application'>;
  readonly commits: Counter<'application'>;
  readonly produced: Counter<'topic'>;
  readonly produceRejected: Counter<'topic' | 'reason'>;
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly recordLatency: Histogram<'application'>;
  readonly inferenceBatchSize: Histogram<'model'>;
  readonly inferenceLatency: Histogram<'model'>;
  readonly driftPsi: Gauge<'model' | 'version' | 'feature'>;
  readonly driftKs: Gauge<'model' | 'version' | 'feature'>;
  readonly #trafficSources: Array<() => Promise<Iterable<TrafficSample>>> = [];
  readonly #lagSources: Array<() => Iterable<LagSample>> = [];
  readonly #projectionSources: Array<() => Iterable<ProjectionSample>> = [];

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.recordsIn = new Counter({
      name: 'millrace_records_in_total',
      help: 'Records read by tasks, by application, task and source topic.',
      labelNames: ['application', 'task', 'topic'],
      registers,
    });
    this.recordsOut = new Counter({
      name: 'millrace_records_out_total',
      help: 'Records written by tasks (sinks, repartition and dead-letter topics), by application, task and topic.',
      labelNames: ['application', 'task', 'topic'],
      registers,
    });
    this.deadLetters = new Counter({
      name: 'millrace_dead_letters_total',
      help: 'Records sent to a dead-letter topic, by application, task and source topic.',
      labelNames: ['application', 'task', 'topic'],
      registers,
    });
    this.commitDuration = new Histogram({
      name: 'millrace_commit_duration_seconds',
      help: 'Time to make a checkpoint (outputs, state and offsets) durable.',
      labelNames: ['application'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.commits = new Counter({
      name: 'millrace_commits_total',
      help: 'Checkpoints committed, by application.',
      labelNames: ['application'],
      registers,
    });
    this.produced = new Counter({
      name: 'millrace_produced_records_total',
      help: 'Records appended through the HTTP API, by topic.',
      labelNames: ['topic'],
      registers,
    });
    this.produceRejected = new Counter({
      name: 'millrace_produce_rejected_total',
      help: 'Produce requests refused at the edge, by topic and reason.',
      labelNames: ['topic', 'reason'],
      registers,
    });
    this.httpRequests = new Counter({
      name: 'millrace_http_requests_total',
      help: 'HTTP requests served, by method, route and status.',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.recordLatency = new Histogram({
      name: 'millrace_record_latency_seconds',
      help: 'Time from a task taking a record to the checkpoint that makes its effects durable, for the first record of each checkpoint (the one that waited longest).',
      labelNames: ['application'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.inferenceBatchSize = new Histogram({
      name: 'millrace_inference_batch_size',
      help: 'Rows per model call, by model.',
      labelNames: ['model'],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    });
    this.inferenceLatency = new Histogram({
      name: 'millrace_inference_latency_seconds',
      help: 'Time of one model call (a micro-batch), retries included, by model.',
      labelNames: ['model'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers,
    });
    this.driftPsi = new Gauge({
      name: 'millrace_drift_psi',
      help: 'Population stability index of the latest drift evaluation, per model version and feature (score included).',
      labelNames: ['model', 'version', 'feature'],
      registers,
    });
    this.driftKs = new Gauge({
      name: 'millrace_drift_ks',
      help: 'Kolmogorov-Smirnov statistic of the latest drift evaluation, per model version and feature (score included).',
      labelNames: ['model', 'version', 'feature'],
      registers,
    });
    const trafficSources = this.#trafficSources;
    new Gauge({
      name: 'millrace_model_traffic_share',
      help: 'Share of a model\'s traffic (0 to 1) each version serves, by route (stable or canary).',
      labelNames: ['model', 'version', 'route'],
      registers,
      async collect() {
        this.reset();
        for (const source of trafficSources) {
          for (const s of await source()) this.set({ model: s.model, version: s.version, route: s.route }, s.share);
        }
      },
    });
    const lagSources = this.#lagSources;
    new Gauge({
      name: 'millrace_consumer_lag_records',
      help: 'Records between a task position and the end of its input partition.',
      labelNames: ['application', 'task', 'topic', 'partition'],
      registers,
      collect() {
        this.reset();
        for (const source of lagSources) {
          for (const s of source()) {
            this.set(
              { application: s.application, task: s.task, topic: s.topic, partition: String(s.partition) },
              Math.max(0, s.highWatermark - s.position),
            );
          }
        }
      },
    });
    new Gauge({
      name: 'millrace_consumer_lag_seconds',
      help: 'How far behind a task is in time: now minus the timestamp of the next record it will process (0 when caught up).',
      labelNames: ['application', 'task', 'topic', 'partition'],
      registers,
      collect() {
        this.reset();
        const now = Date.now();
        for (const source of lagSources) {
          for (const s of source()) {
            const behind = s.highWatermark > s.position && s.nextTimestampMs !== undefined ? Math.max(0, (now - s.nextTimestampMs) / 1000) : 0;
            this.set({ application: s.application, task: s.task, topic: s.topic, partition: String(s.partition) }, behind);
          }
        }
      },
    });
    const projectionSources = this.#projectionSources;
    const projectionSamples = (): ProjectionSample[] => projectionSources.flatMap((source) => [...source()]);
    new Gauge({
      name: 'millrace_projection_lag_records',
      help: 'Records of a source partition a projection has not applied yet, by projection and partition.',
      labelNames: ['projection', 'topic', 'partition'],
      registers,
      collect() {
        this.reset();
        for (const s of projectionSamples()) {
          for (const p of s.partitions) this.set({ projection: s.projection, topic: p.topic, partition: String(p.partition) }, p.lag);
        }
      },
    });
    new Gauge({
      name: 'millrace_projection_records_applied',
      help: 'Records a projection applied since the engine started, by projection.',
      labelNames: ['projection'],
      registers,
      collect() {
        this.reset();
        for (const s of projectionSamples()) this.set({ projection: s.projection }, s.recordsApplied);
      },
    });
    new Gauge({
      name: 'millrace_projection_dead_letters',
      help: 'Records a projection dead-lettered since the engine started, by projection.',
      labelNames: ['projection'],
      registers,
      collect() {
        this.reset();
        for (const s of projectionSamples()) this.set({ projection: s.projection }, s.deadLetters);
      },
    });
    new Gauge({
      name: 'millrace_projection_expired_ops',
      help: 'Changes a projection store dropped since the engine started because they were older than its retained history, by projection.',
      labelNames: ['projection'],
      registers,
      collect() {
        this.reset();
        for (const s of projectionSamples()) this.set({ projection: s.projection }, s.expiredOps);
      },
    });
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'millrace_process_' });
  }

  /** Registers a function the lag gauge calls on every scrape. */
  addLagSource(source: () => Iterable<LagSample>): () => void {
    this.#lagSources.push(source);
    return () => {
      const at = this.#lagSources.indexOf(source);
      if (at >= 0) this.#lagSources.splice(at, 1);
    };
  }

  /** Registers a function the traffic-share gauge calls (and awaits) on every scrape. */
  addTrafficSource(source: () => Promise<Iterable<TrafficSample>>): void {
    this.#trafficSources.push(source);
  }

  /** One drift evaluation's statistics, per column. */
  observeDrift(evaluation: { readonly model: string; readonly version: string; readonly statistics: ReadonlyArray<{ feature: string; psi: number; ks: number }> }): void {
    for (const s of evaluation.statistics) {
      const labels = { model: evaluation.model, version: evaluation.version, feature: s.feature };
      if (Number.isFinite(s.psi)) this.driftPsi.set(labels, s.psi);
      if (Number.isFinite(s.ks)) this.driftKs.set(labels, s.ks);
    }
  }

  /** One model call that answered. */
  observeInference(model: string, rows: number, durationMs: number): void {
    this.inferenceBatchSize.observe({ model }, rows);
    this.inferenceLatency.observe({ model }, durationMs / 1000);
  }

  /** Registers a function the projection gauges call on every scrape. */
  addProjectionSource(source: () => Iterable<ProjectionSample>): void {
    this.#projectionSources.push(source);
  }

  lagSamples(): LagSample[] {
    return this.#lagSources.flatMap((source) => [...source()]);
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
