import { MillraceError } from '../errors.js';
import type { Logger } from '../logger.js';
import { EmbeddedLog } from '../log/embedded/embedded-log.js';
import type { Log, Subscription, TopicPartition } from '../log/log.js';
import type { LagSample, Metrics } from '../metrics/metrics.js';
import type { KeyValueBackend } from '../state/backend.js';
import type { StoreSpec, Subtopology, Topology } from '../topology/topology.js';
import { deadLetterTopic, type ErrorPolicy } from './dead-letter.js';
import type { ApplicationStatus } from './status.js';
import { GlobalStoreTask, GlobalStoreView } from './global-store.js';
import { StreamTask, type LocalState, type TaskConfig } from './stream-task.js';
import type { TaskEnvironment } from './task-executor.js';

export interface RunnerConfig extends TaskConfig {
  readonly errorPolicy: ErrorPolicy;
  readonly cacheMaxBytesPerStore: number;
}

export interface RunnerOptions {
  readonly log: Log;
  readonly topology: Topology;
  readonly config: RunnerConfig;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Where a store of a task keeps its bytes (on the embedded log: a slice of the log's own LevelDB). */
  readonly openBackend: (store: StoreSpec, partition: number) => KeyValueBackend;
  /** Where local state is written after each transaction, when the log cannot commit it itself (Kafka). */
  readonly localState?: LocalState;
  readonly wallClockMs?: () => number;
}

/**
 * Runs one topology on a log: works out partition counts, creates internal topics (repartition, changelog,
 * dead-letter), and runs one `StreamTask` per sub-topology and partition.
 */
export class TopologyRunner {
  readonly topology: Topology;
  readonly #options: RunnerOptions;
  #tasks: StreamTask[] = [];
  readonly #taskSpecs = new Map<string, { subtopology: Subtopology; partition: number }>();
  #subscription: Subscription | undefined;
  readonly #ready = deferred<Subscription>();
  #assigning: Promise<void> = Promise.resolve();
  #env: TaskEnvironment | undefined;
  readonly #globalTasks: GlobalStoreTask[] = [];
  readonly #globalViews = new Map<string, GlobalStoreView<unknown, unknown>>();
  readonly #partitions = new Map<string, number>();
  #state: ApplicationStatus['state'] = 'starting';
  #error: string | null = null;
  #removeLagSource: (() => void) | undefined;

  constructor(options: RunnerOptions) {
    this.topology = options.topology;
    this.#options = options;
  }

  get applicationId(): string {
    return this.topology.applicationId;
  }

  get tasks(): readonly StreamTask[] {
    return this.#tasks;
  }

