import { runCommand, table, UsageError, writeOut, type CliIo } from './shared.js';

const USAGE = `Usage: millrace query [<projection> [<key>]] [--as-of TIME] [--prefix P] [--limit N] [--all] [--json] [--url URL]

Reads the engine's projections (read models).

  millrace query                       lists the projections, their store, lag and state
  millrace query <projection>          the projection's keys and values as JSON lines (a page of --limit; --all for every page)
  millrace query <projection> <key>    one key's value, as JSON

Options:
  --as-of TIME   answer as of that moment (ISO 8601 with a zone, e.g. 2026-11-24T08:00:00Z), from retained history
  --prefix P     only keys starting with P
  --limit N      keys per page (default 100)
  --all          follow every page to the end
  --json         print the whole answer as one line of JSON
  --url URL      the engine (default: $MILLRACE_URL, else http://127.0.0.1:8080)
  -h, --help     show this help
`;

interface ProjectionListing {
  readonly name: string;
  readonly store: string;
  readonly namespace: string;
  readonly state: string;
  readonly lag: number;
  readonly recordsApplied: number;
  readonly deadLetters: number;
  readonly topics: readonly string[];
}

interface ScanPage {
  readonly items: ReadonlyArray<{ key: string; value: unknown; validFrom: string }>;
  readonly nextCursor?: string;
}

/** `millrace query`. */
export async function queryCommand(argv: string[], io: CliIo): Promise<number> {
  return runCommand(
    {
      name: 'query',
      usage: USAGE,
      positionals: [0, 2],
      options: { 'as-of': { type: 'string' }, prefix: { type: 'string' }, limit: { type: 'string' }, all: { type: 'boolean' }, json: { type: 'boolean' } },
    },
    argv,
    io,
    async (args, positionals, client) => {
      const [projection, key] = positionals;
      const asOf = args['as-of'];
      if (asOf !== undefined && Number.isNaN(Date.parse(asOf))) throw new UsageError(`--as-of must be an ISO 8601 time, got ${JSON.stringify(asOf)}`);
      if (projection === undefined) {
        const { projections } = await client().request<{ projections: ProjectionListing[] }>('GET', '/projections');
        if (args.json === true) {
          io.stdout.write(`${JSON.stringify(projections)}\n`);
          return 0;
        }
        if (projections.length === 0) {
          io.stdout.write('no projections\n');
          return 0;
        }
        const rows = projections.map((p) => [p.name, p.store, p.namespace, p.state, String(p.lag), String(p.recordsApplied), String(p.deadLetters), p.topics.join(',')]);
        io.stdout.write(table(['PROJECTION', 'STORE', 'NAMESPACE', 'STATE', 'LAG', 'APPLIED', 'DEAD-LETTERED', 'TOPICS'], rows));
        return 0;
      }
      const path = `/projections/${encodeURIComponent(projection)}`;
      if (key !== undefined) {
        const answer = await client().request<{ value: unknown; validFrom: string }>('GET', `${path}/${encodeURIComponent(key)}`, { query: { asOf } });
        io.stdout.write(`${JSON.stringify(args.json === true ? answer : answer.value)}\n`);
        return 0;
      }
      const limit = args.limit;
      if (limit !== undefined && !/^\d+$/.test(limit)) throw new UsageError(`--limit must be a whole number, got ${JSON.stringify(limit)}`);
      let cursor: string | undefined;
      const items: Array<ScanPage['items'][number]> = [];
      do {
        const page = await client().request<ScanPage>('GET', path, { query: { asOf, prefix: args.prefix, limit, cursor } });
        if (args.json === true) items.push(...page.items);
        else for (const item of page.items) await writeOut(io.stdout, `${JSON.stringify(item)}\n`);
        cursor = args.all === true ? page.nextCursor : undefined;
        if (args.all !== true && page.nextCursor !== undefined && args.json !== true) io.stderr.write(`more: --all, or the next page's cursor ${page.nextCursor}\n`);
      } while (cursor !== undefined);
      if (args.json === true) io.stdout.write(`${JSON.stringify(items)}\n`);
      return 0;
    },
  );
}
