import { demoCommand } from './commands/demo.js';
import { produceCommand } from './commands/produce.js';
import { queryCommand } from './commands/query.js';
import { replayCommand } from './commands/replay.js';
import { statusCommand } from './commands/status.js';
import { tailCommand } from './commands/tail.js';
import { topicsCommand } from './commands/topics.js';
import type { Command } from './commands/shared.js';

export type { CliIo, Command } from './commands/shared.js';
export { USAGE_EXIT_CODE } from './commands/shared.js';
export { demoCommand, produceCommand, queryCommand, replayCommand, statusCommand, tailCommand, topicsCommand };
export { formatRecord } from './commands/tail.js';

/** The data commands, which talk to a running engine over HTTP. `up` starts one, and lives apart. */
export const commands: Readonly<Record<string, Command>> = Object.freeze({
  topics: topicsCommand,
  produce: produceCommand,
  tail: tailCommand,
  status: statusCommand,
  query: queryCommand,
  replay: replayCommand,
  demo: demoCommand,
});
