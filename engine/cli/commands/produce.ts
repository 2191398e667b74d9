import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { errorMessage, isMillraceError } from '../../errors.js';
import { problemOf, type MillraceClient, type ProduceRecord } from '../client.js';
import { integerOption, plural, runCommand, writeOut, type CliIo } from './shared.js';

const USAGE = `Usage: millrace produce <topic> [--file F] [--key-field FIELD] [--batch-size N] [--url URL]

Sends JSON lines (one event per line) from stdin or a file to a topic, in batches. Blank lines are skipped. A line
that is not JSON stops the command before its batch is sent; a batch the engine refuses (422) is reported with the
line numbers of its invalid records, and nothing of that batch is appended.

Options:
  --file F            read this file instead of stdin
  --key-field FIELD   key each record with this field of its event (numbers and booleans as text)
  --batch-size N      records per request (default 500)
  --url URL           the engine (default: $MILLRACE_URL, else http://127.0.0.1:8080)
  -h, --help          show this help
`;

export const DEFAULT_BATCH_SIZE = 500;
/** A batch is sent before its JSON would pass this size, well inside the engine's default 1 MiB body limit. */
const MAX_BATCH_BYTES = 768 * 1024;

interface Pending {
  readonly record: ProduceRecord;
  readonly line: number;
}

/** `millrace produce`. */
export async function produceCommand(argv: string[], io: CliIo): Promise<number> {
  return runCommand(
    {
      name: 'produce',
      usage: USAGE,
      positionals: [1, 1],
      options: {
        file: { type: 'string' },
        'key-field': { type: 'string' },
        'batch-size': { type: 'string' },
      },
    },
    argv,
    io,
    async (args, positionals, client) => {
      const topic = positionals[0]!;
      const batchSize = integerOption('batch-size', args['batch-size'], 1, 10_000) ?? DEFAULT_BATCH_SIZE;
      const keyField = args['key-field'];
      let input: NodeJS.ReadableStream = io.stdin;
      if (args.file !== undefined) {
        const stream = createReadStream(args.file);
        const opened = await new Promise<Error | null>((resolve) => {
          stream.once('open', () => resolve(null));
          stream.once('error', resolve);
        });
        if (opened !== null) {
          io.stderr.write(`error: cannot read ${args.file}: ${opened.message}\n`);
          return 1;
        }
        input = stream;
      } else if (io.stdin.isTTY === true) {
        io.stderr.write('reading JSON lines from stdin; end with Ctrl-D\n');
      }
      return new Producer(client(), topic, io).run(input, batchSize, keyField);
    },
  );
}

class Producer {
  readonly #client: MillraceClient;
  readonly #topic: string;
  readonly #io: CliIo;
  readonly #progress: boolean;
  readonly #perPartition = new Map<number, number>();
  #sent = 0;

  constructor(client: MillraceClient, topic: string, io: CliIo) {
    this.#client = client;
    this.#topic = topic;
    this.#io = io;
    this.#progress = io.stderr.isTTY === true;
  }

  async run(input: NodeJS.ReadableStream, batchSize: number, keyField: string | undefined): Promise<number> {
    const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
    let batch: Pending[] = [];
    let batchBytes = 0;
    let lineNumber = 0;
    try {
      for await (const line of lines) {
        lineNumber++;
        if (line.trim() === '') continue;
        let value: unknown;
        try {
          value = JSON.parse(line);
        } catch (err) {
          this.#clearProgress();
          this.#io.stderr.write(`error: line ${lineNumber} is not valid JSON (${errorMessage(err)})\n`);
          this.#io.stderr.write(`${this.#sentSoFar()}; nothing from line ${batch[0]?.line ?? lineNumber} on was sent\n`);
          return 1;
        }
        const record: ProduceRecord = keyField === undefined ? { value } : { key: keyOf(value, keyField), value };
        const bytes = Buffer.byteLength(JSON.stringify(record)) + 1;
        if (batch.length > 0 && (batch.length >= batchSize || batchBytes + bytes > MAX_BATCH_BYTES)) {
          if (!(await this.#send(batch))) return 1;
          batch = [];
          batchBytes = 0;
        }
        batch.push({ record, line: lineNumber });
        batchBytes += bytes;
      }
      if (batch.length > 0 && !(await this.#send(batch))) return 1;
    } finally {
      lines.close();
      this.#clearProgress();
    }
    await writeOut(this.#io.stdout, `${this.#summary()}\n`);
    return 0;
  }

  /** Sends a batch; false when the engine refused records of it (already reported). */
  async #send(batch: readonly Pending[]): Promise<boolean> {
    let result;
    try {
      result = await this.#client.produce(this.#topic, batch.map((p) => p.record));
    } catch (err) {
      // A batch too large for the engine's body limit is sent in halves.
      if (isMillraceError(err, 'MILLRACE_HTTP_TOO_LARGE') && batch.length > 1) {
        const half = Math.ceil(batch.length / 2);
        return (await this.#send(batch.slice(0, half))) && this.#send(batch.slice(half));
      }
      const problem = problemOf(err);
      if (problem === undefined || problem.status !== 422) throw err;
      this.#clearProgress();
      this.#reportRefused(batch, problem);
      return false;
    }
    for (const { partition } of result.offsets) this.#perPartition.set(partition, (this.#perPartition.get(partition) ?? 0) + 1);
    this.#sent += result.offsets.length;
    if (this.#progress) this.#io.stderr.write(`\r\x1b[Ksent ${plural(this.#sent, 'record')} to ${this.#topic}`);
    return true;
  }

  #reportRefused(batch: readonly Pending[], problem: NonNullable<ReturnType<typeof problemOf>>): void {
    const first = batch[0]!.line;
    const last = batch[batch.length - 1]!.line;
    const out = this.#io.stderr;
    out.write(`error: ${this.#topic} refused the batch of lines ${first}-${last}: ${problem.title}; nothing of it was appended\n`);
    const errors = Array.isArray(problem['errors']) ? (problem['errors'] as Array<{ index?: unknown; path?: unknown; message?: unknown }>) : [];
    if (errors.length === 0) out.write(`  ${problem.detail}\n`);
    for (const e of errors) {
      const line = typeof e.index === 'number' ? batch[e.index]?.line : undefined;
      const path = typeof e.path === 'string' && e.path !== '' ? `${e.path}: ` : '';
      out.write(`  line ${line ?? '?'}: ${path}${String(e.message)}\n`);
    }
    const count = typeof problem['errorCount'] === 'number' ? problem['errorCount'] : errors.length;
    if (count > errors.length) out.write(`  … and ${count - errors.length} more\n`);
    out.write(`${this.#sentSoFar()}\n`);
  }

  #sentSoFar(): string {
    return `${plural(this.#sent, 'record')} had been sent before`;
  }

  /** `produced 1200 records to payments (partition 0: 400, partition 1: 800)` */
  #summary(): string {
    const parts = [...this.#perPartition].sort((a, b) => a[0] - b[0]).map(([p, n]) => `partition ${p}: ${n}`);
    return `produced ${plural(this.#sent, 'record')} to ${this.#topic}${parts.length === 0 ? '' : ` (${parts.join(', ')})`}`;
  }

  #clearProgress(): void {
    if (this.#progress && this.#sent > 0) this.#io.stderr.write('\r\x1b[K');
  }
}

/** The key of an event from one of its fields: strings as they are, other values as JSON; none when it is absent. */
function keyOf(value: unknown, field: string): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, field)) return null;
  const raw = (value as Record<string, unknown>)[field];
  if (raw === null || raw === undefined) return null;
  return typeof raw === 'string' ? raw : JSON.stringify(raw);
}
