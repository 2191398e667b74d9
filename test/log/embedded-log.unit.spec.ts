import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { offset } from '../../engine/log/log.js';
import { runLogSuite } from '../conformance/log.js';

runLogSuite('EmbeddedLog', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'millrace-log-'));
  let log = new EmbeddedLog({ path: dir });
  await log.open();
  return {
    get log() {
      return log;
    },
    async reopen() {
      await log.close();
      log = new EmbeddedLog({ path: dir });
      await log.open();
      return log;
    },
    async close() {
      await log.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('EmbeddedLog group commit', () => {
  it('writes a transaction larger than one write slice whole: readers see none of it, then all of it, and appends queued behind it follow in order', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'millrace-log-'));
    let log = new EmbeddedLog({ path: dir });
    await log.open();
    try {
      await log.createTopic({ name: 'in', partitions: 1 });
      await log.createTopic({ name: 'out', partitions: 1 });
      const records = 20_000;
      const tx = await log.beginTransaction({ transactionalId: 'big-0' });
      tx.append(Array.from({ length: records }, (_, i) => ({ topic: 'out', partition: 0, key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`) })));
      tx.commitOffsets('big', [{ topic: 'in', partition: 0, offset: offset(7) }]);
      const committing = tx.commit();
      const behind = Array.from({ length: 20 }, (_, i) => log.append([{ topic: 'out', partition: 0, value: Buffer.from(`after-${i}`) }]));
      // While the batch is built (the event loop gets turns between slices), a reader sees nothing or everything.
      const seen = new Set<number>();
      let done = false;
      void committing.finally(() => (done = true));
      while (!done) {
        seen.add((await log.partitionOffsets('out'))[0]!.end);
        await new Promise((resolve) => setImmediate(resolve));
      }
      await committing;
      await Promise.all(behind);
      for (const end of seen) expect([0, records, ...Array.from({ length: 21 }, (_, i) => records + i)]).toContain(end);
      log = await reopen(log, dir);
      const read = await log.read('out', 0, offset(0), { maxRecords: records + 100 });
      expect(read.records).toHaveLength(records + 20);
      expect(read.records[records - 1]!.value!.toString()).toBe(`v${records - 1}`);
      expect(read.records.slice(records).map((r) => r.value!.toString())).toEqual(Array.from({ length: 20 }, (_, i) => `after-${i}`));
      expect((await log.committedOffsets('big', 'in')).get(0)).toBe(7);
    } finally {
      await log.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

async function reopen(log: EmbeddedLog, dir: string): Promise<EmbeddedLog> {
  await log.close();
  const again = new EmbeddedLog({ path: dir });
  await again.open();
  return again;
}
