import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { LoadedConfig, MillraceConfig } from '../config.js';
import { buildHttpServer } from '../http/server.js';
import type { Logger } from '../logger.js';
import type { Log } from '../log/log.js';
import { Metrics } from '../metrics/metrics.js';
import { ConfluentSchemaRegistry } from '../serde/confluent-registry.js';
import { EmbeddedSchemaRegistry } from '../serde/embedded-registry.js';
import { valueSubject, type SchemaRegistry } from '../serde/registry.js';
import { registerSchemaFolder } from '../serde/schema-files.js';
import { LevelBackend } from '../state/backend.js';
import type { TopologyDescription } from '../topology/topology.js';
import { logSetup, type LogSetup } from './log-factory.js';
import { loadTopology } from './modules.js';
import { DefaultEngineServices } from './services.js';
import { ModelService } from '../ml/model-service.js';
import { TopologyRunner } from './runner.js';
import type { EngineApi, EngineStatus } from './status.js';
import { LevelProjectionStore } from '../projections/level-store.js';
import { ProjectionManager } from '../projections/manager.js';
import { loadProjections, type ProjectionDefinition } from '../projections/projection.js';
import type { ProjectionStore } from '../projections/store.js';
import { LAG_SAMPLE_INTERVAL_MS, LagHistory } from './lag-history.js';

export const VERSION: string = readVersion();

function readVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'millrace') return pkg.version ?? '0.0.0';
    }
    dir = dirname(dir);
  }
  return '0.0.0';
}

export interface EngineStartOptions {
  readonly logger: Logger;
  /** Start the HTTP API (default true). */
  readonly http?: boolean;
}

/**
 * One Millrace process: the embedded log, the schema registry, the topologies named in the config, and the HTTP
 * API. `start` brings them up in that order; `stop` takes them down in reverse, committing every task first.
 */
export class Engine implements EngineApi {
  readonly log: Log;
  readonly registry: SchemaRegistry & { open(): Promise<void> };
  readonly #setup: LogSetup;
  readonly metrics: Metrics;
  readonly config: Readonly<MillraceConfig>;
  readonly #logger: Logger;
  readonly #runners: TopologyRunner[] = [];
  readonly #startedAt = new Date();
  #http: FastifyInstance | undefined;
  #url: string | undefined;
  readonly #lagHistory = new LagHistory();
  #lagSampler: NodeJS.Timeout | undefined;
  #state: EngineStatus['state'] = 'starting';
  #services: DefaultEngineServices | undefined;
  #models: ModelService | undefined;
  #projections: ProjectionManager | undefined;
  #projectionStore: (ProjectionStore & { open(): Promise<void> }) | undefined;

  get projections(): ProjectionManager | undefined {
    return this.#projections;
  }

  get models(): ModelService | undefined {
    return this.#models;
  }

  private constructor(loaded: LoadedConfig, logger: Logger, setup: LogSetup) {
    this.config = loaded.config;
    this.#logger = logger;
    this.metrics = new Metrics();
    this.#setup = setup;
    this.log = setup.log;
    // A Confluent-compatible registry when one is named; otherwise schemas live in the log's `_schemas` topic.
    this.registry = loaded.config.schemaRegistry === undefined
      ? new EmbeddedSchemaRegistry(this.log)
      : new ConfluentSchemaRegistry({ url: loaded.config.schemaRegistry });
  }

  static async start(loaded: LoadedConfig, options: EngineStartOptions): Promise<Engine> {
    const engine = new Engine(loaded, options.logger, await logSetup(loaded.config, options.logger));
    try {
      await engine.#start(loaded, options.http ?? true);
    } catch (err) {
      await engine.stop().catch(() => undefined);
      throw err;
    }
    return engine;
  }

