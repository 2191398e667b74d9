import { createServer } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../engine/cli/commands.js';
import { main } from '../../engine/cli/main.js';
import { buildHttpServer } from '../../engine/http/server.js';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { offset } from '../../engine/log/log.js';
import { Metrics } from '../../engine/metrics/metrics.js';
import type { EngineStatus } from '../../engine/runtime/status.js';
import { EmbeddedSchemaRegistry } from '../../engine/serde/embedded-registry.js';

const SCHEMAS_DIR = fileURLToPath(new URL('../../schemas', import.meta.url));

const STATUS: EngineStatus = {
  state: 'running',
  startedAt: '2026-01-01T00:00:00.000Z',
  version: '0.0.0-test',
  log: { kind: 'embedded', location: '/data/log' },
  applications: [
    {
      applicationId: 'fraud-ingest',
      state: 'running',
      error: null,
      tasks: [
        {
          taskId: '0_0',
          subtopology: 0,
          partition: 0,
          state: 'running',
          inputs: [{ topic: 'payments', partition: 0, position: 5, committed: 5, highWatermark: 8, lag: 3, lagSeconds: 1.5, stalledForMs: 0, stalled: false }],
          processed: 5,
          deadLettered: 0,
          commits: 2,
          restoredRecords: 0,
          lastCommitAt: '2026-01-01T00:00:01.000Z',
          streamTime: null,
          watermark: null,
          error: null,
          recordsPerSecond: 2.5,
          latencyMs: { p50: 4, p95: 9, p99: 12, samples: 2 },
          nodes: [{ node: 'payments', records: 5 }],
        },
      ],
    },
  ],
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return { stream, text: () => chunks.join('') };
}

