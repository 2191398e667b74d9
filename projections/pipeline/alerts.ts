/**
 * `alerts`: the predictions worth a look — probability at or above `threshold` (option, default 0.9) or class 1 —
 * and, once the transaction's outcome arrives on `outcomes`, whether the alert was right. Two key families:
 *
 *   tx/<transaction id>                       the alert: score, model, version, route, features, lineage, status
 *   user/<user>/<at ISO>/<transaction id>     a small index entry per alert, so a prefix scan of `user/<user>/`
 *                                             lists a user's alerts in time order (`at`: the transaction's time)
 *
 * Every part is URI-encoded. `status` is `open` until the outcome says `confirmed` (fraud) or `false-positive`.
 *
 * `predictions` and `outcomes` are read independently, so an outcome may come first. When its probability alone
 * makes an alert (at or above `threshold`, or the model's decision threshold: 0.5, scoring's default, unless the
 * outcome says otherwise), the alert opens from the outcome with what it carries (`user: null`, no features yet);
 * the prediction fills in the rest when it comes, or removes the alert when it turns out not to be one. Either
 * order ends with the same value as long as the prediction's class agrees with that decision threshold; outcomes
 * do not carry the threshold today, so with a scoring threshold other than 0.5 an outcome read *after* its
 * prediction may open an alert the prediction would not have (above 0.5), or miss one (below).
 */
import { defineProjection, type ProjectionContext, type ProjectionDefinition, type ProjectionEvent, type ProjectionModuleContext } from '../../engine/projections/projection.js';
import { Topics } from '../../topologies/pipeline/contract.js';
import { Fields, UNKNOWN, isoOf, keyPart, numberOption, read, remove, write, type Versioned } from './support.js';

export const DEFAULT_ALERT_THRESHOLD = 0.9;
/** The model's decision threshold when an outcome does not say (scoring's default). */
const DEFAULT_DECISION_THRESHOLD = 0.5;
const MAX_FEATURES = 64;

export type AlertStatus = 'open' | 'confirmed' | 'false-positive';

type Coordinates = { readonly topic: string; readonly partition: number; readonly offset: number };

export interface Alert extends Versioned {
  readonly transaction_id: string;
  /** Null while only the outcome is known. */
  readonly user: string | null;
  /** The transaction's event time; null while only the outcome is known. */
  readonly at: string | null;
  readonly model: string;
  readonly version: string;
  readonly model_sha256: string | null;
  readonly route: 'stable' | 'canary';
  readonly probability: number;
  /** Null while only the outcome is known. */
  readonly class: 0 | 1 | null;
  /** `high`: probability at or above the alert threshold; `flagged`: class 1 below it. */
  readonly level: 'high' | 'flagged';
  readonly country: string;
  readonly features: Readonly<Record<string, number>> | null;
  readonly lineage: { readonly features: Coordinates | null; readonly transaction: Coordinates | null } | null;
  readonly status: AlertStatus;
  readonly outcome: { readonly fraud: boolean; /** The outcome record's event time. */ readonly resolved_at: string } | null;
}

/** What `user/<user>/…` holds: enough to list; the rest is under `tx/<transaction id>`. */
export interface UserAlert extends Versioned {
  readonly transaction_id: string;
  readonly at: string;
  readonly probability: number;
  readonly level: 'high' | 'flagged';
  readonly status: AlertStatus;
}

export function alertKey(transactionId: string): string {
  return `tx/${keyPart(transactionId)}`;
}

export function userAlertKey(user: string, at: string, transactionId: string): string {
  return `user/${keyPart(user)}/${at}/${keyPart(transactionId)}`;
}

export interface AlertsOptions {
  /** Alert at or above this probability, whatever the class (default 0.9). */
  readonly threshold?: number;
}

