import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { MillraceError, errorMessage } from './errors.js';
import { LOG_LEVELS } from './logger.js';

/**
 * Every setting of the engine, declared once: type, default, bounds and what it does. Validated once at start,
 * then frozen. Units are in the names.
 */
const TopicConfig = z.object({
  name: z.string().describe('Topic name (a-z A-Z 0-9 . _ -).'),
  partitions: z.number().int().min(1).max(10_000).default(1).describe('Number of partitions.'),
  schema: z.string().optional().describe('A folder of schemas/ (e.g. "example-event") whose versions become the value schema.'),
  compacted: z.boolean().default(false).describe('Keep only the latest record per key.'),
  retentionMs: z.number().int().min(0).nullable().default(null).describe('Delete records older than this; null keeps them.'),
  retentionBytes: z.number().int().min(0).nullable().default(null).describe('Delete the oldest records beyond this size per partition.'),
}).strict();

const TopologyRef = z.union([
  z.string(),
  z.object({
    module: z.string().describe('A topology module: a path (relative to the config file) or a built-in name such as "examples/keyed-count".'),
    options: z.record(z.string(), z.unknown()).default({}).describe('Passed to the module when it exports a function.'),
  }).strict(),
]);

const BrokerAddress = z.string().regex(/^[^\s:,]+:\d{1,5}$/, 'a broker address is host:port');

const ProjectionRef = z.union([
  z.string(),
  z.object({
    module: z.string().describe('A projection module: a path (relative to the config file) or a built-in name such as "pipeline/alerts".'),
    options: z.record(z.string(), z.unknown()).default({}).describe('Passed to the module when it exports a function.'),
  }).strict(),
]);

const DAY_MS = 24 * 3_600_000;

const ProjectionStoreConfig = z.object({
  kind: z.enum(['level', 'cassandra']).default('level').describe('Where read models live: LevelDB in the data directory, or Cassandra.'),
  historyRetentionMs: z.number().int().min(0).default(7 * DAY_MS).describe('How far back (event time) `asOf` queries are answered; older versions are pruned.'),
  pruneIntervalMs: z.number().int().min(0).default(10 * 60_000).describe('How often versions older than the retained history are removed (0: never).'),
  cassandra: z.object({
    contactPoints: z.array(BrokerAddress).min(1).describe('Cassandra nodes, host:port.'),
    localDataCenter: z.string().default('datacenter1').describe('The data center the driver routes to.'),
    keyspace: z.string().regex(/^[a-z][a-z0-9_]{0,47}$/, 'a keyspace is lower-case letters, digits and _').default('millrace').describe('Keyspace of the read models (created if missing).'),
    replicationFactor: z.number().int().min(1).max(10).default(1).describe('Replication factor of a keyspace it creates (SimpleStrategy).'),
  }).strict().optional().describe('The Cassandra cluster, with kind "cassandra".'),
}).strict().refine((store) => store.kind !== 'cassandra' || store.cassandra !== undefined, {
  message: 'kind "cassandra" needs cassandra.contactPoints (e.g. ["127.0.0.1:9042"])',
  path: ['cassandra'],
});


