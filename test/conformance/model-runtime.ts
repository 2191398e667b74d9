/**
 * The `ModelRuntime` conformance suite. Every implementation proves itself with one line:
 *
 *   runModelRuntimeSuite('OnnxModelRuntime', async () => new OnnxModelRuntime());
 *
 * It uses the ONNX models of test/fixtures/models (regenerate with `node test/fixtures/models/generate.mjs`): a
 * logistic regression whose weights are in the manifest, so the expected probabilities are computed here, and an
 * MLP 10 → 256 → 256 → 2 whose answers are checked for shape, range and consistency.
 */
import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isModelError, type LoadedModel, type ModelErrorKind, type ModelRuntime, type ModelSpec } from '../../engine/ml/model-runtime.js';

export const MODELS_DIR = fileURLToPath(new URL('../fixtures/models/', import.meta.url));

interface Manifest {
  models: Record<string, { file: string; sha256: string; inputWidth: number; outputName: string; logisticRegression?: { weights: number[]; bias: number } }>;
}

const manifest = JSON.parse(readFileSync(join(MODELS_DIR, 'manifest.json'), 'utf8')) as Manifest;

/** The fixture models as load specs. */
export function fixtureSpec(model: 'fraud-logreg' | 'fraud-mlp', overrides: Partial<ModelSpec> = {}): ModelSpec {
  const entry = manifest.models[model]!;
  return { name: model, version: '1', path: join(MODELS_DIR, entry.file), sha256: entry.sha256, ...overrides };
}

/** The logistic regression's probability of fraud for one row, in float64. */
export function logregProbability(row: ArrayLike<number>): number {
  const { weights, bias } = manifest.models['fraud-logreg']!.logisticRegression!;
  let z = bias;
  for (let i = 0; i < weights.length; i++) z += weights[i]! * row[i]!;
  return 1 / (1 + Math.exp(-z));
}

/** `count` rows of 10 features from a seeded generator, in ranges that keep the regression away from 0 and 1. */
export function sampleRows(count: number, seed = 1): Float32Array {
  let state = seed >>> 0;
  const random = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Float32Array.from({ length: count * 10 }, () => random() * 4 - 2);
}

const row = (rows: Float32Array, i: number): Float32Array => rows.subarray(i * 10, i * 10 + 10);

async function expectModelError(promise: Promise<unknown>, kind: ModelErrorKind): Promise<Record<string, unknown>> {
  try {
    await promise;
  } catch (err) {
    if (isModelError(err, kind)) return err.details ?? {};
    throw new Error(`expected a ${kind} model error, got ${String(err)}`, { cause: err });
  }
  throw new Error(`expected a ${kind} model error, but it succeeded`);
}

