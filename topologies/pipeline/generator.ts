import { Topics, type Feedback, type Transaction } from './contract.js';

/**
 * The demo's traffic: a deterministic simulation of card transactions and the labels that judge them, in event time.
 * No wall clock and no global randomness: the same options give the same events, so tests can generate millions of
 * them in seconds and `millrace demo generate` can replay a run exactly.
 *
 * The world (built once from the seed):
 * - users, each with a home country and its currency, a device IP (IPv4, or IPv6 for about a third), three to eight
 *   usual merchants at home, a typical spend (log-normal, median about 35) and an activity level (log-normal);
 * - merchants in every country: shops (card present, with a terminal IP) and online stores (card not present).
 *
 * The traffic (Poisson processes in event time):
 * - legitimate transactions, by user activity: mostly at usual merchants, some elsewhere at home, a few abroad
 *   (travel); the amount is the user's typical spend times a log-normal factor;
 * - `account-takeover` fraud: a compromised user's card is used online from a foreign country and a foreign IP,
 *   three to seven high amounts (about eight times the typical spend, at least 150) within minutes;
 * - a label (`Feedback`) for every transaction, `labelDelayMs` after it (uniform in [min, max]);
 * - from `driftAtMs` on, the DRIFT: legitimate amounts are `driftAmountScale` (2.5) times larger, and a new fraud
 *   pattern, `card-testing`, takes `driftFraudShare` (60 %) of the fraud: eight to twenty small amounts (about 6),
 *   card present, at the user's home, each at a merchant never seen before, seconds apart. A model trained on the
 *   traffic before the drift has learnt "fraud is large, foreign and online", so it misses these and flags the
 *   larger legitimate amounts.
 *
 * Fraud is `fraudRate` (1.5 %) of the transactions, before and after the drift.
 *
 * Order: events come out in the order they are sent (`emitMs`, non-decreasing). With `maxJitterMs` 0 (the default)
 * that is event time, and each topic is in event-time order. With `maxJitterMs` > 0 a transaction is sent up to that
 * long after it happened (a network or batching delay), so the transactions stream is out of event-time order by at
 * most `maxJitterMs`; labels are never late, and always come after their transaction.
 */

export type FraudPattern = 'account-takeover' | 'card-testing';

export interface TrafficGeneratorOptions {
  readonly seed: number;
  /** Number of card holders. */
  readonly users: number;
  /** Transactions per second of event time, legitimate and fraud together (labels come on top, one each). */
  readonly ratePerSecond: number;
  /** When the drift begins, as an event-time offset from `startTimeMs`; `null` for none. */
  readonly driftAtMs: number | null;
  /** Event time of the start (ms since the epoch). */
  readonly startTimeMs: number;
  /** A label comes this long after its transaction (event time), uniform in [min, max]. */
  readonly labelDelayMs: readonly [min: number, max: number];
  /** Share of transactions that are fraud (default 0.015). */
  readonly fraudRate?: number;
  /** Legitimate amounts are multiplied by this after the drift (default 2.5). */
  readonly driftAmountScale?: number;
  /** Share of fraud transactions that are card testing after the drift (default 0.6). */
  readonly driftFraudShare?: number;
  /** A transaction is sent up to this long after its event time (default 0); at most `labelDelayMs[0]`. */
  readonly maxJitterMs?: number;
}

export const DEFAULT_FRAUD_RATE = 0.015;
export const DEFAULT_DRIFT_AMOUNT_SCALE = 2.5;
export const DEFAULT_DRIFT_FRAUD_SHARE = 0.6;
export const DEFAULT_LABEL_DELAY_MS: readonly [number, number] = [2 * 60_000, 10 * 60_000];

export interface GeneratedTransaction {
  readonly topic: typeof Topics.transactionsRaw;
  /** The user. */
  readonly key: string;
  readonly value: Transaction;
  /** Event time: `value.at` in ms. */
  readonly atMs: number;
  /** When it is sent: `atMs`, plus up to `maxJitterMs`. */
  readonly emitMs: number;
  /** The fraud pattern it belongs to; `null` for a legitimate transaction. Not part of the event. */
  readonly fraud: FraudPattern | null;
}

