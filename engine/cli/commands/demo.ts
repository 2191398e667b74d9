import type { MillraceClient } from '../client.js';
import { DEFAULT_DEMO_USERS, DEFAULT_TIME_SCALE, runDemoTraffic, type DemoProgress } from '../../../topologies/pipeline/demo-traffic.js';
import { UsageError, integerOption, runCommand, type CliIo } from './shared.js';

const USAGE = `Usage: millrace demo generate [--url URL] [--rate N/s] [--duration 20m] [--drift-at 11m|ISO] [--seed N]
                              [--time-scale N] [--users N]

Sends the demo's card-transaction traffic to a running engine (millrace up): users, merchants, countries, IPv4 and
IPv6 addresses, amounts and an account-takeover fraud pattern on transactions-raw, and the labels that judge them,
minutes later in event time, on feedback-raw. At --drift-at the traffic drifts: legitimate amounts grow 2.5 times,
and a new fraud pattern (card testing: bursts of small amounts at home) appears. The same --seed sends the same
events.

Event time runs --time-scale times faster than the clock and ends at about the moment the run ends, so a 20-minute
run covers the sixty hours before it, and labels due minutes later arrive within seconds. The pipeline trains its
first model on the 10,000 labels after the first day of event time (its features reach back 24 hours): about nine
minutes in, at the default rate and scale.

Options:
  --rate N/s         transactions per second (default 200/s; labels come on top)
  --duration D       how long to send: 240s, 10m, 1h (default 20m)
  --drift-at T       when the drift begins: a time after the start (60s), or an event-time moment (ISO 8601)
                     (default: none)
  --seed N           seeds the traffic (default 1)
  --time-scale N     event-time seconds per second (default ${DEFAULT_TIME_SCALE})
  --users N          card holders (default ${DEFAULT_DEMO_USERS})
  --url URL          the engine (default: $MILLRACE_URL, else http://127.0.0.1:8080)
  -h, --help         show this help
`;

/** `30s`, `4m`, `1h`, `1500ms`, or a number of seconds. */
export function parseDuration(name: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (match === null) throw new UsageError(`--${name} must be a duration such as 90s, 4m or 1h, got ${JSON.stringify(text)}`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  const ms = Math.round(Number(match[1]) * unit);
  if (!(ms > 0) || ms > 30 * 86_400_000) throw new UsageError(`--${name} must be more than 0 and at most 30 days, got ${JSON.stringify(text)}`);
  return ms;
}

export function parseRate(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(?:\/s)?$/.exec(text.trim());
  const rate = match === null ? Number.NaN : Number(match[1]);
  if (!(rate > 0) || rate > 1_000_000) throw new UsageError(`--rate must be a number of transactions per second such as 200/s, got ${JSON.stringify(text)}`);
  return rate;
}

export function parseDriftAt(text: string): { afterMs: number } | { atMs: number } {
  if (/^\d{4}-\d{2}-\d{2}T/.test(text)) {
    const atMs = Date.parse(text);
    if (Number.isNaN(atMs)) throw new UsageError(`--drift-at ${JSON.stringify(text)} is not an ISO 8601 moment`);
    return { atMs };
  }
  return { afterMs: parseDuration('drift-at', text) };
}

export interface DemoGenerateSettings {
  readonly ratePerSecond: number;
  readonly durationMs: number;
  readonly driftAt: { afterMs: number } | { atMs: number } | null;
  readonly seed: number;
  readonly timeScale: number;
  readonly users: number;
}

export const DEFAULT_DEMO_SETTINGS: DemoGenerateSettings = {
  ratePerSecond: 200,
  durationMs: 20 * 60_000,
  driftAt: null,
  seed: 1,
  timeScale: DEFAULT_TIME_SCALE,
  users: DEFAULT_DEMO_USERS,
};

/** Sends the traffic, printing progress: one line rewritten in place on a terminal, a line every 10 s otherwise. */
export async function generateTraffic(client: MillraceClient, settings: DemoGenerateSettings, io: CliIo): Promise<number> {
  const tty = (io.stderr as { isTTY?: boolean }).isTTY === true;
  let lastLineAt = 0;
  const line = (p: DemoProgress): string =>
    `${p.done ? 'sent' : 'sending'}: ${p.sent.toLocaleString('en-US')} events (${p.stats.transactions.toLocaleString('en-US')} transactions, ` +
    `${(p.stats.fraud['account-takeover'] + p.stats.fraud['card-testing']).toLocaleString('en-US')} fraud, ${p.stats.labels.toLocaleString('en-US')} labels), ` +
    `${Math.round(p.ratePerSecond).toLocaleString('en-US')}/s, event time ${new Date(p.eventTimeMs).toISOString()}${p.drifted ? ', drifted' : ''}`;
  const summary = await runDemoTraffic({
    client,
    ...settings,
    ...(io.signal === undefined ? {} : { signal: io.signal }),
    progressEveryMs: tty ? 500 : 1_000,
    onProgress: (p) => {
      if (tty) io.stderr.write(`\r\x1b[2K${line(p)}${p.done ? '\n' : ''}`);
      else if (p.done || p.elapsedMs - lastLineAt >= 10_000) {
        lastLineAt = p.elapsedMs;
        io.stderr.write(`${line(p)}\n`);
      }
    },
  });
  io.stdout.write(
    `${JSON.stringify({
      sent: summary.sent,
      transactions: summary.stats.transactions,
      fraud: summary.stats.fraud,
      labels: summary.stats.labels,
      eventStart: new Date(summary.eventStartMs).toISOString(),
      eventEnd: new Date(summary.eventTimeMs).toISOString(),
      driftStart: summary.driftStartMs === null ? null : new Date(summary.driftStartMs).toISOString(),
    })}\n`,
  );
  return 0;
}

/** `millrace demo generate`. */
export async function demoCommand(argv: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'generate') {
    const wantsHelp = sub === undefined || sub === '--help' || sub === '-h';
    (wantsHelp ? io.stdout : io.stderr).write(`${wantsHelp ? '' : `error: unknown demo command ${JSON.stringify(sub)}\n`}${USAGE}`);
    return wantsHelp ? 0 : 2;
  }
  return runCommand(
    {
      name: 'demo generate',
      usage: USAGE,
      positionals: [0, 0],
      options: {
        rate: { type: 'string' },
        duration: { type: 'string' },
        'drift-at': { type: 'string' },
        seed: { type: 'string' },
        'time-scale': { type: 'string' },
        users: { type: 'string' },
      },
    },
    rest,
    io,
    async (args, _positionals, client) => {
      const settings: DemoGenerateSettings = {
        ratePerSecond: args.rate === undefined ? DEFAULT_DEMO_SETTINGS.ratePerSecond : parseRate(args.rate),
        durationMs: args.duration === undefined ? DEFAULT_DEMO_SETTINGS.durationMs : parseDuration('duration', args.duration),
        driftAt: args['drift-at'] === undefined ? null : parseDriftAt(args['drift-at']),
        seed: integerOption('seed', args.seed, 0, 2 ** 31 - 1) ?? DEFAULT_DEMO_SETTINGS.seed,
        timeScale: integerOption('time-scale', args['time-scale'], 1, 10_000) ?? DEFAULT_DEMO_SETTINGS.timeScale,
        users: integerOption('users', args.users, 10, 10_000_000) ?? DEFAULT_DEMO_SETTINGS.users,
      };
      if (Date.now() - settings.durationMs * settings.timeScale < 0) {
        throw new UsageError('--duration × --time-scale reaches back before 1970: shorten one of them');
      }
      return generateTraffic(client(), settings, io);
    },
  );
}
