import { JoinWindows } from '../../engine/operators/joins.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';

export interface Payment {
  readonly id: string;
  readonly user: string;
  readonly amount: number;
  readonly merchant: string;
}

export interface UserProfile {
  readonly tier: 'basic' | 'gold';
}

export interface Merchant {
  readonly country: string;
}

export interface Click {
  readonly page: string;
}

/**
 * Joins, in event time. Each payment gets the user's profile as it was when the payment happened (a versioned
 * table: a later upgrade does not rewrite history), the merchant's country from a global table (no
 * co-partitioning needed), and the page the user clicked within the 30 s before it, if any (a windowed left join
 * that waits up to a minute of event time for late clicks).
 */
const b = new StreamsBuilder('enrich-payments');
const profiles = b.table<string, UserProfile>('user-profiles', { name: 'profiles', versioned: { historyRetentionMs: 86_400_000 } });
const merchants = b.globalTable<string, Merchant>('merchants', { name: 'merchants' });
const clicks = b.stream<string, Click>('clicks', { name: 'clicks' });
b.stream<string, Payment>('payments', { name: 'payments' })
  .join('with-profile', profiles, (payment, profile) => ({ ...payment, tier: profile.tier }))
  .join('with-merchant', merchants, (r) => r.value.merchant, (payment, merchant) => ({ ...payment, country: merchant.country }))
  .leftJoin('with-click', clicks, (payment, click) => ({ ...payment, page: click?.page ?? null }), JoinWindows.of(30_000, 0, { graceMs: 60_000 }))
  .to('enriched-payments');
export default b;