export interface GeneratedFeedback {
  readonly topic: typeof Topics.feedbackRaw;
  /** The transaction id. */
  readonly key: string;
  readonly value: Feedback;
  readonly atMs: number;
  /** Labels are sent at their event time. */
  readonly emitMs: number;
}

export type GeneratedEvent = GeneratedTransaction | GeneratedFeedback;

export interface TrafficStats {
  readonly transactions: number;
  readonly legitimate: number;
  readonly fraud: Readonly<Record<FraudPattern, number>>;
  readonly labels: number;
}

// ---------------------------------------------------------------- randomness

/** sfc32, seeded through splitmix32: fast, 128 bits of state, good enough for simulation. */
export class Random {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare: number | undefined;

  constructor(seed: number) {
    let s = (seed >>> 0) ^ (Math.floor(seed / 2 ** 32) >>> 0);
    const splitmix = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = splitmix();
    this.#b = splitmix();
    this.#c = splitmix();
    this.#d = splitmix();
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return (t >>> 0) / 4_294_967_296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  between(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.int(items.length)]!;
  }

  /** Standard normal (Box–Muller, both values used). */
  normal(): number {
    if (this.#spare !== undefined) {
      const spare = this.#spare;
      this.#spare = undefined;
      return spare;
    }
    const u = 1 - this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** exp(N(mu, sigma)): its median is exp(mu). */
  logNormal(mu: number, sigma: number): number {
    return Math.exp(mu + sigma * this.normal());
  }

  exponential(mean: number): number {
    return -mean * Math.log(1 - this.next());
  }
}

// ---------------------------------------------------------------- the world

interface Country {
  readonly code: string;
  readonly currency: string;
  /** Share of users living there (0: visited only). */
  readonly weight: number;
}

// Currencies of similar magnitude, so that amounts compare across users without conversion.
const COUNTRIES: readonly Country[] = [
  { code: 'US', currency: 'USD', weight: 0.25 },
  { code: 'GB', currency: 'GBP', weight: 0.12 },
  { code: 'DE', currency: 'EUR', weight: 0.1 },
  { code: 'FR', currency: 'EUR', weight: 0.1 },
  { code: 'CA', currency: 'CAD', weight: 0.07 },
  { code: 'ES', currency: 'EUR', weight: 0.06 },
  { code: 'IT', currency: 'EUR', weight: 0.06 },
  { code: 'NL', currency: 'EUR', weight: 0.05 },
  { code: 'AU', currency: 'AUD', weight: 0.05 },
  { code: 'IE', currency: 'EUR', weight: 0.03 },
  { code: 'BE', currency: 'EUR', weight: 0.03 },
  { code: 'CH', currency: 'CHF', weight: 0.02 },
  { code: 'AT', currency: 'EUR', weight: 0.02 },
  { code: 'PT', currency: 'EUR', weight: 0.02 },
  { code: 'NZ', currency: 'NZD', weight: 0.02 },
  { code: 'BR', currency: 'BRL', weight: 0 },
  { code: 'MX', currency: 'MXN', weight: 0 },
  { code: 'TH', currency: 'THB', weight: 0 },
  { code: 'ZA', currency: 'ZAR', weight: 0 },
  { code: 'TR', currency: 'TRY', weight: 0 },
  { code: 'SG', currency: 'SGD', weight: 0 },
  { code: 'AE', currency: 'AED', weight: 0 },
  { code: 'MA', currency: 'MAD', weight: 0 },
  { code: 'AR', currency: 'ARS', weight: 0 },
];

interface Merchant {
  readonly id: string;
  readonly country: number;
  readonly online: boolean;
  /** The terminal's address (shops). */
  readonly ip: string;
}

interface User {
  readonly id: string;
  readonly country: number;
  readonly ip: string;
  readonly usual: readonly Merchant[];
  /** Median amount of a legitimate transaction. */
  readonly typicalAmount: number;
}

/** Synthetic addresses that say their country: 10.<country>.x.y, and 2001:db8:<country>::/48 (documentation). */
function ipv4(random: Random, country: number): string {
  return `10.${country}.${random.int(256)}.${1 + random.int(254)}`;
}

function ipv6(random: Random, country: number): string {
  return `2001:db8:${country.toString(16)}:${random.int(0x10000).toString(16)}::${(1 + random.int(0xffff)).toString(16)}`;
}

function ipAddress(random: Random, country: number, ipv6Share: number): string {
  return random.next() < ipv6Share ? ipv6(random, country) : ipv4(random, country);
}

/** A shop with probability `shopShare` (or when the country has no online store), else an online store. */
function pickMerchant(random: Random, merchants: World['merchantsByCountry'][number], shopShare: number): Merchant {
  const shop = merchants.online.length === 0 || (merchants.shops.length > 0 && random.next() < shopShare);
  return random.pick(shop ? merchants.shops : merchants.online);
}

/** Any country but `home`, uniformly. */
function otherCountry(random: Random, home: number): number {
  const c = random.int(COUNTRIES.length - 1);
  return c >= home ? c + 1 : c;
}

/** Picks an index with probability proportional to its weight (cumulative weights, binary search). */
class WeightedPicker {
  readonly #cumulative: Float64Array;

