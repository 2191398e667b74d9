import { isIP } from 'node:net';
import { describe, expect, it } from 'vitest';
import { isIsoDateTime } from '../../engine/serde/logical-types.js';
import {
  TrafficGenerator,
  type GeneratedEvent,
  type GeneratedFeedback,
  type GeneratedTransaction,
  type TrafficGeneratorOptions,
} from '../../topologies/pipeline/generator.js';

const START = Date.parse('2026-01-01T00:00:00Z');
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const options = (overrides: Partial<TrafficGeneratorOptions> = {}): TrafficGeneratorOptions => ({
  seed: 7,
  users: 1_000,
  ratePerSecond: 50,
  driftAtMs: null,
  startTimeMs: START,
  labelDelayMs: [2 * MINUTE, 10 * MINUTE],
  ...overrides,
});

const transactionsOf = (events: readonly GeneratedEvent[]) =>
  events.filter((e): e is GeneratedTransaction => e.topic === 'transactions-raw');
const labelsOf = (events: readonly GeneratedEvent[]) => events.filter((e): e is GeneratedFeedback => e.topic === 'feedback-raw');

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

describe('TrafficGenerator', () => {
  it('is deterministic for a seed, and differs between seeds', () => {
    const run = (seed: number) => new TrafficGenerator(options({ seed, driftAtMs: 2 * MINUTE })).takeUntil(START + 5 * MINUTE);
    const a = run(1);
    expect(a.length).toBeGreaterThan(15_000);
    expect(a.some((e) => e.topic === 'transactions-raw' && e.fraud === 'card-testing')).toBe(true);
    expect(JSON.stringify(run(1))).toBe(JSON.stringify(a));
    const b = run(2);
    expect(b.slice(0, 100)).not.toEqual(a.slice(0, 100));
  });

  it('produces valid events: ids, users, two-letter countries, three-letter currencies, ISO times, IP addresses, amounts', () => {
    const generator = new TrafficGenerator(options({ driftAtMs: 10 * MINUTE }));
    const events = generator.takeUntil(START + 30 * MINUTE);
    const transactions = transactionsOf(events);
    const invalid = transactions.filter(
      ({ key, value, atMs }) =>
        key !== value.user ||
        !/^tx-\d{9}$/.test(value.id) ||
        !/^user-\d{5}$/.test(value.user) ||
        !/^merchant-\d{5}$/.test(value.merchant) ||
        !/^[A-Z]{2}$/.test(value.country) ||
        !/^[A-Z]{3}$/.test(value.currency) ||
        !isIsoDateTime(value.at) ||
        Date.parse(value.at) !== atMs ||
        isIP(value.ip) === 0 ||
        !(value.amount > 0 && value.amount <= 1_000_000) ||
        Math.round(value.amount * 100) / 100 !== value.amount,
    );
    expect(invalid).toEqual([]);
    expect(new Set(transactions.map((t) => isIP(t.value.ip)))).toEqual(new Set([4, 6]));
    expect(new Set(transactions.map((t) => t.value.id)).size).toBe(transactions.length);
    const labels = labelsOf(events);
    expect(labels.filter(({ key, value, atMs }) => key !== value.transaction_id || Date.parse(value.at) !== atMs)).toEqual([]);
  });

  it('keeps the rate, and about 1.5 % of transactions are fraud', () => {
    const generator = new TrafficGenerator(options());
    const transactions = transactionsOf(generator.takeUntil(START + 2 * HOUR));
    const expected = 50 * 2 * 3600;
    expect(Math.abs(transactions.length - expected) / expected).toBeLessThan(0.02);
    const fraud = transactions.filter((t) => t.fraud !== null);
    expect(fraud.length / transactions.length).toBeGreaterThan(0.012);
    expect(fraud.length / transactions.length).toBeLessThan(0.018);
    // Before any drift, fraud is account takeover only: bursts of large online amounts from abroad.
    expect(new Set(fraud.map((t) => t.fraud))).toEqual(new Set(['account-takeover']));
    expect(fraud.every((t) => !t.value.card_present)).toBe(true);
    expect(median(fraud.map((t) => t.value.amount))).toBeGreaterThan(4 * median(transactions.map((t) => t.value.amount)));
    expect(generator.stats).toMatchObject({ transactions: transactions.length, fraud: { 'account-takeover': fraud.length, 'card-testing': 0 } });
  });

  it('sends account takeovers as bursts from a foreign country, within minutes, on one user', () => {
    const generator = new TrafficGenerator(options({ ratePerSecond: 100 }));
    const transactions = transactionsOf(generator.takeUntil(START + HOUR));
    const homes = new Map<string, Map<string, number>>();
    for (const t of transactions.filter((t) => t.fraud === null)) {
      const countries = homes.get(t.value.user) ?? new Map<string, number>();
      countries.set(t.value.country, (countries.get(t.value.country) ?? 0) + 1);
      homes.set(t.value.user, countries);
    }
    const bursts = new Map<string, GeneratedTransaction[]>();
    for (const t of transactions.filter((t) => t.fraud !== null)) {
      const key = `${t.value.user}/${t.value.ip}`;
      bursts.set(key, [...(bursts.get(key) ?? []), t]);
    }
    expect(bursts.size).toBeGreaterThan(50);
    let foreign = 0;
    // Bursts that started in the last ten minutes may be cut by the end of the run.
    const whole = [...bursts.values()].filter((burst) => burst[0]!.atMs < START + 50 * MINUTE);
    for (const burst of whole) {
      expect(burst.length).toBeGreaterThanOrEqual(3);
      expect(new Set(burst.map((t) => t.value.country)).size).toBe(1);
      const home = [...(homes.get(burst[0]!.value.user) ?? new Map<string, number>())].sort((a, b) => b[1] - a[1])[0]?.[0];
      if (home !== burst[0]!.value.country) foreign++;
    }
    // The home country is inferred from the user's legitimate traffic, which a short run may not show.
    expect(foreign / whole.length).toBeGreaterThan(0.9);
    expect(median(whole.map((b) => b.at(-1)!.atMs - b[0]!.atMs))).toBeLessThan(10 * MINUTE);
  });

  it('sends a label for every transaction, 2 to 10 minutes after it, after it', () => {
    const generator = new TrafficGenerator(options({ ratePerSecond: 100 }));
    const events = generator.takeUntil(START + 30 * MINUTE);
    const owed = generator.finish();
    const all = [...events, ...owed];
    const sentAt = new Map<string, { atMs: number; index: number; fraud: boolean }>();
    all.forEach((e, index) => {
      if (e.topic === 'transactions-raw') sentAt.set(e.value.id, { atMs: e.atMs, index, fraud: e.fraud !== null });
    });
    const labels = labelsOf(all);
    expect(labels.length).toBe(sentAt.size);
    expect(owed.length).toBeGreaterThan(0);
    const delays: number[] = [];
    const wrong: GeneratedFeedback[] = [];
    all.forEach((e, index) => {
      if (e.topic !== 'feedback-raw') return;
      const transaction = sentAt.get(e.value.transaction_id)!;
      if (index < transaction.index || e.value.fraud !== transaction.fraud) wrong.push(e);
      delays.push(e.atMs - transaction.atMs);
    });
    expect(wrong).toEqual([]);
    expect(delays.reduce((a, b) => Math.min(a, b))).toBeGreaterThanOrEqual(2 * MINUTE);
    expect(delays.reduce((a, b) => Math.max(a, b))).toBeLessThanOrEqual(10 * MINUTE);
    expect(median(delays)).toBeGreaterThan(5.5 * MINUTE);
    expect(median(delays)).toBeLessThan(6.5 * MINUTE);
    expect(generator.stats.labels).toBe(labels.length);
    expect(() => generator.next()).toThrow(TypeError);
  });

  it('takes the label delay from its options', () => {
    const events = new TrafficGenerator(options({ labelDelayMs: [1_000, 1_000] })).takeUntil(START + MINUTE);
    const at = new Map(transactionsOf(events).map((t) => [t.value.id, t.atMs]));
    const labels = labelsOf(events);
    expect(labels.length).toBeGreaterThan(2_000);
    expect(new Set(labels.map((label) => label.atMs - at.get(label.value.transaction_id)!))).toEqual(new Set([1_000]));
  });

  it('keeps event time non-decreasing on each topic', () => {
    const events = new TrafficGenerator(options({ ratePerSecond: 200, driftAtMs: 10 * MINUTE })).takeUntil(START + 20 * MINUTE);
    const backwards = (times: readonly number[]) => times.filter((t, i) => i > 0 && t < times[i - 1]!).length;
    expect(backwards(transactionsOf(events).map((e) => e.atMs))).toBe(0);
    expect(backwards(labelsOf(events).map((e) => e.atMs))).toBe(0);
    expect(backwards(events.map((e) => e.emitMs))).toBe(0);
  });

  it('with maxJitterMs, sends transactions up to that late: out of event-time order by at most that much', () => {
    const jitter = 5_000;
    const events = new TrafficGenerator(options({ ratePerSecond: 200, maxJitterMs: jitter })).takeUntil(START + 10 * MINUTE);
    const transactions = transactionsOf(events);
    let latest = 0;
    let disorder = 0;
    let lateness = 0;
    let early = 0;
    for (const t of transactions) {
      if (t.emitMs < t.atMs) early++;
      lateness = Math.max(lateness, t.emitMs - t.atMs);
      disorder = Math.max(disorder, latest - t.atMs);
      latest = Math.max(latest, t.atMs);
    }
    expect(early).toBe(0);
    expect(lateness).toBeLessThanOrEqual(jitter);
    expect(disorder).toBeGreaterThan(0);
    expect(disorder).toBeLessThanOrEqual(jitter);
    const labels = labelsOf(events).map((e) => e.atMs);
    expect(labels.every((t, i) => i === 0 || t >= labels[i - 1]!)).toBe(true);
    expect(() => new TrafficGenerator(options({ maxJitterMs: 3 * MINUTE }))).toThrow(RangeError);
  });

  describe('drift', () => {
    const driftAtMs = HOUR;
    const generator = new TrafficGenerator(options({ driftAtMs }));
    const transactions = transactionsOf(generator.takeUntil(START + 2 * HOUR));
    const before = transactions.filter((t) => t.atMs < START + driftAtMs);
    const after = transactions.filter((t) => t.atMs >= START + driftAtMs);

    it('multiplies legitimate amounts by about 2.5 from the drift on', () => {
      const ratio = median(after.filter((t) => t.fraud === null).map((t) => t.value.amount)) / median(before.filter((t) => t.fraud === null).map((t) => t.value.amount));
      expect(ratio).toBeGreaterThan(2.3);
      expect(ratio).toBeLessThan(2.7);
      expect(generator.driftStartMs).toBe(START + driftAtMs);
      expect(generator.drifted).toBe(true);
    });

    it('brings card testing: small amounts, card present, at home, at merchants never seen before, seconds apart', () => {
      expect(before.some((t) => t.fraud === 'card-testing')).toBe(false);
      const testing = after.filter((t) => t.fraud === 'card-testing');
      const takeover = after.filter((t) => t.fraud === 'account-takeover');
      // It takes about 60 % of the fraud; fraud stays about 1.5 % of transactions.
      expect(testing.length / (testing.length + takeover.length)).toBeGreaterThan(0.45);
      expect(testing.length / (testing.length + takeover.length)).toBeLessThan(0.75);
      expect((testing.length + takeover.length) / after.length).toBeGreaterThan(0.011);
      expect((testing.length + takeover.length) / after.length).toBeLessThan(0.019);

      expect(testing.every((t) => t.value.card_present)).toBe(true);
      expect(median(testing.map((t) => t.value.amount))).toBeLessThan(10);
      expect(median(testing.map((t) => t.value.amount))).toBeLessThan(median(before.filter((t) => t.fraud === null).map((t) => t.value.amount)) / 3);
      const seen = new Set(before.map((t) => t.value.merchant));
      const merchants = testing.map((t) => t.value.merchant);
      expect(merchants.some((m) => seen.has(m))).toBe(false);
      expect(new Set(merchants).size).toBe(merchants.length);
      // Each user's card-testing transactions come in runs of at least eight, a few seconds apart.
      const byUser = new Map<string, GeneratedTransaction[]>();
      for (const t of testing) byUser.set(t.value.user, [...(byUser.get(t.value.user) ?? []), t]);
      const runs = [...byUser.values()];
      expect(runs.length).toBeGreaterThan(20);
      expect(median(runs.map((r) => r.length))).toBeGreaterThanOrEqual(8);
      const gaps = runs.flatMap((r) => r.slice(1).map((t, i) => t.atMs - r[i]!.atMs));
      expect(median(gaps)).toBeLessThan(MINUTE);
      // At home: the country is the one of the user's currency's usual legitimate traffic.
      const homeCountry = new Map(before.filter((t) => t.fraud === null && t.value.card_present).map((t) => [t.value.user, t.value.country]));
      const known = testing.filter((t) => homeCountry.has(t.value.user));
      expect(known.filter((t) => homeCountry.get(t.value.user) === t.value.country).length / known.length).toBeGreaterThan(0.8);
    });

    it('changes nothing before the drift moment', () => {
      const undrifted = transactionsOf(new TrafficGenerator(options({ driftAtMs: null })).takeUntil(START + driftAtMs));
      expect(undrifted.length).toBe(before.length);
      expect(JSON.stringify(undrifted)).toBe(JSON.stringify(before));
    });
  });

  it('refuses options that make no sense', () => {
    expect(() => new TrafficGenerator(options({ users: 0 }))).toThrow(RangeError);
    expect(() => new TrafficGenerator(options({ ratePerSecond: 0 }))).toThrow(RangeError);
    expect(() => new TrafficGenerator(options({ labelDelayMs: [10, 5] }))).toThrow(RangeError);
    expect(() => new TrafficGenerator(options({ driftAtMs: -1 }))).toThrow(RangeError);
    expect(() => new TrafficGenerator(options({ fraudRate: 1 }))).toThrow(RangeError);
  });

  it('generates a million events in seconds', () => {
    const generator = new TrafficGenerator(options({ ratePerSecond: 1_000, driftAtMs: 5 * MINUTE }));
    const started = performance.now();
    let n = 0;
    while (n < 1_000_000) {
      generator.next();
      n++;
    }
    expect(performance.now() - started).toBeLessThan(20_000);
    expect(generator.stats.transactions + generator.stats.labels).toBe(1_000_000);
  });
});