  async start(): Promise<void> {
    const { log, topology, logger } = this.#options;
    try {
      await this.#resolvePartitions();
      const taskPartitions = new Map(topology.subtopologies.map((s) => [s.id, this.#partitions.get(s.sourceTopics[0]!)!]));
      for (const [name, spec] of topology.internalTopics) {
        if (spec.kind === 'repartition') await log.ensureTopic({ name, partitions: this.#partitions.get(name)! });
      }
      for (const sub of topology.subtopologies) {
        const partitions = taskPartitions.get(sub.id)!;
        for (const store of sub.stores) {
          if (topology.stores.get(store)!.changelog) {
            await log.ensureTopic({ name: topology.changelogTopic(store), partitions, cleanupPolicy: 'compact' });
          }
        }
        for (const topic of sub.sourceTopics) {
          const dlq = deadLetterTopic(topic);
          await log.ensureTopic({ name: dlq, partitions: this.#partitions.get(topic)! });
          this.#partitions.set(dlq, this.#partitions.get(topic)!);
        }
      }
      const mostPartitions = Math.max(...taskPartitions.values());
      await log.ensureTopic({ name: topology.lateRecordsTopic, partitions: mostPartitions });
      this.#partitions.set(topology.lateRecordsTopic, (await log.describeTopic(topology.lateRecordsTopic)).partitions);
      for (const topic of topology.externalSinkTopics) {
        if (!this.#partitions.has(topic)) this.#partitions.set(topic, (await this.#describe(topic, 'writes to')).partitions);
      }
      for (const spec of topology.globalStores.values()) {
        await this.#describe(spec.topic, 'reads (global store)');
        const backend = this.#options.openBackend(
          { name: `~global-${spec.name}`, kind: 'key-value', keySerde: spec.keySerde, valueSerde: spec.valueSerde, changelog: false },
          0,
        );
        const view = new GlobalStoreView(spec, backend);
        const global = new GlobalStoreTask({
          log,
          spec,
          backend,
          ...(this.#options.localState === undefined
            ? {}
            : {
                localState: this.#options.localState,
                positions: this.#options.openBackend(
                  { name: `~global-${spec.name}~positions`, kind: 'key-value', keySerde: spec.keySerde, valueSerde: spec.valueSerde, changelog: false },
                  0,
                ),
              }),
          group: `${topology.applicationId}-global`,
          transactionalId: `${topology.applicationId}-global-${spec.name}`,
          logger,
          pollMaxRecords: this.#options.config.pollMaxRecords,
          pollMaxWaitMs: this.#options.config.pollMaxWaitMs,
          onApplied: (changes) => view.applied(changes),
        });
        await global.bootstrap();
        global.start();
        this.#globalTasks.push(global);
        this.#globalViews.set(spec.name, view);
      }
      const env = {
        applicationId: topology.applicationId,
        errorPolicy: this.#options.config.errorPolicy,
        cacheMaxBytesPerStore: this.#options.config.cacheMaxBytesPerStore,
        openBackend: this.#options.openBackend,
        partitionsOf: (topic: string): number => {
          const n = this.#partitions.get(topic);
          if (n === undefined) throw new MillraceError('MILLRACE_TOPIC_UNKNOWN', `${topology.applicationId} writes to ${topic}, which it did not find at start`);
          return n;
        },
        wallClockMs: this.#options.wallClockMs ?? Date.now,
        globalStore: (name: string) => {
          const view = this.#globalViews.get(name);
          if (view === undefined) throw new MillraceError('MILLRACE_STORE_UNKNOWN', `${topology.applicationId} has no global store ${name}`);
          return view;
        },
        onPunctuationError: (node: string, error: unknown) => {
          logger.error({ application: topology.applicationId, node, err: error }, 'punctuator failed; its effects were rolled back');
        },
      };
      this.#env = env;
      const tasks = new Map<string, TopicPartition[]>();
      for (const sub of topology.subtopologies) {
        for (let partition = 0; partition < taskPartitions.get(sub.id)!; partition++) {
          const id = `${sub.id}_${partition}`;
          tasks.set(id, sub.sourceTopics.map((topic) => ({ topic, partition })));
          this.#taskSpecs.set(id, { subtopology: sub, partition });
        }
      }
      this.#subscription = await log.subscribe({
        group: topology.applicationId,
        topics: topology.subtopologies.flatMap((sub) => sub.sourceTopics),
        taskGroups: { tasks },
        onAssignment: (owned) => this.#reassign(owned),
      });
      this.#ready.resolve(this.#subscription);
      await this.#assigning;
      this.#removeLagSource = this.#options.metrics.addLagSource(() => this.lagSamples());
      this.#state = 'running';
      logger.info({ application: topology.applicationId, tasks: this.#tasks.length }, 'topology running');
    } catch (err) {
      this.#state = 'failed';
      this.#error = err instanceof Error ? err.message : String(err);
      await Promise.allSettled(this.#tasks.map((t) => t.stop()));
      await this.#subscription?.close().catch(() => undefined);
      await Promise.allSettled(this.#globalTasks.map((t) => t.stop()));
      throw err;
    }
  }

  /** Source topics must exist and be co-partitioned; repartition topics take the most partitions upstream. */
  async #resolvePartitions(): Promise<void> {
    const { topology } = this.#options;
    for (const topic of topology.externalSourceTopics) {
      this.#partitions.set(topic, (await this.#describe(topic, 'reads')).partitions);
    }
    for (const [name, spec] of topology.internalTopics) if (spec.partitions !== undefined) this.#partitions.set(name, spec.partitions);
    // Repartition topics downstream of others resolve in later rounds.
    for (let round = 0; round <= topology.subtopologies.length; round++) {
      for (const sub of topology.subtopologies) {
        const known = sub.sourceTopics.map((t) => this.#partitions.get(t));
        if (known.some((n) => n === undefined)) continue;
        const most = Math.max(...(known as number[]));
        for (const sink of sub.sinkTopics) {
          if (topology.internalTopics.has(sink) && !this.#partitions.has(sink)) this.#partitions.set(sink, most);
        }
      }
    }
    for (const sub of topology.subtopologies) {
      const counts = sub.sourceTopics.map((t) => [t, this.#partitions.get(t)] as const);
      const unresolved = counts.filter(([, n]) => n === undefined);
      if (unresolved.length > 0) {
        throw new MillraceError('MILLRACE_TOPOLOGY_INVALID', `cannot work out partitions of ${unresolved.map(([t]) => t).join(', ')}: give the repartition a partition count`);
      }
      if (new Set(counts.map(([, n]) => n)).size > 1) {
        throw new MillraceError(
          'MILLRACE_TOPOLOGY_INVALID',
          `topics read together must have the same number of partitions (co-partitioned): ${counts.map(([t, n]) => `${t}=${n}`).join(', ')}`,
        );
      }
    }
  }

  async #describe(topic: string, verb: string): Promise<{ partitions: number }> {
    try {
      return await this.#options.log.describeTopic(topic);
    } catch (err) {
      if (err instanceof MillraceError && err.code === 'MILLRACE_TOPIC_UNKNOWN') {
        throw new MillraceError(
          'MILLRACE_TOPIC_UNKNOWN',
          `${this.topology.applicationId} ${verb} topic ${topic}, which does not exist: create it (millrace topics create ${topic} --partitions N) or list it under "topics" in the config`,
          { cause: err, details: { topic } },
        );
      }
      throw err;
    }
  }

  /**
   * The group gave this member a new set of tasks: stop those it lost (their uncommitted work is redone by the new
   * owner, which fences them) and start those it gained. Reassignments run one after another.
   */
  #reassign(owned: readonly string[]): Promise<void> {
    const next = this.#assigning.then(async () => {
      const keep = new Set(owned);
      const lost = this.#tasks.filter((t) => !keep.has(t.taskId));
      await Promise.allSettled(lost.map((t) => t.stop()));
      this.#tasks = this.#tasks.filter((t) => keep.has(t.taskId));
      const running = new Set(this.#tasks.map((t) => t.taskId));
      const gained: StreamTask[] = [];
      for (const id of owned) {
        if (running.has(id)) continue;
        const spec = this.#taskSpecs.get(id);
        if (spec === undefined) throw new TypeError(`the group assigned unknown task ${id}`);
        gained.push(this.#createTask(spec.subtopology, spec.partition));
      }
      this.#tasks.push(...gained);
      await Promise.all(gained.map((t) => t.start()));
      if (lost.length > 0 || gained.length > 0) {
        this.#options.logger.info({ application: this.applicationId, owned: [...owned].sort(), lost: lost.map((t) => t.taskId), gained: gained.map((t) => t.taskId) }, 'tasks reassigned');
      }
    });
    this.#assigning = next.catch(() => undefined);
    return next;
  }

  #createTask(subtopology: Subtopology, partition: number): StreamTask {
    const ready = this.#ready.promise;
    let subscription: Subscription | undefined;
    // Tasks may start while the group is still being joined: their first read waits for the subscription.
    const reader: Subscription = {
      read: async (topic, p, from, options) => (subscription ??= await ready).read(topic, p, from, options),
      owned: () => subscription?.owned() ?? [],
      close: async () => undefined,
    };
    return new StreamTask({
      log: this.#options.log,
      subscription: reader,
      ...(this.#options.localState === undefined ? {} : { localState: this.#options.localState }),
      topology: this.topology,
      subtopology,
      partition,
      env: this.#env!,
      config: this.#options.config,
      metrics: this.#options.metrics,
      logger: this.#options.logger,
    });
  }

  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopping';
    await this.#assigning;
    await Promise.all(this.#tasks.map((t) => t.stop()));
    await this.#subscription?.close();
    await Promise.all(this.#globalTasks.map((t) => t.stop()));
    this.#removeLagSource?.();
    this.#state = this.#tasks.some((t) => t.state === 'failed') ? 'failed' : 'stopped';
  }

  lagSamples(): LagSample[] {
    // The embedded log answers its high watermarks synchronously; otherwise the task's last fetch tells.
    const log = this.#options.log;
    const current = log instanceof EmbeddedLog ? log : undefined;
    const samples: LagSample[] = [];
    for (const task of this.#tasks) {
      const next = task.nextTimestamps();
      for (const input of task.inputs()) {
        const nextTimestampMs = next.get(input.topic);
        samples.push({
          application: this.applicationId,
          task: task.taskId,
          topic: input.topic,
          partition: input.partition,
          position: input.position,
          highWatermark: current?.highWatermark(input.topic, input.partition) ?? input.highWatermark,
          ...(nextTimestampMs === undefined ? {} : { nextTimestampMs }),
        });
      }
    }
    return samples;
  }

  status(): ApplicationStatus {
    const tasks = this.#tasks.map((t) => t.status());
    const failed = tasks.find((t) => t.state === 'failed');
    return {
      applicationId: this.applicationId,
      state: failed !== undefined && this.#state === 'running' ? 'failed' : this.#state,
      tasks,
      error: this.#error ?? failed?.error ?? null,
    };
  }
}

function deferred<T>(): { promise: Promise<T>; resolve(value: T): void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