  constructor(weights: readonly number[]) {
    this.#cumulative = new Float64Array(weights.length);
    let total = 0;
    weights.forEach((w, i) => {
      total += w;
      this.#cumulative[i] = total;
    });
  }

  pick(random: Random): number {
    const target = random.next() * this.#cumulative[this.#cumulative.length - 1]!;
    let lo = 0;
    let hi = this.#cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#cumulative[mid]! > target) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

interface World {
  readonly users: readonly User[];
  readonly activity: WeightedPicker;
  readonly merchantsByCountry: ReadonlyArray<{ readonly shops: readonly Merchant[]; readonly online: readonly Merchant[] }>;
  readonly countryByWeight: WeightedPicker;
  /** Merchants made so far, for new ids. */
  readonly merchants: { count: number };
}

function buildWorld(random: Random, userCount: number): World {
  const countryByWeight = new WeightedPicker(COUNTRIES.map((c) => c.weight));
  const merchants = { count: 0 };
  const targetMerchants = Math.max(60, Math.ceil(userCount / 4));
  const merchantsByCountry = COUNTRIES.map((country, c) => {
    const shops: Merchant[] = [];
    const online: Merchant[] = [];
    const count = country.weight > 0 ? Math.max(4, Math.round(country.weight * targetMerchants)) : 3;
    for (let i = 0; i < count; i++) {
      // Countries where no user lives are visited online (and by travellers at their online stores).
      const m = newMerchant(merchants, random, c, country.weight === 0 || random.next() < 0.3);
      (m.online ? online : shops).push(m);
    }
    return { shops, online };
  });
  const users: User[] = [];
  const activity: number[] = [];
  for (let i = 0; i < userCount; i++) {
    const country = countryByWeight.pick(random);
    const local = merchantsByCountry[country]!;
    const pool = [...local.shops, ...local.online];
    const usual: Merchant[] = [];
    const wanted = Math.min(pool.length, 3 + random.int(6));
    while (usual.length < wanted) {
      const m = random.pick(pool);
      if (!usual.includes(m)) usual.push(m);
    }
    users.push({
      id: `user-${String(i + 1).padStart(5, '0')}`,
      country,
      ip: ipAddress(random, country, 0.3),
      usual,
      typicalAmount: random.logNormal(Math.log(35), 0.7),
    });
    activity.push(random.logNormal(0, 0.8));
  }
  return { users, activity: new WeightedPicker(activity), merchantsByCountry, countryByWeight, merchants };
}

function newMerchant(merchants: { count: number }, random: Random, country: number, online: boolean): Merchant {
  merchants.count++;
  return { id: `merchant-${String(merchants.count).padStart(5, '0')}`, country, online, ip: ipv4(random, country) };
}

// ---------------------------------------------------------------- the schedule

type Timer = 'legitimate' | FraudPattern | 'drift';

/** Whether a transaction has been produced, so its label is owed. */
interface Produced {
  produced: boolean;
}

/** One entry of the schedule: a timer to fire, or an event to produce. One shape for all, for a fast heap. */
class Pending {
  constructor(
    readonly timeMs: number,
    /** Insertion order: breaks ties, so the schedule is deterministic. */
    readonly seq: number,
    readonly timer: Timer | null,
    readonly event: GeneratedEvent | null,
    /** A transaction: set once it is produced. A label: its transaction's. */
    readonly produced: Produced | null,
  ) {}
}

/** A binary min-heap by (timeMs, seq). */
class Schedule {
  readonly #items: Pending[] = [];

  peek(): Pending | undefined {
    return this.#items[0];
  }

  push(item: Pending): void {
    const items = this.#items;
    let i = items.length;
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >>> 1;
      const p = items[parent]!;
      if (!before(item, p)) break;
      items[i] = p;
      i = parent;
    }
    items[i] = item;
  }

  pop(): Pending | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    const n = items.length;
    if (n === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && before(items[r]!, items[l]!) ? r : l;
      const c = items[child]!;
      if (!before(c, last)) break;
      items[i] = c;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

function before(a: Pending, b: Pending): boolean {
  return a.timeMs < b.timeMs || (a.timeMs === b.timeMs && a.seq < b.seq);
}

const TAKEOVER_BURST = { min: 3, max: 7, meanGapMs: 45_000 } as const;
const CARD_TESTING_BURST = { min: 8, max: 20, meanGapMs: 20_000 } as const;
const MIN_GAP_MS = 2_000;
const MAX_AMOUNT = 1_000_000;

/**
 * `new Date(ms).toISOString()`, several times faster: the date part is cached, since consecutive events share a day.
 * For ms from 1970 to 9999.
 */
class IsoFormatter {
  #dayStartMs = Number.NaN;
  #prefix = '';

  format(ms: number): string {
    let offset = ms - this.#dayStartMs;
    if (!(offset >= 0 && offset < DAY_MS)) {
      this.#dayStartMs = ms - (ms % DAY_MS);
      this.#prefix = new Date(this.#dayStartMs).toISOString().slice(0, 11);
      offset = ms - this.#dayStartMs;
    }
    const h = Math.floor(offset / 3_600_000);
    const m = Math.floor(offset / 60_000) % 60;
    const sec = Math.floor(offset / 1000) % 60;
    const milli = offset % 1000;
    return `${this.#prefix}${TWO_DIGITS[h]!}:${TWO_DIGITS[m]!}:${TWO_DIGITS[sec]!}.${THREE_DIGITS[milli]!}Z`;
  }
}

const DAY_MS = 86_400_000;
const TWO_DIGITS = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, '0'));
const THREE_DIGITS = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));

