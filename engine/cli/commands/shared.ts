import { once } from 'node:events';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { MillraceClient, resolveEngineUrl } from '../client.js';
import type { CliIo as BaseIo } from '../io.js';

/**
 * What a command may touch: the process's streams and environment (or a test's), and a signal that ends
 * long-running work (Ctrl-C while following a topic).
 */
export interface CliIo extends BaseIo {
  readonly stdin: NodeJS.ReadableStream & { readonly isTTY?: boolean };
  readonly signal?: AbortSignal;
}

/** A CLI command: its arguments (after the command name) in, an exit code out. */
export type Command = (argv: string[], io: CliIo) => Promise<number>;

/** Exit code for a command line that cannot be understood. */
export const USAGE_EXIT_CODE = 2;

/** A command line that cannot be understood; commands catch it and exit with usage advice, it never escapes. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

const COMMON_OPTIONS = {
  url: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options;

export interface CommandSpec<O extends Options> {
  /** `topics create`: shown in errors. */
  readonly name: string;
  readonly usage: string;
  readonly options: O;
  /** Positional arguments: exactly this many, or a range. */
  readonly positionals: readonly [min: number, max: number];
}

type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ options: O & typeof COMMON_OPTIONS; allowPositionals: true; strict: true }>>;

/**
 * Runs a command body with its arguments parsed: `--help` prints the usage, a command line that cannot be understood
 * prints why and exits 2. `--url` is common to every command.
 */
export async function runCommand<O extends Options>(
  spec: CommandSpec<O>,
  argv: string[],
  io: CliIo,
  body: (args: Parsed<O>['values'], positionals: string[], client: () => MillraceClient) => Promise<number>,
): Promise<number> {
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...spec.options, ...COMMON_OPTIONS },
      allowPositionals: true,
      strict: true,
    }) as Parsed<O>;
  } catch (err) {
    return usageError(spec, io, err instanceof Error ? err.message : String(err));
  }
  const values = parsed.values as Parsed<O>['values'] & { help?: boolean; url?: string };
  if (values.help === true) {
    io.stdout.write(spec.usage.endsWith('\n') ? spec.usage : `${spec.usage}\n`);
    return 0;
  }
  const [min, max] = spec.positionals;
  if (parsed.positionals.length < min || parsed.positionals.length > max) {
    const extra = parsed.positionals.length > max ? `unexpected argument ${JSON.stringify(parsed.positionals[max])}` : 'missing arguments';
    return usageError(spec, io, extra);
  }
  const client = (): MillraceClient => new MillraceClient(resolveEngineUrl(values.url, io.env));
  try {
    return await body(parsed.values, parsed.positionals, client);
  } catch (err) {
    if (err instanceof UsageError) return usageError(spec, io, err.message);
    throw err;
  }
}

function usageError(spec: CommandSpec<Options>, io: CliIo, message: string): number {
  io.stderr.write(`error: ${message}\n${spec.usage.endsWith('\n') ? spec.usage : `${spec.usage}\n`}`);
  return USAGE_EXIT_CODE;
}

/** A whole-number option within bounds; `undefined` when not given. */
export function integerOption(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = /^-?[0-9]+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Writes to a stream, waiting when it asks the writer to (a slow pipe), so output never piles up in memory. */
export async function writeOut(stream: NodeJS.WritableStream, text: string): Promise<void> {
  if (!stream.write(text)) await once(stream, 'drain');
}

/** Lays out rows under headers, columns separated by two spaces. */
export function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
