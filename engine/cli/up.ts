import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { MillraceError } from '../errors.js';
import { createLogger } from '../logger.js';
import { Engine } from '../runtime/engine.js';
import { pipelineConfig } from '../../topologies/pipeline/config.js';
import { MillraceClient } from './client.js';
import { DEFAULT_DEMO_SETTINGS, generateTraffic, type DemoGenerateSettings } from './commands/demo.js';

/**
 * `up --demo`: twenty minutes of traffic, sixty hours of event time (three minutes a second). The first model
 * trains on the 10,000 labels after its first day (about nine minutes in); the traffic drifts after eleven.
 */
const DEMO_DRIFT_AFTER_MS = 11 * 60_000;
const DEMO_SETTINGS: DemoGenerateSettings = { ...DEFAULT_DEMO_SETTINGS, driftAt: { afterMs: DEMO_DRIFT_AFTER_MS } };
import { USAGE_EXIT_CODE } from './commands/shared.js';
import type { CliIo } from './io.js';

const USAGE = `Usage: millrace up [--config FILE] [--data-dir DIR] [--host H] [--port N] [--brokers HOST:PORT,…] [--schema-registry URL]

Runs the engine: the log (embedded, or Apache Kafka with --brokers), the topologies named in the config file (without
one: the ML pipeline — ingest, features, scoring, outcomes, drift, model registry, retraining, training), and the HTTP
API. Stops cleanly (every task commits) on SIGTERM or SIGINT.

  --config FILE          JSON config (topics to create, topologies to run, settings)
  --demo                 also send the demo traffic (millrace demo generate, with its defaults) to this engine
  --data-dir DIR         where the embedded log and local state live (default .millrace)
  --host H               interface to listen on (default 127.0.0.1)
  --port N               port to listen on (default 8080; 0 picks a free one)
  --brokers LIST         run on Apache Kafka (also $MILLRACE_BROKERS); processes with the same config share work
  --schema-registry URL  a Confluent-compatible schema registry (also $MILLRACE_SCHEMA_REGISTRY)
  --console-read-only    the ops console at /console shows everything and offers no action`;

export async function runUp(argv: string[], io: CliIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        'data-dir': { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        brokers: { type: 'string' },
        'schema-registry': { type: 'string' },
        demo: { type: 'boolean' },
        'console-read-only': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    io.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return USAGE_EXIT_CODE;
  }
  if (values.help) {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let port: number | undefined;
  if (values.port !== undefined) {
    port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65_535) {
      throw new MillraceError('MILLRACE_CONFIG_INVALID', `--port must be an integer from 0 to 65535, got ${values.port}`);
    }
  }
  const brokers = values.brokers ?? io.env['MILLRACE_BROKERS'];
  const schemaRegistry = values['schema-registry'] ?? io.env['MILLRACE_SCHEMA_REGISTRY'];
  const loaded = await loadConfig(values.config, {
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(values.host === undefined ? {} : { host: values.host }),
    ...(port === undefined ? {} : { port }),
    ...(values['console-read-only'] === true ? { consoleReadOnly: true } : {}),
    ...(brokers === undefined || brokers === '' ? {} : { brokers: brokers.split(',').map((b) => b.trim()).filter((b) => b !== '') }),
    ...(schemaRegistry === undefined || schemaRegistry === '' ? {} : { schemaRegistry }),
  }, values.config === undefined ? pipelineConfig() : {});
  const logger = createLogger(loaded.config.logLevel);
  const engine = await Engine.start(loaded, { logger });
  const topologies = engine.runners.map((r) => r.applicationId);
  const where = loaded.config.brokers === undefined ? `embedded log in ${loaded.config.dataDir}` : `Kafka at ${loaded.config.brokers.join(',')}`;
  io.stdout.write(`Millrace ${topologies.length > 0 ? `is running ${topologies.join(', ')}` : 'is up'} at ${engine.url} (${where})\n`);
  const demo = new AbortController();
  if (values.demo === true) {
    io.stdout.write(`demo traffic: ${DEMO_SETTINGS.ratePerSecond}/s for ${DEMO_SETTINGS.durationMs / 60_000} min, drift after ${DEMO_DRIFT_AFTER_MS / 60_000} min\n`);
    generateTraffic(new MillraceClient(engine.url!), DEMO_SETTINGS, { ...io, signal: demo.signal }).catch((err: unknown) => {
      if (!demo.signal.aborted) logger.error({ err }, 'demo traffic stopped');
    });
  }
  return new Promise<number>((resolve) => {
    const exit = (code: number): void => {
      resolve(code);
      setImmediate(() => process.exit(code));
    };
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        io.stderr.write(`${signal} again: exiting without waiting\n`);
        process.exit(130);
      }
      stopping = true;
      demo.abort();
      io.stderr.write(`${signal}: stopping (committing every task)…\n`);
      // Once the engine has stopped, every task has committed and every store is closed: the process ends
      // then, even if a client library keeps a socket open after its own close.
      engine.stop().then(
        () => exit(0),
        (err: unknown) => {
          logger.error({ err }, 'stop failed');
          exit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