async function run(argv: string[], options: { stdin?: string; signal?: AbortSignal; env?: Record<string, string> } = {}): Promise<Run> {
  const stdout = sink();
  const stderr = sink();
  const io: CliIo = {
    stdin: Readable.from(options.stdin === undefined ? [] : [options.stdin]),
    stdout: stdout.stream,
    stderr: stderr.stream,
    env: options.env ?? {},
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
  const code = await main(argv, io);
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');

describe('CLI data commands', () => {
  let dir: string;
  let log: EmbeddedLog;
  let app: FastifyInstance;
  let url: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'millrace-cli-'));
    log = new EmbeddedLog({ path: join(dir, 'log') });
    await log.open();
    const registry = new EmbeddedSchemaRegistry(log);
    await registry.open();
    app = await buildHttpServer(
      {
        log,
        registry,
        metrics: new Metrics({ defaultMetrics: false }),
        schemasDir: SCHEMAS_DIR,
        topologies: () => [],
        status: async () => STATUS,
      },
      {},
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    url = `http://127.0.0.1:${address.port}`;
  });

  afterAll(async () => {
    await app?.close();
    await log?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const cli = (argv: string[], options: Parameters<typeof run>[1] = {}) => run([...argv, '--url', url], options);

  it('prints usage, and refuses an unknown command with exit code 2', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    for (const command of ['up', 'topics', 'topics create', 'produce', 'tail', 'status']) expect(help.stdout).toContain(`  ${command}`);
    const unknown = await run(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('error: unknown command "frobnicate"');
    const badOption = await run(['tail', 'x', '--nope']);
    expect(badOption.code).toBe(2);
    expect(badOption.stderr).toMatch(/^error: .*--nope/);
    const tailHelp = await run(['tail', '--help']);
    expect(tailHelp.code).toBe(0);
    expect(tailHelp.stdout).toContain('Usage: millrace tail <topic>');
  });

  it('creates and lists topics', async () => {
    const created = await cli(['topics', 'create', 'events', '--partitions', '3']);
    expect(created).toEqual({ code: 0, stdout: 'created topic events (3 partitions, delete, no schema)\n', stderr: '' });
    const withSchema = await cli(['topics', 'create', 'payments', '--schema', 'example-event']);
    expect(withSchema.stdout).toMatch(/^created topic payments \(1 partition, delete, schema payments-value v2 id \d+\)\n$/);
    const file = join(dir, 'reading.avsc');
    await writeFile(file, JSON.stringify({ type: 'record', name: 'Reading', fields: [{ name: 'celsius', type: 'double' }] }));
    const inline = await cli(['topics', 'create', 'readings', '--schema', file, '--compacted', '--json']);
    expect(JSON.parse(inline.stdout)).toMatchObject({ name: 'readings', cleanupPolicy: 'compact', schema: { subject: 'readings-value', version: 1 } });

    const again = await cli(['topics', 'create', 'events']);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('error: topic events already exists\n');

    const json = await cli(['topics', '--json']);
    expect(lines(json.stdout).map((l) => JSON.parse(l).name)).toEqual(['events', 'payments', 'readings']);
    const all = await cli(['topics', '--json', '--all']);
    expect(lines(all.stdout).map((l) => JSON.parse(l).name)).toContain('_schemas');
    const tableOut = await cli(['topics']);
    expect(lines(tableOut.stdout)[0]).toMatch(/^NAME\s+PARTITIONS\s+POLICY\s+SCHEMA\s+RECORDS$/);
    expect(tableOut.stdout).toMatch(/payments\s+1\s+delete\s+payments-value v2\s+0/);
  });

  it('produces JSON lines from a file, keyed by a field, in batches', async () => {
    const file = join(dir, 'events.jsonl');
    const events = Array.from({ length: 25 }, (_, i) => ({ user: `user-${i % 4}`, n: i }));
    await writeFile(file, events.map((e, i) => (i === 3 ? `\n${JSON.stringify(e)}\r` : JSON.stringify(e))).join('\n') + '\n\n');
    const res = await cli(['produce', 'events', '--file', file, '--key-field', 'user', '--batch-size', '10']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const counts = new Map<number, number>();
    for (const p of await log.partitionOffsets('events')) counts.set(p.partition, p.end);
    const expected = [...counts].filter(([, n]) => n > 0).map(([p, n]) => `partition ${p}: ${n}`).join(', ');
    expect(res.stdout).toBe(`produced 25 records to events (${expected})\n`);
    expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(25);
    // Records of one key share a partition.
    const batch = await log.read('events', 0, offset(0), { maxRecords: 100 });
    for (const record of batch.records) {
      const value = JSON.parse(record.value!.toString()) as { user: string };
      expect(record.key!.toString()).toBe(value.user);
    }
  });

  it('tails from the beginning, in offset order per partition, and stops at the end', async () => {
    const res = await cli(['tail', 'events', '--from-beginning']);
    expect(res.code).toBe(0);
    const records = lines(res.stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records).toHaveLength(25);
    expect(Object.keys(records[0]!)).toEqual(['topic', 'partition', 'offset', 'timestamp', 'key', 'value']);
    expect(records.map((r) => (r['value'] as { n: number }).n).sort((a, b) => a - b)).toEqual([...Array(25).keys()]);
    for (const p of [0, 1, 2]) {
      const offsets = records.filter((r) => r['partition'] === p).map((r) => r['offset'] as number);
      expect(offsets).toEqual([...Array(offsets.length).keys()]);
    }
    const first = records[0]!;
    expect(first['topic']).toBe('events');
    expect(first['timestamp']).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(first['key']).toBe((first['value'] as { user: string }).user);

    const limited = await cli(['tail', 'events', '--from-beginning', '--limit', '4']);
    expect(lines(limited.stdout)).toHaveLength(4);
    const one = await cli(['tail', 'events', '--partition', '1', '--offset', '1']);
    const ones = lines(one.stdout).map((l) => JSON.parse(l) as { partition: number; offset: number });
    const end = (await log.partitionOffsets('events'))[1]!.end;
    expect(ones.map((r) => r.offset)).toEqual(Array.from({ length: end - 1 }, (_, i) => i + 1));
    expect(ones.every((r) => r.partition === 1)).toBe(true);
  });

  it('tails from a time', async () => {
    await cli(['topics', 'create', 'timed', '--partitions', '2']);
    const records = [1000, 2000, 3000, 4000].map((t, i) => ({ key: `k${i}`, value: { t }, timestamp: t }));
    const produced = await fetch(`${url}/topics/timed/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records }),
    });
    expect(produced.status).toBe(200);
    const res = await cli(['tail', 'timed', '--from', '1970-01-01T00:00:02.500Z']);
    expect(res.code).toBe(0);
    expect(lines(res.stdout).map((l) => JSON.parse(l).value.t).sort()).toEqual([3000, 4000]);
    const onePartition = await cli(['tail', 'timed', '--from', '1970-01-01T00:00:00Z', '--partition', '0']);
    const expected = (await log.read('timed', 0, offset(0))).records.length;
    expect(lines(onePartition.stdout)).toHaveLength(expected);
    const none = await cli(['tail', 'timed', '--from', '2999-01-01T00:00:00Z']);
    expect(none).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('prints nothing and exits at once by default, and follows new records with --follow', async () => {
    const started = Date.now();
    const quiet = await cli(['tail', 'events']);
    expect(quiet).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(Date.now() - started).toBeLessThan(2000);

    const controller = new AbortController();
    const following = cli(['tail', 'events', '--follow'], { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await cli(['produce', 'events'], { stdin: '{"late": true}\n' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    controller.abort();
    const res = await following;
    expect(res.code).toBe(0);
    expect(lines(res.stdout).map((l) => JSON.parse(l).value)).toEqual([{ late: true }]);
  });

  it('stops at a malformed line before sending its batch', async () => {
    await cli(['topics', 'create', 'broken']);
    const input = ['{"a": 1}', '{"a": 2}', '', '{"a": 3}', '{"a": ', '{"a": 5}'].join('\n');
    const res = await cli(['produce', 'broken', '--batch-size', '2'], { stdin: input });
    expect(res.code).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr).toMatch(/^error: line 5 is not valid JSON \(.+\)\n2 records had been sent before; nothing from line 4 on was sent\n$/);
    expect((await log.partitionOffsets('broken'))[0]!.end).toBe(2);
  });

  it('reports a refused batch with the line numbers of its invalid records', async () => {
    const valid = { id: 'e', user: 'ada', amount: 1, at: '2026-01-02T03:04:05Z', ip: '203.0.113.7' };
    const input = [valid, valid, { ...valid, amount: -5 }, valid, { ...valid, ip: 'nowhere' }].map((v) => JSON.stringify(v)).join('\n');
    const res = await cli(['produce', 'payments', '--batch-size', '2'], { stdin: input });
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      'error: payments refused the batch of lines 3-4: Event does not match the topic schema; nothing of it was appended\n' +
        '  line 3: /value/amount: -5 is below the minimum 0\n' +
        '2 records had been sent before\n',
    );
    expect((await log.partitionOffsets('payments'))[0]!.end).toBe(2);
    const unknown = await cli(['produce', 'nope'], { stdin: '{}' });
    expect(unknown).toMatchObject({ code: 1, stderr: 'error: topic nope does not exist\n' });
  });

  it('sends a batch too large for the engine in halves', async () => {
    const small = await buildHttpServer(
      {
        log,
        registry: new EmbeddedSchemaRegistry(log),
        metrics: new Metrics({ defaultMetrics: false }),
        schemasDir: SCHEMAS_DIR,
        topologies: () => [],
        status: async () => STATUS,
      },
      { bodyLimitBytes: 2048 },
    );
    try {
      await small.listen({ port: 0, host: '127.0.0.1' });
      const address = small.server.address();
      const smallUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
      await cli(['topics', 'create', 'halves']);
      const input = Array.from({ length: 60 }, (_, i) => JSON.stringify({ i, pad: 'x'.repeat(60) })).join('\n');
      const res = await run(['produce', 'halves', '--url', smallUrl], { stdin: input });
      expect(res).toEqual({ code: 0, stdout: 'produced 60 records to halves (partition 0: 60)\n', stderr: '' });
      const stored = await log.read('halves', 0, offset(0), { maxRecords: 100 });
      expect(stored.records.map((r) => (JSON.parse(r.value!.toString()) as { i: number }).i)).toEqual([...Array(60).keys()]);
    } finally {
      await small.close();
    }
  });

  it('shows the engine status', async () => {
    const res = await cli(['status']);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('engine running since 2026-01-01T00:00:00.000Z (version 0.0.0-test, embedded log at /data/log)');
    expect(res.stdout).toContain('application fraud-ingest: running, 1 task, lag 3');
    expect(res.stdout).toMatch(/ {2}0_0\s+running\s+0\s+5\s+0\s+3/);
    const json = await cli(['status', '--json']);
    expect(JSON.parse(json.stdout)).toEqual(STATUS);
  });

  it('says how to start an engine when none answers', async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
      });
    });
    const res = await run(['topics', '--url', `http://127.0.0.1:${port}`]);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      `error: No Millrace engine answers at http://127.0.0.1:${port} (connection refused). Start one with \`millrace up\`, or pass --url.\n`,
    );
    const fromEnv = await run(['status'], { env: { MILLRACE_URL: `http://127.0.0.1:${port}/` } });
    expect(fromEnv.stderr).toContain(`No Millrace engine answers at http://127.0.0.1:${port} (connection refused)`);
  });
});
