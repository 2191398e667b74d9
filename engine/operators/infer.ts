import { MillraceError, errorMessage, isMillraceError } from '../errors.js';
import { isModelError, modelError, type LoadedModel } from '../ml/model-runtime.js';
import type { Cancellable, Processor, ProcessorContext, ProcessorSupplier } from '../topology/processor.js';
import type { RecordMetadata, StreamRecord } from '../topology/record.js';

/**
 * Model inference with micro-batching inside a task (DESIGN §6, scoring), as a processor:
 *
 *   stream.process('score', inferenceProcessor({ model: () => fraud, toRow, emit }))
 *
 * **Batching.** `process` scores nothing itself: it checks the record (its model, its row of features), appends it
 * to the batch of its model, and returns at once — synchronously — until a batch holds `maxBatch` rows. Then it
 * returns the promise of scoring every open batch, which the task awaits before its next record (backpressure: at
 * most one flush is in flight per task). A batch that does not fill is flushed by a wall-clock punctuator once its
 * oldest record has waited `maxWaitMs` (the punctuator is scheduled only while records wait, so an idle task does
 * not wake for it); its predictions are forwarded at the task's next turn (the next record, the next tick, or the
 * checkpoint). Records routed to different models (canary splits) are batched per model and scored in parallel.
 *
 * **Order.** Predictions are forwarded in input order, all the records of a flush at once, whatever their models.
 *
 * **Lineage.** Each record's `recordMetadata()` (topic, partition, offset) is taken when it is processed and handed
 * to `emit` as `source`. Predictions are forwarded later, from another record's turn, a punctuator or a commit hook:
 * nodes downstream must take lineage from the prediction, not from their own `recordMetadata()`.
 *
 * **Exactly-once.** A commit hook flushes and forwards everything pending before every checkpoint, so a checkpoint
 * never commits the input position of a record whose prediction it does not hold.
 *
 * **A record without a model** (none loaded yet for its route) is refused at once with a `model-unavailable` error:
 * the task sends it to the dead-letter topic with that reason (or fails, by its error policy). Holding it instead
 * would stall the partition behind a model that may never come. Give `ready` to keep the task from starting before
 * its models are loaded. A row of the wrong width or with a non-finite feature is refused the same way
 * (MILLRACE_PROCESSING, `details.reason: 'invalid-features'`).
 *
 * **A batch that fails** (after `maxRetries` for retriable errors: queue full, worker restarted) fails the task. The
 * batch holds records whose `process` returned earlier — their units of work are over and cannot be rolled back or
 * dead-lettered one by one — so the failure is sticky: the flush throws (the record or punctuation in hand is
 * rolled back, and dead-lettered under the `dead-letter` policy), every later `process` call throws it again, and
 * the commit hook throws it, so the next checkpoint is never taken and the task stops as failed. Nothing of the
 * failed batch — nor of anything after the last checkpoint, dead letters included — is committed; a restart resumes
 * at the last checkpoint and scores those records again. Input that cannot be scored is caught per record in
 * `process` (above); what fails a batch is the model or the runtime, which a restart (or a rollback) must fix.
 */

export type ModelRoute = 'stable' | 'canary';

/** The model for a record, and which side of a canary split it is. */
export interface ModelChoice {
  readonly model: LoadedModel | undefined;
  readonly route: ModelRoute;
}

export interface Scored<K, V> {
  readonly record: StreamRecord<K, V>;
  /** Probability of class 1 (fraud). */
  readonly probability: number;
  readonly model: LoadedModel;
  readonly route: ModelRoute;
  /** Where the input record was read (lineage); `undefined` only for a record a punctuator upstream forwarded. */
  readonly source: RecordMetadata | undefined;
}

export interface BatchScored {
  readonly model: LoadedModel;
  readonly rows: number;
  readonly durationMs: number;
  /** Calls that failed with a retriable error before this one answered. */
  readonly retries: number;
}

