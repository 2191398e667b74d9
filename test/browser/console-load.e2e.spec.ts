/**
 * The console under load and across a crash: `millrace up --demo` runs the ML pipeline with the demo's traffic at
 * its full rate while Chromium loads the console again and again, and each load shows live numbers that keep
 * moving; then the engine is killed (SIGKILL) and started again on the same data, and the page that was open —
 * never reloaded — says the engine is unreachable, then recovers and updates again, and a fresh load works too.
 * Load and update times are printed; the bounds are the waits' generous timeouts, not timing assertions.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MillraceClient } from '../../engine/cli/client.js';
import { describeWithBrowser, launchBrowser, screenshot, watchConsoleErrors } from '../support/browser.js';
import { freePort, startEngine, type EngineProcess } from '../support/engine-process.js';
import { pipelineTestConfig } from '../support/pipeline.js';
import { tempDir } from '../support/runtime.js';
import { describeWithTrainer } from '../support/trainer.js';

const say = (line: string): void => void process.stdout.write(`[console-load] ${line}\n`);
const numberIn = (text: string): number => Number(text.replace(/[^0-9.-]/g, ''));

/** Waits for the overview's processed counter to show a number, then for it to change; answers both times. */
async function loadsAndUpdates(page: Page): Promise<{ shownMs: number; updatedMs: number }> {
  const started = Date.now();
  const counter = page.getByTestId('total-processed');
  await counter.waitFor({ timeout: 30_000 });
  let first = '';
  await expect.poll(async () => (first = (await counter.innerText()).trim()), { timeout: 30_000, interval: 100 }).toMatch(/^[\d,]+$/);
  const shownMs = Date.now() - started;
  await expect.poll(async () => numberIn(await counter.innerText()), { timeout: 30_000, interval: 100 }).not.toBe(numberIn(first));
  return { shownMs, updatedMs: Date.now() - started };
}

async function processed(client: MillraceClient): Promise<number> {
  const status = await client.status();
  return status.applications.reduce((n, a) => n + a.tasks.reduce((m, t) => m + t.processed, 0), 0);
}

describeWithBrowser('the ops console under load', () => {
  describeWithTrainer('with the demo running', (python) => {
    let engine: EngineProcess | undefined;
    let browser: Browser | undefined;
    let dir: Awaited<ReturnType<typeof tempDir>> | undefined;
    let config = '';
    let port = 0;

    const start = async (): Promise<EngineProcess> =>
      startEngine({ config, dataDir: join(dir!.path, 'data'), port, timeoutMs: 120_000, args: ['--demo'] });

    beforeAll(async () => {
      dir = await tempDir('millrace-console-load-');
      config = join(dir.path, 'millrace.config.json');
      await writeFile(config, JSON.stringify(pipelineTestConfig({ python })));
      port = await freePort();
      engine = await start();
      browser = await launchBrowser();
    }, 180_000);

    afterAll(async () => {
      await browser?.close();
      await engine?.kill('SIGTERM');
      await dir?.remove();
    });

    it('loads and updates while the demo runs at full rate, and recovers by itself after the engine restarts', { timeout: 900_000 }, async () => {
      const client = new MillraceClient(engine!.url);
      await expect.poll(() => processed(client), { timeout: 60_000, interval: 500 }).toBeGreaterThan(1_000);

      // Fresh loads, a few seconds apart, while the traffic flows: each shows numbers, and they move.
      for (let i = 0; i < 4; i++) {
        const page = await browser!.newPage();
        const errors = watchConsoleErrors(page);
        await page.goto(`${engine!.url}/console`);
        const { shownMs, updatedMs } = await loadsAndUpdates(page);
        say(`load ${i + 1} under load: numbers after ${shownMs} ms, an update after ${updatedMs} ms (engine: ${await processed(client)} records processed)`);
        for (const view of ['/topologies/features', '/lag', '/time']) {
          await page.goto(`${engine!.url}/console${view}`);
          await page.locator('main h1').waitFor({ timeout: 30_000 });
          await page.locator('table tbody tr').first().waitFor({ timeout: 30_000 });
        }
        if (i === 0) await screenshot(page, 'console-under-load');
        expect(errors()).toEqual([]);
        await page.close();
        await new Promise((resolve) => setTimeout(resolve, 5_000));
      }

      // The engine dies under the open page; the page says so, and keeps what it showed.
      const page = await browser!.newPage();
      const errors = watchConsoleErrors(page);
      await page.goto(`${engine!.url}/console`);
      await loadsAndUpdates(page);
      expect(await engine!.kill('SIGKILL')).toBe('SIGKILL');
      const down = Date.now();
      await page.getByText('engine unreachable').waitFor({ timeout: 30_000 });
      say(`the page showed the engine unreachable ${Date.now() - down} ms after the kill`);
      expect(numberIn(await page.getByTestId('total-processed').innerText())).toBeGreaterThan(0);
      await screenshot(page, 'console-engine-down');

      // Started again on the same data and port: the same page reconnects and updates, with no reload.
      engine = await start();
      const up = Date.now();
      await page.getByTestId('connection').getByText('connected', { exact: true }).waitFor({ timeout: 60_000 });
      const before = numberIn(await page.getByTestId('total-processed').innerText());
      await expect.poll(async () => numberIn(await page.getByTestId('total-processed').innerText()), { timeout: 60_000, interval: 200 }).not.toBe(before);
      say(`the open page reconnected and updated ${Date.now() - up} ms after the restart`);
      await screenshot(page, 'console-engine-restarted');
      // Failed requests while the engine was down are logged by the browser; nothing the console ran threw.
      expect(errors().filter((e) => e.startsWith('pageerror:'))).toEqual([]);

      const fresh = await browser!.newPage();
      const freshErrors = watchConsoleErrors(fresh);
      await fresh.goto(`${engine.url}/console`);
      const { shownMs, updatedMs } = await loadsAndUpdates(fresh);
      say(`a fresh load after the restart: numbers after ${shownMs} ms, an update after ${updatedMs} ms`);
      expect(freshErrors()).toEqual([]);
    });
  });
});
