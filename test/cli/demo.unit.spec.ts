/**
 * `millrace demo generate` and the traffic it sends: option parsing through the command (no engine is contacted),
 * and `runDemoTraffic` against a recording stand-in for the HTTP client, on an injected wall clock.
 */
import { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { MillraceClient, ProduceRecord, ProduceResult } from '../../engine/cli/client.js';
import { demoCommand, generateTraffic, parseDriftAt, parseDuration, parseRate } from '../../engine/cli/commands/demo.js';
import { UsageError, type CliIo } from '../../engine/cli/commands/shared.js';
import { Topics, type Feedback, type Transaction } from '../../topologies/pipeline/contract.js';
import { DEFAULT_TIME_SCALE, runDemoTraffic, sendEvents, type DemoProgress, type DemoTrafficOptions } from '../../topologies/pipeline/demo-traffic.js';
import type { GeneratedEvent } from '../../topologies/pipeline/generator.js';

/** An address nothing listens on: the commands under test must never get as far as a request. */
const NO_ENGINE = 'http://127.0.0.1:9';

// ---------------------------------------------------------------- fakes

interface ProduceCall {
  readonly topic: string;
  readonly records: readonly ProduceRecord[];
  /** The wall clock's latest reading when the request was made. */
  readonly wallMs: number;
}

/** Records every produce request; `onProduce` may throw (a failed request) or abort (Ctrl-C). */
class RecordingClient {
  readonly calls: ProduceCall[] = [];
  constructor(
    private readonly clock: { readonly lastMs: number },
    /** Called with each request and how many were made, this one included. */
    private readonly onProduce: (count: number, signal: AbortSignal | undefined) => void = () => {},
  ) {}

  async produce(topic: string, records: readonly ProduceRecord[], signal?: AbortSignal): Promise<ProduceResult> {
    const call = { topic, records: structuredClone(records), wallMs: this.clock.lastMs };
    this.calls.push(call);
    this.onProduce(this.calls.length, signal);
    return { offsets: records.map((r, i) => ({ partition: 0, offset: i, timestamp: new Date(Number(r.timestamp)).toISOString() })) };
  }

  asClient(): MillraceClient {
    return this as unknown as MillraceClient;
  }

  records(topic?: string): ProduceRecord[] {
    return this.calls.filter((c) => topic === undefined || c.topic === topic).flatMap((c) => c.records);
  }
}

/** A wall clock that moves `stepMs` forward each time it is read. */
function steppingClock(startMs: number, stepMs: number): { now: () => number; readonly lastMs: number } {
  let next = startMs;
  let last = startMs;
  return {
    now: () => {
      last = next;
      next += stepMs;
      return last;
    },
    get lastMs() {
      return last;
    },
  };
}

const WALL_START = Date.parse('2026-04-01T12:00:00Z');

interface Run {
  readonly client: RecordingClient;
  readonly summary: Awaited<ReturnType<typeof runDemoTraffic>>;
  readonly progress: DemoProgress[];
  readonly finalWallMs: number;
}

async function traffic(overrides: Partial<DemoTrafficOptions> = {}, onProduce?: ConstructorParameters<typeof RecordingClient>[1]): Promise<Run> {
  const clock = steppingClock(WALL_START, 500);
  const client = new RecordingClient(clock, onProduce);
  const progress: DemoProgress[] = [];
  const summary = await runDemoTraffic({
    client: client.asClient(),
    seed: 5,
    ratePerSecond: 40,
    durationMs: 20_000,
    driftAt: null,
    users: 200,
    now: clock.now,
    onProgress: (p) => progress.push(p),
    ...overrides,
  });
  return { client, summary, progress, finalWallMs: clock.lastMs };
}

// ---------------------------------------------------------------- CLI io

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return { stream, text: () => chunks.join('') };
}

