/**
 * Scoring on a real runtime: the ONNX models of test/fixtures/models in worker threads, a TopologyRunner on an
 * EmbeddedLog. Predictions carry model, version, hash, route and lineage; a canary takes its share of users; a
 * tampered model file is refused, reported to the registry, and the previous version keeps serving.
 */
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { OnnxModelRuntime } from '../../engine/ml/onnx-runtime.js';
import { Topics, type FeatureVector, type ModelRegistryEvent, type ModelRouting, type Prediction } from '../../topologies/pipeline/contract.js';
import { scoringTopology } from '../../topologies/pipeline/scoring.js';
import { caughtUp, readTopic, startRunner, tempDir } from '../support/runtime.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/models/', import.meta.url));
const manifest = JSON.parse(await readFile(join(FIXTURES, 'manifest.json'), 'utf8')) as {
  models: Record<string, { file: string; sha256: string; logisticRegression?: { weights: number[]; bias: number } }>;
};
const logreg = manifest.models['fraud-logreg']!;
const mlp = manifest.models['fraud-mlp']!;

function vector(i: number): FeatureVector {
  const f = (k: number) => ((i * 7 + k * 13) % 17) / 10;
  return {
    transaction_id: `tx-${i}`,
    user: `user-${i % 40}`,
    at: new Date(Date.UTC(2026, 0, 1) + i * 1_000).toISOString(),
    feature_version: 'features-v1',
    features: {
      amount: f(0), count_10m: f(1), sum_1h: f(2), mean_1h: f(3), sum_24h: f(4),
      mean_24h: f(5), seconds_since_last: f(6), distinct_countries_24h: f(7), amount_to_mean_24h: f(8), prev_amount: f(9),
    },
    source: { topic: Topics.transactions, partition: i % 2, offset: i },
  };
}

function expectedProbability(v: FeatureVector): number {
  const { weights, bias } = logreg.logisticRegression!;
  const x = Object.values(v.features);
  const z = x.reduce((sum, xi, k) => sum + xi * weights[k]!, bias);
  return 1 / (1 + Math.exp(-z));
}

