/**
 * A headless Chromium for tests that drive a web page, with the checks every such test wants: console errors,
 * accessibility (axe-core) and screenshots.
 *
 * `test/setup/chromium.global.ts` (vitest globalSetup) installs Debian's Chromium with `test/infra/chromium install`
 * when it is missing, unless `MILLRACE_BROWSER_EXECUTABLE` already names a browser, checks that it launches, and hands
 * its path to the test workers through the environment and through provide/inject. When it cannot (not root, no
 * apt-get, a browser that does not start) it records why instead, and browser tests skip with that reason; with
 * `CI=true` a missing browser is an error. `MILLRACE_BROWSER=off` skips them on purpose.
 *
 *   import { describeWithBrowser, launchBrowser, watchConsoleErrors, axeScan, screenshot } from '../support/browser.js';
 *   describeWithBrowser('dashboard', () => {
 *     test('renders', async () => {
 *       const browser = await launchBrowser();
 *       const page = await browser.newPage();
 *       const consoleErrors = watchConsoleErrors(page);
 *       await page.goto(url);
 *       expect(await axeScan(page)).toEqual([]);
 *       expect(consoleErrors()).toEqual([]);
 *       await browser.close();
 *     });
 *   });
 */
import { mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AxeResults, Result as AxeResult, RunOptions } from 'axe-core';
import { chromium, type Browser, type Page } from 'playwright-core';
import { describe, inject, test } from 'vitest';
import { CHROMIUM_ARGS } from '../setup/chromium.global.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The Chromium executable the tests drive, or "" when there is none. */
    millraceBrowserExecutablePath: string;
    /** Why there is no browser ("" when there is one). */
    millraceBrowserSkipReason: string;
  }
}

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where `screenshot` writes; ignored by git, kept by CI as an artifact. */
export const SCREENSHOT_DIR = join(REPO_ROOT, 'test-artifacts', 'screenshots');

/** The command line every test browser is launched with. */
export { CHROMIUM_ARGS };

/** The axe rules that count: WCAG 2.x levels A and AA. */
const AXE_TAGS = ['wcag2a', 'wcag2aa'];
/** The impacts a test fails on; "minor" and "moderate" findings are reported by axe but tolerated. */
const AXE_FAILING_IMPACTS: ReadonlySet<string> = new Set(['serious', 'critical']);

function provided(key: 'millraceBrowserExecutablePath' | 'millraceBrowserSkipReason'): string | undefined {
  try {
    return inject(key) || undefined;
  } catch {
    // Outside a vitest worker (or a config without the globalSetup): nothing was provided.
    return undefined;
  }
}

/** The Chromium executable to drive, or `undefined` when there is none. */
export function browserExecutablePath(): string | undefined {
  return process.env.MILLRACE_BROWSER_EXECUTABLE || provided('millraceBrowserExecutablePath');
}

/**
 * Why browser tests cannot run here, or `undefined` when a browser is available. With `CI=true` there is no
 * skipping: a missing browser throws, so the test file fails instead of passing vacuously.
 */
export function browserSkipReason(): string | undefined {
  if (browserExecutablePath()) return undefined;
  const reason =
    process.env.MILLRACE_BROWSER_SKIP_REASON ||
    provided('millraceBrowserSkipReason') ||
    'no browser: MILLRACE_BROWSER_EXECUTABLE is not set and the test setup did not provide Chromium';
  if (process.env.CI === 'true') {
    throw new Error(`A browser is required when CI=true, but ${reason}`);
  }
  return reason;
}

/**
 * A `describe` block that runs with a browser available, or is skipped with the reason in its title when there is
 * none (and fails with `CI=true`).
 */
export function describeWithBrowser(name: string, body: (executablePath: string) => void): void {
  const reason = browserSkipReason();
  const executablePath = browserExecutablePath();
  if (reason || !executablePath) {
    describe.skip(name, () => {
      test(`needs Chromium (skipped: ${reason})`, () => {});
    });
    return;
  }
  describe(name, () => body(executablePath));
}

/** Launches the tests' headless Chromium; the caller closes it. */
export async function launchBrowser(): Promise<Browser> {
  const executablePath = browserExecutablePath();
  if (!executablePath) {
    throw new Error(`launchBrowser: ${browserSkipReason() ?? 'no browser'} (use it inside describeWithBrowser)`);
  }
  return chromium.launch({ executablePath, args: [...CHROMIUM_ARGS] });
}

/**
 * Collects what the page reports as errors from now on: `console.error` calls (and the browser's own error lines,
 * such as a failed resource load) and uncaught exceptions. Returns a getter of the lines so far, each prefixed
 * `console.error:` or `pageerror:`; attach it before `goto` so that errors during loading are caught.
 */
export function watchConsoleErrors(page: Page): () => string[] {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const { url, lineNumber } = message.location();
    errors.push(`console.error: ${message.text()}${url ? ` (${url}:${lineNumber + 1})` : ''}`);
  });
  page.on('pageerror', (error) => {
    errors.push(`pageerror: ${error.message}`);
  });
  return () => [...errors];
}

let axeSource: Promise<string> | undefined;

/** axe-core's minified build, read once per worker. */
function loadAxeSource(): Promise<string> {
  // require.resolve finds the package wherever npm put it; its main entry sits next to the minified build.
  axeSource ??= readFile(join(dirname(createRequire(import.meta.url).resolve('axe-core')), 'axe.min.js'), 'utf8');
  return axeSource;
}

/**
 * Runs axe-core's WCAG 2 A/AA rules on the page as it is now and returns the violations that are serious or
 * critical (an empty array when there are none). Run it after the page has settled: axe sees the current DOM.
 */
export async function axeScan(page: Page): Promise<AxeResult[]> {
  await page.addScriptTag({ content: await loadAxeSource() });
  const options: RunOptions = { runOnly: { type: 'tag', values: AXE_TAGS }, resultTypes: ['violations'] };
  // The function runs in the page, where `axe` and `document` are globals; the repo's TypeScript has no DOM lib.
  const results = await page.evaluate(async (runOptions: RunOptions) => {
    const pageGlobals = globalThis as unknown as {
      axe: { run(context: unknown, options: RunOptions): Promise<AxeResults> };
      document: unknown;
    };
    return pageGlobals.axe.run(pageGlobals.document, runOptions);
  }, options);
  return results.violations.filter((violation) => AXE_FAILING_IMPACTS.has(violation.impact ?? ''));
}

/**
 * Saves a full-page PNG as `test-artifacts/screenshots/<name>.png` and returns its path. `name` is a file name
 * (letters, digits, `.`, `_`, `-`), so a test cannot write outside the directory.
 */
export async function screenshot(page: Page, name: string): Promise<string> {
  if (!/^[\w.-]+$/.test(name) || name.startsWith('.')) {
    throw new Error(`screenshot: "${name}" is not a plain file name (letters, digits, ".", "_", "-")`);
  }
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
