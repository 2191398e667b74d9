/**
 * The CLI against a real `millrace up`: create a topic with a schema, produce 1,000 JSON lines, read them all back
 * with `tail --from-beginning` in per-partition order; a schema-violating event is refused with a 422 problem and
 * nothing is appended.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, REPO_ROOT, freePort, startEngine, type EngineProcess } from '../support/engine-process.js';
import { describeWithKafka } from '../support/kafka.js';
import { registrySkipReason, registryUrl } from '../support/registry.js';
import { tempDir } from '../support/runtime.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function millrace(args: string[], url: string, stdin?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, '--url', url], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

async function endOffsets(url: string, topic: string): Promise<number[]> {
  const body = (await (await fetch(`${url}/topics/${topic}`)).json()) as { offsets: Array<{ end: number }> };
  return body.offsets.map((o) => o.end);
}

const event = (i: number) => ({
  id: `e${i}`,
  user: `user-${i % 37}`,
  amount: (i % 500) / 4,
  at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
  ip: i % 2 === 0 ? `10.0.${i % 256}.${(i * 7) % 256}` : `2001:db8::${(i % 65535).toString(16)}`,
  country: i % 3 === 0 ? null : 'NL',
});

/** The same round trip on the embedded log and on Kafka (`--brokers`): the CLI does not change. */
function roundTrip(brokers: string | undefined, schemaRegistry?: string): void {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let engine: EngineProcess;
  // A broker is shared by many tests: a topic of its own.
  const topic = brokers === undefined ? 'purchases' : `purchases-${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    dir = await tempDir('millrace-cli-');
    engine = await startEngine({
      dataDir: dir.path,
      port: await freePort(),
      ...(brokers === undefined ? {} : { brokers }),
      ...(schemaRegistry === undefined ? {} : { schemaRegistry }),
    });
  });

  afterAll(async () => {
    if (engine !== undefined) expect(await engine.kill('SIGTERM')).toBe(0);
    await dir?.remove();
  });

  it('says clearly when no engine is running', async () => {
    const run = await millrace(['topics'], `http://127.0.0.1:${await freePort()}`);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/No Millrace engine answers at http:\/\/127\.0\.0\.1:\d+/);
  });

  it('creates a topic with a schema, produces 1,000 lines and tails them all back in per-partition order', async () => {
    const created = await millrace(['topics', 'create', topic, '--partitions', '4', '--schema', 'example-event'], engine.url);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(new RegExp(`created topic ${topic} \\(4 partitions`));

    const events = Array.from({ length: 1_000 }, (_, i) => event(i));
    const produced = await millrace(['produce', topic, '--key-field', 'user'], engine.url, events.map((e) => JSON.stringify(e)).join('\n') + '\n');
    expect(produced.code, produced.stderr).toBe(0);
    expect(produced.stdout).toMatch(new RegExp(`produced 1000 records to ${topic}`));

    const tailed = await millrace(['tail', topic, '--from-beginning'], engine.url);
    expect(tailed.code, tailed.stderr).toBe(0);
    const lines = tailed.stdout.trim().split('\n').map((l) => JSON.parse(l) as { partition: number; offset: number; key: string; value: ReturnType<typeof event>; timestamp: string });
    expect(lines).toHaveLength(1_000);
    // Per partition: offsets 0, 1, 2, … and the events in the order they were produced.
    const byPartition = new Map<number, typeof lines>();
    for (const line of lines) byPartition.set(line.partition, [...(byPartition.get(line.partition) ?? []), line]); // 1,000 lines: copying is fine
    expect(byPartition.size).toBeGreaterThan(1);
    for (const records of byPartition.values()) {
      expect(records.map((r) => r.offset)).toEqual(records.map((_, i) => i));
      const ids = records.map((r) => Number(r.value.id.slice(1)));
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
    }
    // Every event came back whole, decoded from Avro, keyed by its user.
    const byId = new Map(lines.map((l) => [l.value.id, l]));
    for (const e of events) {
      const line = byId.get(e.id)!;
      expect(line.value).toEqual(e);
      expect(line.key).toBe(e.user);
    }
    // A user's events all went to one partition (the key decides).
    const partitionOf = new Map<string, number>();
    for (const line of lines) {
      expect(partitionOf.get(line.key) ?? line.partition).toBe(line.partition);
      partitionOf.set(line.key, line.partition);
    }
  });

  it('refuses a schema-violating event with a 422 problem and appends nothing', async () => {
    const before = await endOffsets(engine.url, topic);
    const bad = { ...event(5_000), amount: -3, at: 'yesterday', ip: '999.1.1.1' };
    const response = await fetch(`${engine.url}/topics/${topic}/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records: [{ key: 'user-1', value: event(5_001) }, { key: 'user-2', value: bad }] }),
    });
    expect(response.status).toBe(422);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = (await response.json()) as { status: number; code: string; title: string; errors: Array<{ index: number; path: string }> };
    expect(problem.status).toBe(422);
    expect(problem.code).toBe('MILLRACE_SCHEMA_VIOLATION');
    expect(problem.errors.map((e) => [e.index, e.path]).sort()).toEqual([
      [1, '/value/amount'],
      [1, '/value/at'],
      [1, '/value/ip'],
    ]);
    expect(await endOffsets(engine.url, topic)).toEqual(before);

    // The CLI reports the offending line and exits 1; the valid line before it in the same batch is not appended.
    const run = await millrace(['produce', topic], engine.url, `${JSON.stringify(event(6_000))}\n${JSON.stringify(bad)}\n`);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/line 2: \/value\/amount/);
    expect(await endOffsets(engine.url, topic)).toEqual(before);
  });
}

describe('CLI round trip against a running engine (embedded log)', () => roundTrip(undefined));
describeWithKafka('CLI round trip against a running engine (Kafka)', (brokers) => roundTrip(brokers.join(',')));
describeWithKafka('CLI round trip against a running engine (Kafka and a schema registry)', (brokers) => {
  const url = registryUrl();
  if (url === undefined) {
    it.skip(`needs a schema registry (${registrySkipReason() ?? 'none configured'})`, () => {});
    return;
  }
  roundTrip(brokers.join(','), url);
});
