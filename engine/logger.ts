import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const satisfies readonly LevelWithSilent[];
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Structured JSON logs on stderr (stdout is for what a command prints), one line per event. */
export function createLogger(level: LogLevel = 'info', destination: number = 2): Logger {
  return pino({ level, base: { service: 'millrace' } }, pino.destination({ fd: destination, sync: true }));
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
