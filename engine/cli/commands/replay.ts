import { resolve } from 'node:path';
import { runCommand, UsageError, writeOut, type CliIo } from './shared.js';

const USAGE = `Usage: millrace replay --projection NAME | --topology APP [--from TIME|OFFSET] [--to TIME|OFFSET] [--code FILE] [--max-diff N] [--json] [--url URL]

Replays a slice of history into a sandbox beside the live one (live processing goes on), shows its progress, then
prints how the sandbox differs from live, key by key. With --code, the slice is replayed with the code in FILE (a
JavaScript module exporting the projection, or the topology) instead of the live code.

A projection's diff compares each key the sandbox changed with live as of the slice's end. A topology runs in
memory (synchronous processors only) and its diff compares, per output topic and key, the latest record the
sandbox produced with the latest one on the live topic, over the slice's time.

Options:
  --projection NAME   the projection to replay
  --topology APP      the topology (application id, as \`millrace status\` shows) to replay
  --from TIME|OFFSET  start at an offset (every partition) or the first record at or after an ISO 8601 time
                      (default: the start of the log; a later start begins from live's state at that moment)
  --to TIME|OFFSET    stop after an offset, or after the records up to an ISO 8601 time (default: the end now)
  --code FILE         replay with this module's handler instead of the live one
  --max-diff N        print at most N differing keys (default 100)
  --json              print the finished replay and its diff as one line of JSON
  --url URL           the engine (default: $MILLRACE_URL, else http://127.0.0.1:8080)
  -h, --help          show this help

The replay stays on the engine: GET /replays/<id>/steps steps through it record by record (event, state before,
state after, outputs), GET /replays/<id>/diff pages through the diff.
`;

interface ReplayView {
  readonly id: string;
  readonly state: string;
  readonly projection: string;
  readonly progress: { readonly records: number; readonly total: number; readonly applied: number; readonly errors: number; readonly percent: number };
  readonly steps: number;
  readonly keysChanged: number;
  readonly diffAsOfMs: number | null;
  readonly error?: string;
}

interface DiffPage {
  readonly asOf: string | null;
  readonly entries: ReadonlyArray<{ key: string; change: string; sandbox: unknown; live: unknown }>;
  readonly nextCursor?: string;
}

/** How often progress is polled and printed. */
const PROGRESS_INTERVAL_MS = 500;

const bound = (value: string | undefined, name: string): string | number | undefined => {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value)) return Number(value);
  if (Number.isNaN(Date.parse(value))) throw new UsageError(`--${name} must be an offset or an ISO 8601 time, got ${JSON.stringify(value)}`);
  return value;
};

/** `millrace replay`. */
export async function replayCommand(argv: string[], io: CliIo): Promise<number> {
  return runCommand(
    {
      name: 'replay',
      usage: USAGE,
      positionals: [0, 0],
      options: {
        projection: { type: 'string' },
        topology: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        code: { type: 'string' },
        'max-diff': { type: 'string' },
        json: { type: 'boolean' },
      },
    },
    argv,
    io,
    async (args, _positionals, client) => {
      if ((args.projection === undefined) === (args.topology === undefined)) throw new UsageError('give --projection NAME or --topology APP');
      const maxDiff = args['max-diff'] === undefined ? 100 : Number(args['max-diff']);
      if (!Number.isSafeInteger(maxDiff) || maxDiff < 0) throw new UsageError(`--max-diff must be a whole number, got ${JSON.stringify(args['max-diff'])}`);
      const from = bound(args.from, 'from');
      const to = bound(args.to, 'to');
      const engine = client();
      let replay = await engine.request<ReplayView>('POST', '/replays', {
        body: {
          ...(args.projection === undefined ? { topology: args.topology } : { projection: args.projection }),
          ...(from === undefined ? {} : { from }),
          ...(to === undefined ? {} : { to }),
          // The engine loads the module: give it a path it can open whatever its working directory.
          ...(args.code === undefined ? {} : { code: resolve(args.code) }),
        },
      });
      io.stderr.write(`replay ${replay.id} of ${replay.projection}: ${replay.progress.total} records\n`);
      while (replay.state === 'running') {
        await new Promise((r) => setTimeout(r, PROGRESS_INTERVAL_MS));
        if (io.signal?.aborted === true) {
          io.stderr.write(`stopped following; the replay goes on (GET /replays/${replay.id})\n`);
          return 130;
        }
        replay = await engine.request<ReplayView>('GET', `/replays/${replay.id}`);
        io.stderr.write(`replay ${replay.id}: ${replay.progress.percent}% (${replay.progress.records}/${replay.progress.total} records, ${replay.keysChanged} keys changed)\n`);
      }
      if (replay.state !== 'finished') {
        io.stderr.write(`replay ${replay.id} ${replay.state}${replay.error === undefined ? '' : `: ${replay.error}`}\n`);
        return 1;
      }
      const entries: Array<DiffPage['entries'][number]> = [];
      let cursor: string | undefined;
      let asOf: string | null = null;
      let more = false;
      do {
        const page = await engine.request<DiffPage>('GET', `/replays/${replay.id}/diff`, { query: { cursor, limit: 500 } });
        asOf = page.asOf;
        entries.push(...page.entries);
        cursor = page.nextCursor;
        if (entries.length > maxDiff) {
          more = true;
          break;
        }
      } while (cursor !== undefined);
      const shown = entries.slice(0, maxDiff);
      if (args.json === true) {
        io.stdout.write(`${JSON.stringify({ replay, diff: { asOf, entries: shown, truncated: more } })}\n`);
        return 0;
      }
      io.stdout.write(
        `replay ${replay.id}: ${replay.progress.applied} records applied, ${replay.progress.errors} refused, ${replay.keysChanged} keys changed; ` +
          `${more ? `more than ${maxDiff}` : entries.length} differ from live${asOf === null ? '' : ` as of ${asOf}`}\n`,
      );
      for (const entry of shown) await writeOut(io.stdout, `${JSON.stringify(entry)}\n`);
      return 0;
    },
  );
}
