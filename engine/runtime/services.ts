import type { Logger } from '../logger.js';
import type { Log } from '../log/log.js';
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
  modelRuntime(): ModelRuntime;
}

export interface EngineServicesOptions {
  readonly log: Log;
  readonly registry: SchemaRegistry;
  readonly dataDir: string;
  readonly logger: Logger;
  /** Inference worker threads. */
  readonly inferenceWorkers: number;
}

export class DefaultEngineServices implements EngineServices {
  readonly log: Log;
  readonly registry: SchemaRegistry;
  readonly dataDir: string;
  readonly logger: Logger;
  readonly #inferenceWorkers: number;
  #runtime: OnnxModelRuntime | undefined;

  constructor(options: EngineServicesOptions) {
    this.log = options.log;
    this.registry = options.registry;
    this.dataDir = options.dataDir;
    this.logger = options.logger;
    this.#inferenceWorkers = options.inferenceWorkers;
  }

  modelRuntime(): ModelRuntime {
    this.#runtime ??= new OnnxModelRuntime({ workers: this.#inferenceWorkers });
    return this.#runtime;
  }

  async close(): Promise<void> {
    await this.#runtime?.close();
  }
}