// ---------------------------------------------------------------- the generator

/**
 *   const generator = new TrafficGenerator({ seed: 7, users: 1000, ratePerSecond: 50, driftAtMs: 60_000,
 *     startTimeMs: Date.parse('2026-01-01T00:00:00Z'), labelDelayMs: [120_000, 600_000] });
 *   const first = generator.next();                   // the next event to send, in emitMs order
 *   const minute = generator.takeUntil(first.emitMs + 60_000);
 *   const owed = generator.finish();                  // labels still owed for what was produced
 */
export class TrafficGenerator {
  readonly options: Readonly<Required<TrafficGeneratorOptions>>;
  /** When the drift begins (ms since the epoch); `null` for none. */
  readonly driftStartMs: number | null;
  readonly #random: Random;
  readonly #world: World;
  readonly #schedule = new Schedule();
  // One per stream: labels run minutes behind transactions, and would thrash one cache around midnight.
  readonly #isoTransactions = new IsoFormatter();
  readonly #isoLabels = new IsoFormatter();
  readonly #txPerMs: number;
  /** Transactions made (their ids). */
  #seq = 0;
  /** Insertion order in the schedule, which breaks ties. */
  #order = 0;
  #transactions = 0;
  #labels = 0;
  readonly #fraud: Record<FraudPattern, number> = { 'account-takeover': 0, 'card-testing': 0 };
  #drifted = false;
  #finished = false;

