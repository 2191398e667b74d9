/**
 * vitest globalSetup: a headless Chromium for the browser tests.
 *
 * - `MILLRACE_BROWSER_EXECUTABLE` already set: that browser is used; nothing is installed.
 * - Otherwise Debian's Chromium (`/usr/bin/chromium`), installed with `test/infra/chromium install` (apt-get: 125 MB
 *   of packages, about 15 s from a nearby mirror) when `test/infra/chromium status` says it is missing.
 * - Either way the browser is launched once, through playwright-core with the tests' own command line, and a blank
 *   page opened: a browser that is installed but cannot start here (missing libraries, sandbox) is found now, once,
 *   rather than as a timeout in every browser test.
 * - Not installable (not root and no sudo, no apt-get) or not launchable: with `CI=true` the run fails here;
 *   otherwise browser tests skip with the reason (`MILLRACE_BROWSER_SKIP_REASON`). `MILLRACE_BROWSER=off` skips them
 *   on purpose.
 *
 * The path reaches the test workers through the environment (forked workers inherit process.env, copied when they
 * are spawned, after this setup) and through provide/inject; `test/support/browser.ts` reads both. Nothing runs
 * after the tests: each test launches and closes its own browser.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import type { TestProject } from 'vitest/node';
import type {} from '../support/browser.js';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = join(REPO_ROOT, 'test', 'infra', 'chromium');
/** apt-get waits up to 5 minutes for another apt run's lock, then downloads 125 MB; this bounds the whole. */
const INSTALL_TIMEOUT_MS = 15 * 60_000;
const STATUS_TIMEOUT_MS = 30_000;
/** A cold first start on a 2-core machine takes a few seconds; a hung one is not worth waiting for. */
const LAUNCH_TIMEOUT_MS = 60_000;
/**
 * The command line of every test browser; test/support/browser.ts launches with it too. It lives here because this
 * file runs in vitest's main process, where test/support/browser.ts (it imports vitest's test API) cannot load.
 * --no-sandbox: the tests run as root in containers, where Chromium's sandbox cannot start. The rest keep a test
 * run from reaching out to Google's services (updates, sync, field trials) and from QUIC probing: a test page only
 * talks to 127.0.0.1.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** test/infra/chromium's exit code for "a prerequisite is missing". */
const EXIT_MISSING_PREREQUISITE = 3;

interface ScriptResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs test/infra/chromium; its stderr (apt's progress) is shown as it comes and also kept for error messages. */
function runScript(command: string, timeoutMs: number, echo = true): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT, command], { cwd: REPO_ROOT, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (echo) process.stderr.write(chunk);
    });
    const timer = setTimeout(() => {
      say(`test/infra/chromium ${command} did not finish within ${timeoutMs / 1000}s; killing it`);
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

function say(line: string): void {
  process.stderr.write(`[chromium] ${line}\n`);
}

function lastLine(text: string): string {
  return text.trim().split('\n').pop()?.trim() ?? '';
}

function provide(project: TestProject, executablePath: string, skipReason: string): void {
  if (executablePath) process.env.MILLRACE_BROWSER_EXECUTABLE = executablePath;
  if (skipReason) process.env.MILLRACE_BROWSER_SKIP_REASON = skipReason;
  project.provide('millraceBrowserExecutablePath', executablePath);
  project.provide('millraceBrowserSkipReason', skipReason);
}

function skip(project: TestProject, reason: string): void {
  if (process.env.CI === 'true') {
    throw new Error(
      `Browser tests must run in CI (CI=true), but ${reason}. Install Chromium as root ` +
        '(apt-get install -y --no-install-recommends chromium fonts-liberation, or run test/infra/chromium install), ' +
        'or point MILLRACE_BROWSER_EXECUTABLE at a Chromium that starts headless.',
    );
  }
  say(`browser tests will be skipped: ${reason}`);
  provide(project, '', reason);
}

/** Installs Debian's Chromium when missing; returns its path, or a skip reason as `{ reason }`. */
async function ensureInstalled(): Promise<string | { reason: string }> {
  const status = await runScript('status', STATUS_TIMEOUT_MS, false);
  if (status.code === 0) {
    const path = lastLine((await runScript('path', STATUS_TIMEOUT_MS, false)).stdout);
    say(`${lastLine(status.stdout)} at ${path}`);
    return path;
  }
  say('Chromium is not installed; installing it (test/infra/chromium install)');
  const started = Date.now();
  const result = await runScript('install', INSTALL_TIMEOUT_MS);
  if (result.code === EXIT_MISSING_PREREQUISITE) {
    return { reason: /missing prerequisite: (.*)/.exec(result.stderr)?.[1] ?? 'Chromium is missing and cannot be installed here' };
  }
  const path = lastLine(result.stdout);
  if (result.code !== 0 || !path.startsWith('/')) {
    throw new Error(
      `test/infra/chromium install failed (exit ${result.code ?? result.signal}); its output:\n` +
        result.stderr.trim().split('\n').slice(-30).join('\n'),
    );
  }
  say(`installed in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return path;
}

/** Starts the browser the way the tests will and opens a page; returns why it could not, or `undefined`. */
async function checkLaunch(executablePath: string): Promise<string | undefined> {
  const started = Date.now();
  try {
    const browser = await chromium.launch({ executablePath, args: [...CHROMIUM_ARGS], timeout: LAUNCH_TIMEOUT_MS });
    try {
      const page = await browser.newPage();
      await page.setContent('<title>ok</title>');
      say(`${executablePath} (Chromium ${browser.version()}) launched in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    } finally {
      await browser.close();
    }
    return undefined;
  } catch (error) {
    // Playwright's launch error is its summary line, the whole command line, then the browser's stderr lines
    // ("[pid=…][err] …"), which say what went wrong (a missing library, the sandbox). The command line is noise.
    // It lists those lines twice (browser logs and call log), once with terminal colours.
    const message = (error instanceof Error ? error.message : String(error)).replace(/\u001b\[[0-9;]*m/g, '');
    const lines = message.split('\n');
    const stderr = new Set(lines.map((line) => /\]\[err\] (.*\S)/.exec(line)?.[1]).filter((line) => line !== undefined));
    return `${executablePath} does not launch: ${[lines[0]?.trim(), ...[...stderr].slice(0, 3)].join(' | ')}`;
  }
}

export default async function setup(project: TestProject): Promise<void> {
  const external = process.env.MILLRACE_BROWSER_EXECUTABLE?.trim();
  if (!external && process.env.MILLRACE_BROWSER === 'off') {
    skip(project, 'MILLRACE_BROWSER=off');
    return;
  }
  let executablePath: string;
  if (external) {
    say(`using ${external} (MILLRACE_BROWSER_EXECUTABLE)`);
    executablePath = external;
  } else {
    const installed = await ensureInstalled();
    if (typeof installed !== 'string') {
      skip(project, installed.reason);
      return;
    }
    executablePath = installed;
  }
  const launchFailure = await checkLaunch(executablePath);
  if (launchFailure) {
    // Cleared so that the workers do not mistake a browser that cannot start for one they can use.
    delete process.env.MILLRACE_BROWSER_EXECUTABLE;
    skip(project, launchFailure);
    return;
  }
  provide(project, executablePath, '');
}
