/**
 * `user-risk`: one key per user — the user id itself (`user-00042`) — holding the user's latest feature vector
 * (from `features`), latest score (from `predictions`), and how many of their transactions were scored and flagged.
 *
 * Latest means greatest event time (`at`), ties broken by transaction id, so a vector or prediction arriving late
 * never replaces a newer one, and the answer does not depend on the order the two topics (and the partitions of
 * `predictions`, keyed by transaction) are read in. Counts include late events.
 */
import { defineProjection, type ProjectionContext, type ProjectionEvent } from '../../engine/projections/projection.js';
import { Topics } from '../../topologies/pipeline/contract.js';
import { Fields, UNKNOWN, isoOf, read, write, type Versioned } from './support.js';

/** Most features kept per vector (the contract has ten): a value stays small whatever a producer sends. */
const MAX_FEATURES = 64;

export interface UserRisk extends Versioned {
  readonly user: string;
  readonly features: {
    readonly transaction_id: string;
    readonly at: string;
    readonly feature_version: string;
    /** `unknown` for vectors written before they carried it. */
    readonly country: string;
    readonly values: Readonly<Record<string, number>>;
  } | null;
  readonly score: {
    readonly transaction_id: string;
    readonly at: string;
    readonly probability: number;
    readonly class: 0 | 1;
    readonly model: string;
    readonly version: string;
    readonly route: 'stable' | 'canary';
  } | null;
  readonly counts: {
    /** Predictions made for the user's transactions. */
    readonly scored: number;
    /** Of those, the ones the model called fraud (class 1). */
    readonly flagged: number;
  };
  /** The highest probability of fraud any of the user's transactions got. */
  readonly max_probability: number | null;
}

/** Whether (atMs, id) is later than what is held: greatest event time, then greatest transaction id. */
function isLater(atMs: number, id: string, held: { at: string; transaction_id: string } | null): boolean {
  if (held === null) return true;
  const heldMs = Date.parse(held.at);
  return atMs !== heldMs ? atMs > heldMs : id > held.transaction_id;
}

function empty(user: string): Omit<UserRisk, 'as_of_ms'> {
  return { user, features: null, score: null, counts: { scored: 0, flagged: 0 }, max_probability: null };
}

async function onFeatures(event: ProjectionEvent, ctx: ProjectionContext): Promise<void> {
  const vector = new Fields(event);
  const user = vector.text('user');
  const transactionId = vector.text('transaction_id');
  const atMs = vector.time('at');
  const before = await read<UserRisk>(ctx, user);
  const current = before ?? { ...empty(user), as_of_ms: 0 };
  if (!isLater(atMs, transactionId, current.features)) return; // late: a newer vector is already held
  write<UserRisk>(
    ctx,
    user,
    {
      ...current,
      features: {
        transaction_id: transactionId,
        at: isoOf(atMs),
        feature_version: vector.text('feature_version'),
        country: vector.optionalText('country') ?? UNKNOWN,
        values: vector.numbers('features', MAX_FEATURES),
      },
    },
    event.timestampMs,
    before,
  );
}

async function onPrediction(event: ProjectionEvent, ctx: ProjectionContext): Promise<void> {
  const prediction = new Fields(event);
  const user = prediction.text('user');
  const transactionId = prediction.text('transaction_id');
  const atMs = prediction.time('at');
  const probability = prediction.number('probability', { min: 0, max: 1 });
  const cls = prediction.number('class', { min: 0, max: 1 }) === 1 ? 1 : 0;
  const score = {
    transaction_id: transactionId,
    at: isoOf(atMs),
    probability,
    class: cls,
    model: prediction.text('model'),
    version: prediction.text('version'),
    route: prediction.oneOf('route', ['stable', 'canary'] as const),
  } as const;
  const before = await read<UserRisk>(ctx, user);
  const current = before ?? { ...empty(user), as_of_ms: 0 };
  write<UserRisk>(
    ctx,
    user,
    {
      ...current,
      score: isLater(atMs, transactionId, current.score) ? score : current.score,
      counts: { scored: current.counts.scored + 1, flagged: current.counts.flagged + cls },
      max_probability: Math.max(current.max_probability ?? 0, probability),
    },
    event.timestampMs,
    before,
  );
}

async function handle(event: ProjectionEvent, ctx: ProjectionContext): Promise<void> {
  if (event.value === null) return; // a tombstone says nothing about a user
  if (event.topic === Topics.features) await onFeatures(event, ctx);
  else await onPrediction(event, ctx);
}

export default defineProjection({
  name: 'user-risk',
  description: "Per user (key: the user id): the latest feature vector and score, and how many of the user's transactions were scored and flagged.",
  topics: [Topics.features, Topics.predictions],
  handle,
});
