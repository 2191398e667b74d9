import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../logger.js';
import { LocalProcessRunner } from '../ml/jobs/local-process-runner.js';
import type { JobRunner } from '../ml/jobs/job-runner.js';
import type { Log } from '../log/log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ModelRuntime } from '../ml/model-runtime.js';
import { OnnxModelRuntime } from '../ml/onnx-runtime.js';
import type { SchemaRegistry } from '../serde/registry.js';

/**
 * What an engine lends its topologies beyond the DSL: the log (for replays such as training-set export), the schema
 * registry, a shared inference runtime, and where artifacts go. Created once per engine; expensive parts (the
 * inference worker threads) start on first use and stop with the engine.
 */
export interface EngineServices {
  readonly log: Log;
  readonly registry: SchemaRegistry;
  /** The engine's data directory: model artifacts and training sets live under it. */
  readonly dataDir: string;
  readonly logger: Logger;
  /** The engine's metrics, for topologies that report their own (inference, drift). */
  readonly metrics?: Metrics;
  modelRuntime(): ModelRuntime;
  /** Runs training jobs (the Python trainer in `training/`). */
  jobRunner(): JobRunner;
}

/** The package's root: `training/` and `.infra/` are found from it. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The trainer's interpreter: configured, else MILLRACE_TRAINER_PYTHON, else the one training/setup made, else python3. */
export function trainerPython(configured?: string): string {
  if (configured !== undefined) return configured;
  const fromEnv = process.env['MILLRACE_TRAINER_PYTHON'];
  if (fromEnv) return fromEnv;
  const venv = process.env['MILLRACE_TRAINER_VENV'] ?? `${PACKAGE_ROOT}.infra/trainer-venv`;
  return existsSync(`${venv}/bin/python`) ? `${venv}/bin/python` : 'python3';
}

export interface EngineServicesOptions {
  readonly log: Log;
  readonly registry: SchemaRegistry;
  readonly dataDir: string;
  readonly logger: Logger;
  /** Inference worker threads. */
  readonly inferenceWorkers: number;
  readonly metrics?: Metrics;
  readonly training?: { readonly python?: string | undefined; readonly timeoutMs: number };
}

export class DefaultEngineServices implements EngineServices {
  readonly log: Log;
  readonly registry: SchemaRegistry;
  readonly dataDir: string;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  readonly #inferenceWorkers: number;
  readonly #training: { readonly python?: string | undefined; readonly timeoutMs: number };
  #runtime: OnnxModelRuntime | undefined;
  #jobRunner: JobRunner | undefined;

  constructor(options: EngineServicesOptions) {
    this.log = options.log;
    this.registry = options.registry;
    this.dataDir = options.dataDir;
    this.logger = options.logger;
    if (options.metrics !== undefined) this.metrics = options.metrics;
    this.#inferenceWorkers = options.inferenceWorkers;
    this.#training = options.training ?? { timeoutMs: 30 * 60_000 };
  }

  modelRuntime(): ModelRuntime {
    this.#runtime ??= new OnnxModelRuntime({ workers: this.#inferenceWorkers });
    return this.#runtime;
  }

  jobRunner(): JobRunner {
    this.#jobRunner ??= new LocalProcessRunner({
      python: trainerPython(this.#training.python),
      trainerDir: `${PACKAGE_ROOT}training`,
      timeoutMs: this.#training.timeoutMs,
      logger: this.logger,
    });
    return this.#jobRunner;
  }

  async close(): Promise<void> {
    await this.#runtime?.close();
  }
}