export interface InferenceOptions<KIn, VIn, KOut, VOut> {
  /**
   * The model for a record: a `LoadedModel` (route `stable`), a `{ model, route }` choice (canary routing), or
   * `undefined` while none is loaded. Called once per record, in `process`.
   */
  readonly model: (record: StreamRecord<KIn, VIn>) => LoadedModel | ModelChoice | undefined;
  /** The record's features, `model.inputWidth` of them, in the model's order. */
  readonly toRow: (record: StreamRecord<KIn, VIn>) => ArrayLike<number>;
  /** The record to forward for a scored input. */
  readonly emit: (scored: Scored<KIn, VIn>) => StreamRecord<KOut, VOut>;
  /** Rows per model call. Default 64. */
  readonly maxBatch?: number;
  /** Longest a record waits for its batch to fill before the batch is scored anyway. Default 5. */
  readonly maxWaitMs?: number;
  /** Retries of a batch call that failed with a retriable error (queue full, worker restarted). Default 2. */
  readonly maxRetries?: number;
  /** Wait before a retry, doubled each time. Default 10. */
  readonly retryBackoffMs?: number;
  /** Awaited in `init`: the task starts processing once it resolves (e.g. when the stable model is loaded). */
  readonly ready?: () => Promise<void>;
  /** Told of each model call that answered: for metrics (batch sizes, latency). */
  readonly onBatch?: (batch: BatchScored) => void;
}

export const DEFAULT_MAX_BATCH = 64;
export const DEFAULT_MAX_WAIT_MS = 5;

export function inferenceProcessor<KIn, VIn, KOut, VOut>(options: InferenceOptions<KIn, VIn, KOut, VOut>): ProcessorSupplier<KIn, VIn, KOut, VOut> {
  const settings = {
    maxBatch: positiveInteger('maxBatch', options.maxBatch ?? DEFAULT_MAX_BATCH),
    maxWaitMs: positiveInteger('maxWaitMs', options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS),
    maxRetries: nonNegativeInteger('maxRetries', options.maxRetries ?? 2),
    retryBackoffMs: nonNegativeInteger('retryBackoffMs', options.retryBackoffMs ?? 10),
  };
  return () => new InferenceProcessor(options, settings);
}

interface Entry<K, V> {
  readonly record: StreamRecord<K, V>;
  readonly source: RecordMetadata | undefined;
  readonly model: LoadedModel;
  readonly route: ModelRoute;
  probability: number;
}

interface Batch<K, V> {
  readonly model: LoadedModel;
  readonly rows: Float32Array;
  readonly entries: Array<Entry<K, V>>;
}

/** Everything taken from the open batches by one flush: scored together, forwarded together. */
interface Flush<K, V> {
  readonly entries: Array<Entry<K, V>>;
  readonly batches: Array<Batch<K, V>>;
}

interface Inflight<K, V> {
  readonly flush: Flush<K, V>;
  readonly done: Promise<void>;
  settled: boolean;
  error: unknown;
}

class InferenceProcessor<KIn, VIn, KOut, VOut> implements Processor<KIn, VIn, KOut, VOut> {
  readonly #options: InferenceOptions<KIn, VIn, KOut, VOut>;
  readonly #maxBatch: number;
  readonly #maxWaitMs: number;
  readonly #maxRetries: number;
  readonly #retryBackoffMs: number;
  readonly #tickMs: number;
  #context: ProcessorContext<KOut, VOut> | undefined;
  /** Open batches by model, and their records in input order. */
  #open = new Map<LoadedModel, Batch<KIn, VIn>>();
  #entries: Array<Entry<KIn, VIn>> = [];
  /** Wall-clock time the oldest open record arrived. */
  #oldestMs = 0;
  /** A flush a punctuator started, forwarded at the task's next turn. */
  #inflight: Inflight<KIn, VIn> | undefined;
  #tick: Cancellable | undefined;
  /** Set once a batch failed: the task must not commit again (see the module comment). */
  #failure: MillraceError | undefined;

  constructor(
    options: InferenceOptions<KIn, VIn, KOut, VOut>,
    settings: { maxBatch: number; maxWaitMs: number; maxRetries: number; retryBackoffMs: number },
  ) {
    this.#options = options;
    this.#maxBatch = settings.maxBatch;
    this.#maxWaitMs = settings.maxWaitMs;
    this.#maxRetries = settings.maxRetries;
    this.#retryBackoffMs = settings.retryBackoffMs;
    // Ticks finer than maxWaitMs, so a record waits at most about maxWaitMs + maxWaitMs / 4 before its batch goes.
    this.#tickMs = Math.max(1, Math.floor(settings.maxWaitMs / 4));
  }

