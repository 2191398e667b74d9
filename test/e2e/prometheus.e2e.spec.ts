/**
 * Debian's Prometheus scrapes a running engine, and a PromQL query returns a Millrace metric: the records a
 * topology read, as many as were produced. The shipped alert rules pass `promtool check` and their unit tests.
 *
 * `test/infra/prometheus install` installs the Debian package when it is missing (as root); where it cannot, the
 * test is skipped with the reason, and fails under CI=true.
 */
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, REPO_ROOT, requireBuild, startEngine, type EngineProcess } from '../support/engine-process.js';
import { tempDir } from '../support/runtime.js';

const SCRIPT = join(REPO_ROOT, 'test', 'infra', 'prometheus');
const EVENTS = 1_000;

function run(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync('bash', [SCRIPT, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 600_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Installs Prometheus if it can; the reason it cannot otherwise (and with CI=true, a failure instead). */
function prometheusSkipReason(): string | undefined {
  if (process.env['MILLRACE_PROMETHEUS'] === 'off') return check('MILLRACE_PROMETHEUS=off');
  const installed = run(['install']);
  if (installed.code === 0) return undefined;
  return check(/missing prerequisite: (.*)/.exec(installed.stderr)?.[1] ?? `test/infra/prometheus install exited ${installed.code}: ${installed.stderr.trim().split('\n').slice(-3).join(' ')}`);
}

function check(reason: string): string {
  if (process.env['CI'] === 'true') throw new Error(`Prometheus is required when CI=true, but ${reason}`);
  return reason;
}

function promtool(args: string[]): { code: number | null; output: string } {
  const result = spawnSync('promtool', args, { cwd: join(REPO_ROOT, 'docker'), encoding: 'utf8', timeout: 60_000 });
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

const reason = prometheusSkipReason();

describe.skipIf(reason !== undefined)(`Prometheus scrapes a running engine${reason === undefined ? '' : ` (skipped: ${reason})`}`, () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let engine: EngineProcess | undefined;
  let prometheusUrl: string | undefined;
  let port = '';

  beforeAll(async () => {
    requireBuild();
    port = String(await freePort());
    dir = await tempDir('millrace-prometheus-');
    const configFile = join(dir.path, 'millrace.config.json');
    await writeFile(
      configFile,
      JSON.stringify({
        topics: [{ name: 'events', partitions: 2 }, { name: 'event-counts', partitions: 2 }],
        topologies: [{ module: 'examples/keyed-count', options: { input: 'events', output: 'event-counts' } }],
      }),
    );
    engine = await startEngine({ config: configFile, dataDir: join(dir.path, 'data'), port: await freePort() });
    const records = Array.from({ length: EVENTS }, (_, i) => ({ key: `k${i % 13}`, value: { i } }));
    const produced = await fetch(`${engine.url}/topics/events/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records }) });
    expect(produced.status).toBe(200);

    const target = new URL(engine.url).host;
    const scrapeConfig = join(dir.path, 'prometheus.yml');
    await writeFile(
      scrapeConfig,
      ['global:', '  scrape_interval: 1s', 'scrape_configs:', '  - job_name: millrace', '    metrics_path: /metrics', '    static_configs:', `      - targets: ["${target}"]`, ''].join('\n'),
    );
    const started = run(['start', scrapeConfig], { MILLRACE_PROMETHEUS_PORT: port, MILLRACE_INFRA_DIR: join(dir.path, 'infra') });
    if (started.code !== 0) throw new Error(`test/infra/prometheus start failed:\n${started.stderr}`);
    prometheusUrl = started.stdout.trim().split('\n').pop();
  }, 180_000);

  afterAll(async () => {
    if (dir !== undefined) run(['stop'], { MILLRACE_PROMETHEUS_PORT: port, MILLRACE_INFRA_DIR: join(dir.path, 'infra') });
    await engine?.kill('SIGTERM');
    await dir?.remove();
  });

  async function query(promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
    const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await response.json()) as { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    expect(body.status).toBe('success');
    return body.data.result;
  }

  it('answers a PromQL query with the records the engine read, as many as were produced', async () => {
    const promql = 'sum(millrace_records_in_total{application="keyed-count",topic="events"})';
    let answer: Awaited<ReturnType<typeof query>> = [];
    // Scrapes every second; targets are picked up within a few seconds.
    for (let i = 0; i < 600; i++) {
      answer = await query(promql);
      if (answer[0]?.value[1] === String(EVENTS)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    console.log(`${promql} → ${JSON.stringify(answer)}`);
    expect(answer[0]?.value[1]).toBe(String(EVENTS));
    expect((await query('up{job="millrace"}'))[0]?.value[1]).toBe('1');
    // Latency histograms and lag come through too.
    expect((await query('sum(millrace_record_latency_seconds_count{application="keyed-count"})'))[0]?.value[1]).not.toBe('0');
    expect((await query('sum(millrace_consumer_lag_records{application="keyed-count"})'))[0]?.value[1]).toBe('0');
  }, 120_000);

  it('ships a valid config and alert rules that fire as their unit tests say', () => {
    for (const args of [['check', 'config', 'prometheus.yml'], ['check', 'rules', 'alerts.yml'], ['test', 'rules', 'alerts.test.yml']]) {
      const result = promtool(args);
      expect(result.code, `promtool ${args.join(' ')}:\n${result.output}`).toBe(0);
    }
  });
});
