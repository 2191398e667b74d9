import type { LogEntry, logCreator as LogCreator } from 'kafkajs';
import type { Logger } from '../../logger.js';

/** How much of kafkajs's own logging reaches the log's logger. */
export type KafkaClientLogLevel = 'nothing' | 'error' | 'warn' | 'info' | 'debug';

const LEVELS: Record<KafkaClientLogLevel, number> = { nothing: 0, error: 1, warn: 2, info: 4, debug: 5 };

export function kafkaClientLevel(level: KafkaClientLogLevel): number {
  return LEVELS[level];
}

/**
 * Warnings about what the log does on purpose: bounded retries (a delivery timeout, as Java's `delivery.timeout.ms`)
 * and rebalances (reported by the subscription itself, with the pause they cost).
 */
const EXPECTED_WARNINGS = new Set([
  'Limiting retries for the idempotent producer may invalidate EoS guarantees',
  'The group is rebalancing, re-joining',
]);

/**
 * Forwards kafkajs log entries to a pino logger, one structured line each, tagged with the kafkajs namespace. Without
 * a logger kafkajs is silent.
 */
export function pinoLogCreator(logger: Logger | undefined): LogCreator {
  if (logger === undefined) return () => () => undefined;
  const child = logger.child({ component: 'kafkajs' });
  return () => (entry: LogEntry) => {
    const { message, timestamp: _timestamp, logger: _name, ...extra } = entry.log;
    const fields = { namespace: entry.namespace, ...extra };
    switch (entry.level) {
      case 1:
        // kafkajs logs every error answer of a request here, also those the log expects and handles (a topic that
        // exists already, a fenced producer); the log reports the failures that matter itself.
        if (entry.namespace === 'Connection' && message.startsWith('Response ')) child.debug(fields, message);
        else child.error(fields, message);
        break;
      case 2:
        if (EXPECTED_WARNINGS.has(message)) child.debug(fields, message);
        else child.warn(fields, message);
        break;
      case 4:
        child.info(fields, message);
        break;
      default:
        child.debug(fields, message);
    }
  };
}