  init(context: ProcessorContext<KOut, VOut>): void | Promise<void> {
    this.#context = context;
    context.onCommit(() => this.#beforeCommit());
    return this.#options.ready?.();
  }

  process(record: StreamRecord<KIn, VIn>, context: ProcessorContext<KOut, VOut>): void | Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    // Everything that can fail for this record alone, before any effect: such a failure is the record's own.
    const { model, route } = this.#choose(record);
    const row = this.#options.toRow(record);
    checkRow(model, row);
    const entry: Entry<KIn, VIn> = { record, source: context.recordMetadata(), model, route, probability: Number.NaN };
    const inflight = this.#inflight;
    if (inflight !== undefined) {
      // The records of a flush in flight come first.
      if (!inflight.settled) return inflight.done.then(() => this.#afterInflight(entry, row));
      this.#deliverInflight();
    }
    return this.#add(entry, row);
  }

  close(): void {
    this.#tick?.cancel();
    this.#tick = undefined;
  }

  #choose(record: StreamRecord<KIn, VIn>): { model: LoadedModel; route: ModelRoute } {
    const chosen = this.#options.model(record);
    const choice: ModelChoice = chosen === undefined ? { model: undefined, route: 'stable' } : 'route' in chosen ? chosen : { model: chosen, route: 'stable' };
    if (choice.model === undefined) {
      throw modelError('unavailable', `${this.#context!.nodeName}: no model is loaded for the ${choice.route} route yet`, {
        details: { node: this.#context!.nodeName, route: choice.route },
      });
    }
    return { model: choice.model, route: choice.route };
  }

  #afterInflight(entry: Entry<KIn, VIn>, row: ArrayLike<number>): void | Promise<void> {
    this.#deliverInflight();
    return this.#add(entry, row);
  }

