import { MillraceError, isMillraceError, type ErrorCode } from '../errors.js';

/**
 * `ModelRuntime` is the seam between the engine and an inference library (DESIGN §6: scoring). A runtime loads a
 * model file, verified by SHA-256, and scores rows of features with it. Every implementation passes the shared
 * suite in `test/conformance/model-runtime.ts`.
 *
 * A model reads a float32 tensor [rows, inputWidth] (the pipeline's `features`, FEATURE_NAMES order) and writes a
 * float32 tensor [rows, 2] of class probabilities, class 1 = fraud; `predict` answers column 1.
 */

/** A model artifact to load: where it is, and the SHA-256 its bytes must have (the registry's `sha256`). */
export interface ModelSpec {
  readonly name: string;
  readonly version: string;
  /** A file path. */
  readonly path: string;
  /** Hex SHA-256 of the file; loading refuses any other bytes. */
  readonly sha256: string;
  /** The float32 [rows, width] input. Default: `features` if the model has it, else its only float32 rank-2 input. */
  readonly inputName?: string;
  /** The float32 [rows, 2] probabilities output. Default: the model's only float32 output of shape [rows, 2]. */
  readonly outputName?: string;
  /** The width the caller will feed (e.g. FEATURE_NAMES.length); a model that reads another width is refused. */
  readonly inputWidth?: number;
}

export interface LoadedModel {
  readonly name: string;
  readonly version: string;
  readonly sha256: string;
  /** Features per row. */
  readonly inputWidth: number;
  /**
   * The fraud probability of each of the first `rowCount` rows of `rows` (row-major, `inputWidth` floats a row;
   * `rows` may be longer). The runtime may take ownership of `rows` (OnnxModelRuntime transfers its buffer to a
   * worker thread, which detaches it): do not read or reuse it after the call.
   */
  predict(rows: Float32Array, rowCount: number): Promise<Float32Array>;
  /** Releases the model; later `predict` calls reject with a `model-unavailable` error. Calls already made finish. */
  close(): Promise<void>;
}

export interface ModelRuntime {
  /** Reads the file once, verifies its SHA-256, and loads those same bytes. */
  load(model: ModelSpec): Promise<LoadedModel>;
  /** Releases every model and worker; pending calls reject with a `model-unavailable` error. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------- errors

/**
 * What went wrong, by kind:
 * - `integrity`: the file's SHA-256 is not the one expected (never retriable: the artifact is wrong);
 * - `invalid`: the bytes are not a model this runtime can serve (not ONNX, or no [rows, width] input or [rows, 2]
 *   float output, or the wrong width);
 * - `unavailable`: no such model is loaded (not yet, closed, or its file cannot be read);
 * - `overloaded`: the inference queue is full (retriable);
 * - `failed`: inference itself failed (a worker exited — retriable —, or the model's run threw).
 */
export type ModelErrorKind = 'integrity' | 'invalid' | 'unavailable' | 'overloaded' | 'failed';

/** The catalogue code each kind carries (engine/errors.ts). */
export const MODEL_ERROR_CODES = {
  integrity: 'MILLRACE_MODEL_INTEGRITY',
  invalid: 'MILLRACE_MODEL_INVALID',
  unavailable: 'MILLRACE_MODEL_UNAVAILABLE',
  overloaded: 'MILLRACE_INFERENCE_OVERLOADED',
  failed: 'MILLRACE_INFERENCE_FAILED',
} as const satisfies Record<ModelErrorKind, ErrorCode>;

/** `details.reason` of each kind: stable, and what dead-letter problem bodies and tests look at. */
export const MODEL_ERROR_REASONS = {
  integrity: 'sha256-mismatch',
  invalid: 'model-invalid',
  unavailable: 'model-unavailable',
  overloaded: 'inference-queue-full',
  failed: 'inference-failed',
} as const satisfies Record<ModelErrorKind, string>;

const RETRIABLE: Record<ModelErrorKind, boolean> = {
  integrity: false,
  invalid: false,
  unavailable: true,
  overloaded: true,
  failed: false,
};

export function modelError(
  kind: ModelErrorKind,
  message: string,
  options: { cause?: unknown; details?: Record<string, unknown>; retriable?: boolean } = {},
): MillraceError {
  return new MillraceError(MODEL_ERROR_CODES[kind], message, {
    ...(options.cause === undefined ? {} : { cause: options.cause }),
    retriable: options.retriable ?? RETRIABLE[kind],
    details: { ...options.details, reason: MODEL_ERROR_REASONS[kind] },
  });
}

/** Is `err` a model error (of `kind`, if given)? Tests and callers ask this, never messages. */
export function isModelError(err: unknown, kind?: ModelErrorKind): err is MillraceError {
  if (kind === undefined) return (Object.keys(MODEL_ERROR_CODES) as ModelErrorKind[]).some((k) => isModelError(err, k));
  return isMillraceError(err, MODEL_ERROR_CODES[kind]) && err.details?.['reason'] === MODEL_ERROR_REASONS[kind];
}

/** Argument checks every runtime makes: a wrong call is a programmer bug, hence a RangeError. */
export function checkPredictArguments(model: { readonly name: string; readonly inputWidth: number }, rows: Float32Array, rowCount: number): void {
  if (!(rows instanceof Float32Array)) throw new TypeError(`${model.name}: predict takes a Float32Array of rows`);
  if (!Number.isSafeInteger(rowCount) || rowCount < 0) throw new RangeError(`${model.name}: rowCount must be a non-negative integer, got ${rowCount}`);
  if (rows.length < rowCount * model.inputWidth) {
    throw new RangeError(`${model.name}: ${rowCount} rows of ${model.inputWidth} features need ${rowCount * model.inputWidth} floats, got ${rows.length}`);
  }
}
