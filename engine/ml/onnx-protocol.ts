/**
 * @internal The messages between OnnxModelRuntime and its worker threads, and how a model's signature (which
 * input, which output) is chosen. Shared by both sides; no dependency, so the worker stays small.
 */

/** What onnxruntime tells of an input or output (its `ValueMetadata`), reduced to what the choice needs. */
export interface ValueInfo {
  readonly name: string;
  readonly isTensor: boolean;
  readonly type?: string;
  readonly shape?: ReadonlyArray<number | string>;
}

export interface Signature {
  readonly inputName: string;
  readonly outputName: string;
  /** The input's width when the model fixes it; `null` when its second dimension is symbolic. */
  readonly inputWidth: number | null;
}

/** The pipeline's input name (topologies/pipeline/contract.ts). */
export const DEFAULT_INPUT_NAME = 'features';

const describe = (values: readonly ValueInfo[]): string =>
  values.map((v) => (v.isTensor ? `${v.name}: ${v.type ?? '?'}[${(v.shape ?? []).join(', ')}]` : `${v.name}: (not a tensor)`)).join('; ') || 'none';

const isFloatMatrix = (v: ValueInfo): boolean => v.isTensor && v.type === 'float32' && (v.shape === undefined || v.shape.length === 0 || v.shape.length === 2);

/**
 * The input: the one named (else `features`, else the only float32 rank-2 input). The output: the one named, else
 * the only float32 output whose shape is [rows, 2] (a scikit-learn export also has an int64 `label`; a model with
 * two such outputs must name one). Returns an explanation instead when there is no such choice.
 */
export function chooseSignature(
  inputs: readonly ValueInfo[],
  outputs: readonly ValueInfo[],
  wanted: { inputName?: string | undefined; outputName?: string | undefined } = {},
): Signature | { error: string } {
  let input: ValueInfo | undefined;
  if (wanted.inputName !== undefined) {
    input = inputs.find((v) => v.name === wanted.inputName);
    if (input === undefined) return { error: `the model has no input ${wanted.inputName} (inputs: ${describe(inputs)})` };
  } else {
    input = inputs.find((v) => v.name === DEFAULT_INPUT_NAME);
    if (input === undefined) {
      const candidates = inputs.filter(isFloatMatrix);
      if (candidates.length !== 1) return { error: `cannot tell which input takes the features: name it with inputName (inputs: ${describe(inputs)})` };
      input = candidates[0]!;
    }
  }
  if (!isFloatMatrix(input)) return { error: `input ${input.name} is not a float32 [rows, width] tensor (${describe([input])})` };
  if (inputs.length > 1) return { error: `the model has ${inputs.length} inputs; only models with one input are served (inputs: ${describe(inputs)})` };
  const width = input.shape?.[1];
  let output: ValueInfo | undefined;
  if (wanted.outputName !== undefined) {
    output = outputs.find((v) => v.name === wanted.outputName);
    if (output === undefined) return { error: `the model has no output ${wanted.outputName} (outputs: ${describe(outputs)})` };
    if (!isProbabilities(output)) return { error: `output ${output.name} is not a float32 [rows, 2] tensor (${describe([output])})` };
  } else {
    const candidates = outputs.filter(isProbabilities);
    if (candidates.length !== 1) {
      return {
        error: `${candidates.length === 0 ? 'no' : 'more than one'} float32 [rows, 2] output: name the probabilities with outputName (outputs: ${describe(outputs)})`,
      };
    }
    output = candidates[0]!;
  }
  return { inputName: input.name, outputName: output.name, inputWidth: typeof width === 'number' && width > 0 ? width : null };
}

function isProbabilities(v: ValueInfo): boolean {
  if (!v.isTensor || v.type !== 'float32') return false;
  const shape = v.shape ?? [];
  return shape.length === 2 && shape[1] === 2;
}

// ---------------------------------------------------------------- messages

export type ToWorker =
  | {
      readonly type: 'load';
      readonly key: number;
      readonly bytes: Uint8Array;
      readonly inputName: string | undefined;
      readonly outputName: string | undefined;
      readonly intraOpThreads: number;
    }
  | { readonly type: 'run'; readonly id: number; readonly key: number; readonly rows: Float32Array; readonly rowCount: number; readonly width: number }
  | { readonly type: 'unload'; readonly key: number }
  /** Ends the worker as a crash would (for tests of the restart path). */
  | { readonly type: 'exit'; readonly code: number };

export type FromWorker =
  | { readonly type: 'loaded'; readonly key: number; readonly signature: Signature }
  | { readonly type: 'load-failed'; readonly key: number; readonly message: string }
  | { readonly type: 'result'; readonly id: number; readonly probabilities: Float32Array }
  | { readonly type: 'run-failed'; readonly id: number; readonly message: string };
