import type { ReadRecord, ReadResult } from '../client.js';
import { UsageError, integerOption, runCommand, writeOut, type CliIo } from './shared.js';

const USAGE = `Usage: millrace tail <topic> [--from-beginning | --from ISO | --offset N] [--partition N] [--limit N] [--follow]

Prints a topic's records, one JSON object per line:
  {"topic","partition","offset","timestamp","key","value"}   (and "error" for a value that could not be decoded)
Within a partition, records come in offset order. Without --follow it stops at the end offsets it saw when it
started; by default it starts at the end, so without --follow it prints nothing.

Options:
  --from-beginning   start at the first record still held
  --from ISO         start at the first record at or after this time (2026-01-02T03:04:05Z)
  --offset N         start at offset N of every partition read
  --partition N      read only this partition
  --limit N          stop after N records
  -f, --follow       keep waiting for new records (stop with Ctrl-C)
  --url URL          the engine (default: $MILLRACE_URL, else http://127.0.0.1:8080)
  -h, --help         show this help
`;

/** Records asked for per request. */
const PAGE_RECORDS = 1000;
/** Partitions read per request, so that the offsets fit comfortably in a URL. */
const PARTITIONS_PER_REQUEST = 200;
/** How long one request waits for new records while following. */
const FOLLOW_WAIT_MS = 10_000;

/** `millrace tail`. */
export async function tailCommand(argv: string[], io: CliIo): Promise<number> {
  return runCommand(
    {
      name: 'tail',
      usage: USAGE,
      positionals: [1, 1],
      options: {
        'from-beginning': { type: 'boolean' },
        from: { type: 'string' },
        offset: { type: 'string' },
        partition: { type: 'string' },
        limit: { type: 'string' },
        follow: { type: 'boolean', short: 'f' },
      },
    },
    argv,
    io,
    async (args, positionals, makeClient) => {
      const name = positionals[0]!;
      const starts = [args['from-beginning'] === true, args.from !== undefined, args.offset !== undefined].filter(Boolean).length;
      if (starts > 1) throw new UsageError('give at most one of --from-beginning, --from and --offset');
      const startOffset = integerOption('offset', args.offset, 0, Number.MAX_SAFE_INTEGER);
      const onlyPartition = integerOption('partition', args.partition, 0, 9_999);
      const limit = integerOption('limit', args.limit, 1, Number.MAX_SAFE_INTEGER) ?? Number.POSITIVE_INFINITY;
      if (args.from !== undefined && Number.isNaN(Date.parse(args.from))) {
        throw new UsageError(`--from must be an ISO 8601 date-time, got ${JSON.stringify(args.from)}`);
      }
      const follow = args.follow === true;
      const signal = io.signal;

      const client = makeClient();
      const topic = await client.describeTopic(name);
      if (onlyPartition !== undefined && onlyPartition >= topic.partitions) {
        throw new UsageError(`topic ${name} has partitions 0 to ${topic.partitions - 1}`);
      }
      const partitions = onlyPartition === undefined ? topic.offsets.map((o) => o.partition) : [onlyPartition];
      // The end offsets seen at the start: without --follow, tail stops there.
      const stops = new Map(topic.offsets.map((o) => [o.partition, o.end]));
      const positions = new Map<number, number>();
      for (const p of partitions) {
        const bounds = topic.offsets[p]!;
        positions.set(p, args['from-beginning'] === true ? bounds.start : startOffset ?? bounds.end);
      }

      let printed = 0;
      const print = async (result: ReadResult): Promise<void> => {
        for (const record of result.records) {
          if (printed >= limit) return;
          if (!follow && record.offset >= (stops.get(record.partition) ?? 0)) continue;
          await writeOut(io.stdout, `${formatRecord(record)}\n`);
          printed++;
        }
      };
      const advance = (result: ReadResult): void => {
        for (const [p, next] of Object.entries(result.next)) {
          if (positions.has(Number(p))) positions.set(Number(p), next);
        }
      };

      try {
        if (args.from !== undefined) {
          // The server seeks every partition by time; the one record asked for stays unread (it is printed below).
          const seek = await client.readEvents(
            name,
            { from: args.from, limit: 1, ...(onlyPartition === undefined ? {} : { partition: onlyPartition }) },
            signal,
          );
          advance(seek);
          for (const record of seek.records) positions.set(record.partition, record.offset);
        }
        let group = 0;
        for (;;) {
          if (printed >= limit || signal?.aborted === true) break;
          const active = partitions.filter((p) => follow || positions.get(p)! < stops.get(p)!);
          if (active.length === 0) break;
          const groups = Math.ceil(active.length / PARTITIONS_PER_REQUEST);
          group %= groups;
          const chosen = active.slice(group * PARTITIONS_PER_REQUEST, (group + 1) * PARTITIONS_PER_REQUEST);
          group++;
          const before = chosen.map((p) => positions.get(p));
          const result = await client.readEvents(
            name,
            {
              offset: new Map(chosen.map((p) => [p, positions.get(p)!])),
              limit: Math.min(PAGE_RECORDS, limit - printed),
              ...(follow ? { waitMs: groups > 1 ? 200 : FOLLOW_WAIT_MS } : {}),
            },
            signal,
          );
          await print(result);
          advance(result);
          // Without --follow, a read that moved nothing (records gone since the start) ends the tail.
          if (!follow && result.records.length === 0 && chosen.every((p, i) => positions.get(p) === before[i])) {
            for (const p of chosen) stops.set(p, positions.get(p)!);
          }
        }
      } catch (err) {
        if (signal?.aborted === true) return 0;
        throw err;
      }
      return 0;
    },
  );
}

/** `{"topic","partition","offset","timestamp","key","value"}`, plus `"error"` when the value could not be decoded. */
export function formatRecord(record: ReadRecord): string {
  return JSON.stringify({
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    timestamp: record.timestamp,
    key: record.key,
    value: record.value,
    ...(record.error === undefined ? {} : { error: record.error }),
  });
}