describe('scoring', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let log: EmbeddedLog;
  let runtime: OnnxModelRuntime;
  beforeEach(async () => {
    dir = await tempDir('millrace-scoring-');
    log = new EmbeddedLog({ path: join(dir.path, 'log') });
    await log.open();
    for (const name of [Topics.features, Topics.predictions]) await log.createTopic({ name, partitions: 2 });
    await log.createTopic({ name: Topics.modelRouting, partitions: 1, cleanupPolicy: 'compact' });
    await log.createTopic({ name: Topics.modelRegistry, partitions: 1 });
    runtime = new OnnxModelRuntime({ workers: 1 });
  });
  afterEach(async () => {
    await runtime.close();
    await log.close();
    await dir.remove();
  });

  const ref = (version: string, file: string, sha256: string) => ({ version, artifact_uri: file, sha256, reference_uri: `${file}.reference.json` });
  const route = (routing: ModelRouting) => log.append([{ topic: Topics.modelRouting, key: Buffer.from('fraud'), value: Buffer.from(JSON.stringify(routing)) }]);
  const features = (from: number, to: number) =>
    log.append(Array.from({ length: to - from }, (_, k) => {
      const v = vector(from + k);
      return { topic: Topics.features, key: Buffer.from(v.user), value: Buffer.from(JSON.stringify(v)), timestamp: Date.parse(v.at) };
    }));
  const predictions = async () => (await readTopic(log, Topics.predictions)).map((r) => JSON.parse(r.value!.toString()) as Prediction);

  it('scores every vector with the stable model, in micro-batches, with lineage', async () => {
    await route({ model: 'fraud', stable: ref('v1', join(FIXTURES, logreg.file), logreg.sha256), canary: null });
    await features(0, 300);
    const runner = startRunner(log, scoringTopology({ runtime, maxBatch: 32 }));
    await runner.start();
    await caughtUp(runner);
    await runner.stop();
    const out = await predictions();
    expect(out).toHaveLength(300);
    for (const p of out) {
      const i = Number(p.transaction_id.slice(3));
      expect(p).toMatchObject({ model: 'fraud', version: 'v1', model_sha256: logreg.sha256, route: 'stable', user: `user-${i % 40}` });
      expect(p.probability).toBeCloseTo(expectedProbability(vector(i)), 5);
      expect(p.class).toBe(p.probability >= 0.5 ? 1 : 0);
      expect(p.lineage.transaction).toEqual({ topic: Topics.transactions, partition: i % 2, offset: i });
      expect(p.lineage.features.topic).toBe(Topics.features);
    }
    // The lineage points at the very feature vector that was scored.
    const features_ = await readTopic(log, Topics.features);
    for (const p of out.slice(0, 20)) {
      const source = features_.find((r) => r.partition === p.lineage.features.partition && r.offset === p.lineage.features.offset)!;
      expect((JSON.parse(source.value!.toString()) as FeatureVector).transaction_id).toBe(p.transaction_id);
    }
  });

  it('sends a canary its share of users, always the same users', async () => {
    await route({
      model: 'fraud',
      stable: ref('v1', join(FIXTURES, logreg.file), logreg.sha256),
      canary: { ...ref('v2', join(FIXTURES, mlp.file), mlp.sha256), percent: 25 },
    });
    // Let both models load before traffic: the first batch would otherwise go to stable while the canary loads.
    const warm = startRunner(log, scoringTopology({ runtime }));
    await warm.start();
    await features(0, 10);
    await caughtUp(warm);
    await new Promise((resolve) => setTimeout(resolve, 500));
    await features(10, 1_010);
    await caughtUp(warm);
    await warm.stop();
    const out = (await predictions()).filter((p) => Number(p.transaction_id.slice(3)) >= 10);
    const canaryUsers = new Set(out.filter((p) => p.route === 'canary').map((p) => p.user));
    const stableUsers = new Set(out.filter((p) => p.route === 'stable').map((p) => p.user));
    expect([...canaryUsers].filter((u) => stableUsers.has(u))).toEqual([]);
    expect(out.filter((p) => p.route === 'canary').every((p) => p.version === 'v2' && p.model_sha256 === mlp.sha256)).toBe(true);
    const share = out.filter((p) => p.route === 'canary').length / out.length;
    expect(share).toBeGreaterThan(0.1);
    expect(share).toBeLessThan(0.45);
  });

  it('refuses a tampered model file, reports it, and keeps serving the previous version', async () => {
    const good = join(dir.path, 'v1.onnx');
    const tampered = join(dir.path, 'v2.onnx');
    await copyFile(join(FIXTURES, logreg.file), good);
    // v2 is registered with the hash of the genuine file, but what lies on disk has one byte changed.
    const bytes = await readFile(join(FIXTURES, mlp.file));
    bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0xff;
    await writeFile(tampered, bytes);
    await route({ model: 'fraud', stable: ref('v1', good, logreg.sha256), canary: null });
    const runner = startRunner(log, scoringTopology({ runtime }));
    await runner.start();
    await features(0, 50);
    await caughtUp(runner);
    // v2 is promoted: the routing table now names it as the stable version.
    await route({ model: 'fraud', stable: ref('v2', tampered, mlp.sha256), canary: null });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await features(50, 250);
    await caughtUp(runner);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await features(250, 300);
    await caughtUp(runner);
    await runner.stop();
    const out = await predictions();
    expect(out).toHaveLength(300);
    expect(new Set(out.map((p) => p.version))).toEqual(new Set(['v1']));
    const refusals = (await readTopic(log, Topics.modelRegistry)).map((r) => JSON.parse(r.value!.toString()) as ModelRegistryEvent);
    expect(refusals.length).toBeGreaterThanOrEqual(1);
    expect(refusals.every((e) => e.type === 'ModelRefused' && e.version === 'v2')).toBe(true);
    expect((refusals[0] as { reason: string }).reason).toMatch(/sha-?256|SHA-256|hash/i);
  });
});
