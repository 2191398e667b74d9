/**
 * The ops console end to end, in Debian's Chromium, on the ML pipeline run by `millrace up` with the real trainer:
 * the console shows the topology; counters move while events flow and then agree with `/status` and `/metrics`;
 * a dead letter is redriven from the console (checked outside the browser: one new record, one audit event); a
 * prediction's lineage leads to its input events; a replay is stepped through; a canary is promoted from the
 * console (checked through `GET /models` and the audit log). Every view passes an axe scan with no serious
 * violation, the page logs no error, and each step leaves a screenshot in test-artifacts/screenshots.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MillraceClient } from '../../engine/cli/client.js';
import type { ModelView } from '../../engine/ml/model-service.js';
import { FRAUD_MODEL, Topics } from '../../topologies/pipeline/contract.js';
import { axeScan, describeWithBrowser, launchBrowser, screenshot, watchConsoleErrors } from '../support/browser.js';
import { EMPTY_CONFIG, freePort, startEngine, type EngineProcess } from '../support/engine-process.js';
import { DRIFT_AT, FIRST_MODEL_AT, HOUR, MINUTE, pipelineTestConfig, pipelineTraffic, totalLag, until } from '../support/pipeline.js';
import { tempDir } from '../support/runtime.js';
import { describeWithTrainer } from '../support/trainer.js';

const say = (line: string): void => void process.stdout.write(`[console] ${line}\n`);

interface Checks {
  readonly violations: string[];
}

/** Opens a view by its deep link and waits for its heading. */
async function visit(page: Page, base: string, path: string): Promise<void> {
  await page.goto(`${base}/console${path}`);
  await page.locator('main h1').first().waitFor();
}

/** An axe scan and a screenshot of the page as it is. */
async function record(page: Page, name: string, checks: Checks): Promise<void> {
  const violations = await axeScan(page);
  for (const v of violations) checks.violations.push(`${name}: ${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')}`);
  await screenshot(page, `console-${name}`);
}

async function textOf(page: Page, testId: string): Promise<string> {
  return (await page.getByTestId(testId).first().innerText()).trim();
}

const numberIn = (text: string): number => Number(text.replace(/[^0-9.-]/g, ''));

