/**
 * vitest globalSetup: a real Confluent-compatible schema registry (Apicurio Registry) for the integration tests.
 *
 * - `MILLRACE_SCHEMA_REGISTRY_URL` already set: an external registry; nothing is started or stopped.
 * - Otherwise `test/infra/schema-registry start` (the distribution from Maven Central on first use, then Apicurio
 *   Registry with in-memory storage on 127.0.0.1:18081, or MILLRACE_SCHEMA_REGISTRY_PORT, with the global
 *   compatibility set to BACKWARD), and `test/infra/schema-registry stop` in teardown. A registry that was already
 *   running before the tests (a developer's `test/infra/schema-registry start`) is reused and left running; one left
 *   behind by a test run that was killed before its teardown is replaced.
 * - Java 17+ or Maven missing: with `CI=true` the run fails here; otherwise registry tests skip with the reason
 *   (`MILLRACE_SCHEMA_REGISTRY_SKIP_REASON`). `MILLRACE_SCHEMA_REGISTRY=off` skips the registry on purpose.
 *
 * The URL (the base of the Confluent API, `http://127.0.0.1:18081/apis/ccompat/v7`) reaches the test workers through
 * the environment (forked workers inherit process.env, copied when they are spawned, after this setup) and through
 * provide/inject; `test/support/registry.ts` reads both.
 *
 * vitest 3 puts no timeout on globalSetup (the first run downloads ~140 MB); the start script bounds its own readiness
 * wait (90 s) and this file bounds the whole start at 15 minutes.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import type {} from '../support/registry.js';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = join(REPO_ROOT, 'test', 'infra', 'schema-registry');
const START_TIMEOUT_MS = 15 * 60_000;
const STOP_TIMEOUT_MS = 45_000;
/** Recorded by the start script, so a later run can tell a registry it left behind from a developer's. */
const STARTED_BY = 'vitest';
/** The start script's exit code for "Java or Maven is missing". */
const EXIT_MISSING_PREREQUISITE = 3;
const TAG = '[schema-registry]';

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
      env: { ...process.env, MILLRACE_SCHEMA_REGISTRY_STARTED_BY: STARTED_BY },
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
      process.stderr.write(`${TAG} test/infra/schema-registry ${command} did not finish within ${timeoutMs / 1000}s; killing it\n`);
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

function provide(project: TestProject, url: string, skipReason: string): void {
  if (url) process.env.MILLRACE_SCHEMA_REGISTRY_URL = url;
  if (skipReason) process.env.MILLRACE_SCHEMA_REGISTRY_SKIP_REASON = skipReason;
  project.provide('millraceSchemaRegistryUrl', url);
  project.provide('millraceSchemaRegistrySkipReason', skipReason);
}

function skip(project: TestProject, reason: string): undefined {
  if (process.env.CI === 'true') {
    throw new Error(
      `Schema registry integration tests must run in CI (CI=true), but ${reason}. ` +
        'Install Java 17+ (21+ for Apicurio 3.x) and Maven (apt-get install -y openjdk-17-jre-headless maven), or point ' +
        'MILLRACE_SCHEMA_REGISTRY_URL at a Confluent-compatible registry.',
    );
  }
  process.stderr.write(`${TAG} schema registry tests will be skipped: ${reason}\n`);
  provide(project, '', reason);
  return undefined;
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const external = process.env.MILLRACE_SCHEMA_REGISTRY_URL?.trim().replace(/\/+$/, '');
  if (external) {
    process.stderr.write(`${TAG} using the registry at ${external} (MILLRACE_SCHEMA_REGISTRY_URL)\n`);
    provide(project, external, '');
    return undefined;
  }
  if (process.env.MILLRACE_SCHEMA_REGISTRY === 'off') {
    return skip(project, 'MILLRACE_SCHEMA_REGISTRY=off');
  }

  // A registry the developer started by hand is reused and left running. One that an earlier test run started and
  // never stopped (it was killed before its teardown) is replaced by a fresh one.
  const status = await runScript('status', 30_000, false);
  const running = status.code === 0 ? /^running (\S+) pid \d+ started-by (\S+)/.exec(lastLine(status.stdout)) : null;
  if (running?.[1] && running[2] !== STARTED_BY) {
    process.stderr.write(`${TAG} reusing the registry already running at ${running[1]} (left running afterwards)\n`);
    provide(project, running[1], '');
    return undefined;
  }

  const started = Date.now();
  const command = running ? 'restart' : 'start';
  process.stderr.write(
    running
      ? `${TAG} replacing a registry left running by an earlier test run (test/infra/schema-registry restart)\n`
      : `${TAG} starting the test registry (test/infra/schema-registry start)\n`,
  );
  const result = await runScript(command, START_TIMEOUT_MS);
  if (result.code === EXIT_MISSING_PREREQUISITE) {
    const reason = /missing prerequisite: (.*)/.exec(result.stderr)?.[1] ?? 'Java or Maven is missing';
    return skip(project, reason);
  }
  const url = lastLine(result.stdout);
  if (result.code !== 0 || !/^https?:\/\/\S+$/.test(url)) {
    // Make sure nothing half-started is left behind.
    await runScript('stop', STOP_TIMEOUT_MS, false).catch(() => undefined);
    throw new Error(
      `test/infra/schema-registry ${command} failed (exit ${result.code ?? result.signal}); its output:\n` +
        result.stderr.trim().split('\n').slice(-30).join('\n'),
    );
  }
  process.stderr.write(`${TAG} registry ready at ${url} after ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
  provide(project, url, '');

  return async () => {
    const stopped = await runScript('stop', STOP_TIMEOUT_MS);
    if (stopped.code !== 0) {
      process.stderr.write(`${TAG} test/infra/schema-registry stop exited ${stopped.code ?? stopped.signal}\n`);
    }
  };
}
