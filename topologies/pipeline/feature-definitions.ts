import { FEATURE_NAMES, type Features } from './contract.js';

/**
 * The feature definitions: one pure function of a user's recent history and the transaction at hand. Online scoring
 * (the features topology) and training-set export (a replay of the same topology over the log) both run exactly
 * this code, so a model is trained on the values it is served.
 *
 * Point in time: a transaction at event time t sees only the user's transactions with event time ≤ t that were
 * read before it, never a later one, even when events arrive out of order.
 */

export interface HistoryEntry {
  /** Event time, ms. */
  readonly at: number;
  readonly amount: number;
  readonly country: string;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** How far back any feature looks from its transaction. */
export const HISTORY_HORIZON_MS = DAY;

/**
 * How late (behind the user's latest event time) a transaction may arrive and still get exact features: the history
 * keeps this much more than the horizon. A transaction later than that sees a history missing its oldest part.
 */
export const MAX_LATENESS_MS = 2 * DAY;

/** `seconds_since_last` for a user's first transaction: as if the last one were a day ago. */
export const NO_PREVIOUS_SECONDS = DAY / 1000;

/**
 * The features of a transaction at `at` with `amount` from `country`, given the user's `history` (earlier reads;
 * any order). The transaction itself counts in the windowed counts, sums, means and distinct countries; "previous"
 * features (seconds since the last, previous amount, amount to the previous mean) look at the history of the last
 * 24 hours only.
 */
export function computeFeatures(history: readonly HistoryEntry[], at: number, amount: number, country: string): Features {
  let count10m = 1;
  let sum1h = amount;
  let count1h = 1;
  let sum24h = amount;
  let count24h = 1;
  let previousSum24h = 0;
  let previousCount24h = 0;
  let last: HistoryEntry | undefined;
  const countries = new Set<string>([country]);
  for (const entry of history) {
    if (entry.at > at) continue; // later in event time: not known at `at`
    const age = at - entry.at;
    // Beyond the horizon nothing counts, not even as "the previous transaction": the history may have dropped it.
    if (age >= HISTORY_HORIZON_MS) continue;
    if (age < 10 * MINUTE) count10m++;
    if (age < HOUR) {
      sum1h += entry.amount;
      count1h++;
    }
    sum24h += entry.amount;
    count24h++;
    previousSum24h += entry.amount;
    previousCount24h++;
    countries.add(entry.country);
    if (last === undefined || entry.at >= last.at) last = entry;
  }
  const previousMean24h = previousCount24h === 0 ? 0 : previousSum24h / previousCount24h;
  const features: Record<(typeof FEATURE_NAMES)[number], number> = {
    amount,
    count_10m: count10m,
    sum_1h: round(sum1h),
    mean_1h: round(sum1h / count1h),
    sum_24h: round(sum24h),
    mean_24h: round(sum24h / count24h),
    seconds_since_last: last === undefined ? NO_PREVIOUS_SECONDS : (at - last.at) / 1000,
    distinct_countries_24h: countries.size,
    amount_to_mean_24h: previousMean24h === 0 ? 1 : round(amount / previousMean24h),
    prev_amount: last === undefined ? 0 : last.amount,
  };
  return features;
}

/** The history after `entry` is read, without what no feature can look at any more. */
export function extendHistory(history: readonly HistoryEntry[], entry: HistoryEntry): HistoryEntry[] {
  const latest = Math.max(entry.at, ...history.map((h) => h.at));
  const kept = history.filter((h) => latest - h.at < HISTORY_HORIZON_MS + MAX_LATENESS_MS);
  kept.push(entry);
  return kept;
}

/** Features as the model input row, in FEATURE_NAMES order. */
export function featureRow(features: Features): number[] {
  return FEATURE_NAMES.map((name) => features[name]);
}

/** Rounded to 1e-6 so that values are identical however a sum was accumulated. */
function round(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
