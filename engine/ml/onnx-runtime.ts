import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { errorMessage } from '../errors.js';
import { DEFAULT_MAX_MODEL_SIZE_BYTES, verifyModelFile } from './integrity.js';
import { checkPredictArguments, modelError, type LoadedModel, type ModelRuntime, type ModelSpec } from './model-runtime.js';
import type { FromWorker, Signature, ToWorker } from './onnx-protocol.js';

export interface OnnxModelRuntimeOptions {
  /** Worker threads running inference; each holds a session of every loaded model. Default 1. */
  readonly workers?: number;
  /**
   * onnxruntime intra-op threads per session. Default 1: fastest for small models here, and more threads would
   * compete with the tasks for the cores.
   */
  readonly intraOpThreads?: number;
  /** Predict calls queued or running in one worker; past it `predict` rejects (kind `overloaded`, retriable). Default 256. */
  readonly maxQueuedPerWorker?: number;
  /** A predict call not answered within this time fails, and its worker is restarted (it is stuck). Default 30 000. */
  readonly requestTimeoutMs?: number;
  /** A worker that exits this many times in a row without answering a call in between is not restarted. Default 5. */
  readonly maxConsecutiveRestarts?: number;
  /** Largest model file accepted. Default 1 GiB. */
  readonly maxModelSizeBytes?: number;
}

interface PendingRun {
  readonly resolve: (probabilities: Float32Array) => void;
  readonly reject: (err: unknown) => void;
  readonly startedMs: number;
  readonly model: string;
}

interface PendingLoad {
  readonly resolve: (signature: Signature) => void;
  readonly reject: (err: unknown) => void;
}

interface HeldModel {
  readonly spec: ModelSpec;
  /** The verified bytes, kept to load the model again into a restarted worker without reading the file again. */
  readonly bytes: Buffer;
  readonly inputName: string;
  readonly outputName: string;
}

/** One worker thread and what is waiting on it. */
class WorkerSlot {
  worker: Worker | undefined;
  readonly runs = new Map<number, PendingRun>();
  readonly loads = new Map<number, PendingLoad>();
  /** Exits since the last answered call. */
  consecutiveExits = 0;
  dead = false;
  /** Why the runtime ended this worker itself, if it did (closing, or a call timed out). */
  ending: 'closing' | 'timed-out' | undefined;
  lastError: unknown;

  constructor(readonly index: number) {}

  post(message: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker!.postMessage(message, transfer);
  }
}

/**
 * Where the worker script is. Built (`dist/`): the compiled `onnx-worker.js` beside this module. From sources
 * (vitest runs the `.ts` files): a small bootstrap registers a module hook that compiles `.ts` with the project's
 * TypeScript, then imports `onnx-worker.ts` — Node 20 cannot run TypeScript itself.
 */