  async #start(loaded: LoadedConfig, withHttp: boolean): Promise<void> {
    const { config } = loaded;
    await mkdir(config.dataDir, { recursive: true });
    await this.#setup.open();
    await this.registry.open();
    for (const topic of config.topics) {
      await this.log.ensureTopic({
        name: topic.name,
        partitions: topic.partitions,
        cleanupPolicy: topic.compacted ? 'compact' : 'delete',
        retentionMs: topic.retentionMs,
        retentionBytes: topic.retentionBytes,
      });
      if (topic.schema !== undefined) await registerSchemaFolder(this.registry, valueSubject(topic.name), config.schemasDir, topic.schema);
    }
    const topologies = [];
    this.#services = new DefaultEngineServices({
      log: this.log,
      registry: this.registry,
      dataDir: config.dataDir,
      logger: this.#logger,
      inferenceWorkers: config.inference.workers,
      training: config.training,
      metrics: this.metrics,
    });
    const services = this.#services;
    this.#models = new ModelService({ log: this.log, runtime: () => services.modelRuntime() });
    const models = this.#models;
    this.metrics.addTrafficSource(async () =>
      (await models.list()).flatMap((m) =>
        m.versions
          .filter((v) => v.trafficPercent > 0)
          .map((v) => ({ model: m.name, version: v.version, route: v.version === m.stable ? ('stable' as const) : ('canary' as const), share: v.trafficPercent / 100 })),
      ),
    );
    for (const ref of config.topologies) topologies.push(await loadTopology(ref, loaded.baseDir, this.#services));
    for (const topology of topologies) {
      const runner = new TopologyRunner({
        log: this.log,
        topology,
        config: config.runtime,
        metrics: this.metrics,
        logger: this.#logger,
        openBackend: (store, partition) => new LevelBackend(this.#setup.stateDb, `${topology.applicationId}/${store.name}`, partition),
        ...(this.#setup.localState === undefined ? {} : { localState: this.#setup.localState }),
      });
      this.#runners.push(runner);
      await runner.start();
    }
    await this.#startProjections(loaded);
    this.#lagSampler = setInterval(() => this.#lagHistory.sample(this.#runners.map((r) => r.status())), LAG_SAMPLE_INTERVAL_MS);
    this.#lagSampler.unref();
    if (withHttp) {
      this.#http = await buildHttpServer(this, {
        bodyLimitBytes: config.http.bodyLimitBytes,
        maxRecordsPerRequest: config.http.maxRecordsPerRequest,
        logger: false,
        console: { readOnly: config.http.consoleReadOnly },
      });
      this.#url = await this.#http.listen({ host: config.http.host, port: config.http.port });
    }
    this.#state = 'running';
  }

  /** Opens the projection store and starts every projection of the config; replays (of topologies too) use it. */
  async #startProjections(loaded: LoadedConfig): Promise<void> {
    const { config } = loaded;
    const services = this.#services!;
    const context = { registry: this.registry, services };
    const definitions: ProjectionDefinition[] = [];
    for (const ref of config.projections) definitions.push(...(await loadProjections(ref, loaded.baseDir, context)));
    const storeConfig = config.projectionStore;
    let store: ProjectionStore & { open(): Promise<void> };
    if (storeConfig.kind === 'cassandra') {
      const cassandra = storeConfig.cassandra!;
      // Loaded only when configured: the driver is not needed to run on LevelDB.
      const { CassandraProjectionStore } = await import('../projections/cassandra-store.js');
      store = new CassandraProjectionStore({
        contactPoints: [...cassandra.contactPoints],
        localDataCenter: cassandra.localDataCenter,
        keyspace: cassandra.keyspace,
        replicationFactor: cassandra.replicationFactor,
        historyRetentionMs: storeConfig.historyRetentionMs,
      });
    } else {
      store = new LevelProjectionStore({ path: join(config.dataDir, 'projections'), historyRetentionMs: storeConfig.historyRetentionMs });
    }
    this.#projectionStore = store;
    await store.open();
    this.#projections = new ProjectionManager({
      log: this.log,
      store,
      definitions,
      logger: this.#logger,
      pruneIntervalMs: storeConfig.pruneIntervalMs,
      loadCode: (path) => loadProjections(path, process.cwd(), context, { fresh: true }),
      topology: (applicationId) => this.#runners.find((r) => r.applicationId === applicationId)?.topology,
      loadTopologyCode: (path) => loadTopology(path, process.cwd(), services),
    });
    await this.#projections.start();
    const projections = this.#projections;
    this.metrics.addProjectionSource(() => projections.list().map((p) => ({ projection: p.name, partitions: p.partitions, recordsApplied: p.recordsApplied, deadLetters: p.deadLetters, expiredOps: p.expiredOps })));
  }

  /** The HTTP API's address, once listening. */
  get url(): string | undefined {
    return this.#url;
  }

  get schemasDir(): string {
    return this.config.schemasDir;
  }

  get runners(): readonly TopologyRunner[] {
    return this.#runners;
  }

  topologies(): TopologyDescription[] {
    return this.#runners.map((r) => r.topology.describe());
  }

  async status(): Promise<EngineStatus> {
    const history = this.#lagHistory;
    const applications = this.#runners.map((r) => {
      const status = r.status();
      return {
        ...status,
        tasks: status.tasks.map((t) => ({
          ...t,
          inputs: t.inputs.map((i) => ({ ...i, lagTrend: history.of(status.applicationId, i.topic, i.partition) })),
        })),
      };
    });
    const failed = applications.some((a) => a.state === 'failed');
    return {
      state: failed && this.#state === 'running' ? 'failed' : this.#state,
      startedAt: this.#startedAt.toISOString(),
      version: VERSION,
      log: { kind: this.log.kind, location: this.#setup.location },
      applications,
    };
  }

  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopping';
    clearInterval(this.#lagSampler);
    this.#logger.info('stopping: HTTP API');
    await this.#http?.close();
    this.#logger.info('stopping: topologies');
    for (const runner of [...this.#runners].reverse()) await runner.stop();
    this.#logger.info('stopping: projections');
    await this.#projections?.stop();
    await this.#projectionStore?.close();
    await this.#services?.close();
    this.#logger.info('stopping: log');
    await this.#setup.close();
    this.#logger.info('stopped');
    this.#state = 'stopped';
  }
}
