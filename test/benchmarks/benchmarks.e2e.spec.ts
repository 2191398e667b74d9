/**
 * The benchmark suite still runs: `npm run bench -- --smoke` (one round of a few thousand events) must print one
 * well-formed `BENCH` line per scenario. Sizes this small measure nothing worth reading, so no figure is compared
 * with anything: what breaks here is a scenario that throws, hangs, loses records or stops reporting.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, requireBuild } from '../support/engine-process.js';
import { describeWithKafka } from '../support/kafka.js';

const run = promisify(execFile);

interface BenchLine {
  readonly name: string;
  readonly fields: Record<string, string>;
}

async function bench(args: string[], env: Record<string, string> = {}): Promise<BenchLine[]> {
  requireBuild();
  const { stdout } = await run(process.execPath, [join(REPO_ROOT, 'dist', 'benchmarks', 'run.js'), '--smoke', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    maxBuffer: 16 * 1024 * 1024,
    timeout: 240_000,
  });
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('BENCH '))
    .map((line) => {
      const fields = Object.fromEntries(line.slice('BENCH '.length).split(' ').map((pair) => pair.split('=') as [string, string]));
      return { name: fields['name']!, fields };
    });
}

function expectWellFormed(lines: readonly BenchLine[], names: readonly string[]): void {
  expect(lines.map((l) => l.name)).toEqual(names);
  for (const { name, fields } of lines) {
    for (const field of ['value', 'baseline', 'ratio']) {
      const n = Number(fields[field]);
      expect(Number.isFinite(n) && n > 0, `${name}: ${field}=${fields[field]}`).toBe(true);
    }
    // The streaming scenarios also report CPU per event, and latency where the input flows while they run.
    for (const field of ['cpuUsPerEvent', 'p50Ms', 'p99Ms']) {
      if (fields[field] !== undefined) expect(Number(fields[field]), `${name}: ${field}`).toBeGreaterThan(0);
    }
  }
}

describe('benchmarks', () => {
  it('prints every embedded, projection, inference and pipeline scenario', { timeout: 300_000 }, async () => {
    const lines = await bench(['--no-kafka']);
    expectWellFormed(lines, [
      'embedded.stateless',
      'embedded.keyed-count-10k',
      'embedded.keyed-count-1m',
      'projection.query-while-ingesting',
      'inference-microbatch',
      'inference-event-loop-p99',
      'pipeline.drift-on-vs-off',
    ]);
    expect(lines.find((l) => l.name === 'embedded.stateless')!.fields['p99Ms']).toBeDefined();
  });
});

describeWithKafka('benchmarks on Kafka', (brokers) => {
  it('prints every Kafka scenario, both clients and the pipeline on two workers included', { timeout: 300_000 }, async () => {
    // The test broker is scratch: the pipeline scenario may delete its topics and groups.
    const lines = await bench(['--only=kafka', '--scratch-broker'], { MILLRACE_KAFKA_BROKERS: brokers.join(',') });
    expectWellFormed(lines, ['kafka.stateless', 'kafka.keyed-count', 'kafka.client-platformatic', 'pipeline.workers-2-vs-1']);
  });
});