async function sumMetric(base: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** Waits until `probe` holds, polling; fails with what it last saw. */
async function eventually(what: string, timeoutMs: number, probe: () => Promise<boolean | string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: boolean | string = false;
  while (Date.now() < deadline) {
    last = await probe();
    if (last === true) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${what}: still not so after ${timeoutMs / 1000} s${typeof last === 'string' ? ` (${last})` : ''}`);
}

describeWithBrowser('the ops console', () => {
  describeWithTrainer('on the ML pipeline', (python) => {
    let engine: EngineProcess | undefined;
    let browser: Browser | undefined;
    let removeDir: (() => Promise<void>) | undefined;

    beforeAll(async () => {
      const dir = await tempDir('millrace-console-');
      removeDir = () => dir.remove();
      const config = join(dir.path, 'millrace.config.json');
      await writeFile(config, JSON.stringify(pipelineTestConfig({ python })));
      engine = await startEngine({ config, dataDir: join(dir.path, 'data'), port: await freePort(), timeoutMs: 120_000 });
      browser = await launchBrowser();
    }, 180_000);

    afterAll(async () => {
      await browser?.close();
      await engine?.kill('SIGTERM');
      await removeDir?.();
    });

    it('shows the topology and live counters that match the API, redrives a dead letter, follows lineage, steps a replay and promotes a canary', { timeout: 1_800_000 }, async () => {
      const base = engine!.url;
      const client = new MillraceClient(base);
      const page = await browser!.newPage({ viewport: { width: 1400, height: 900 } });
      const errors = watchConsoleErrors(page);
      const checks: Checks = { violations: [] };
      const traffic = pipelineTraffic(client, say);
      const fraud = async (): Promise<ModelView | undefined> => (await client.request<{ models: ModelView[] }>('GET', '/models')).models.find((m) => m.name === FRAUD_MODEL);

      // The overview, then the features topology drawn from describe().
      await visit(page, base, '/');
      await page.getByTestId('app-row-features').waitFor();
      await record(page, 'overview-idle', checks);
      await page.getByRole('link', { name: 'features', exact: true }).click();
      await page.getByTestId('topology-graph').waitFor();
      const nodes = page.locator('[data-testid^="graph-node-"]');
      await eventually('the graph shows every node of features and its topics', 10_000, async () => (await nodes.count()) >= 5);
      await page.getByTestId('graph-node-compute').click();
      await record(page, 'topology-features', checks);

      // Events flow: the counters on the page move without a reload.
      await visit(page, base, '/');
      const before = numberIn(await textOf(page, 'total-processed'));
      const sending = traffic.sendUntil(FIRST_MODEL_AT);
      await eventually('the processed counter moves while events flow', 60_000, async () => numberIn(await textOf(page, 'total-processed')) > before);
      await record(page, 'overview-busy', checks);
      await sending;
      const first = await until('the first model to be promoted', 8 * MINUTE, async () => (await fraud())?.stable ?? undefined, engine!);
      say(`first model: ${first}`);
      await until('the pipeline to catch up', 5 * MINUTE, async () => ((await totalLag(client)) === 0 ? true : undefined), engine!);

      // With the log quiet, what the page shows is what the API and /metrics say (the page refreshes every 2 s).
      for (const app of ['ingest', 'features', 'scoring']) {
        await eventually(`${app}: processed on the page equals /status`, 20_000, async () => {
          const status = await client.status();
          const processed = status.applications.find((a) => a.applicationId === app)!.tasks.reduce((n, t) => n + t.processed, 0);
          const shown = numberIn(await textOf(page, `app-processed-${app}`));
          return shown === processed || `page ${shown}, /status ${processed}`;
        });
        await eventually(`${app}: records in on the page equals /metrics`, 20_000, async () => {
          const metric = await sumMetric(base, 'millrace_records_in_total', { application: app });
          const shown = numberIn(await textOf(page, `app-records-in-${app}`));
          return shown === metric || `page ${shown}, /metrics ${metric}`;
        });
      }
      await record(page, 'overview-settled', checks);
      await visit(page, base, '/lag');
      await record(page, 'lag', checks);
      await visit(page, base, '/time');
      await record(page, 'event-time', checks);

      // A dead letter from before the first model (scoring had none to use): redrive it from the console.
      const featureEnds = async (): Promise<number> => (await client.request<{ offsets: Array<{ end: number }> }>('GET', `/topics/${Topics.features}`)).offsets.reduce((n, o) => n + o.end, 0);
      const auditCount = async (): Promise<number> => (await client.request<{ events: unknown[] }>('GET', '/audit', { query: { limit: 1000 } })).events.length;
      const endsBefore = await featureEnds();
      const auditBefore = await auditCount();
      await visit(page, base, '/dead-letters');
      await page.getByTestId(`dlq-topic-${Topics.features}.dlq`).click();
      const redrive = page.locator('[data-testid^="redrive-"]').first();
      await redrive.waitFor();
      await record(page, 'dead-letters', checks);
      await redrive.click();
      await page.getByTestId('confirm-action').waitFor();
      await record(page, 'dead-letters-confirm', checks);
      await page.getByTestId('confirm-action').click();
      await page.getByTestId('action-result').waitFor();
      await record(page, 'dead-letters-redriven', checks);
      expect(await featureEnds(), 'records appended to features by the redrive').toBe(endsBefore + 1);
      expect(await auditCount(), 'audit events written by the redrive').toBe(auditBefore + 1);
      await visit(page, base, '/audit');
      await page.getByTestId('audit-row').first().waitFor();
      await record(page, 'audit', checks);

      // A prediction's lineage: open a prediction in the topic browser, then follow it to its input events.
      const predictions = await client.request<{ offsets: Array<{ partition: number; start: number; end: number }> }>('GET', `/topics/${Topics.predictions}`);
      const filled = predictions.offsets.find((o) => o.end > o.start)!;
      await visit(page, base, `/topics/${Topics.predictions}`);
      await record(page, 'topic-predictions', checks);
      await visit(page, base, `/topics/${Topics.predictions}/${filled.partition}/${filled.start}`);
      await page.getByTestId('open-lineage').click();
      const linked = page.getByTestId('lineage-record');
      await eventually('the lineage lists the prediction, its features and its transaction', 15_000, async () => (await linked.count()) >= 3);
      const lineageText = (await linked.allInnerTexts()).join('\n');
      expect(lineageText).toContain(Topics.features);
      expect(lineageText).toContain(Topics.transactions);
      await record(page, 'lineage', checks);

      // Drifted traffic until the retrained model serves as a canary; then no more traffic, so it stays one.
      await traffic.sendUntil(DRIFT_AT);
      await traffic.sendUntil(DRIFT_AT + 2 * HOUR);
      const canary = await until('a retrained model to start as a canary', 10 * MINUTE, async () => (await fraud())?.canary?.version ?? undefined, engine!);
      say(`canary: ${canary}`);
      await visit(page, base, '/drift');
      await page.locator('figure.chart').first().waitFor({ timeout: 30_000 });
      await record(page, 'drift', checks);

      // A replay of a projection, stepped through record by record.
      await visit(page, base, '/replays');
      await startReplayFromConsole(page);
      await page.getByTestId('step-next').waitFor({ timeout: 60_000 });
      const firstIndex = await textOf(page, 'step-index');
      await page.getByTestId('step-next').click();
      await eventually('the next step shows', 10_000, async () => (await textOf(page, 'step-index')) !== firstIndex);
      await record(page, 'replay-step', checks);

      // The projection query box.
      await visit(page, base, '/query');
      await record(page, 'query', checks);

      // Promote the canary from the console, confirmed and audited.
      const auditBeforePromote = await auditCount();
      await visit(page, base, '/models');
      await page.getByTestId(`promote-${canary}`).click();
      await page.getByTestId('confirm-action').waitFor();
      await record(page, 'models-confirm', checks);
      await page.getByTestId('confirm-action').click();
      await page.getByTestId('action-result').waitFor();
      await eventually('the registry serves the promoted version', 30_000, async () => (await fraud())?.stable === canary);
      expect(await auditCount()).toBe(auditBeforePromote + 1);
      await record(page, 'models-promoted', checks);

      expect(checks.violations, 'serious accessibility violations').toEqual([]);
      expect(errors(), 'errors in the browser console').toEqual([]);
      await page.close();
    });
  });
});

/** Starts a replay of the `user-risk` projection over its whole log from the replays view, and opens it. */
async function startReplayFromConsole(page: Page): Promise<void> {
  await page.getByLabel('Projection').selectOption('user-risk');
  await page.getByRole('button', { name: /start replay/i }).click();
  await page.waitForURL(/\/console\/replays\/[^/]+/);
}

describeWithBrowser('the ops console in read-only mode', () => {
  it('offers no action', { timeout: 120_000 }, async () => {
    const dir = await tempDir('millrace-console-ro-');
    const engine = await startEngine({ config: EMPTY_CONFIG, dataDir: join(dir.path, 'data'), port: await freePort(), args: ['--console-read-only'] });
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage();
      const errors = watchConsoleErrors(page);
      expect(await (await fetch(`${engine.url}/console/config.json`)).json()).toEqual({ readOnly: true });
      // A dead letter to show: in a writable console its row would carry Redrive and Skip.
      const client = new MillraceClient(engine.url);
      await client.request('POST', '/topics', { body: { name: 'payments', partitions: 1 } });
      await client.request('POST', '/topics', { body: { name: 'payments.dlq', partitions: 1 } });
      await client.request('POST', '/topics/payments.dlq/events', { body: { key: 'k', value: { detail: 'bad amount' }, headers: { 'millrace.dlq.code': 'MILLRACE_HTTP_VALIDATION', 'millrace.source.topic': 'payments', 'millrace.source.partition': '0', 'millrace.source.offset': '0' } } });
      for (const view of ['/dead-letters', '/dead-letters/payments.dlq', '/models', '/replays', '/query']) {
        await visit(page, engine.url, view);
        await page.getByText('read-only', { exact: true }).waitFor();
        // Give the view time to fetch and draw; then no control that acts may be on it.
        await page.waitForLoadState('networkidle');
        const actions = page.locator('[data-testid^="redrive-"], [data-testid^="skip-"], [data-testid^="promote-"], [data-testid^="rollback-"], [data-testid="start-replay"]');
        expect(await actions.count(), view).toBe(0);
      }
      await page.getByTestId('connection').waitFor();
      expect(errors()).toEqual([]);
    } finally {
      await browser.close();
      await engine.kill('SIGTERM');
      await dir.remove();
    }
  });
});
