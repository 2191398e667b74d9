/**
 * @internal The worker thread of OnnxModelRuntime: holds one onnxruntime session per loaded model (by key) and runs
 * them off the main thread's event loop — onnxruntime-node's `run` is synchronous native work, which would
 * otherwise stall every task of the process while a large model runs.
 *
 * Messages are handled in arrival order. A `run` for a model still loading waits for it; an `unload` waits for the
 * model's runs in progress. Errors are answered, never thrown: the worker only ends when terminated (or asked to
 * `exit`, which tests use to play a crash).
 */
import { parentPort } from 'node:worker_threads';
import { InferenceSession, Tensor, env } from 'onnxruntime-node';
import { chooseSignature, type FromWorker, type Signature, type ToWorker, type ValueInfo } from './onnx-protocol.js';

interface Held {
  readonly ready: Promise<{ session: InferenceSession; signature: Signature }>;
  readonly running: Set<Promise<unknown>>;
}

const port = parentPort;
if (port === null) throw new TypeError('onnx-worker runs as a worker thread of OnnxModelRuntime');
env.logLevel = 'error';
const held = new Map<number, Held>();

function reply(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

const text = (err: unknown): string => (err instanceof Error ? err.message : String(err));

async function load(message: Extract<ToWorker, { type: 'load' }>): Promise<{ session: InferenceSession; signature: Signature }> {
  const session = await InferenceSession.create(message.bytes, {
    intraOpNumThreads: message.intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });
  const choice = chooseSignature(session.inputMetadata as readonly ValueInfo[], session.outputMetadata as readonly ValueInfo[], {
    inputName: message.inputName,
    outputName: message.outputName,
  });
  if ('error' in choice) {
    await session.release();
    throw new Error(choice.error);
  }
  return { session, signature: choice };
}

async function run(message: Extract<ToWorker, { type: 'run' }>): Promise<void> {
  const model = held.get(message.key);
  if (model === undefined) {
    reply({ type: 'run-failed', id: message.id, message: `model ${message.key} is not loaded in this worker` });
    return;
  }
  const running = (async () => {
    const { session, signature } = await model.ready;
    const { rowCount, width } = message;
    const rows = message.rows.length === rowCount * width ? message.rows : message.rows.subarray(0, rowCount * width);
    const outputs = await session.run({ [signature.inputName]: new Tensor('float32', rows, [rowCount, width]) }, [signature.outputName]);
    const output = outputs[signature.outputName];
    if (output === undefined || !(output.data instanceof Float32Array) || output.data.length !== rowCount * 2) {
      throw new Error(`output ${signature.outputName} is not float32 [${rowCount}, 2] (dims ${JSON.stringify(output?.dims)})`);
    }
    const data = output.data;
    const probabilities = new Float32Array(rowCount);
    for (let i = 0; i < rowCount; i++) probabilities[i] = data[i * 2 + 1]!;
    reply({ type: 'result', id: message.id, probabilities }, [probabilities.buffer]);
  })();
  model.running.add(running);
  try {
    await running;
  } catch (err) {
    reply({ type: 'run-failed', id: message.id, message: text(err) });
  } finally {
    model.running.delete(running);
  }
}

async function unload(key: number): Promise<void> {
  const model = held.get(key);
  if (model === undefined) return;
  held.delete(key);
  await Promise.allSettled(model.running);
  try {
    await (await model.ready).session.release();
  } catch {
    // It never loaded: nothing to release (the load's failure was answered).
  }
}

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'load': {
      const ready = load(message);
      held.set(message.key, { ready, running: new Set() });
      ready.then(
        ({ signature }) => reply({ type: 'loaded', key: message.key, signature }),
        (err: unknown) => {
          held.delete(message.key);
          reply({ type: 'load-failed', key: message.key, message: text(err) });
        },
      );
      return;
    }
    case 'run':
      void run(message);
      return;
    case 'unload':
      void unload(message.key);
      return;
    case 'exit':
      process.exit(message.code);
  }
});