function workerEntry(): { filename: string | URL; options: WorkerOptions } {
  const compiled = new URL('./onnx-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return { filename: compiled, options: {} };
  const source = new URL('./onnx-worker.ts', import.meta.url);
  if (!existsSync(fileURLToPath(source))) throw new TypeError(`the ONNX worker script is missing: neither ${compiled.href} nor ${source.href} exists`);
  const typescript = pathToFileURL(createRequire(import.meta.url).resolve('typescript')).href;
  return { filename: TS_BOOTSTRAP, options: { eval: true, workerData: { entry: source.href, hooks: TS_HOOKS, typescript } } };
}

/** Module hooks for a worker started from sources: `.ts` compiled on load, `./x.js` imports resolved to `./x.ts`. */
const TS_HOOKS = `
let ts;
export async function initialize(data) { ts = (await import(data.typescript)).default; }
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    if (err?.code === 'ERR_MODULE_NOT_FOUND' && specifier.startsWith('.') && specifier.endsWith('.js')) return next(specifier.slice(0, -3) + '.ts', context);
    throw err;
  }
}
export async function load(url, context, next) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return next(url, context);
  const { readFile } = await import('node:fs/promises');
  const source = await readFile(new URL(url), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    fileName: url,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true, inlineSourceMap: true },
  });
  return { format: 'module', source: outputText, shortCircuit: true };
}
`;

const TS_BOOTSTRAP = `
const { register } = require('node:module');
const { workerData } = require('node:worker_threads');
register('data:text/javascript,' + encodeURIComponent(workerData.hooks), { data: { typescript: workerData.typescript } });
import(workerData.entry);
`;

/**
 * Runs ONNX models with onnxruntime-node in worker threads, so inference never blocks the event loop the tasks run
 * on. Each worker holds a session of every loaded model; a call goes to the worker with the fewest calls waiting,
 * its rows' buffer transferred, not copied. A worker that dies is restarted with every model loaded again (from
 * the verified bytes kept in memory), and the calls it held reject with a retriable `failed` error.
 */
export class OnnxModelRuntime implements ModelRuntime {
  readonly #workers: number;
  readonly #intraOpThreads: number;
  readonly #maxQueued: number;
  readonly #requestTimeoutMs: number;
  readonly #maxConsecutiveRestarts: number;
  readonly #maxModelSizeBytes: number;
  readonly #slots: WorkerSlot[] = [];
  readonly #models = new Map<number, HeldModel>();
  #nextKey = 1;
  #nextRun = 1;
  #closed = false;
  #watchdog: NodeJS.Timeout | undefined;

  constructor(options: OnnxModelRuntimeOptions = {}) {
    this.#workers = positiveInteger('workers', options.workers ?? 1);
    this.#intraOpThreads = positiveInteger('intraOpThreads', options.intraOpThreads ?? 1);
    this.#maxQueued = positiveInteger('maxQueuedPerWorker', options.maxQueuedPerWorker ?? 256);
    this.#requestTimeoutMs = positiveInteger('requestTimeoutMs', options.requestTimeoutMs ?? 30_000);
    this.#maxConsecutiveRestarts = positiveInteger('maxConsecutiveRestarts', options.maxConsecutiveRestarts ?? 5);
    this.#maxModelSizeBytes = positiveInteger('maxModelSizeBytes', options.maxModelSizeBytes ?? DEFAULT_MAX_MODEL_SIZE_BYTES);
  }

  async load(spec: ModelSpec): Promise<LoadedModel> {
    this.#assertOpen(spec);
    const bytes = await verifyModelFile(spec.path, spec.sha256, { maxSizeBytes: this.#maxModelSizeBytes });
    this.#assertOpen(spec);
    this.#start();
    const key = this.#nextKey++;
    const live = this.#slots.filter((s) => !s.dead);
    if (live.length === 0) throw modelError('unavailable', `${spec.name}@${spec.version}: no inference worker is running`, { details: modelDetails(spec) });
    const loads = live.map(
      (slot) =>
        new Promise<Signature>((resolve, reject) => {
          slot.loads.set(key, { resolve, reject });
          // Each worker gets its own copy of the verified bytes (a transfer detaches them).
          const copy = new Uint8Array(bytes);
          slot.post({ type: 'load', key, bytes: copy, inputName: spec.inputName, outputName: spec.outputName, intraOpThreads: this.#intraOpThreads }, [copy.buffer]);
        }),
    );
    const settled = await Promise.allSettled(loads);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed !== undefined) {
      for (const slot of live) if (!slot.dead && slot.worker !== undefined) slot.post({ type: 'unload', key });
      throw failed.reason;
    }
    const signature = (settled[0] as PromiseFulfilledResult<Signature>).value;
    const width = signature.inputWidth ?? spec.inputWidth;
    const fail = (message: string): never => {
      for (const slot of live) if (!slot.dead && slot.worker !== undefined) slot.post({ type: 'unload', key });
      throw modelError('invalid', `${spec.name}@${spec.version} (${spec.path}): ${message}`, { details: modelDetails(spec) });
    };
    if (width === undefined) fail(`input ${signature.inputName} has no fixed width: give inputWidth`);
    if (spec.inputWidth !== undefined && width !== spec.inputWidth) fail(`input ${signature.inputName} takes ${width} features, not ${spec.inputWidth}`);
    if (this.#closed) fail('the runtime was closed while the model loaded');
    this.#models.set(key, { spec, bytes, inputName: signature.inputName, outputName: signature.outputName });
    return new OnnxLoadedModel(this, key, spec, width!, signature);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#watchdog);
    this.#models.clear();
    const ending: Array<Promise<number>> = [];
    for (const slot of this.#slots) {
      slot.ending = 'closing';
      const closed = modelError('unavailable', 'the model runtime was closed', { retriable: false });
      this.#rejectAll(slot, closed);
      if (slot.worker !== undefined) ending.push(slot.worker.terminate());
    }
    await Promise.allSettled(ending);
  }

  /** The worker script this build starts: `onnx-worker.js` when built, `onnx-worker.ts` from sources. */
  static workerScript(): string {
    const { filename, options } = workerEntry();
    return options.eval === true ? (options.workerData as { entry: string }).entry : String(filename);
  }

  /** Worker thread ids, for tests and diagnostics. */
  workerThreadIds(): number[] {
    return this.#slots.filter((s) => !s.dead && s.worker !== undefined).map((s) => s.worker!.threadId);
  }

  /** @internal For tests: makes worker `index` exit as a crash would, with its calls in flight. */
  crashWorker(index: number): void {
    this.#slots[index]?.post({ type: 'exit', code: 70 });
  }

  // ---- used by OnnxLoadedModel

  /** @internal */
  predict(key: number, model: OnnxLoadedModel, rows: Float32Array, rowCount: number): Promise<Float32Array> {
    if (this.#closed) return Promise.reject(modelError('unavailable', `${model.name}@${model.version}: the model runtime is closed`, { retriable: false, details: modelDetails(model) }));
    if (!this.#models.has(key)) return Promise.reject(modelError('unavailable', `${model.name}@${model.version} was closed`, { retriable: false, details: modelDetails(model) }));
    let slot: WorkerSlot | undefined;
    for (const s of this.#slots) if (!s.dead && (slot === undefined || s.runs.size < slot.runs.size)) slot = s;
    if (slot === undefined) return Promise.reject(modelError('unavailable', `${model.name}@${model.version}: no inference worker is running`, { details: modelDetails(model) }));
    if (slot.runs.size >= this.#maxQueued) {
      return Promise.reject(
        modelError('overloaded', `${model.name}@${model.version}: ${slot.runs.size} calls already wait for worker ${slot.index} (maxQueuedPerWorker)`, {
          details: { ...modelDetails(model), queued: slot.runs.size },
        }),
      );
    }
    // The buffer moves to the worker; a view into a larger or shared buffer is copied first.
    const whole = rows.byteOffset === 0 && rows.buffer instanceof ArrayBuffer && rows.byteLength === rows.buffer.byteLength;
    const sent = whole ? rows : rows.slice(0, rowCount * model.inputWidth);
    const id = this.#nextRun++;
    return new Promise<Float32Array>((resolve, reject) => {
      slot.runs.set(id, { resolve, reject, startedMs: performance.now(), model: `${model.name}@${model.version}` });
      slot.post({ type: 'run', id, key, rows: sent, rowCount, width: model.inputWidth }, [sent.buffer as ArrayBuffer]);
    });
  }

  /** @internal */
  unload(key: number): void {
    if (!this.#models.delete(key)) return;
    for (const slot of this.#slots) if (!slot.dead && slot.worker !== undefined) slot.post({ type: 'unload', key });
  }

  // ---- workers

  #assertOpen(spec: ModelSpec): void {
    if (this.#closed) throw modelError('unavailable', `${spec.name}@${spec.version}: the model runtime is closed`, { retriable: false, details: modelDetails(spec) });
  }

  #start(): void {
    if (this.#slots.length > 0) return;
    for (let i = 0; i < this.#workers; i++) {
      const slot = new WorkerSlot(i);
      this.#slots.push(slot);
      this.#spawn(slot);
    }
    const every = Math.max(10, Math.min(1_000, Math.floor(this.#requestTimeoutMs / 4)));
    this.#watchdog = setInterval(() => this.#checkTimeouts(), every);
    this.#watchdog.unref();
  }

  #spawn(slot: WorkerSlot): void {
    const { filename, options } = workerEntry();
    const worker = new Worker(filename, { ...options, name: `millrace-onnx-${slot.index}` });
    slot.worker = worker;
    slot.ending = undefined;
    slot.lastError = undefined;
    worker.on('message', (message: FromWorker) => this.#onMessage(slot, message));
    worker.on('error', (err) => (slot.lastError = err));
    worker.on('exit', (code) => this.#onExit(slot, worker, code));
    // A restarted worker loads every model again before it takes calls (it handles messages in order).
    for (const [key, held] of this.#models) {
      const copy = new Uint8Array(held.bytes);
      slot.post(
        { type: 'load', key, bytes: copy, inputName: held.inputName, outputName: held.outputName, intraOpThreads: this.#intraOpThreads },
        [copy.buffer],
      );
    }
  }

  #onMessage(slot: WorkerSlot, message: FromWorker): void {
    switch (message.type) {
      case 'result': {
        const run = slot.runs.get(message.id);
        if (run === undefined) return;
        slot.runs.delete(message.id);
        slot.consecutiveExits = 0;
        run.resolve(message.probabilities);
        return;
      }
      case 'run-failed': {
        const run = slot.runs.get(message.id);
        if (run === undefined) return;
        slot.runs.delete(message.id);
        run.reject(modelError('failed', `${run.model}: inference failed: ${message.message}`, { details: { model: run.model, worker: slot.index } }));
        return;
      }
      case 'loaded':
        slot.loads.get(message.key)?.resolve(message.signature);
        slot.loads.delete(message.key);
        return;
      case 'load-failed': {
        const pending = slot.loads.get(message.key);
        slot.loads.delete(message.key);
        pending?.reject(modelError('invalid', `cannot load the model: ${message.message}`, { details: { worker: slot.index } }));
        return;
      }
    }
  }

  #onExit(slot: WorkerSlot, worker: Worker, code: number): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    if (slot.ending === 'closing') return;
    const why = slot.ending === 'timed-out' ? `a call took longer than ${this.#requestTimeoutMs} ms (requestTimeoutMs)` : `it exited with code ${code}`;
    const cause = slot.lastError;
    this.#rejectAll(
      slot,
      modelError('failed', `inference worker ${slot.index} ended: ${why}${cause === undefined ? '' : ` (${errorMessage(cause)})`}`, {
        retriable: true,
        ...(cause === undefined ? {} : { cause }),
        details: { worker: slot.index, exitCode: code, timedOut: slot.ending === 'timed-out' },
      }),
    );
    if (this.#closed) return;
    slot.consecutiveExits++;
    if (slot.consecutiveExits > this.#maxConsecutiveRestarts) {
      slot.dead = true;
      return;
    }
    this.#spawn(slot);
  }

  #rejectAll(slot: WorkerSlot, err: unknown): void {
    const runs = [...slot.runs.values()];
    const loads = [...slot.loads.values()];
    slot.runs.clear();
    slot.loads.clear();
    for (const run of runs) run.reject(err);
    for (const load of loads) load.reject(err);
  }

  #checkTimeouts(): void {
    const now = performance.now();
    for (const slot of this.#slots) {
      if (slot.worker === undefined || slot.ending !== undefined) continue;
      // Calls are answered in order: the first one waiting is the oldest.
      const oldest = slot.runs.values().next();
      if (oldest.done === true || now - oldest.value.startedMs < this.#requestTimeoutMs) continue;
      slot.ending = 'timed-out';
      void slot.worker.terminate();
    }
  }
}

class OnnxLoadedModel implements LoadedModel {
  readonly name: string;
  readonly version: string;
  readonly sha256: string;
  readonly inputWidth: number;
  /** The input and output of the ONNX graph this model reads and answers from. */
  readonly signature: Signature;
  readonly #runtime: OnnxModelRuntime;
  readonly #key: number;

  constructor(runtime: OnnxModelRuntime, key: number, spec: ModelSpec, inputWidth: number, signature: Signature) {
    this.#runtime = runtime;
    this.#key = key;
    this.name = spec.name;
    this.version = spec.version;
    this.sha256 = spec.sha256.toLowerCase();
    this.inputWidth = inputWidth;
    this.signature = signature;
  }

  predict(rows: Float32Array, rowCount: number): Promise<Float32Array> {
    checkPredictArguments(this, rows, rowCount);
    if (rowCount === 0) return Promise.resolve(new Float32Array(0));
    return this.#runtime.predict(this.#key, this, rows, rowCount);
  }

  async close(): Promise<void> {
    this.#runtime.unload(this.#key);
  }
}

function modelDetails(model: { readonly name: string; readonly version: string }): Record<string, unknown> {
  return { model: model.name, version: model.version };
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`OnnxModelRuntime: ${name} must be a positive integer, got ${value}`);
  return value;
}
