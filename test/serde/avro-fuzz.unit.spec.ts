import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const script = fileURLToPath(new URL('./fuzz-avro-decoder.mjs', import.meta.url));
const BUILT = ['avro-guard', 'avro-serde', 'logical-types'];
const MAX_RSS_BYTES = 300 * 1024 * 1024;

/** The fuzzer runs the build in dist/; refuse to fuzz a missing or older build. */
function checkBuild(): void {
  for (const name of BUILT) {
    const built = `${root}dist/engine/serde/${name}.js`;
    const source = `${root}engine/serde/${name}.ts`;
    if (!existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\` first (\`npm test\` builds in pretest)`);
    if (statSync(built).mtimeMs < statSync(source).mtimeMs) {
      throw new Error(`${built} is older than ${source}: run \`npm run build\` first`);
    }
  }
}

function run(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // A small heap: were the bounds check to let a poison record through, the child aborts quickly.
    const child = spawn(process.execPath, ['--max-old-space-size=256', script, ...args], { cwd: root });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk.slice(0, 20_000)));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

describe('Avro decoder fuzzing (child process)', () => {
  it('returns or throws MILLRACE_DESERIALIZATION on every hostile input, within bounded memory', async () => {
    checkBuild();
    const result = await run([]);
    expect({ code: result.code, signal: result.signal }, result.stderr).toEqual({ code: 0, signal: null });
    const summary = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as {
      calls: number;
      decoded: number;
      refused: number;
      failures: number;
      maxRssBytes: number;
      byKind: Record<string, { calls: number; decoded: number }>;
    };
    expect(summary.failures).toBe(0);
    expect(summary.calls).toBeGreaterThan(50_000);
    expect(summary.decoded + summary.refused).toBe(summary.calls);
    // Valid encodings all decode; crafted poison never does.
    expect(summary.byKind['valid']!.decoded).toBe(summary.byKind['valid']!.calls);
    expect(summary.byKind['crafted']!.decoded).toBe(0);
    expect(summary.maxRssBytes).toBeLessThan(MAX_RSS_BYTES);
  }, 180_000);
});
