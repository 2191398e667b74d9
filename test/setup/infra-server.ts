/**
 * What the vitest globalSetup files of the servers under `test/infra/` share: run the infra script, reuse a server
 * a developer started, replace one a killed test run left behind, stop the one it started in teardown, and skip
 * (or fail, with `CI=true`) when the server cannot run here.
 *
 * - `<externalEnv>` already set: an external server; nothing is started or stopped.
 * - `<offEnv>=off`: no server on purpose; its tests skip (and fail under `CI=true`).
 * - Otherwise `test/infra/<script> start`, and `stop` in teardown. A server already running before the tests
 *   (`status` says `started-by` someone other than vitest) is reused and left running; one an earlier test run
 *   started and never stopped (killed before its teardown) is replaced with `restart`.
 * - The script exits 3 when a prerequisite (Java, Maven) is missing: the tests skip with its reason, or with
 *   `CI=true` the run fails here.
 *
 * The address reaches the test workers through the environment (forked workers inherit process.env, copied when
 * they are spawned, after this setup) and through provide/inject.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProvidedContext } from 'vitest';
import type { TestProject } from 'vitest/node';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Recorded by the start script, so a later run can tell a server it left behind from a developer's. */
const STARTED_BY = 'vitest';
/** The infra scripts' exit code for "a prerequisite is missing". */
const EXIT_MISSING_PREREQUISITE = 3;
const STATUS_TIMEOUT_MS = 30_000;

/** The provided keys that hold strings. */
type StringKey = { [K in keyof ProvidedContext]: ProvidedContext[K] extends string ? K : never }[keyof ProvidedContext];

export interface InfraServer {
  /** The script under test/infra/ ("cassandra"); also the tag of log lines ("[cassandra]"). */
  readonly script: string;
  /** Names its tests in messages ("Cassandra"). */
  readonly name: string;
  /** What it runs, for messages ("Cassandra node"). */
  readonly what: string;
  /** Names an external server's address: nothing is started (MILLRACE_CASSANDRA_CONTACT_POINTS). */
  readonly addressEnv: string;
  /** Why its tests skip, for the workers (MILLRACE_CASSANDRA_SKIP_REASON). */
  readonly skipReasonEnv: string;
  /** `off` skips on purpose (MILLRACE_CASSANDRA). */
  readonly switchEnv: string;
  /** Tells the script who started the server (MILLRACE_CASSANDRA_STARTED_BY). */
  readonly startedByEnv: string;
  readonly addressKey: StringKey;
  readonly skipReasonKey: StringKey;
  /** The script's last line of stdout on a successful start. */
  readonly addressPattern: RegExp;
  /** Said when CI cannot run the server: how to make it run. */
  readonly advice: string;
  /** The whole start, first download included. */
  readonly startTimeoutMs: number;
  /** The script's own stop, graceful then forced. */
  readonly stopTimeoutMs: number;
  /** Tidies an external address before use (a URL's trailing slashes). */
  readonly normalizeExternal?: (address: string) => string;
}

interface ScriptResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the infra script; its stderr (progress) is shown as it comes and also kept for error messages. */
function runScript(server: InfraServer, command: string, timeoutMs: number, echo = true): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(REPO_ROOT, 'test', 'infra', server.script), command], {
      cwd: REPO_ROOT,
      env: { ...process.env, [server.startedByEnv]: STARTED_BY },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (echo) process.stderr.write(chunk);
    });
    const timer = setTimeout(() => {
      say(server, `test/infra/${server.script} ${command} did not finish within ${timeoutMs / 1000}s; killing it`);
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function say(server: InfraServer, line: string): void {
  process.stderr.write(`[${server.script}] ${line}\n`);
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1]?.trim() ?? '';
}

function provide(project: TestProject, server: InfraServer, address: string, skipReason: string): void {
  if (address) process.env[server.addressEnv] = address;
  if (skipReason) process.env[server.skipReasonEnv] = skipReason;
  // StringKey guarantees a string slot; TypeScript cannot follow that through the generic key.
  project.provide(server.addressKey, address as never);
  project.provide(server.skipReasonKey, skipReason as never);
}

function skip(project: TestProject, server: InfraServer, reason: string): undefined {
  if (process.env.CI === 'true') {
    throw new Error(`${server.name} integration tests must run in CI (CI=true), but ${reason}. ${server.advice}`);
  }
  say(server, `${server.name} tests will be skipped: ${reason}`);
  provide(project, server, '', reason);
  return undefined;
}

/** The body of a globalSetup: returns the teardown when it started the server. */
export async function setupInfraServer(project: TestProject, server: InfraServer): Promise<(() => Promise<void>) | undefined> {
  const given = process.env[server.addressEnv]?.trim();
  const external = given && server.normalizeExternal !== undefined ? server.normalizeExternal(given) : given;
  if (external) {
    say(server, `using the ${server.what} at ${external} (${server.addressEnv})`);
    provide(project, server, external, '');
    return undefined;
  }
  if (process.env[server.switchEnv] === 'off') return skip(project, server, `${server.switchEnv}=off`);

  // A server the developer started by hand is reused and left running. One that an earlier test run started and
  // never stopped (it was killed before its teardown) is replaced by a fresh one.
  const status = await runScript(server, 'status', STATUS_TIMEOUT_MS, false);
  const running = status.code === 0 ? /^running (\S+) pid \d+ started-by (\S+)/.exec(lastLine(status.stdout)) : null;
  if (running?.[1] && running[2] !== STARTED_BY) {
    say(server, `reusing the ${server.what} already running at ${running[1]} (left running afterwards)`);
    provide(project, server, running[1], '');
    return undefined;
  }

  const started = Date.now();
  const command = running ? 'restart' : 'start';
  say(
    server,
    running
      ? `replacing a ${server.what} left running by an earlier test run (test/infra/${server.script} restart)`
      : `starting the test ${server.what} (test/infra/${server.script} start)`,
  );
  const result = await runScript(server, command, server.startTimeoutMs);
  if (result.code === EXIT_MISSING_PREREQUISITE) {
    const reason = /missing prerequisite: (.*)/.exec(result.stderr)?.[1] ?? 'a prerequisite (Java, Maven) is missing';
    return skip(project, server, reason);
  }
  const address = lastLine(result.stdout);
  if (result.code !== 0 || !server.addressPattern.test(address)) {
    // Make sure nothing half-started is left behind.
    await runScript(server, 'stop', server.stopTimeoutMs, false).catch(() => undefined);
    throw new Error(
      `test/infra/${server.script} ${command} failed (exit ${result.code ?? result.signal}); its output:\n` +
        result.stderr.trim().split('\n').slice(-30).join('\n'),
    );
  }
  say(server, `${server.what} ready at ${address} after ${((Date.now() - started) / 1000).toFixed(1)}s`);
  provide(project, server, address, '');

  return async () => {
    const stopped = await runScript(server, 'stop', server.stopTimeoutMs);
    if (stopped.code !== 0) say(server, `test/infra/${server.script} stop exited ${stopped.code ?? stopped.signal}`);
  };
}