  constructor(options: TrafficGeneratorOptions) {
    const o: Required<TrafficGeneratorOptions> = {
      fraudRate: DEFAULT_FRAUD_RATE,
      driftAmountScale: DEFAULT_DRIFT_AMOUNT_SCALE,
      driftFraudShare: DEFAULT_DRIFT_FRAUD_SHARE,
      maxJitterMs: 0,
      ...options,
    };
    checkOptions(o);
    this.options = Object.freeze({ ...o, labelDelayMs: [o.labelDelayMs[0], o.labelDelayMs[1]] as const });
    this.driftStartMs = o.driftAtMs === null ? null : o.startTimeMs + o.driftAtMs;
    // Two streams: the world does not change when the traffic options do.
    this.#world = buildWorld(new Random(o.seed), o.users);
    this.#random = new Random(o.seed + 0x5eed);
    this.#txPerMs = o.ratePerSecond / 1000;
    this.#scheduleTimer('legitimate', o.startTimeMs);
    this.#scheduleTimer('account-takeover', o.startTimeMs);
    if (this.driftStartMs !== null) this.#push(this.driftStartMs, 'drift', null, null);
  }

  /** Whether the drift has begun, as far as events have been produced. */
  get drifted(): boolean {
    return this.#drifted;
  }

  get stats(): TrafficStats {
    const fraud = this.#fraud['account-takeover'] + this.#fraud['card-testing'];
    return { transactions: this.#transactions, legitimate: this.#transactions - fraud, fraud: { ...this.#fraud }, labels: this.#labels };
  }

  /** When the next event is sent (its `emitMs`). */
  peekEmitMs(): number {
    this.#advance();
    return this.#schedule.peek()!.timeMs;
  }

  /** The next event, in `emitMs` order. The traffic never ends: stop by time, then call `finish`. */
  next(): GeneratedEvent {
    this.#advance();
    const item = this.#schedule.pop()!;
    const event = item.event!;
    if (event.topic === Topics.transactionsRaw) {
      item.produced!.produced = true;
      this.#transactions++;
      if (event.fraud !== null) this.#fraud[event.fraud]++;
    } else {
      this.#labels++;
    }
    return event;
  }

  /** Every event sent before `emitMs` (exclusive), in order; at most `limit`. */
  takeUntil(emitMs: number, limit = Number.POSITIVE_INFINITY): GeneratedEvent[] {
    const out: GeneratedEvent[] = [];
    while (out.length < limit && this.peekEmitMs() < emitMs) out.push(this.next());
    return out;
  }

  /**
   * Ends the traffic: the labels still owed for the transactions already produced, in order (their event times are
   * kept, so they are ahead of the last transaction). The generator produces nothing afterwards.
   */
  finish(): GeneratedFeedback[] {
    this.#finished = true;
    const owed: GeneratedFeedback[] = [];
    for (let item = this.#schedule.pop(); item !== undefined; item = this.#schedule.pop()) {
      if (item.event?.topic === Topics.feedbackRaw && item.produced!.produced) {
        owed.push(item.event);
        this.#labels++;
      }
    }
    return owed;
  }

  /** Runs timers until an event is at the head of the schedule. */
  #advance(): void {
    if (this.#finished) throw new TypeError('the traffic generator has finished');
    for (;;) {
      const head = this.#schedule.peek()!;
      if (head.timer === null) return;
      this.#schedule.pop();
      this.#fire(head.timer, head.timeMs);
    }
  }

  #fire(timer: Timer, nowMs: number): void {
    switch (timer) {
      case 'legitimate':
        this.#legitimate(nowMs);
        break;
      case 'account-takeover':
        this.#takeover(nowMs);
        break;
      case 'card-testing':
        this.#cardTesting(nowMs);
        break;
      case 'drift':
        this.#drifted = true;
        this.#scheduleTimer('card-testing', nowMs);
        return;
    }
    this.#scheduleTimer(timer, nowMs);
  }