  #add(entry: Entry<KIn, VIn>, row: ArrayLike<number>): void | Promise<void> {
    const model = entry.model;
    let batch = this.#open.get(model);
    if (batch === undefined) {
      batch = { model, rows: new Float32Array(this.#maxBatch * model.inputWidth), entries: [] };
      this.#open.set(model, batch);
    }
    batch.rows.set(row, batch.entries.length * model.inputWidth);
    batch.entries.push(entry);
    if (this.#entries.length === 0) {
      this.#oldestMs = this.#context!.wallClockMs();
      this.#tick ??= this.#context!.schedule(this.#tickMs, 'wall-clock', (now) => this.#onTick(now));
    }
    this.#entries.push(entry);
    if (batch.entries.length < this.#maxBatch) return;
    const flush = this.#take();
    return this.#score(flush).then(() => this.#deliver(flush));
  }

  /** Takes every open batch. */
  #take(): Flush<KIn, VIn> {
    const flush: Flush<KIn, VIn> = { entries: this.#entries, batches: [...this.#open.values()] };
    this.#entries = [];
    this.#open = new Map();
    return flush;
  }

  /** Scores every batch of a flush, writing each entry's probability; a failure becomes the sticky failure. */
  async #score(flush: Flush<KIn, VIn>): Promise<void> {
    try {
      await Promise.all(flush.batches.map((batch) => this.#scoreBatch(batch)));
    } catch (err) {
      throw this.#fail(err, flush);
    }
  }

  async #scoreBatch(batch: Batch<KIn, VIn>): Promise<void> {
    const { model, entries } = batch;
    const count = entries.length;
    for (let attempt = 0; ; attempt++) {
      const started = performance.now();
      try {
        // A copy per call: the runtime may take the buffer, and a retry needs the rows again.
        const rows = this.#maxRetries === 0 ? batch.rows : batch.rows.slice(0, count * model.inputWidth);
        const probabilities = await model.predict(rows, count);
        if (probabilities.length !== count) throw new TypeError(`${model.name}@${model.version} answered ${probabilities.length} probabilities for ${count} rows`);
        for (let i = 0; i < count; i++) entries[i]!.probability = probabilities[i]!;
        this.#options.onBatch?.({ model, rows: count, durationMs: performance.now() - started, retries: attempt });
        return;
      } catch (err) {
        const retriable = isMillraceError(err) && err.retriable;
        if (!retriable || attempt >= this.#maxRetries) throw err;
        await new Promise((resolve) => setTimeout(resolve, this.#retryBackoffMs * 2 ** attempt));
      }
    }
  }

  /** Forwards the predictions of a scored flush, in input order. */
  #deliver(flush: Flush<KIn, VIn>): void {
    const context = this.#context!;
    try {
      for (const entry of flush.entries) {
        context.forward(this.#options.emit({ record: entry.record, probability: entry.probability, model: entry.model, route: entry.route, source: entry.source }));
      }
    } catch (err) {
      // Predictions of earlier records were forwarded in this unit of work, which is now rolled back with them.
      throw this.#fail(err, flush);
    }
    if (this.#entries.length === 0 && this.#inflight === undefined) this.#cancelTick();
  }

  #fail(err: unknown, flush: Flush<KIn, VIn>): MillraceError {
    if (this.#failure !== undefined) return this.#failure;
    const first = flush.entries[0]?.source;
    const last = flush.entries.at(-1)?.source;
    const models = [...new Set(flush.batches.map((b) => `${b.model.name}@${b.model.version}`))];
    this.#failure = modelError(
      'failed',
      `${this.#context!.nodeName}: a batch of ${flush.entries.length} records (${models.join(', ')}) could not be scored and forwarded: ${errorMessage(err)}; the task must restart from its last checkpoint`,
      {
        cause: err,
        retriable: false,
        details: {
          node: this.#context!.nodeName,
          records: flush.entries.length,
          models,
          ...(first === undefined ? {} : { first }),
          ...(last === undefined ? {} : { last }),
          ...(isModelError(err) ? { causeReason: err.details?.['reason'] } : {}),
        },
      },
    );
    return this.#failure;
  }

  #onTick(nowMs: number): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#inflight?.settled === true) this.#deliverInflight();
    if (this.#inflight === undefined && this.#entries.length > 0 && nowMs - this.#oldestMs >= this.#maxWaitMs) {
      const flush = this.#take();
      const inflight: Inflight<KIn, VIn> = {
        flush,
        settled: false,
        error: undefined,
        done: this.#score(flush).then(
          () => {
            inflight.settled = true;
          },
          (err: unknown) => {
            inflight.settled = true;
            inflight.error = err;
          },
        ),
      };
      this.#inflight = inflight;
    }
    if (this.#inflight === undefined && this.#entries.length === 0) this.#cancelTick();
  }

  #deliverInflight(): void {
    const inflight = this.#inflight!;
    this.#inflight = undefined;
    if (inflight.error !== undefined) throw this.#failure ?? this.#fail(inflight.error, inflight.flush);
    this.#deliver(inflight.flush);
  }

  #beforeCommit(): void | Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#inflight === undefined && this.#entries.length === 0) return;
    return (async () => {
      const inflight = this.#inflight;
      if (inflight !== undefined) {
        await inflight.done;
        this.#deliverInflight();
      }
      if (this.#entries.length > 0) {
        const flush = this.#take();
        await this.#score(flush);
        this.#deliver(flush);
      }
      this.#cancelTick();
    })();
  }

  #cancelTick(): void {
    this.#tick?.cancel();
    this.#tick = undefined;
  }
}

function checkRow(model: LoadedModel, row: ArrayLike<number>): void {
  let bad = row.length !== model.inputWidth;
  for (let i = 0; !bad && i < row.length; i++) bad = !Number.isFinite(row[i]);
  if (bad) {
    throw new MillraceError(
      'MILLRACE_PROCESSING',
      `${model.name}@${model.version} reads ${model.inputWidth} finite features, got ${row.length === model.inputWidth ? 'a non-finite one' : `${row.length}`}`,
      { details: { reason: 'invalid-features', model: model.name, version: model.version } },
    );
  }
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`inferenceProcessor: ${name} must be a positive integer, got ${value}`);
  return value;
}

function nonNegativeInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`inferenceProcessor: ${name} must be a non-negative integer, got ${value}`);
  return value;
}
