import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import type { MillraceConfig } from '../config.js';
import type { Logger } from '../logger.js';
import { EmbeddedLog } from '../log/embedded/embedded-log.js';
import type { Log } from '../log/log.js';
import type { LocalState } from './stream-task.js';

/** The log an engine runs on, and where its tasks keep local state. */
export interface LogSetup {
  readonly log: Log;
  /** The LevelDB that holds task state: the embedded log's own (state commits with it), or one of this process (Kafka). */
  readonly stateDb: ClassicLevel<Buffer, Buffer>;
  /** Set when state is written after each log transaction rather than in it. */
  readonly localState?: LocalState;
  /** Where the log is, for status and messages. */
  readonly location: string;
  open(): Promise<void>;
  close(): Promise<void>;
}

/** The embedded log in `<dataDir>/log`, or Apache Kafka when `brokers` are configured. */
export async function logSetup(config: Readonly<MillraceConfig>, logger: Logger): Promise<LogSetup> {
  if (config.brokers === undefined) {
    const log = new EmbeddedLog({
      path: join(config.dataDir, 'log'),
      fsync: config.log.fsync,
      maintenanceIntervalMs: config.log.maintenanceIntervalMs,
    });
    return {
      log,
      get stateDb() {
        return log.db;
      },
      location: log.path,
      open: () => log.open(),
      close: () => log.close(),
    };
  }
  // Loaded only when used: the embedded engine never pays for a Kafka client, and each client loads only when chosen.
  const { client, ...kafka } = config.kafka;
  const options = { brokers: [...config.brokers], clientId: 'millrace', logger, ...kafka };
  const log =
    client === 'platformatic'
      ? new (await import('../log/kafka-platformatic/platformatic-log.js')).PlatformaticKafkaLog(options)
      : new (await import('../log/kafka/kafka-log.js')).KafkaLog(options);
  const stateDb = new ClassicLevel<Buffer, Buffer>(join(config.dataDir, 'state'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  return {
    log,
    stateDb,
    localState: {
      write: async (writes) => {
        if (writes.length > 0) await stateDb.batch(writes.map((w) => ({ ...w })), { sync: config.log.fsync });
      },
    },
    location: config.brokers.join(','),
    open: async () => {
      await stateDb.open();
      await log.open();
    },
    close: async () => {
      await log.close();
      await stateDb.close();
    },
  };
}