  /** The next arrival of a Poisson process, at its rate at `fromMs` (rates change only at the drift). */
  #scheduleTimer(timer: Exclude<Timer, 'drift'>, fromMs: number): void {
    const o = this.options;
    const fraudShare = timer === 'legitimate' ? 1 - o.fraudRate : o.fraudRate;
    let share = fraudShare;
    let meanSize = 1;
    if (timer === 'account-takeover') {
      share *= this.#drifted ? 1 - o.driftFraudShare : 1;
      meanSize = (TAKEOVER_BURST.min + TAKEOVER_BURST.max) / 2;
    } else if (timer === 'card-testing') {
      share *= o.driftFraudShare;
      meanSize = (CARD_TESTING_BURST.min + CARD_TESTING_BURST.max) / 2;
    }
    const perMs = (this.#txPerMs * share) / meanSize;
    if (perMs <= 0) return;
    this.#push(fromMs + this.#random.exponential(1 / perMs), timer, null, null);
  }

  #legitimate(nowMs: number): void {
    const random = this.#random;
    const world = this.#world;
    const user = world.users[world.activity.pick(random)]!;
    const r = random.next();
    let merchant: Merchant;
    if (r < 0.03) {
      // Travel: anywhere but home.
      let country = world.countryByWeight.pick(random);
      if (country === user.country) country = otherCountry(random, user.country);
      merchant = pickMerchant(random, world.merchantsByCountry[country]!, 0.8);
    } else if (r < 0.85) {
      merchant = random.pick(user.usual);
    } else {
      merchant = pickMerchant(random, world.merchantsByCountry[user.country]!, 0.6);
    }
    const atMs = Math.floor(nowMs);
    const scale = this.driftStartMs !== null && atMs >= this.driftStartMs ? this.options.driftAmountScale : 1;
    const amount = user.typicalAmount * random.logNormal(0, 0.6) * scale;
    this.#transaction(user, merchant, merchant.country, amount, merchant.online ? user.ip : merchant.ip, atMs, null);
  }

  #takeover(nowMs: number): void {
    const random = this.#random;
    const world = this.#world;
    const user = random.pick(world.users);
    const country = otherCountry(random, user.country);
    const ip = ipAddress(random, country, 0.5);
    const there = world.merchantsByCountry[country]!;
    const size = TAKEOVER_BURST.min + random.int(TAKEOVER_BURST.max - TAKEOVER_BURST.min + 1);
    let atMs = nowMs;
    for (let i = 0; i < size; i++) {
      const merchant = random.pick(there.online.length > 0 ? there.online : there.shops);
      const amount = Math.max(150, user.typicalAmount * random.logNormal(Math.log(8), 0.5));
      this.#transaction(user, merchant, country, amount, ip, Math.floor(atMs), 'account-takeover', false);
      atMs += MIN_GAP_MS + random.exponential(TAKEOVER_BURST.meanGapMs);
    }
  }

  #cardTesting(nowMs: number): void {
    const random = this.#random;
    const world = this.#world;
    const user = random.pick(world.users);
    const size = CARD_TESTING_BURST.min + random.int(CARD_TESTING_BURST.max - CARD_TESTING_BURST.min + 1);
    let atMs = nowMs;
    for (let i = 0; i < size; i++) {
      // A shop never seen before, and never again: the new pattern's merchants are in no one's habits.
      const merchant = newMerchant(world.merchants, random, user.country, false);
      const amount = 1 + random.logNormal(Math.log(5), 0.5);
      this.#transaction(user, merchant, user.country, amount, merchant.ip, Math.floor(atMs), 'card-testing', true);
      atMs += MIN_GAP_MS + random.exponential(CARD_TESTING_BURST.meanGapMs);
    }
  }

  #transaction(
    user: User,
    merchant: Merchant,
    country: number,
    rawAmount: number,
    ip: string,
    atMs: number,
    fraud: FraudPattern | null,
    cardPresent = !merchant.online,
  ): void {
    const random = this.#random;
    const o = this.options;
    const id = `tx-${String(++this.#seq).padStart(9, '0')}`;
    const amount = Math.min(MAX_AMOUNT, Math.max(0.01, Math.round(rawAmount * 100) / 100));
    const value: Transaction = {
      id,
      user: user.id,
      merchant: merchant.id,
      country: COUNTRIES[country]!.code,
      amount,
      currency: COUNTRIES[user.country]!.currency,
      at: this.#isoTransactions.format(atMs),
      ip,
      card_present: cardPresent,
    };
    const emitMs = o.maxJitterMs > 0 ? atMs + random.int(o.maxJitterMs + 1) : atMs;
    const produced: Produced = { produced: false };
    this.#push(emitMs, null, { topic: Topics.transactionsRaw, key: user.id, value, atMs, emitMs, fraud }, produced);
    const [min, max] = o.labelDelayMs;
    const labelMs = atMs + min + random.int(max - min + 1);
    const label: Feedback = { transaction_id: id, user: user.id, fraud: fraud !== null, at: this.#isoLabels.format(labelMs) };
    this.#push(labelMs, null, { topic: Topics.feedbackRaw, key: id, value: label, atMs: labelMs, emitMs: labelMs }, produced);
  }

  #push(timeMs: number, timer: Timer | null, event: GeneratedEvent | null, produced: Produced | null): void {
    this.#schedule.push(new Pending(timeMs, this.#order++, timer, event, produced));
  }
}

