/**
 * Time travel on a real engine process, through the HTTP API and the CLI:
 * - `millrace query` answers keys, scans and `--as-of` moments;
 * - for random moments T, a replay of the log up to T (a fresh build from the start) differs from `asOf=T` in no key;
 * - `millrace replay --code FILE` with changed handler code prints a diff naming exactly the keys the change affects;
 * - while a replay of the whole log runs, live keeps following new events: its lag is printed (before and during),
 *   not asserted against a time.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProjectionDefinition } from '../../engine/projections/projection.js';
import { ProjectionTestDriver } from '../../engine/testing/projection-test-driver.js';
import { CLI, freePort, REPO_ROOT, requireBuild, seededRandom, startEngine, type EngineProcess } from '../support/engine-process.js';
import { tempDir } from '../support/runtime.js';

const LEDGER = join(REPO_ROOT, 'test', 'fixtures', 'projections', 'ledger.mjs');
const PARTITIONS = 4;
const ACCOUNTS = 300;
const EVENTS = 80_000;
const BATCH = 2_000;
const START_MS = Date.parse('2026-11-01T00:00:00Z');
/** One event a second of event time. */
const STEP_MS = 1_000;
const SEED = Number(process.env['MILLRACE_REPLAY_SEED'] ?? Date.now() % 1_000_000);

/** The changed code: refunds… here, amounts that are multiples of 50 on accounts ending in 7, are ignored. */
const CHANGED_CODE = `
import ledger from ${JSON.stringify(LEDGER)};
export default {
  ...ledger,
  async handle(event, ctx) {
    if (event.value.account.endsWith('7') && event.value.amount % 50 === 0) return;
    return ledger.handle(event, ctx);
  },
};
`;

interface Cli {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], url: string): Promise<Cli> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, '--url', url], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function json<T>(url: string, init?: RequestInit): Promise<T> {
  const response = await fetch(url, init);
  const body = (await response.json()) as T;
  if (!response.ok) throw new Error(`${init?.method ?? 'GET'} ${url} answered ${response.status}: ${JSON.stringify(body)}`);
  return body;
}

const payment = (seq: number) => {
  const account = `acct-${String((seq * 7919) % ACCOUNTS).padStart(3, '0')}`;
  return { key: account, value: { account, amount: 1 + (seq % 97) }, timestamp: START_MS + seq * STEP_MS };
};

async function produce(url: string, from: number, count: number): Promise<void> {
  const records = Array.from({ length: count }, (_, i) => payment(from + i));
  await json(`${url}/topics/payments/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records }) });
}

interface ProjectionView {
  name: string;
  lag: number;
  partitions: Array<{ partition: number; position: number }>;
}

async function ledgerView(url: string): Promise<ProjectionView> {
  return (await json<{ projections: ProjectionView[] }>(`${url}/projections`)).projections.find((p) => p.name === 'ledger')!;
}

async function waitApplied(url: string): Promise<void> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    const ends = new Map((await json<{ offsets: Array<{ partition: number; end: number }> }>(`${url}/topics/payments`)).offsets.map((o) => [o.partition, o.end]));
    const view = await ledgerView(url);
    if (view.partitions.length === PARTITIONS && view.partitions.every((p) => p.position === ends.get(p.partition))) return;
    if (Date.now() > deadline) throw new Error(`not applied: ${JSON.stringify(view)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface ReplayView {
  id: string;
  state: string;
  progress: { records: number; total: number; percent: number };
}

async function replayToEnd(url: string, body: Record<string, unknown>): Promise<ReplayView> {
  let replay = await json<ReplayView>(`${url}/replays`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ projection: 'ledger', ...body }) });
  while (replay.state === 'running') {
    await new Promise((resolve) => setTimeout(resolve, 50));
    replay = await json<ReplayView>(`${url}/replays/${replay.id}`);
  }
  return replay;
}