export function alertsProjection(options: AlertsOptions = {}): ProjectionDefinition {
  const threshold = numberOption(options as Record<string, unknown>, 'threshold', DEFAULT_ALERT_THRESHOLD, { min: 0, max: 1 }, 'projection pipeline/alerts');
  const level = (probability: number): 'high' | 'flagged' => (probability >= threshold ? 'high' : 'flagged');

  /** Writes the alert and keeps its user index entry in step (moving it if the user or time changed). */
  const save = (ctx: ProjectionContext, event: ProjectionEvent, alert: Omit<Alert, 'as_of_ms'>, before: Alert | undefined): void => {
    const stored = write<Alert>(ctx, alertKey(alert.transaction_id), alert, event.timestampMs, before);
    const oldIndex = before?.user != null && before.at !== null ? userAlertKey(before.user, before.at, before.transaction_id) : undefined;
    const newIndex = alert.user !== null && alert.at !== null ? userAlertKey(alert.user, alert.at, alert.transaction_id) : undefined;
    if (oldIndex !== undefined && oldIndex !== newIndex) remove(ctx, oldIndex, stored.as_of_ms, before);
    if (newIndex !== undefined) {
      // Written at the alert's time: the two keys change together.
      write<UserAlert>(
        ctx,
        newIndex,
        { transaction_id: alert.transaction_id, at: alert.at!, probability: alert.probability, level: alert.level, status: alert.status },
        stored.as_of_ms,
        undefined,
      );
    }
  };

  const onPrediction = async (event: ProjectionEvent, ctx: ProjectionContext): Promise<void> => {
    const p = new Fields(event);
    const transactionId = p.text('transaction_id');
    const probability = p.number('probability', { min: 0, max: 1 });
    const cls = p.number('class', { min: 0, max: 1 }) === 1 ? 1 : 0;
    const before = await read<Alert>(ctx, alertKey(transactionId));
    if (probability < threshold && cls !== 1) {
      // Not an alert. One opened from the outcome alone was a guess that this settles.
      if (before !== undefined && before.user === null) remove(ctx, alertKey(transactionId), event.timestampMs, before);
      return;
    }
    const at = isoOf(p.time('at'));
    const version = p.text('version');
    // A transaction has one prediction; should another come (a replay of scoring), the later one (at, version) wins.
    if (before?.at != null && (before.at > at || (before.at === at && before.version >= version))) return;
    const lineage = p.object('lineage');
    save(
      ctx,
      event,
      {
        transaction_id: transactionId,
        user: p.text('user'),
        at,
        model: p.text('model'),
        version,
        model_sha256: p.optionalText('model_sha256') ?? null,
        route: p.oneOf('route', ['stable', 'canary'] as const),
        probability,
        class: cls,
        level: level(probability),
        country: p.optionalText('country') ?? UNKNOWN,
        features: p.numbers('features', MAX_FEATURES),
        lineage: { features: lineage.coordinates('features'), transaction: lineage.coordinates('transaction') },
        status: before?.status ?? 'open',
        outcome: before?.outcome ?? null,
      },
      before,
    );
  };

  const onOutcome = async (event: ProjectionEvent, ctx: ProjectionContext): Promise<void> => {
    const o = new Fields(event);
    const transactionId = o.text('transaction_id');
    const probability = o.number('probability', { min: 0, max: 1 });
    const fraud = o.boolean('fraud');
    const outcome = { fraud, resolved_at: isoOf(event.timestampMs) };
    const status: AlertStatus = fraud ? 'confirmed' : 'false-positive';
    const before = await read<Alert>(ctx, alertKey(transactionId));
    if (before !== undefined) {
      save(ctx, event, { ...before, status, outcome }, before);
      return;
    }
    // Outcomes do not carry the model's threshold today; one that does is taken at its word.
    const decision = o.optionalNumber('threshold') ?? DEFAULT_DECISION_THRESHOLD;
    if (probability < Math.min(threshold, decision)) return; // its prediction is no alert
    save(
      ctx,
      event,
      {
        transaction_id: transactionId,
        user: null,
        at: null,
        model: o.text('model'),
        version: o.text('version'),
        model_sha256: null,
        route: o.oneOf('route', ['stable', 'canary'] as const),
        probability,
        class: null,
        level: level(probability),
        country: o.optionalText('country') ?? UNKNOWN,
        features: null,
        lineage: null,
        status,
        outcome,
      },
      undefined,
    );
  };

  return defineProjection({
    name: 'alerts',
    description: `Predictions at or above ${threshold} or of class 1 (tx/<transaction id>; by user: user/<user>/<at>/<transaction id>), confirmed or not by their outcome.`,
    topics: [Topics.predictions, Topics.outcomes],
    async handle(event, ctx) {
      if (event.value === null) return;
      if (event.topic === Topics.predictions) await onPrediction(event, ctx);
      else await onOutcome(event, ctx);
    },
  });
}

export default function alerts({ options }: Pick<ProjectionModuleContext, 'options'>): ProjectionDefinition {
  return alertsProjection(options);
}
