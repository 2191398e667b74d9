/**
 * vitest globalSetup: the Python trainer's environment, for the tests that train models.
 *
 * - `MILLRACE_TRAINER_PYTHON` already set: that interpreter is used as it is (it must have training/requirements.txt).
 * - Otherwise `training/setup`: a virtual environment in `.infra/trainer-venv` (or MILLRACE_TRAINER_VENV) with the
 *   pinned requirements, installed from PyPI on first use (~30 s) and reused while requirements.txt is unchanged.
 * - python3 3.11+ with venv and pip missing: with `CI=true` the run fails here; otherwise trainer tests skip with the
 *   reason (`MILLRACE_TRAINER_SKIP_REASON`). `MILLRACE_TRAINER=off` skips them on purpose.
 *
 * The interpreter reaches the test workers through the environment (forked workers inherit process.env) and through
 * provide/inject; `test/support/trainer.ts` reads both. Nothing runs after the tests: the environment is kept.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import type {} from '../support/trainer.js';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = join(REPO_ROOT, 'training', 'setup');
/** A cold install downloads ~120 MB of wheels; pip bounds each download, this bounds the whole. */
const SETUP_TIMEOUT_MS = 15 * 60_000;
/** training/setup's exit code for "python3, venv or pip is missing". */
const EXIT_MISSING_PREREQUISITE = 3;

interface ScriptResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runSetup(): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT], { cwd: REPO_ROOT, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      process.stderr.write(chunk);
    });
    const timer = setTimeout(() => {
      process.stderr.write(`[trainer] training/setup did not finish within ${SETUP_TIMEOUT_MS / 1000}s; killing it\n`);
      child.kill('SIGKILL');
    }, SETUP_TIMEOUT_MS);
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

function provide(project: TestProject, python: string, skipReason: string): void {
  if (python) process.env.MILLRACE_TRAINER_PYTHON = python;
  if (skipReason) process.env.MILLRACE_TRAINER_SKIP_REASON = skipReason;
  project.provide('millraceTrainerPython', python);
  project.provide('millraceTrainerSkipReason', skipReason);
}

function skip(project: TestProject, reason: string): void {
  if (process.env.CI === 'true') {
    throw new Error(
      `Trainer tests must run in CI (CI=true), but ${reason}. Install Python 3.11+ with venv and pip ` +
        '(apt-get install -y python3 python3-venv python3-pip), or point MILLRACE_TRAINER_PYTHON at an interpreter ' +
        'that has training/requirements.txt installed.',
    );
  }
  process.stderr.write(`[trainer] trainer tests will be skipped: ${reason}\n`);
  provide(project, '', reason);
}

export default async function setup(project: TestProject): Promise<void> {
  const external = process.env.MILLRACE_TRAINER_PYTHON?.trim();
  if (external) {
    process.stderr.write(`[trainer] using ${external} (MILLRACE_TRAINER_PYTHON)\n`);
    provide(project, external, '');
    return;
  }
  if (process.env.MILLRACE_TRAINER === 'off') {
    skip(project, 'MILLRACE_TRAINER=off');
    return;
  }

  const started = Date.now();
  const result = await runSetup();
  if (result.code === EXIT_MISSING_PREREQUISITE) {
    skip(project, /missing prerequisite: (.*)/.exec(result.stderr)?.[1] ?? 'python3, venv or pip is missing');
    return;
  }
  const python = result.stdout.trim().split('\n').pop()?.trim() ?? '';
  if (result.code !== 0 || !python.startsWith('/')) {
    throw new Error(
      `training/setup failed (exit ${result.code ?? result.signal}); its output:\n${result.stderr.trim().split('\n').slice(-30).join('\n')}`,
    );
  }
  process.stderr.write(`[trainer] ${python} ready after ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
  provide(project, python, '');
}