export function runModelRuntimeSuite(name: string, factory: () => Promise<ModelRuntime>): void {
  describe(`ModelRuntime conformance: ${name}`, () => {
    let runtime: ModelRuntime;
    let logreg: LoadedModel;
    let mlp: LoadedModel;
    let scratch: string;

    beforeAll(async () => {
      scratch = await mkdtemp(join(tmpdir(), 'millrace-models-'));
      runtime = await factory();
      logreg = await runtime.load(fixtureSpec('fraud-logreg', { version: '3' }));
      mlp = await runtime.load(fixtureSpec('fraud-mlp'));
    });

    afterAll(async () => {
      await runtime?.close();
      await rm(scratch, { recursive: true, force: true });
    });

    it('loads a model and tells its name, version, SHA-256 and input width', () => {
      expect({ name: logreg.name, version: logreg.version, sha256: logreg.sha256, inputWidth: logreg.inputWidth }).toEqual({
        name: 'fraud-logreg',
        version: '3',
        sha256: manifest.models['fraud-logreg']!.sha256,
        inputWidth: 10,
      });
      expect(mlp.inputWidth).toBe(10);
    });

    it('answers the known probability of fraud for known rows', async () => {
      // given: rows whose logits are -1.5 (all zeros), -1 and +1
      const rows = new Float32Array(30);
      rows[10 + 7] = 0.5; // weight 1 → logit -1
      rows[20 + 7] = 2.5; // → logit +1
      // when
      const probabilities = await logreg.predict(rows, 3);
      // then
      expect(probabilities).toBeInstanceOf(Float32Array);
      expect([...probabilities].map((p) => Number(p.toFixed(6)))).toEqual([0.182426, 0.268941, 0.731059]);
    });

    it.each([1, 7, 64, 1000])('scores a batch of %i rows, one probability per row, in order', async (count) => {
      const rows = sampleRows(count, count);
      const expected = Array.from({ length: count }, (_, i) => logregProbability(row(rows, i)));
      const probabilities = await logreg.predict(rows, count);
      expect(probabilities.length).toBe(count);
      for (let i = 0; i < count; i++) expect(probabilities[i]).toBeCloseTo(expected[i]!, 6);
    });

    it('reads only the first rowCount rows of a longer array, and answers nothing for none', async () => {
      const rows = sampleRows(10, 5);
      const expected = [0, 1, 2].map((i) => logregProbability(row(rows, i)));
      const probabilities = await logreg.predict(rows, 3);
      expect([...probabilities].map((p, i) => Math.abs(p - expected[i]!) < 1e-6)).toEqual([true, true, true]);
      expect((await logreg.predict(new Float32Array(0), 0)).length).toBe(0);
    });

    it('throws a RangeError (a programmer bug) for rows shorter than rowCount × inputWidth', () => {
      expect(() => logreg.predict(new Float32Array(15), 2)).toThrow(RangeError);
      expect(() => logreg.predict(new Float32Array(10), -1)).toThrow(RangeError);
    });

    it('answers concurrent calls of different models and sizes each with their own rows', async () => {
      const calls = Array.from({ length: 40 }, (_, i) => ({ count: 1 + ((i * 37) % 90), seed: 100 + i, model: i % 3 === 0 ? mlp : logreg }));
      const inputs = calls.map((c) => sampleRows(c.count, c.seed));
      const expected = await Promise.all(
        calls.map(async (c, i) => (c.model === logreg ? Array.from({ length: c.count }, (_, r) => logregProbability(row(inputs[i]!, r))) : undefined)),
      );
      const answers = await Promise.all(calls.map((c, i) => c.model.predict(sampleRows(c.count, c.seed), c.count).then((p) => [i, p] as const)));
      for (const [i, probabilities] of answers) {
        expect(probabilities.length).toBe(calls[i]!.count);
        const want = expected[i];
        if (want !== undefined) for (let r = 0; r < want.length; r++) expect(probabilities[r]).toBeCloseTo(want[r]!, 6);
      }
    });

    it('finds the [rows, 2] float output by itself, and scores a batch as it scores each row alone', async () => {
      const rows = sampleRows(64, 9);
      const batch = await mlp.predict(rows.slice(), 64);
      const alone = await Promise.all(Array.from({ length: 64 }, (_, i) => mlp.predict(row(rows, i).slice(), 1)));
      for (let i = 0; i < 64; i++) {
        expect(batch[i]).toBeGreaterThanOrEqual(0);
        expect(batch[i]).toBeLessThanOrEqual(1);
        expect(batch[i]).toBeCloseTo(alone[i]![0]!, 5);
      }
      expect(new Set(batch).size).toBeGreaterThan(32);
    });

    it('loads the output it is told to, and refuses a name the model does not have', async () => {
      const named = await runtime.load(fixtureSpec('fraud-logreg', { outputName: 'probabilities', inputName: 'features', inputWidth: 10 }));
      expect((await named.predict(new Float32Array(10), 1))[0]).toBeCloseTo(logregProbability(new Float32Array(10)), 6);
      await named.close();
      const details = await expectModelError(runtime.load(fixtureSpec('fraud-logreg', { outputName: 'label' })), 'invalid');
      expect(details).toMatchObject({ reason: 'model-invalid' });
      await expectModelError(runtime.load(fixtureSpec('fraud-logreg', { outputName: 'scores' })), 'invalid');
      await expectModelError(runtime.load(fixtureSpec('fraud-logreg', { inputWidth: 12 })), 'invalid');
    });

    it('refuses a tampered file with an integrity error naming both hashes, and loads nothing', async () => {
      // given: the regression with one weight byte changed
      const bytes = await readFile(fixtureSpec('fraud-logreg').path);
      const tampered = Buffer.from(bytes);
      tampered[tampered.length - 40] = tampered[tampered.length - 40]! ^ 0x01;
      const path = join(scratch, 'tampered.onnx');
      await writeFile(path, tampered);
      // when / then
      const details = await expectModelError(runtime.load(fixtureSpec('fraud-logreg', { path })), 'integrity');
      expect(details).toMatchObject({ reason: 'sha256-mismatch', expectedSha256: manifest.models['fraud-logreg']!.sha256 });
      expect(details['actualSha256']).toMatch(/^[0-9a-f]{64}$/);
      expect(details['actualSha256']).not.toBe(details['expectedSha256']);
    });

    it('refuses a file that is not the registered model (another model, or another expected hash)', async () => {
      const path = join(scratch, 'swapped.onnx');
      await copyFile(fixtureSpec('fraud-mlp').path, path);
      await expectModelError(runtime.load(fixtureSpec('fraud-logreg', { path })), 'integrity');
      await expectModelError(runtime.load(fixtureSpec('fraud-logreg', { sha256: 'not-a-hash' })), 'integrity');
      const upper = await runtime.load(fixtureSpec('fraud-logreg', { sha256: manifest.models['fraud-logreg']!.sha256.toUpperCase() }));
      expect(upper.sha256).toBe(manifest.models['fraud-logreg']!.sha256);
      await upper.close();
    });

    it('refuses a missing file as unavailable, and bytes that are no model as invalid', async () => {
      await expectModelError(runtime.load(fixtureSpec('fraud-logreg', { path: join(scratch, 'nowhere.onnx') })), 'unavailable');
      const garbage = Buffer.from('this is not an ONNX model');
      const path = join(scratch, 'garbage.onnx');
      await writeFile(path, garbage);
      const { createHash } = await import('node:crypto');
      await expectModelError(runtime.load({ name: 'garbage', version: '1', path, sha256: createHash('sha256').update(garbage).digest('hex') }), 'invalid');
    });

    it('still serves after refusals', async () => {
      const rows = sampleRows(3, 77);
      const expected = [0, 1, 2].map((i) => logregProbability(row(rows, i)));
      const probabilities = await logreg.predict(rows, 3);
      for (let i = 0; i < 3; i++) expect(probabilities[i]).toBeCloseTo(expected[i]!, 6);
    });

    it('refuses calls to a closed model, and keeps serving the others', async () => {
      const extra = await runtime.load(fixtureSpec('fraud-logreg', { version: 'extra' }));
      const before = extra.predict(sampleRows(5, 3), 5);
      await extra.close();
      expect((await before).length).toBe(5);
      await expectModelError(extra.predict(sampleRows(5, 3), 5), 'unavailable');
      expect((await logreg.predict(sampleRows(5, 3), 5)).length).toBe(5);
    });

    it('refuses loads and calls once the runtime is closed', async () => {
      const own = await factory();
      const model = await own.load(fixtureSpec('fraud-logreg'));
      expect((await model.predict(sampleRows(2), 2)).length).toBe(2);
      await own.close();
      await expectModelError(model.predict(sampleRows(2), 2), 'unavailable');
      await expectModelError(own.load(fixtureSpec('fraud-logreg')), 'unavailable');
      await own.close();
    });
  });
}
