/**
 * A key that stops sending still gets its final result: with `idleCloseMs`, a real `millrace up` closes the open
 * windows of an idle task on its own and emits them, with no further input.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, requireBuild, startEngine, type EngineProcess } from '../support/engine-process.js';
import { tempDir } from '../support/runtime.js';

const IDLE_CLOSE_MS = 1_500;

describe('idle close in a running engine', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let engine: EngineProcess | undefined;

  beforeAll(async () => {
    requireBuild();
    dir = await tempDir('millrace-idle-');
  });

  afterAll(async () => {
    await engine?.kill('SIGTERM');
    await dir?.remove();
  });

  it(`emits an idle key's windows about ${IDLE_CLOSE_MS} ms after its last record`, { timeout: 60_000 }, async () => {
    const configFile = join(dir.path, 'millrace.config.json');
    await writeFile(configFile, JSON.stringify({
      topics: [{ name: 'payments', partitions: 1 }, { name: 'spend-windows', partitions: 1 }],
      topologies: [{ module: 'examples/windowed-spend', options: { idleCloseMs: IDLE_CLOSE_MS } }],
    }));
    engine = await startEngine({ config: configFile, dataDir: join(dir.path, 'data'), port: await freePort() });
    const at = (s: number) => new Date(Date.parse('2026-01-01T00:00:00Z') + s * 1_000).toISOString();
    const payments = [
      { id: 'a', user: 'solo', amount: 10, at: at(5) },
      { id: 'b', user: 'solo', amount: 2.5, at: at(40) },
    ];
    const sentAt = Date.now();
    const response = await fetch(`${engine.url}/topics/payments/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records: payments.map((p) => ({ key: p.user, value: p })) }),
    });
    expect(response.status).toBe(200);
    // Event time alone would never close these windows: no later record comes.
    const read = async () =>
      ((await (await fetch(`${engine!.url}/topics/spend-windows/events?offset=earliest&limit=100`)).json()) as { records: Array<{ value: unknown }> }).records.map((r) => r.value);
    expect(await read()).toEqual([]);
    let finals: unknown[] = [];
    while (finals.length < 3 && Date.now() - sentAt < 30_000) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      finals = await read();
    }
    const waitedMs = Date.now() - sentAt;
    console.log(`final results after ${waitedMs} ms without input`);
    expect(waitedMs).toBeGreaterThanOrEqual(IDLE_CLOSE_MS);
    // Windows [-30 s, 30 s), [0, 60 s) and [30 s, 90 s), each once, with its final total.
    expect(finals).toEqual([
      { user: 'solo', start: at(-30), end: at(30), count: 1, sum: 10 },
      { user: 'solo', start: at(0), end: at(60), count: 2, sum: 12.5 },
      { user: 'solo', start: at(30), end: at(90), count: 1, sum: 2.5 },
    ]);
    // From now on those windows are closed: a record for them is late.
    await fetch(`${engine.url}/topics/payments/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key: 'solo', value: { id: 'c', user: 'solo', amount: 1, at: at(41) } }),
    });
    let late: Array<{ value: { code: string; source: { offset: number } } }> = [];
    while (late.length === 0) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      late = ((await (await fetch(`${engine.url}/topics/windowed-spend-late-records/events?offset=earliest`)).json()) as { records: typeof late }).records;
    }
    expect(late.map((r) => [r.value.code, r.value.source.offset])).toEqual([['MILLRACE_LATE_RECORD', 2]]);
  });
});
