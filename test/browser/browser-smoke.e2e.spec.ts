/**
 * The browser helpers against a real headless Chromium: a page served over HTTP from 127.0.0.1 is clicked, checked
 * for console errors and accessibility, and photographed. The negative cases make sure the checks can fail: a
 * helper that never reports anything would let every browser test pass.
 */
import { createServer, type Server } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, expect, test } from 'vitest';
import { axeScan, describeWithBrowser, launchBrowser, screenshot, SCREENSHOT_DIR, watchConsoleErrors } from '../support/browser.js';

// The empty data: favicon stops Chromium from requesting /favicon.ico, whose 404 it would log as a console error.
const COUNTER_PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Counter</title>
  <link rel="icon" href="data:,">
</head>
<body>
  <main>
    <h1>Counter</h1>
    <p id="count" role="status">Clicked 0 times</p>
    <button type="button" id="increment">Add one</button>
  </main>
  <script>
    let clicks = 0;
    const count = document.getElementById('count');
    document.getElementById('increment').addEventListener('click', () => {
      clicks += 1;
      count.textContent = 'Clicked ' + clicks + (clicks === 1 ? ' time' : ' times');
    });
  </script>
</body>
</html>`;

const ERRORS_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Errors</title><link rel="icon" href="data:,"></head>
<body>
  <main><h1>Errors</h1></main>
  <script>
    console.error('boom from the page');
    setTimeout(() => { throw new Error('uncaught from the page'); }, 0);
  </script>
</body>
</html>`;

// No lang on <html>, an image without alt text and a button without a name: serious and critical WCAG 2 A failures.
const INACCESSIBLE_PAGE = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>Inaccessible</title><link rel="icon" href="data:,"></head>
<body>
  <main>
    <h1>Inaccessible</h1>
    <img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" width="10" height="10">
    <button type="button"></button>
  </main>
</body>
</html>`;

const PAGES: Record<string, string> = { '/': COUNTER_PAGE, '/errors': ERRORS_PAGE, '/inaccessible': INACCESSIBLE_PAGE };

function servePages(): Promise<{ server: Server; origin: string }> {
  const server = createServer((request, response) => {
    const body = PAGES[request.url ?? ''];
    if (body === undefined) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // Port 0: the OS picks a free one, so parallel runs and other servers do not collide.
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ server, origin: `http://127.0.0.1:${port}` });
    });
  });
}

describeWithBrowser('browser smoke test', () => {
  let server: Server;
  let origin: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    ({ server, origin } = await servePages());
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  // A fresh context per test: no cookies, storage or listeners carry over.
  beforeEach(async () => {
    context = await browser.newContext();
    page = await context.newPage();
  });

  afterEach(async () => {
    await context?.close();
  });

  test('a click updates the counter, with no console errors or serious accessibility violations', async () => {
    const consoleErrors = watchConsoleErrors(page);
    await page.goto(`${origin}/`);
    const count = page.locator('#count');
    expect(await count.textContent()).toBe('Clicked 0 times');

    await page.getByRole('button', { name: 'Add one' }).click();
    expect(await count.textContent()).toBe('Clicked 1 time');
    await page.getByRole('button', { name: 'Add one' }).click();
    expect(await count.textContent()).toBe('Clicked 2 times');

    expect(await axeScan(page)).toEqual([]);
    expect(consoleErrors()).toEqual([]);

    const path = await screenshot(page, 'browser-smoke-counter');
    expect(path).toBe(`${SCREENSHOT_DIR}/browser-smoke-counter.png`);
    expect((await stat(path)).size).toBeGreaterThan(0);
    // The PNG signature: the file is an image, not an empty or error file.
    expect((await readFile(path)).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  });

  test('watchConsoleErrors catches console.error and uncaught exceptions', async () => {
    const consoleErrors = watchConsoleErrors(page);
    await page.goto(`${origin}/errors`);
    // The exception is thrown from a timer after load, so wait for it rather than read once.
    await expect.poll(() => consoleErrors().length).toBe(2);
    expect(consoleErrors()).toEqual([
      expect.stringMatching(/^console\.error: boom from the page \(http:\/\/127\.0\.0\.1:\d+\/errors:\d+\)$/),
      'pageerror: uncaught from the page',
    ]);
  });

  test('axeScan reports serious and critical violations', async () => {
    await page.goto(`${origin}/inaccessible`);
    const violations = await axeScan(page);
    expect(violations.map((violation) => violation.id).sort()).toEqual(['button-name', 'html-has-lang', 'image-alt']);
    for (const violation of violations) expect(['serious', 'critical']).toContain(violation.impact);
  });
});