function checkOptions(o: Required<TrafficGeneratorOptions>): void {
  const fail = (message: string): never => {
    throw new RangeError(`TrafficGenerator: ${message}`);
  };
  if (!Number.isSafeInteger(o.seed)) fail(`seed must be a safe integer, got ${o.seed}`);
  if (!Number.isSafeInteger(o.users) || o.users < 1) fail(`users must be a positive integer, got ${o.users}`);
  if (!(o.ratePerSecond > 0) || !Number.isFinite(o.ratePerSecond)) fail(`ratePerSecond must be positive, got ${o.ratePerSecond}`);
  if (!Number.isSafeInteger(o.startTimeMs) || o.startTimeMs < 0) fail(`startTimeMs must be ms since the epoch, got ${o.startTimeMs}`);
  if (o.driftAtMs !== null && (!Number.isSafeInteger(o.driftAtMs) || o.driftAtMs < 0)) {
    fail(`driftAtMs must be a non-negative integer or null, got ${o.driftAtMs}`);
  }
  const [min, max] = o.labelDelayMs;
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min < 0 || max < min) {
    fail(`labelDelayMs must be [min, max] with 0 ≤ min ≤ max, whole ms; got [${min}, ${max}]`);
  }
  if (!(o.fraudRate >= 0 && o.fraudRate < 1)) fail(`fraudRate must be in [0, 1), got ${o.fraudRate}`);
  if (!(o.driftAmountScale > 0) || !Number.isFinite(o.driftAmountScale)) fail(`driftAmountScale must be positive, got ${o.driftAmountScale}`);
  if (!(o.driftFraudShare >= 0 && o.driftFraudShare <= 1)) fail(`driftFraudShare must be in [0, 1], got ${o.driftFraudShare}`);
  if (!Number.isSafeInteger(o.maxJitterMs) || o.maxJitterMs < 0 || o.maxJitterMs > min) {
    fail(`maxJitterMs must be a whole number of ms from 0 to labelDelayMs[0] (${min}), got ${o.maxJitterMs}`);
  }
}
