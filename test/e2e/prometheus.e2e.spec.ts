/**
 * Debian's Prometheus scrapes a running engine, and a PromQL query returns a Millrace metric: the records a
 * topology read, as many as were produced. The shipped config and alert rules pass `promtool check`, and the alert
 * rules' unit tests (`docker/alerts.test.yml`) pass.
 *
 * `test/infra/prometheus install` installs the Debian package when it is missing (as root). Where it cannot (exit 3:
 * not root, no apt, the package cannot be fetched) the test is skipped with the reason, and fails under CI=true.
 * `MILLRACE_PROMETHEUS=off` skips it on purpose (and fails under CI=true).
 */
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, REPO_ROOT, requireBuild, startEngine, type EngineProcess } from '../support/engine-process.js';
import { tempDir } from '../support/runtime.js';

const SCRIPT = join(REPO_ROOT, 'test', 'infra', 'prometheus');
const DOCKER_DIR = join(REPO_ROOT, 'docker');
const EVENTS = 1_000;
const JOB = 'millrace';
/** Scrapes are every second and a new target is picked up within about 5 s: 600 polls 100 ms apart is plenty. */
const MAX_POLLS = 600;
const POLL_INTERVAL_MS = 100;
/** The script's exit code for a missing prerequisite. */
const EXIT_MISSING = 3;

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync('bash', [SCRIPT, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 600_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function notUnderCi(reason: string): string {
  if (process.env['CI'] === 'true') throw new Error(`Prometheus is required when CI=true, but ${reason}`);
  return reason;
}

/**
 * Installs Prometheus when it can; otherwise the reason it cannot (with CI=true, an error instead). Any failure
 * other than a missing prerequisite is an error too: the script is broken, not the machine.
 */
function prometheusSkipReason(): string | undefined {
  if (process.env['MILLRACE_PROMETHEUS'] === 'off') return notUnderCi('MILLRACE_PROMETHEUS=off');
  const installed = run(['install']);
  if (installed.code === 0) return undefined;
  if (installed.code === EXIT_MISSING) {
    return notUnderCi(/missing prerequisite: (.*)/.exec(installed.stderr)?.[1] ?? installed.stderr.trim().split('\n').slice(-1)[0]!);
  }
  throw new Error(`test/infra/prometheus install exited ${installed.code ?? 'by a signal'}:\n${installed.stderr}`);
}

function promtool(args: string[]): { code: number | null; output: string } {
  // From docker/, so rule_files: [alerts.yml] resolves as it does in a container.
  const result = spawnSync('promtool', args, { cwd: DOCKER_DIR, encoding: 'utf8', timeout: 60_000 });
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

const reason = prometheusSkipReason();

describe.skipIf(reason !== undefined)(`Prometheus scrapes a running engine${reason === undefined ? '' : ` (skipped: ${reason})`}`, () => {
  let dir: Awaited<ReturnType<typeof tempDir>> | undefined;
  let engine: EngineProcess | undefined;
  let prometheusUrl = '';
  // The script's run dir and port: a free port, and an infra dir of this test's own, so a developer's Prometheus on
  // the default port is left alone.
  let prometheusEnv: NodeJS.ProcessEnv = {};

  beforeAll(async () => {
    requireBuild();
    dir = await tempDir('millrace-prometheus-');
    prometheusEnv = {
      MILLRACE_PROMETHEUS_PORT: String(await freePort()),
      MILLRACE_INFRA_DIR: join(dir.path, 'infra'),
      MILLRACE_PROMETHEUS_STARTED_BY: 'vitest',
    };
    const configFile = join(dir.path, 'millrace.config.json');
    // One input partition: one task, so the query below answers one series.
    await writeFile(
      configFile,
      JSON.stringify({
        topics: [{ name: 'events', partitions: 1 }, { name: 'event-counts', partitions: 1 }],
        topologies: [{ module: 'examples/keyed-count', options: { input: 'events', output: 'event-counts' } }],
      }),
    );
    engine = await startEngine({ config: configFile, dataDir: join(dir.path, 'data'), port: await freePort() });
    const records = Array.from({ length: EVENTS }, (_, i) => ({ key: `k${i % 13}`, value: { i } }));
    const produced = await fetch(`${engine.url}/topics/events/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records }),
    });
    await produced.arrayBuffer();
    expect(produced.status).toBe(200);

    const scrapeConfig = join(dir.path, 'prometheus.yml');
    await writeFile(
      scrapeConfig,
      [
        'global:',
        '  scrape_interval: 1s',
        'scrape_configs:',
        `  - job_name: ${JOB}`,
        '    metrics_path: /metrics',
        '    static_configs:',
        `      - targets: ["${new URL(engine.url).host}"]`,
        '',
      ].join('\n'),
    );
    const started = run(['start', scrapeConfig], prometheusEnv);
    if (started.code !== 0) throw new Error(`test/infra/prometheus start exited ${started.code}:\n${started.stderr}`);
    prometheusUrl = started.stdout.trim().split('\n').pop()!;
  }, 180_000);

  afterAll(async () => {
    if (dir !== undefined) {
      const stopped = run(['stop'], prometheusEnv);
      if (stopped.code !== 0) console.error(`test/infra/prometheus stop exited ${stopped.code}:\n${stopped.stderr}`);
    }
    await engine?.kill('SIGTERM');
    await dir?.remove();
  });

  async function query(promql: string): Promise<Sample[]> {
    const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await response.json()) as { status: string; error?: string; data: { result: Sample[] } };
    expect(body.status, body.error).toBe('success');
    return body.data.result;
  }

  /** Polls until `done` holds for the answer, a bounded number of times; returns the last answer either way. */
  async function poll(promql: string, done: (answer: Sample[]) => boolean): Promise<Sample[]> {
    let answer: Sample[] = [];
    for (let i = 0; i < MAX_POLLS; i++) {
      answer = await query(promql);
      if (done(answer)) break;
      await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    }
    return answer;
  }

  it('answers a PromQL query with the records the engine read, as many as were produced', async () => {
    const promql = 'millrace_records_in_total{application="keyed-count"}';
    const answer = await poll(promql, (samples) => samples[0]?.value[1] === String(EVENTS));
    console.log(`${promql} → ${JSON.stringify(answer)}`);
    expect(answer).toHaveLength(1);
    expect(answer[0]!.metric).toMatchObject({ __name__: 'millrace_records_in_total', application: 'keyed-count', topic: 'events', job: JOB });
    expect(answer[0]!.value[1]).toBe(String(EVENTS));

    const up = await query(`up{job="${JOB}"}`);
    console.log(`up{job="${JOB}"} → ${JSON.stringify(up)}`);
    expect(up.map((sample) => sample.value[1])).toEqual(['1']);
    // The histogram the latency alert reads and the gauge the lag alert reads come through too (polled: a scrape may
    // fall between a record being read and the checkpoint that moves the lag).
    const latency = await poll('sum(millrace_record_latency_seconds_count{application="keyed-count"})', (samples) => Number(samples[0]?.value[1]) > 0);
    expect(Number(latency[0]?.value[1])).toBeGreaterThan(0);
    const lag = await poll('sum(millrace_consumer_lag_records{application="keyed-count"})', (samples) => samples[0]?.value[1] === '0');
    expect(lag[0]?.value[1]).toBe('0');
  }, 120_000);

  it('ships a valid config and alert rules that fire as their unit tests say', () => {
    for (const args of [['check', 'config', 'prometheus.yml'], ['check', 'rules', 'alerts.yml'], ['test', 'rules', 'alerts.test.yml']]) {
      const result = promtool(args);
      expect(result.code, `promtool ${args.join(' ')}:\n${result.output}`).toBe(0);
    }
  });
});
