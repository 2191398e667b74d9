/**
 * Clean shutdown of a real `millrace up`: SIGTERM commits every task and exits 0, even while a client holds
 * connections whose responses it never reads; after a restart nothing is processed twice.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startEngine } from '../support/engine-process.js';
import { tempDir } from '../support/runtime.js';

const config = {
  topics: [
    { name: 'events', partitions: 2 },
    { name: 'event-counts', partitions: 2 },
  ],
  topologies: ['examples/keyed-count'],
};

interface Status {
  applications: Array<{ tasks: Array<{ inputs: Array<{ committed: number }> }> }>;
}

describe('clean shutdown', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let configFile: string;

  beforeAll(async () => {
    dir = await tempDir('millrace-shutdown-');
    configFile = join(dir.path, 'millrace.config.json');
    await writeFile(configFile, JSON.stringify(config));
  });

  afterAll(async () => {
    await dir?.remove();
  });

  it('commits and exits on SIGTERM, although a client never reads its responses', async () => {
    const dataDir = join(dir.path, 'data');
    const port = await freePort();
    const engine = await startEngine({ config: configFile, dataDir, port });
    // Large responses that are never read keep those connections busy from the server's point of view.
    for (let i = 0; i < 30; i++) {
      const records = Array.from({ length: 1_000 }, (_, j) => ({ key: `k${j % 10}`, value: { i, j } }));
      await fetch(`${engine.url}/topics/events/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ records }),
      });
    }
    expect(await engine.kill('SIGTERM')).toBe(0);
    expect(engine.stderr()).toContain('SIGTERM: stopping');

    // After a restart the rest is processed; every key's counts run 1, 2, …, 3000 with no repeat and no gap.
    const restarted = await startEngine({ config: configFile, dataDir, port });
    for (;;) {
      const status = (await (await fetch(`${restarted.url}/status`)).json()) as Status;
      const committed = status.applications.flatMap((a) => a.tasks.flatMap((t) => t.inputs)).reduce((sum, i) => sum + i.committed, 0);
      if (committed === 30_000) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const counts = new Map<string, number[]>();
    let next: Record<string, number> = { 0: 0, 1: 0 };
    for (;;) {
      const offsets = Object.entries(next).map(([p, o]) => `${p}:${o}`).join(',');
      const page = (await (await fetch(`${restarted.url}/topics/event-counts/events?offset=${offsets}&limit=1000`)).json()) as {
        records: Array<{ key: string; value: number }>;
        next: Record<string, number>;
      };
      if (page.records.length === 0) break;
      for (const r of page.records) counts.set(r.key, [...(counts.get(r.key) ?? []), r.value]);
      next = page.next;
    }
    expect(counts.size).toBe(10);
    for (const values of counts.values()) expect(values).toEqual(Array.from({ length: 3_000 }, (_, i) => i + 1));
    expect(await restarted.kill('SIGTERM')).toBe(0);
  });
});
