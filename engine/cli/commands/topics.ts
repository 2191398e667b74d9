import { readFile, stat } from 'node:fs/promises';
import { MillraceError, errorMessage } from '../../errors.js';
import type { CreateTopicRequest, TopicView } from '../client.js';
import { integerOption, plural, runCommand, table, type CliIo } from './shared.js';

const LIST_USAGE = `Usage: millrace topics [--json] [--all] [--url URL]
       millrace topics create <name> [--partitions N] [--schema FILE|NAME] [--compacted] [--json] [--url URL]

Lists the engine's topics: a table, or one JSON object per line with --json.

Options:
  --json        one JSON object per topic and line
  --all         include internal topics (_schemas, changelogs, repartition topics)
  --url URL     the engine (default: $MILLRACE_URL, else http://127.0.0.1:8080)
  -h, --help    show this help
`;

const CREATE_USAGE = `Usage: millrace topics create <name> [--partitions N] [--schema FILE|NAME] [--compacted] [--json] [--url URL]

Creates a topic.

Options:
  --partitions N      number of partitions (default 1)
  --schema FILE|NAME  the value schema: a path to an .avsc file, or the name of a folder of the engine's
                      schemas directory (every version in it is registered, in order)
  --compacted         keep only the latest record per key (every record then needs a key)
  --json              print the created topic as JSON
  --url URL           the engine (default: $MILLRACE_URL, else http://127.0.0.1:8080)
  -h, --help          show this help
`;

/** `millrace topics` and `millrace topics create`. */
export async function topicsCommand(argv: string[], io: CliIo): Promise<number> {
  if (argv[0] === 'create') return createTopic(argv.slice(1), io);
  return runCommand(
    { name: 'topics', usage: LIST_USAGE, positionals: [0, 0], options: { json: { type: 'boolean' }, all: { type: 'boolean' } } },
    argv,
    io,
    async (args, _positionals, client) => {
      const topics = (await client().listTopics()).filter((t) => args.all === true || !t.internal);
      if (args.json === true) {
        for (const topic of topics) io.stdout.write(`${JSON.stringify(topic)}\n`);
        return 0;
      }
      if (topics.length === 0) {
        io.stdout.write(args.all === true ? 'no topics\n' : 'no topics (--all shows internal ones)\n');
        return 0;
      }
      io.stdout.write(
        table(
          ['NAME', 'PARTITIONS', 'POLICY', 'SCHEMA', 'RECORDS'],
          topics.map((t) => [
            t.name,
            String(t.partitions),
            t.cleanupPolicy,
            t.schema === null ? '-' : `${t.schema.subject} v${t.schema.version}`,
            String(t.offsets.reduce((n, o) => n + (o.end - o.start), 0)),
          ]),
        ),
      );
      return 0;
    },
  );
}

async function createTopic(argv: string[], io: CliIo): Promise<number> {
  return runCommand(
    {
      name: 'topics create',
      usage: CREATE_USAGE,
      positionals: [1, 1],
      options: {
        partitions: { type: 'string' },
        schema: { type: 'string' },
        compacted: { type: 'boolean' },
        json: { type: 'boolean' },
      },
    },
    argv,
    io,
    async (args, positionals, client) => {
      const partitions = integerOption('partitions', args.partitions, 1, 10_000);
      const request: CreateTopicRequest = {
        name: positionals[0]!,
        ...(partitions === undefined ? {} : { partitions }),
        ...(args.schema === undefined ? {} : { schema: await schemaArgument(args.schema) }),
        ...(args.compacted === true ? { compacted: true } : {}),
      };
      const topic = await client().createTopic(request);
      io.stdout.write(args.json === true ? `${JSON.stringify(topic)}\n` : `${describeCreated(topic)}\n`);
      return 0;
    },
  );
}

/** `created topic payments (3 partitions, delete, schema payments-value v2 id 2)` */
function describeCreated(topic: TopicView): string {
  const schema = topic.schema === null ? 'no schema' : `schema ${topic.schema.subject} v${topic.schema.version} id ${topic.schema.id}`;
  return `created topic ${topic.name} (${plural(topic.partitions, 'partition')}, ${topic.cleanupPolicy}, ${schema})`;
}

/** A path to a schema file becomes the schema itself; anything else names a folder of the engine's schemas. */
async function schemaArgument(value: string): Promise<string | object> {
  const looksLikePath = value.endsWith('.avsc') || value.endsWith('.json') || value.includes('/') || value.includes('\\');
  const isFile = await stat(value).then((s) => s.isFile(), () => false);
  if (!looksLikePath && !isFile) return value;
  let text: string;
  try {
    text = await readFile(value, 'utf8');
  } catch (err) {
    throw new MillraceError('MILLRACE_SCHEMA_INVALID', `cannot read the schema file ${value}: ${errorMessage(err)}`, { cause: err });
  }
  try {
    return JSON.parse(text) as object;
  } catch (err) {
    throw new MillraceError('MILLRACE_SCHEMA_INVALID', `${value} is not valid JSON: ${errorMessage(err)}`, { cause: err });
  }
}
