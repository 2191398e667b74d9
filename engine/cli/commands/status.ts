import type { ApplicationStatus, EngineStatus, TaskStatus } from '../../runtime/status.js';
import { plural, runCommand, table, type CliIo } from './shared.js';

const USAGE = `Usage: millrace status [--json] [--url URL]

Shows the engine: its applications, their tasks, and how far behind their inputs they are (lag).

Options:
  --json        the raw status document, as one line of JSON
  --url URL     the engine (default: $MILLRACE_URL, else http://127.0.0.1:8080)
  -h, --help    show this help
`;

/** `millrace status`. */
export async function statusCommand(argv: string[], io: CliIo): Promise<number> {
  return runCommand(
    { name: 'status', usage: USAGE, positionals: [0, 0], options: { json: { type: 'boolean' } } },
    argv,
    io,
    async (args, _positionals, client) => {
      const status = await client().status();
      io.stdout.write(args.json === true ? `${JSON.stringify(status)}\n` : formatStatus(status));
      return 0;
    },
  );
}

function taskLag(task: TaskStatus): number {
  return task.inputs.reduce((n, input) => n + input.lag, 0);
}

function applicationLag(application: ApplicationStatus): number {
  return application.tasks.reduce((n, task) => n + taskLag(task), 0);
}

export function formatStatus(status: EngineStatus): string {
  let out = `engine ${status.state} since ${status.startedAt} (version ${status.version}, ${status.log.kind} log at ${status.log.location})\n`;
  if (status.applications.length === 0) return `${out}no applications\n`;
  for (const app of status.applications) {
    out += `\napplication ${app.applicationId}: ${app.state}, ${plural(app.tasks.length, 'task')}, lag ${applicationLag(app)}`;
    out += app.error === null ? '\n' : ` (error: ${app.error})\n`;
    if (app.tasks.length === 0) continue;
    const rows = app.tasks.map((task) => [
      task.taskId,
      task.state,
      String(task.partition),
      String(task.processed),
      String(task.deadLettered),
      String(taskLag(task)),
      task.lastCommitAt ?? '-',
      [task.error ?? '', ...task.inputs.filter((i) => i.stalled).map((i) => `stalled at ${i.topic}/${i.partition}@${i.position} for ${Math.round(i.stalledForMs / 1000)} s`)].filter((x) => x !== '').join('; '),
    ]);
    out += table(['  TASK', 'STATE', 'PARTITION', 'PROCESSED', 'DEAD-LETTERED', 'LAG', 'LAST COMMIT', 'ERROR'], rows.map((r) => [`  ${r[0]}`, ...r.slice(1)]));
  }
  return out;
}
