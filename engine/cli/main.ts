import { MillraceError } from '../errors.js';
import { commands, USAGE_EXIT_CODE, type CliIo } from './commands.js';
import { processIo } from './io.js';

export const USAGE = `Usage: millrace <command> [options]

Commands:
  up                      run the engine: embedded log, topologies and HTTP API
  topics                  list topics
  topics create <name>    create a topic (--partitions N, --schema FILE|NAME, --compacted)
  produce <topic>         send JSON lines from stdin or --file to a topic
  tail <topic>            print a topic's records as JSON lines (--from-beginning, --follow, …)
  status                  show applications, tasks and lag
  query [<proj> [<key>]]  read projections (--as-of TIME for any retained moment, --prefix, --all)
  replay --projection P   replay a slice of history into a sandbox (--from, --to, --code FILE) and diff it with live
  demo generate           send the demo's card-transaction traffic, with labels and an optional drift

Every command takes --help, and --url URL to name the engine (default: $MILLRACE_URL, else http://127.0.0.1:8080).
`;

/**
 * The `millrace` command line. Returns the exit code: 0 on success, 1 when the command failed (a `MillraceError`,
 * printed as `error: <message>`), 2 for a command line that cannot be understood.
 */
export async function main(argv: string[], io?: CliIo): Promise<number> {
  const command = argv[0];
  const rest = argv.slice(1);
  const usesProcess = io === undefined;
  let streams: CliIo = io ?? processIo;

  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    const topic = command === 'help' ? rest[0] : undefined;
    if (topic !== undefined && topic in commands) return main([topic, '--help'], io);
    streams.stdout.write(USAGE);
    return 0;
  }

  let removeInterrupt = (): void => {};
  if (usesProcess) {
    // `millrace tail -f | head`: a reader that goes away ends the command quietly.
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
    if (command === 'tail' || command === 'demo' || command === 'replay') {
      // The first Ctrl-C stops following cleanly; a second one kills as usual.
      const controller = new AbortController();
      const onInterrupt = (): void => controller.abort();
      process.once('SIGINT', onInterrupt);
      removeInterrupt = () => process.off('SIGINT', onInterrupt);
      streams = { ...streams, signal: controller.signal };
    }
  }

  try {
    if (command === 'up') {
      // Loaded on demand: the data commands start fast without the engine's modules.
      const { runUp } = await import('./up.js');
      return await runUp(rest, streams);
    }
    const run = Object.hasOwn(commands, command) ? commands[command] : undefined;
    if (run === undefined) {
      streams.stderr.write(`error: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return USAGE_EXIT_CODE;
    }
    return await run(rest, streams);
  } catch (err) {
    if (!(err instanceof MillraceError)) throw err;
    streams.stderr.write(`error: ${err.message}\n`);
    return 1;
  } finally {
    removeInterrupt();
  }
}
