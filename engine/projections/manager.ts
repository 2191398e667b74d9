import { MillraceError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Log } from '../log/log.js';
import type { Topology } from '../topology/topology.js';
import type { ProjectionDefinition } from './projection.js';
import { ReplayService, type ReplayLimits } from './replay.js';
import { ProjectionRunner, type ProjectionRunnerStatus } from './runner.js';
import {
  LIVE_NAMESPACE,
  type GetResult,
  type ProjectionId,
  type ProjectionStore,
  type ScanOptions,
  type ScanResult,
} from './store.js';

/**
 * The projections of one engine: a live runner per projection, the reads that go to whichever namespace is active,
 * rebuilds beside the live one, and replays (`replay.ts`).
 *
 * A rebuild runs the projection from the start of its topics into a new namespace (`gen-N`) while the live one keeps
 * serving and following. When the rebuild has caught up with the end of every partition, the live runner stops, the
 * new namespace is activated in the store and in memory at once, and it goes on as the live runner; the old
 * namespace is dropped once the reads that started on it have finished. A read therefore always finds a complete
 * read model: the old one until the switch, the new one after it.
 */

export interface ProjectionManagerOptions {
  readonly log: Log;
  readonly store: ProjectionStore;
  readonly definitions: readonly ProjectionDefinition[];
  readonly logger: Logger;
  /** Records a runner reads from a partition at a time. */
  readonly maxRecordsPerRead?: number;
  /** How long a caught-up runner waits before it polls again. */
  readonly idleWaitMs?: number;
  readonly replayLimits?: Partial<ReplayLimits>;
  /** How often versions older than the retained history are pruned (0 or absent: never). */
  readonly pruneIntervalMs?: number;
  /** Loads a replay's `code` module (a path on the engine's machine) into definitions. */
  readonly loadCode?: (path: string) => Promise<ProjectionDefinition[]>;
  /** The engine's running topologies by application id, for topology replays. */
  readonly topology?: (applicationId: string) => Topology | undefined;
  /** Loads a topology module (a path on the engine's machine) for a topology replay with other code. */
  readonly loadTopologyCode?: (path: string) => Promise<Topology>;
}

export interface RebuildStatus {
  readonly namespace: string;
  readonly state: 'running' | 'switched' | 'failed';
  readonly startedAt: string;
  readonly finishedAt?: string;
  readonly progress: ProjectionRunnerStatus;
  readonly error?: string;
}

export interface ProjectionInfoView {
  readonly name: string;
  readonly description?: string;
  readonly topics: readonly string[];
  readonly topicPattern?: string;
  readonly store: string;
  /** The namespace that serves reads. */
  readonly namespace: string;
  readonly state: ProjectionRunnerStatus['state'];
  /** Records of the source partitions not yet applied, in total and per partition. */
  readonly lag: number;
  readonly partitions: ProjectionRunnerStatus['partitions'];
  readonly recordsApplied: number;
  readonly deadLetters: number;
  /** Changes dropped as older than the retained history (see `ProjectionRunnerStatus.expiredOps`). */
  readonly expiredOps: number;
  readonly historyRetentionMs: number;
  readonly rebuild?: RebuildStatus;
  readonly error?: string;
}

interface LiveProjection {
  readonly definition: ProjectionDefinition;
  namespace: string;
  runner: ProjectionRunner;
  rebuild?: { runner: ProjectionRunner; status: RebuildStatus; done: Promise<void> };
  readonly readers: Map<string, number>;
}

export class ProjectionManager {
  readonly store: ProjectionStore;
  readonly log: Log;
  readonly replays: ReplayService;
  readonly #options: ProjectionManagerOptions;
  readonly #projections = new Map<string, LiveProjection>();
  readonly #drops = new Map<string, () => void>();
  #stopped = false;
  #pruneTimer: NodeJS.Timeout | undefined;
  #pruning: Promise<void> = Promise.resolve();

  constructor(options: ProjectionManagerOptions) {
    this.#options = options;
    this.store = options.store;
    this.log = options.log;
    const names = new Set<string>();
    for (const definition of options.definitions) {
      if (names.has(definition.name)) throw new MillraceError('MILLRACE_PROJECTION_INVALID', `two projections are named ${definition.name}`);
      names.add(definition.name);
    }
    this.replays = new ReplayService({
      log: options.log,
      store: options.store,
      logger: options.logger,
      definition: (name) => this.#projections.get(name)?.definition,
      liveNamespace: (name) => this.#projections.get(name)?.namespace,
      livePositions: (name) => this.#projections.get(name)?.runner.status().partitions ?? [],
      ...(options.loadCode === undefined ? {} : { loadCode: options.loadCode }),
      ...(options.topology === undefined ? {} : { topology: options.topology }),
      ...(options.loadTopologyCode === undefined ? {} : { loadTopologyCode: options.loadTopologyCode }),
      ...(options.replayLimits === undefined ? {} : { limits: options.replayLimits }),
    });
  }