export const ConfigSchema = z.object({
  dataDir: z.string().default('.millrace').describe('Where the embedded log and state live (with Kafka: the local state).'),
  brokers: z.array(BrokerAddress).min(1).optional().describe('Apache Kafka bootstrap brokers: run on Kafka instead of the embedded log.'),
  schemaRegistry: z.string().url().optional().describe('A Confluent-compatible schema registry URL; otherwise schemas live in the _schemas topic.'),
  schemasDir: z.string().default('schemas').describe('Folder of Avro schemas: schemas/<event>/v<N>.avsc.'),
  logLevel: z.enum(LOG_LEVELS).default('info').describe('Structured log level (logs go to stderr as JSON lines).'),
  http: z.object({
    host: z.string().default('127.0.0.1').describe('Interface the HTTP API listens on.'),
    port: z.number().int().min(0).max(65_535).default(8080).describe('Port of the HTTP API (0: any free port).'),
    bodyLimitBytes: z.number().int().min(1024).max(256 * 1024 * 1024).default(1024 * 1024).describe('Largest request body accepted.'),
    maxRecordsPerRequest: z.number().int().min(1).max(1_000_000).default(10_000).describe('Most records in one produce request.'),
    consoleReadOnly: z.boolean().default(false).describe('The ops console at /console shows everything and offers no action (redrive, skip, promote, roll back, replay, rebuild).'),
  }).strict().default({ host: '127.0.0.1', port: 8080, bodyLimitBytes: 1024 * 1024, maxRecordsPerRequest: 10_000, consoleReadOnly: false }),
  inference: z.object({
    workers: z.number().int().min(1).max(64).default(1).describe('Worker threads running model inference, off the event loop.'),
  }).strict().default({ workers: 1 }),
  training: z.object({
    runner: z.enum(['local-process']).default('local-process').describe('Where training jobs run: a child process on this machine (a Kubernetes runner is available from the API).'),
    python: z.string().min(1).optional().describe('The trainer\'s Python (default: MILLRACE_TRAINER_PYTHON, else the environment training/setup makes, else python3).'),
    timeoutMs: z.number().int().min(1_000).max(24 * 3_600_000).default(30 * 60_000).describe('A training job running longer is killed.'),
  }).strict().default({ runner: 'local-process', timeoutMs: 30 * 60_000 }),
  kafka: z.object({
    sessionTimeoutMs: z.number().int().min(1_000).max(3_600_000).optional().describe('A member silent for this long leaves the group and its tasks move (default 30 s).'),
    heartbeatIntervalMs: z.number().int().min(100).optional().describe('About a third of sessionTimeoutMs, or less.'),
    rebalanceTimeoutMs: z.number().int().min(1_000).optional().describe('How long a rebalance waits for members to rejoin (default 60 s).'),
    transactionTimeoutMs: z.number().int().min(1_000).optional().describe('An open transaction older than this is aborted by the broker (default 10 s).'),
    client: z.enum(['kafkajs', 'platformatic']).default('kafkajs').describe('The Kafka client library: kafkajs (the default), or @platformatic/kafka (maintained; being measured as a replacement).'),
  }).strict().default({ client: 'kafkajs' }).describe('Settings of the Kafka client, used with brokers.'),
  log: z.object({
    fsync: z.boolean().default(false).describe('fsync every write (survives power loss, much slower); writes always survive a process crash.'),
    maintenanceIntervalMs: z.number().int().min(0).default(30_000).describe('How often retention and compaction run (0: never).'),
  }).strict().default({ fsync: false, maintenanceIntervalMs: 30_000 }),
  runtime: z.object({
    commitIntervalMs: z.number().int().min(1).max(3_600_000).default(100).describe('Longest time between checkpoints while records flow.'),
    commitMaxRecords: z.number().int().min(1).max(10_000_000).default(10_000).describe('Checkpoint after at most this many records per task.'),
    pollMaxRecords: z.number().int().min(1).max(100_000).default(1_000).describe('Records read per fetch of one partition.'),
    pollMaxWaitMs: z.number().int().min(0).max(60_000).default(500).describe('How long an idle task waits for new records per fetch.'),
    cacheMaxBytesPerStore: z.number().int().min(0).default(16 * 1024 * 1024).describe('Write-back cache per store and task.'),
    purgeRepartitionRecords: z.number().int().min(1).default(10_000).describe('Delete consumed repartition records in chunks of this many.'),
    errorPolicy: z.enum(['dead-letter', 'fail']).default('dead-letter').describe('What a task does with a record it cannot process.'),
  }).strict().default({
    commitIntervalMs: 100,
    commitMaxRecords: 10_000,
    pollMaxRecords: 1_000,
    pollMaxWaitMs: 500,
    cacheMaxBytesPerStore: 16 * 1024 * 1024,
    purgeRepartitionRecords: 10_000,
    errorPolicy: 'dead-letter',
  }),
  topics: z.array(TopicConfig).default([]).describe('Topics created at start if missing.'),
  topologies: z.array(TopologyRef).default([]).describe('Topologies to run.'),
  projections: z.array(ProjectionRef).default([]).describe('Projections (read models) to keep.'),
  projectionStore: ProjectionStoreConfig.default({ kind: 'level', historyRetentionMs: 7 * DAY_MS, pruneIntervalMs: 10 * 60_000 }).describe('Where projections keep their read models.'),
}).strict();

