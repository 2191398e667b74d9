/**
 * vitest globalSetup: a real Kafka broker for the integration tests.
 *
 * - `MILLRACE_KAFKA_BROKERS` already set: an external broker; nothing is started or stopped.
 * - Otherwise `test/infra/kafka start` (jars from Maven Central on first use, then a single-node KRaft broker on
 *   127.0.0.1:19092, or MILLRACE_KAFKA_PORT), and `test/infra/kafka stop` in teardown. A broker that was already
 *   running before the tests (a developer's `test/infra/kafka start`) is reused and left running; one left
 *   behind by a test run that was killed before its teardown is replaced.
 * - Java 17+ or Maven missing: with `CI=true` the run fails here; otherwise Kafka tests skip with the reason
 *   (`MILLRACE_KAFKA_SKIP_REASON`). `MILLRACE_KAFKA=off` skips the broker on purpose.
 *
 * The address reaches the test workers through the environment (forked workers inherit process.env, which is
 * copied when they are spawned, after this setup) and through provide/inject; `test/support/kafka.ts` reads both.
 *
 * vitest 3 puts no timeout on globalSetup (the first run downloads ~45 MB of jars); the start script bounds its
 * own readiness wait (90 s) and this file bounds the whole start at 15 minutes. Teardown runs inside vitest's
 * `teardownTimeout`, which vitest.config.ts raises so that a graceful broker shutdown is not cut short.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import type {} from '../support/kafka.js';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = join(REPO_ROOT, 'test', 'infra', 'kafka');
const START_TIMEOUT_MS = 15 * 60_000;
const STOP_TIMEOUT_MS = 45_000;
/** Recorded by the start script, so a later run can tell a broker it left behind from a developer's. */
const STARTED_BY = 'vitest';
/** The start script's exit code for "Java or Maven is missing". */
const EXIT_MISSING_PREREQUISITE = 3;

interface ScriptResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the infra script; its stderr (progress) is shown as it comes and also kept for error messages. */
function runScript(command: string, timeoutMs: number, echo = true): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT, command], {
      cwd: REPO_ROOT,
      env: { ...process.env, MILLRACE_KAFKA_STARTED_BY: STARTED_BY },
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
      process.stderr.write(`[kafka] test/infra/kafka ${command} did not finish within ${timeoutMs / 1000}s; killing it\n`);
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

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1]?.trim() ?? '';
}

function provide(project: TestProject, brokers: string, skipReason: string): void {
  if (brokers) process.env.MILLRACE_KAFKA_BROKERS = brokers;
  if (skipReason) process.env.MILLRACE_KAFKA_SKIP_REASON = skipReason;
  project.provide('millraceKafkaBrokers', brokers);
  project.provide('millraceKafkaSkipReason', skipReason);
}

function skip(project: TestProject, reason: string): undefined {
  if (process.env.CI === 'true') {
    throw new Error(
      `Kafka integration tests must run in CI (CI=true), but ${reason}. ` +
        'Install Java 17+ and Maven (apt-get install -y openjdk-17-jre-headless maven), or point ' +
        'MILLRACE_KAFKA_BROKERS at a broker.',
    );
  }
  process.stderr.write(`[kafka] Kafka tests will be skipped: ${reason}\n`);
  provide(project, '', reason);
  return undefined;
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const external = process.env.MILLRACE_KAFKA_BROKERS?.trim();
  if (external) {
    process.stderr.write(`[kafka] using the broker at ${external} (MILLRACE_KAFKA_BROKERS)\n`);
    provide(project, external, '');
    return undefined;
  }
  if (process.env.MILLRACE_KAFKA === 'off') {
    return skip(project, 'MILLRACE_KAFKA=off');
  }

  // A broker the developer started by hand is reused and left running. One that an earlier test run started
  // and never stopped (it was killed before its teardown) is replaced by a fresh one.
  const status = await runScript('status', 30_000, false);
  const running = status.code === 0 ? /^running (\S+) pid \d+ started-by (\S+)/.exec(lastLine(status.stdout)) : null;
  if (running?.[1] && running[2] !== STARTED_BY) {
    process.stderr.write(`[kafka] reusing the broker already running at ${running[1]} (left running afterwards)\n`);
    provide(project, running[1], '');
    return undefined;
  }

  const started = Date.now();
  const command = running ? 'restart' : 'start';
  process.stderr.write(
    running
      ? '[kafka] replacing a broker left running by an earlier test run (test/infra/kafka restart)\n'
      : '[kafka] starting the test broker (test/infra/kafka start)\n',
  );
  const result = await runScript(command, START_TIMEOUT_MS);
  if (result.code === EXIT_MISSING_PREREQUISITE) {
    const reason = /missing prerequisite: (.*)/.exec(result.stderr)?.[1] ?? 'Java or Maven is missing';
    return skip(project, reason);
  }
  const address = lastLine(result.stdout);
  if (result.code !== 0 || !/^[\w.-]+:\d+$/.test(address)) {
    // Make sure nothing half-started is left behind.
    await runScript('stop', STOP_TIMEOUT_MS, false).catch(() => undefined);
    throw new Error(
      `test/infra/kafka ${command} failed (exit ${result.code ?? result.signal}); its output:\n${result.stderr.trim().split('\n').slice(-30).join('\n')}`,
    );
  }
  process.stderr.write(`[kafka] broker ready at ${address} after ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
  provide(project, address, '');

  return async () => {
    const stopped = await runScript('stop', STOP_TIMEOUT_MS);
    if (stopped.code !== 0) {
      process.stderr.write(`[kafka] test/infra/kafka stop exited ${stopped.code ?? stopped.signal}\n`);
    }
  };
}