  async start(): Promise<void> {
    for (const definition of this.#options.definitions) {
      const namespace = (await this.store.active(definition.name)) ?? LIVE_NAMESPACE;
      await this.#dropStaleGenerations(definition.name, namespace);
      const runner = this.#runner(definition, namespace);
      await runner.start();
      this.#projections.set(definition.name, { definition, namespace, runner, readers: new Map() });
    }
    await this.replays.start();
    const every = this.#options.pruneIntervalMs ?? 0;
    if (every > 0) {
      this.#pruneTimer = setInterval(() => {
        this.#pruning = this.#pruning.then(() => this.#prune());
      }, every);
      this.#pruneTimer.unref();
    }
  }

  async #prune(): Promise<void> {
    for (const projection of this.#projections.values()) {
      if (this.#stopped) return;
      try {
        const { versionsRemoved } = await this.store.prune(projection.runner.id);
        if (versionsRemoved > 0) this.#options.logger.debug({ projection: projection.runner.id, versionsRemoved }, 'pruned projection history');
      } catch (err) {
        this.#options.logger.warn({ err, projection: projection.runner.id }, 'pruning projection history failed');
      }
    }
  }

  /** A rebuild a crash interrupted, or a switched-from generation a crash kept from being dropped. */
  async #dropStaleGenerations(name: string, active: string): Promise<void> {
    for (const info of await this.store.list()) {
      if (info.name !== name || info.namespace === active) continue;
      if (info.namespace === LIVE_NAMESPACE || /^gen-\d+$/.test(info.namespace)) {
        this.#options.logger.info({ projection: name, namespace: info.namespace }, 'dropping a stale generation of a projection');
        await this.store.drop({ name, namespace: info.namespace });
      }
    }
  }

  #runner(definition: ProjectionDefinition, namespace: string): ProjectionRunner {
    return new ProjectionRunner({
      log: this.#options.log,
      store: this.store,
      definition,
      namespace,
      logger: this.#options.logger,
      ...(this.#options.maxRecordsPerRead === undefined ? {} : { maxRecordsPerRead: this.#options.maxRecordsPerRead }),
      ...(this.#options.idleWaitMs === undefined ? {} : { idleWaitMs: this.#options.idleWaitMs }),
    });
  }

  names(): string[] {
    return [...this.#projections.keys()];
  }

  #projection(name: string): LiveProjection {
    const projection = this.#projections.get(name);
    if (projection === undefined) {
      throw new MillraceError('MILLRACE_PROJECTION_UNKNOWN', `no projection is named ${JSON.stringify(name)}`, { details: { projection: name, known: this.names() } });
    }
    return projection;
  }

  info(name: string): ProjectionInfoView {
    const projection = this.#projection(name);
    const status = projection.runner.status();
    const { definition } = projection;
    return {
      name,
      ...(definition.description === undefined ? {} : { description: definition.description }),
      topics: [...new Set([...(definition.topics ?? []), ...status.partitions.map((p) => p.topic)])],
      ...(definition.topicPattern === undefined ? {} : { topicPattern: definition.topicPattern.source }),
      store: this.store.kind,
      namespace: projection.namespace,
      state: status.state,
      lag: status.lag,
      partitions: status.partitions,
      recordsApplied: status.recordsApplied,
      deadLetters: status.deadLetters,
      expiredOps: status.expiredOps,
      historyRetentionMs: this.store.historyRetentionMs,
      ...(projection.rebuild === undefined ? {} : { rebuild: { ...projection.rebuild.status, progress: projection.rebuild.runner.status() } }),
      ...(status.error === undefined ? {} : { error: status.error }),
    };
  }

  list(): ProjectionInfoView[] {
    return this.names().map((name) => this.info(name));
  }

  /** Runs a read against the namespace active when it starts; that namespace is not dropped under it. */
  async #read<T>(name: string, read: (id: ProjectionId) => Promise<T>): Promise<T> {
    const projection = this.#projection(name);
    const namespace = projection.namespace;
    projection.readers.set(namespace, (projection.readers.get(namespace) ?? 0) + 1);
    try {
      return await read({ name, namespace });
    } finally {
      const left = (projection.readers.get(namespace) ?? 1) - 1;
      if (left === 0) {
        projection.readers.delete(namespace);
        this.#drops.get(`${name}\u0000${namespace}`)?.();
      } else {
        projection.readers.set(namespace, left);
      }
    }
  }

  get(name: string, key: string, options: { asOfMs?: number } = {}): Promise<GetResult> {
    return this.#read(name, (id) => this.store.get(id, key, options));
  }

  scan(name: string, options: ScanOptions): Promise<ScanResult> {
    return this.#read(name, (id) => this.store.scan(id, options));
  }

  /** Starts rebuilding a projection from the log beside the live one; it takes over when caught up. */
  async rebuild(name: string): Promise<RebuildStatus> {
    const projection = this.#projection(name);
    if (projection.rebuild?.status.state === 'running') {
      throw new MillraceError('MILLRACE_PROJECTION_BUSY', `projection ${name} is being rebuilt into ${projection.rebuild.status.namespace}`);
    }
    const namespace = await this.#nextGeneration(name);
    // A generation left by a rebuild that a crash interrupted is started afresh.
    await this.store.drop({ name, namespace });
    const runner = this.#runner(projection.definition, namespace);
    const status: RebuildStatus = { namespace, state: 'running', startedAt: new Date().toISOString(), progress: runner.status() };
    await runner.start();
    const done = this.#switchWhenCaughtUp(projection, runner, status);
    projection.rebuild = { runner, status, done };
    return status;
  }

  /** Waits for a running rebuild to switch over (or fail). */
  async rebuilt(name: string): Promise<RebuildStatus> {
    const projection = this.#projection(name);
    await projection.rebuild?.done;
    if (projection.rebuild === undefined) throw new MillraceError('MILLRACE_PROJECTION_UNKNOWN', `projection ${name} has no rebuild`);
    return { ...projection.rebuild.status, progress: projection.rebuild.runner.status() };
  }

  async #nextGeneration(name: string): Promise<string> {
    let highest = 1;
    for (const info of await this.store.list()) {
      const match = info.name === name ? /^gen-(\d+)$/.exec(info.namespace) : null;
      if (match !== null) highest = Math.max(highest, Number(match[1]));
    }
    const current = /^gen-(\d+)$/.exec(this.#projection(name).namespace);
    if (current !== null) highest = Math.max(highest, Number(current[1]));
    return `gen-${highest + 1}`;
  }

  async #switchWhenCaughtUp(projection: LiveProjection, runner: ProjectionRunner, status: RebuildStatus): Promise<void> {
    const finish = (state: RebuildStatus['state'], error?: string): void => {
      if (projection.rebuild === undefined) return;
      projection.rebuild.status = { ...status, state, finishedAt: new Date().toISOString(), progress: runner.status(), ...(error === undefined ? {} : { error }) };
    };
    try {
      // Caught up with every partition's end at some moment; the live runner is then stopped, and the new one
      // goes on from its own positions, so nothing is missed between the two.
      await runner.caughtUp();
      if (this.#stopped) return;
      const old = projection.runner;
      const oldNamespace = projection.namespace;
      await old.stop();
      await this.store.activate(runner.id);
      projection.runner = runner;
      projection.namespace = runner.id.namespace;
      finish('switched');
      this.#options.logger.info({ projection: projection.definition.name, from: oldNamespace, to: runner.id.namespace }, 'projection rebuilt and switched over');
      await this.#dropWhenUnread(projection, oldNamespace);
    } catch (err) {
      finish('failed', err instanceof Error ? err.message : String(err));
      await runner.stop().catch(() => undefined);
      this.#options.logger.error({ err, projection: projection.definition.name }, 'projection rebuild failed');
    }
  }

  async #dropWhenUnread(projection: LiveProjection, namespace: string): Promise<void> {
    const name = projection.definition.name;
    if ((projection.readers.get(namespace) ?? 0) > 0) {
      await new Promise<void>((resolve) => this.#drops.set(`${name}\u0000${namespace}`, resolve));
      this.#drops.delete(`${name}\u0000${namespace}`);
    }
    await this.store.drop({ name, namespace });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#pruneTimer);
    await this.#pruning;
    await this.replays.stop();
    for (const projection of this.#projections.values()) {
      await projection.rebuild?.runner.stop();
      await projection.runner.stop();
    }
    for (const release of this.#drops.values()) release();
  }
}
