// Loads the fixture regression with the built OnnxModelRuntime (dist/), scores three known rows, and prints one JSON
// line: which worker script ran and the probabilities. Run by onnx-runtime.unit.spec.ts after `npm run build`.
//
//   node test/ml/inference/dist-runtime.mjs test/fixtures/models/

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const { OnnxModelRuntime } = await import(new URL('../../../dist/engine/ml/onnx-runtime.js', import.meta.url).href);
const dir = process.argv[2];
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
const runtime = new OnnxModelRuntime();
try {
  const entry = manifest.models['fraud-logreg'];
  const model = await runtime.load({ name: 'fraud', version: '1', path: join(dir, entry.file), sha256: entry.sha256 });
  const rows = new Float32Array(30);
  rows[17] = 0.5;
  rows[27] = 2.5;
  const probabilities = await model.predict(rows, 3);
  console.log(JSON.stringify({ worker: OnnxModelRuntime.workerScript(), probabilities: [...probabilities] }));
} finally {
  await runtime.close();
}