async function wholeDiff(url: string, id: string): Promise<Array<{ key: string; change: string }>> {
  const entries: Array<{ key: string; change: string }> = [];
  let cursor: string | undefined;
  do {
    const page = await json<{ entries: Array<{ key: string; change: string }>; nextCursor?: string }>(
      `${url}/replays/${id}/diff?limit=200${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`,
    );
    entries.push(...page.entries);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return entries;
}

const percentile = (values: readonly number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
};

describe('time travel on a running engine', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let engine: EngineProcess;
  let codeFile: string;

  beforeAll(async () => {
    requireBuild();
    dir = await tempDir('millrace-replay-');
    const configFile = join(dir.path, 'millrace.config.json');
    codeFile = join(dir.path, 'changed-ledger.mjs');
    await writeFile(codeFile, CHANGED_CODE);
    await writeFile(configFile, JSON.stringify({ topics: [{ name: 'payments', partitions: PARTITIONS }], projections: [LEDGER], log: { maintenanceIntervalMs: 0 } }));
    engine = await startEngine({ config: configFile, dataDir: join(dir.path, 'data'), port: await freePort(), timeoutMs: 60_000 });
    for (let seq = 0; seq < EVENTS; seq += BATCH) await produce(engine.url, seq, BATCH);
    await waitApplied(engine.url);
  }, 600_000);

  afterAll(async () => {
    await engine?.kill('SIGTERM');
    await dir?.remove();
  });

  it('answers queries now and as of a moment, over HTTP and with millrace query', async () => {
    const key = payment(12_345).key;
    const now = await cli(['query', 'ledger', key], engine.url);
    expect(now.code, now.stderr).toBe(0);
    const latest = JSON.parse(now.stdout) as { count: number };
    const asOf = new Date(START_MS + 12_345 * STEP_MS).toISOString();
    const then = await cli(['query', 'ledger', key, '--as-of', asOf], engine.url);
    expect(then.code, then.stderr).toBe(0);
    expect((JSON.parse(then.stdout) as { count: number }).count).toBeLessThan(latest.count);
    // The value as of the moment of a payment includes it; as of a millisecond before, it does not.
    const before = await json<{ value: { count: number; last: number } }>(`${engine.url}/projections/ledger/${key}?asOf=${START_MS + 12_345 * STEP_MS - 1}`);
    expect((JSON.parse(then.stdout) as { count: number }).count).toBe(before.value.count + 1);

    const scan = await cli(['query', 'ledger', '--prefix', 'acct-00', '--all'], engine.url);
    expect(scan.code, scan.stderr).toBe(0);
    expect(scan.stdout.trim().split('\n').map((line) => (JSON.parse(line) as { key: string }).key)).toEqual(
      Array.from({ length: 10 }, (_, i) => `acct-00${i}`),
    );
    const listing = await cli(['query'], engine.url);
    expect(listing.stdout).toMatch(/^PROJECTION\s+STORE\s+NAMESPACE/);
    expect(listing.stdout).toMatch(/ledger\s+leveldb\s+live\s+caught-up\s+0\s+/);

    const metrics = await (await fetch(`${engine.url}/metrics`)).text();
    expect(metrics).toMatch(/millrace_projection_lag_records\{projection="ledger",topic="payments",partition="0"\} 0/);
    expect(metrics).toMatch(new RegExp(`millrace_projection_records_applied\\{projection="ledger"\\} ${EVENTS}`));

    const missing = await fetch(`${engine.url}/projections/ledger/nobody`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'MILLRACE_PROJECTION_KEY_ABSENT' });
    const badAsOf = await fetch(`${engine.url}/projections/ledger/${key}?asOf=yesterday`);
    expect(badAsOf.status).toBe(422);
    expect(badAsOf.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  }, 120_000);

  it('for random moments T, asOf=T differs in no key from a fresh replay of the log up to T', async () => {
    const random = seededRandom(SEED);
    for (let i = 0; i < 4; i++) {
      const t = START_MS + Math.floor(random() * EVENTS) * STEP_MS + Math.floor(random() * STEP_MS);
      const replay = await replayToEnd(engine.url, { to: new Date(t).toISOString() });
      expect(replay.state).toBe('finished');
      const diff = await wholeDiff(engine.url, replay.id);
      expect(diff, `T = ${new Date(t).toISOString()} (seed ${SEED})`).toEqual([]);
      // And the replay did build something: the total as of T counts every payment up to T.
      const steps = await json<{ steps: unknown[] }>(`${engine.url}/replays/${replay.id}/steps?limit=1`);
      expect(steps.steps).toHaveLength(1);
      const totals = await json<{ value: { count: number } }>(`${engine.url}/projections/ledger/_totals?asOf=${t}`);
      expect(totals.value.count).toBe(Math.floor((t - START_MS) / STEP_MS) + 1);
      await fetch(`${engine.url}/replays/${replay.id}`, { method: 'DELETE' });
    }
  }, 300_000);

  it('replays with changed code, printing a diff that names exactly the affected keys, while live keeps its lag bounded', async () => {
    // Expected: both codes over the same events, in memory.
    const ledger = (await import(LEDGER)).default as ProjectionDefinition;
    const changed = { ...ledger, handle: async (event: Parameters<ProjectionDefinition['handle']>[0], ctx: Parameters<ProjectionDefinition['handle']>[1]) => {
      const value = event.value as { account: string; amount: number };
      if (value.account.endsWith('7') && value.amount % 50 === 0) return;
      return ledger.handle(event, ctx);
    } };
    const [before, after] = [new ProjectionTestDriver(ledger), new ProjectionTestDriver(changed)];
    for (let seq = 0; seq < EVENTS; seq++) {
      const p = payment(seq);
      await before.pipe({ topic: 'payments', key: p.key, value: p.value, timestampMs: p.timestamp });
      await after.pipe({ topic: 'payments', key: p.key, value: p.value, timestampMs: p.timestamp });
    }
    const expected = before.entries().map(([k]) => k).filter((k) => JSON.stringify(before.get(k)) !== JSON.stringify(after.get(k)));
    expect(expected.length).toBeGreaterThan(0);
    expect(expected.length).toBeLessThan(ACCOUNTS);

    // Live load during the replay: new events (later in event time than the replay's end) at a steady pace.
    const lagBefore: number[] = [];
    for (let i = 0; i < 10; i++) {
      await produce(engine.url, EVENTS + i * 200, 200);
      lagBefore.push((await ledgerView(engine.url)).lag);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await waitApplied(engine.url);
    const end = new Date(START_MS + (EVENTS + 2_000 - 1) * STEP_MS).toISOString();
    const replaying = cli(['replay', '--projection', 'ledger', '--to', end, '--code', codeFile, '--json', '--max-diff', '1000'], engine.url);
    let done = false;
    void replaying.then(() => (done = true));
    const lagDuring: number[] = [];
    let next = EVENTS + 2_000;
    while (!done) {
      await produce(engine.url, next, 200);
      next += 200;
      lagDuring.push((await ledgerView(engine.url)).lag);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const result = await replaying;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/replay \S+: \d+(\.\d+)?% \(\d+\/\d+ records/);
    const printed = JSON.parse(result.stdout) as { replay: { state: string; progress: { total: number } }; diff: { entries: Array<{ key: string; change: string }>; truncated: boolean } };
    expect(printed.replay.state).toBe('finished');
    expect(printed.diff.truncated).toBe(false);
    expect(printed.diff.entries.map((e) => e.key)).toEqual(expected);
    expect(printed.diff.entries.every((e) => e.change === 'changed')).toBe(true);
    await waitApplied(engine.url);

    console.log(
      `live lag while idle: p50 ${percentile(lagBefore, 50)}, max ${Math.max(...lagBefore)} records; ` +
        `during a replay of ${printed.replay.progress.total} records (${lagDuring.length} samples, ${next - EVENTS - 2_000} new events): ` +
        `p50 ${percentile(lagDuring, 50)}, p95 ${percentile(lagDuring, 95)}, max ${Math.max(...lagDuring)} records`,
    );
    expect(lagDuring.length).toBeGreaterThan(0);
  }, 600_000);
});