async function demo(argv: string[], options: { signal?: AbortSignal } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = sink();
  const stderr = sink();
  const io: CliIo = {
    stdin: Readable.from([]),
    stdout: stdout.stream,
    stderr: stderr.stream,
    env: {},
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
  const code = await demoCommand(argv, io);
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

/** A signal already aborted: the command parses, sets up, and stops before its first request. */
const aborted = (): AbortSignal => AbortSignal.abort();

// ---------------------------------------------------------------- parsing

describe('demo option parsing', () => {
  it.each([
    ['240s', 240_000],
    ['4m', 240_000],
    ['1h', 3_600_000],
    ['1500ms', 1_500],
    ['90', 90_000],
    ['2.5s', 2_500],
    [' 10m ', 600_000],
    ['720h', 30 * 86_400_000],
  ])('parseDuration(%j) is %d ms', (text, ms) => {
    expect(parseDuration('duration', text)).toBe(ms);
  });

  it.each(['', 'abc', '4 m', '-5s', '0s', '0', '5d', '721h', '1e3s', 'Infinity', '4min', 's', '1h30m'])('parseDuration(%j) is a UsageError', (text) => {
    expect(() => parseDuration('duration', text)).toThrow(UsageError);
  });

  it.each([
    ['200/s', 200],
    ['200', 200],
    ['0.5/s', 0.5],
    ['1000000/s', 1_000_000],
  ])('parseRate(%j) is %d per second', (text, rate) => {
    expect(parseRate(text)).toBe(rate);
  });

  it.each(['', '0/s', '0', 'fast', '200/m', '-1', '/s', '2000000/s', '200 /s', 'NaN'])('parseRate(%j) is a UsageError', (text) => {
    expect(() => parseRate(text)).toThrow(UsageError);
  });

  it('parseDriftAt takes a duration after the start, or an ISO 8601 moment', () => {
    expect(parseDriftAt('60s')).toEqual({ afterMs: 60_000 });
    expect(parseDriftAt('2m')).toEqual({ afterMs: 120_000 });
    expect(parseDriftAt('2026-03-01T10:00:00Z')).toEqual({ atMs: Date.parse('2026-03-01T10:00:00Z') });
    expect(parseDriftAt('2026-03-01T12:00:00.250+02:00')).toEqual({ atMs: Date.parse('2026-03-01T10:00:00.250Z') });
  });

  it.each(['2026-13-01T00:00:00Z', '2026-03-01Tnoon', 'tomorrow', '', '-60s'])('parseDriftAt(%j) is a UsageError', (text) => {
    expect(() => parseDriftAt(text)).toThrow(UsageError);
  });
});

describe('millrace demo', () => {
  it('prints its usage with no sub-command or --help, and refuses an unknown sub-command with exit code 2', async () => {
    const bare = await demo([]);
    expect(bare.code).toBe(0);
    expect(bare.stdout).toContain('millrace demo generate');
    expect((await demo(['--help'])).code).toBe(0);
    const help = await demo(['generate', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--drift-at');
    const unknown = await demo(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stdout).toBe('');
  });

  it.each([
    ['--duration', 'forever'],
    ['--duration', '0s'],
    ['--duration', '31d'],
    ['--rate', 'lots'],
    ['--rate', '0/s'],
    ['--rate', '5/min'],
    ['--drift-at', 'soon'],
    ['--drift-at', '2026-02-31Tbad'],
    ['--seed', '-1'],
    ['--seed', 'abc'],
    ['--seed', '1.5'],
    ['--time-scale', '0'],
    ['--time-scale', '10001'],
    ['--users', '9'],
    ['--users', 'many'],
  ])('generate %s %j exits 2 without contacting the engine', async (option, value) => {
    // when: the engine URL points nowhere; a request would fail with exit code 1, not 2
    const res = await demo(['generate', option, value, '--url', NO_ENGINE]);
    // then
    expect(res.code).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain('Usage: millrace demo generate');
  });

  it.each([[['--speed', '3']], [['extra']], [['--rate']]])('generate %j (unknown option, positional, missing value) exits 2', async (args) => {
    const res = await demo(['generate', ...args, '--url', NO_ENGINE]);
    expect(res.code).toBe(2);
  });

  it('takes valid options through to the traffic, and stops at once when interrupted before it starts', async () => {
    // given
    const before = Date.now();
    // when: interrupted already, so no request is made
    const res = await demo(['generate', '--rate', '50/s', '--duration', '4m', '--drift-at', '60s', '--time-scale', '20', '--seed', '9', '--url', NO_ENGINE], {
      signal: aborted(),
    });
    const after = Date.now();
    // then
    expect(res.code).toBe(0);
    const summary = JSON.parse(res.stdout) as { sent: number; transactions: number; labels: number; eventStart: string; eventEnd: string; driftStart: string };
    expect(summary).toMatchObject({ sent: 0, transactions: 0, labels: 0 });
    // Event time spans duration × time scale, ending at the run's end; the drift is 60 s × 20 into it.
    const eventStart = Date.parse(summary.eventStart);
    expect(eventStart).toBeGreaterThanOrEqual(before + 240_000 - 240_000 * 20);
    expect(eventStart).toBeLessThanOrEqual(after + 240_000 - 240_000 * 20);
    expect(Date.parse(summary.driftStart) - eventStart).toBe(60_000 * 20);
  });

  it('takes an ISO --drift-at as the event-time moment of the drift, and defaults to no drift', async () => {
    const at = new Date(Date.now() - 3_600_000).toISOString();
    const iso = JSON.parse((await demo(['generate', '--drift-at', at, '--url', NO_ENGINE], { signal: aborted() })).stdout) as { driftStart: string | null };
    expect(iso.driftStart).toBe(at);
    const none = JSON.parse((await demo(['generate', '--url', NO_ENGINE], { signal: aborted() })).stdout) as { driftStart: string | null; eventStart: string };
    expect(none.driftStart).toBeNull();
  });

  it('never crashes on a duration with a fraction of a millisecond', async () => {
    // The generator takes whole ms only: the command must round or refuse, not throw.
    const res = await demo(['generate', '--duration', '1.00001s', '--url', NO_ENGINE], { signal: aborted() });
    expect([0, 2]).toContain(res.code);
  });

  it('prints a summary and progress when it ends, counting what it sent', async () => {
    // given: a recording client and a short run on the real clock
    const client = new RecordingClient({ lastMs: 0 });
    const stdout = sink();
    const stderr = sink();
    const io: CliIo = { stdin: Readable.from([]), stdout: stdout.stream, stderr: stderr.stream, env: {} };
    // when
    const code = await generateTraffic(client.asClient(), { ratePerSecond: 500, durationMs: 300, driftAt: null, seed: 1, timeScale: DEFAULT_TIME_SCALE, users: 50 }, io);
    // then
    expect(code).toBe(0);
    const summary = JSON.parse(stdout.text()) as { sent: number; transactions: number; labels: number; fraud: Record<string, number> };
    expect(summary.sent).toBe(client.records().length);
    expect(summary.transactions).toBe(client.records(Topics.transactionsRaw).length);
    expect(summary.labels).toBe(client.records(Topics.feedbackRaw).length);
    expect(Object.keys(summary.fraud).sort()).toEqual(['account-takeover', 'card-testing']);
    expect(stderr.text()).toMatch(/^sent: /m);
  });
});

// ---------------------------------------------------------------- the traffic

describe('runDemoTraffic', () => {
  it('sends the same events for the same seed, and others for another seed', async () => {
    // when
    const a = await traffic({ seed: 5 });
    const b = await traffic({ seed: 5 });
    const c = await traffic({ seed: 6 });
    // then
    expect(a.client.records().length).toBeGreaterThan(500);
    expect(b.client.calls).toEqual(a.client.calls);
    expect(c.client.records(Topics.transactionsRaw).slice(0, 20)).not.toEqual(a.client.records(Topics.transactionsRaw).slice(0, 20));
  });

  it('never stamps an event after the wall clock, lays event time out before the run, and ends near its end', async () => {
    // given
    const durationMs = 20_000;
    const timeScale = 30;
    // when
    const { client, summary, finalWallMs } = await traffic({ durationMs, timeScale });
    // then: nothing in the future when it was sent
    for (const call of client.calls) {
      for (const record of call.records) expect(record.timestamp as number).toBeLessThanOrEqual(call.wallMs);
    }
    // Each timestamp is the event's own time.
    for (const record of client.records()) expect(Date.parse((record.value as { at: string }).at)).toBe(record.timestamp);
    // Event time covers duration × scale and ends at the run's end.
    expect(summary.eventStartMs).toBe(WALL_START + durationMs - durationMs * timeScale);
    const stamps = client.records().map((r) => r.timestamp as number);
    expect(Math.min(...stamps)).toBeGreaterThanOrEqual(summary.eventStartMs);
    // It ends no later than the wall clock, and within one run's length of the run's end (1/scale of the span).
    expect(summary.eventTimeMs).toBeLessThanOrEqual(finalWallMs);
    expect(WALL_START + durationMs - summary.eventTimeMs).toBeLessThanOrEqual(1_000);
    expect(Math.max(...stamps)).toBeGreaterThan(summary.eventTimeMs - 60_000);
    // And it ran to the end of the duration.
    expect(finalWallMs).toBeGreaterThanOrEqual(WALL_START + durationMs);
  });

  it('starts the drift at start + afterMs × timeScale', async () => {
    // when
    const { summary } = await traffic({ driftAt: { afterMs: 8_000 }, timeScale: 30, ratePerSecond: 400 });
    // then
    expect(summary.driftStartMs).toBe(summary.eventStartMs + 8_000 * 30);
    expect(summary.drifted).toBe(true);
    expect(summary.stats.fraud['card-testing']).toBeGreaterThan(0);
  });

  it('starts the drift at an event-time moment, or at the start when the moment is before it', async () => {
    const eventStartMs = WALL_START + 20_000 - 20_000 * 30;
    const at = eventStartMs + 123_000;
    expect((await traffic({ driftAt: { atMs: at }, timeScale: 30 })).summary.driftStartMs).toBe(at);
    const early = await traffic({ driftAt: { atMs: eventStartMs - 3_600_000 }, timeScale: 30 });
    expect(early.summary.driftStartMs).toBe(eventStartMs);
    expect(early.summary.drifted).toBe(true);
  });

  it('without a drift never drifts and sends no card testing', async () => {
    const { summary } = await traffic({ driftAt: null });
    expect(summary.driftStartMs).toBeNull();
    expect(summary.drifted).toBe(false);
    expect(summary.stats.fraud['card-testing']).toBe(0);
  });

  it('sends valid-looking raw events keyed by user and by transaction id, in requests of at most maxBatch', async () => {
    const { client, summary } = await traffic({ maxBatch: 25 });
    expect(client.calls.every((c) => c.records.length >= 1 && c.records.length <= 25)).toBe(true);
    for (const record of client.records(Topics.transactionsRaw)) expect(record.key).toBe((record.value as Transaction).user);
    for (const record of client.records(Topics.feedbackRaw)) expect(record.key).toBe((record.value as Feedback).transaction_id);
    expect(new Set(client.calls.map((c) => c.topic))).toEqual(new Set([Topics.transactionsRaw, Topics.feedbackRaw]));
    // The summary counts what was sent.
    expect(summary.sent).toBe(client.records().length);
    expect(summary.stats.transactions).toBe(client.records(Topics.transactionsRaw).length);
    expect(summary.stats.labels).toBe(client.records(Topics.feedbackRaw).length);
  });

  it('sends every label after the request that carried its transaction', async () => {
    const { client } = await traffic({ maxBatch: 40, labelDelayMs: [0, 5_000] });
    const sentIn = new Map<string, number>();
    client.calls.forEach((call, i) => {
      if (call.topic !== Topics.transactionsRaw) return;
      for (const record of call.records) sentIn.set((record.value as Transaction).id, i);
    });
    let labels = 0;
    client.calls.forEach((call, i) => {
      if (call.topic !== Topics.feedbackRaw) return;
      for (const record of call.records) {
        labels++;
        expect(sentIn.get((record.value as Feedback).transaction_id)).toBeLessThan(i);
      }
    });
    expect(labels).toBeGreaterThan(100);
  });

  it('reports progress as it goes, and once at the end', async () => {
    const { progress, summary } = await traffic({ progressEveryMs: 2_000 });
    expect(progress.filter((p) => p.done)).toHaveLength(1);
    expect(progress.at(-1)!.done).toBe(true);
    expect(progress.length).toBeGreaterThan(2);
    const sent = progress.map((p) => p.sent);
    expect(sent).toEqual([...sent].sort((x, y) => x - y));
    expect(summary.sent).toBe(progress.at(-1)!.sent);
  });

  it('refuses a non-positive rate, duration or time scale with a RangeError', async () => {
    for (const bad of [{ ratePerSecond: 0 }, { durationMs: -1 }, { timeScale: 0 }]) {
      await expect(traffic(bad)).rejects.toBeInstanceOf(RangeError);
    }
  });

  describe('stops when its signal aborts', () => {
    it('before it starts: nothing is sent', async () => {
      const { client, summary } = await traffic({ signal: aborted() });
      expect(client.calls).toEqual([]);
      expect(summary).toMatchObject({ sent: 0, done: true });
    });

    it('between requests: no request after the one that saw it', async () => {
      // given: the abort comes while the third request is answered
      const controller = new AbortController();
      // when
      const run = await traffic({ signal: controller.signal, maxBatch: 20 }, (count) => {
        if (count === 3) controller.abort();
      });
      // then: at most the labels of the same batch follow the request that saw it
      expect(run.client.calls.length).toBeGreaterThanOrEqual(3);
      expect(run.client.calls.length).toBeLessThanOrEqual(4);
      expect(run.summary.done).toBe(true);
      expect(run.summary.sent).toBe(run.client.records().length);
    });

    it('during a request the client gives up on (as the HTTP client does): resolves with what was sent', async () => {
      // given: like MillraceClient, the request rejects with the abort reason once its signal aborts
      const controller = new AbortController();
      // when
      const run = await traffic({ signal: controller.signal, maxBatch: 20 }, (count, signal) => {
        if (count !== 2) return;
        controller.abort();
        throw signal!.reason;
      });
      // then: Ctrl-C ends the run, it does not fail it
      expect(run.summary.done).toBe(true);
      expect(run.client.calls).toHaveLength(2);
    });
  });
});

describe('sendEvents', () => {
  const tx = (id: string, atMs: number): GeneratedEvent => ({
    topic: Topics.transactionsRaw,
    key: 'u1',
    value: { id, user: 'u1', merchant: 'm', country: 'FR', amount: 1, currency: 'EUR', at: new Date(atMs).toISOString(), ip: '::1', card_present: true },
    atMs,
    emitMs: atMs,
    fraud: null,
  });
  const fb = (id: string, atMs: number): GeneratedEvent => ({
    topic: Topics.feedbackRaw,
    key: id,
    value: { transaction_id: id, user: 'u1', fraud: false, at: new Date(atMs).toISOString() },
    atMs,
    emitMs: atMs,
  });

  it('sends the transactions of each batch before its labels, in order, in batches of maxBatch', async () => {
    // given: labels and transactions interleaved
    const client = new RecordingClient({ lastMs: 0 });
    const events = [fb('a', 1), tx('b', 2), tx('c', 3), fb('b', 4), fb('c', 5), tx('d', 6), fb('d', 7)];
    // when
    await sendEvents(client.asClient(), events, { maxBatch: 3 });
    // then
    expect(client.calls.map((c) => [c.topic, c.records.map((r) => r.key)])).toEqual([
      [Topics.transactionsRaw, ['u1', 'u1']],
      [Topics.feedbackRaw, ['a']],
      [Topics.transactionsRaw, ['u1']],
      [Topics.feedbackRaw, ['b', 'c']],
      [Topics.feedbackRaw, ['d']],
    ]);
    expect(client.calls[0]!.records.map((r) => (r.value as Transaction).id)).toEqual(['b', 'c']);
    expect(client.records().map((r) => r.timestamp)).toEqual([2, 3, 1, 6, 4, 5, 7]);
  });

  it('sends nothing for no events', async () => {
    const client = new RecordingClient({ lastMs: 0 });
    await sendEvents(client.asClient(), []);
    expect(client.calls).toEqual([]);
  });
});
