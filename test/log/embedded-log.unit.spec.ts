import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
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