export type MillraceConfig = z.infer<typeof ConfigSchema>;
export type TopicConfig = z.infer<typeof TopicConfig>;
export type TopologyRef = z.infer<typeof TopologyRef>;
export type ProjectionRefConfig = z.infer<typeof ProjectionRef>;

export interface LoadedConfig {
  readonly config: Readonly<MillraceConfig>;
  /** Directory that relative paths in the config are resolved against. */
  readonly baseDir: string;
}

/** Validates a config object, reporting every problem with its path and what to fix. */
export function parseConfig(input: unknown, source = 'configuration'): MillraceConfig {
  const result = ConfigSchema.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `  - ${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`);
    throw new MillraceError('MILLRACE_CONFIG_INVALID', `${source} is invalid:\n${problems.join('\n')}`, {
      details: { issues: result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  return deepFreeze(result.data);
}

export interface ConfigOverrides {
  readonly dataDir?: string;
  readonly host?: string;
  readonly port?: number;
  readonly brokers?: readonly string[];
  readonly schemaRegistry?: string;
  readonly consoleReadOnly?: boolean;
}

/**
 * Reads a JSON config file (or, without one, `fallback`: nothing by default), applies command-line overrides,
 * validates once, freezes.
 */
export async function loadConfig(file: string | undefined, overrides: ConfigOverrides = {}, fallback: Record<string, unknown> = {}): Promise<LoadedConfig> {
  let raw: Record<string, unknown> = { ...fallback };
  let baseDir = process.cwd();
  if (file !== undefined) {
    const path = resolve(file);
    baseDir = dirname(path);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new MillraceError('MILLRACE_CONFIG_INVALID', `cannot read the config file ${path}: ${errorMessage(err)}`, { cause: err });
    }
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new MillraceError('MILLRACE_CONFIG_INVALID', `the config file ${path} is not valid JSON: ${errorMessage(err)}`, { cause: err });
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new MillraceError('MILLRACE_CONFIG_INVALID', `the config file ${path} must hold a JSON object`);
    }
  }
  const http = { ...((raw['http'] as object | undefined) ?? {}) } as Record<string, unknown>;
  if (overrides.host !== undefined) http['host'] = overrides.host;
  if (overrides.port !== undefined) http['port'] = overrides.port;
  if (overrides.consoleReadOnly !== undefined) http['consoleReadOnly'] = overrides.consoleReadOnly;
  const merged: Record<string, unknown> = { ...raw, http };
  if (overrides.dataDir !== undefined) merged['dataDir'] = overrides.dataDir;
  if (overrides.brokers !== undefined) merged['brokers'] = overrides.brokers;
  if (overrides.schemaRegistry !== undefined) merged['schemaRegistry'] = overrides.schemaRegistry;
  const config = parseConfig(merged, file === undefined ? 'the configuration' : `the config file ${resolve(file)}`);
  // Relative paths in a file are relative to the file; given on the command line, to the working directory.
  const dataDir = overrides.dataDir !== undefined ? resolve(overrides.dataDir) : resolve(baseDir, config.dataDir);
  return { config: deepFreeze({ ...config, dataDir, schemasDir: resolve(baseDir, config.schemasDir) }), baseDir };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as Record<string, unknown>)) deepFreeze(child);
  }
  return value;
}
