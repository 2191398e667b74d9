import { offset, type AppendRecord, type Log } from '../log/log.js';

/**
 * The audit trail: one event per operator action (dead letters redriven or skipped, a model version promoted or
 * rolled back) on `_audit`, written in the same transaction as what the action changes, so an action is never done
 * without its trace.
 */

export const AUDIT_TOPIC = '_audit';

/** What `_audit` holds: one event per operator action, whatever it acted on. */
export type AuditEvent = DeadLetterAuditEvent | ModelAuditEvent;

interface AuditEventBase {
  readonly at: string;
  /** Who acted: the `x-millrace-actor` header, else `http:<client address>`. */
  readonly actor: string;
  readonly reason?: string;
}

/** The routing of a model as an audit event records it. */
export interface AuditedRouting {
  readonly stable: string | null;
  readonly canary: { readonly version: string; readonly percent: number } | null;
}

/** An operator's promotion or rollback of a model version (the same decision is on `model-registry`). */
export interface ModelAuditEvent extends AuditEventBase {
  readonly type: 'ModelPromoted' | 'ModelRolledBack';
  readonly model: string;
  readonly version: string;
  /** The routing before and after the decision. */
  readonly from: AuditedRouting;
  readonly to: AuditedRouting;
}

export interface DeadLetterAuditEvent extends AuditEventBase {
  readonly type: 'DeadLettersRedriven' | 'DeadLettersSkipped';
  readonly topic: string;
  readonly partition: number;
  /** The dead letters' offsets the action took. */
  readonly offsets: readonly number[];
  /** Where each redriven record landed. */
  readonly redriven?: ReadonlyArray<{ readonly from: number; readonly topic: string; readonly partition: number }>;
}

/** Where an audit event was written. */
export interface AuditPosition {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

/** Appends an action's records and its audit event in one transaction; answers where the audit event landed. */
export async function appendAudited(
  log: Log,
  action: { readonly transactionalId: string; readonly records: readonly AppendRecord[]; readonly key: string; readonly event: AuditEvent },
): Promise<AuditPosition> {
  await log.ensureTopic({ name: AUDIT_TOPIC, partitions: 1 });
  const transaction = await log.beginTransaction({ transactionalId: action.transactionalId });
  try {
    transaction.append([...action.records, { topic: AUDIT_TOPIC, partition: 0, key: Buffer.from(action.key), value: Buffer.from(JSON.stringify(action.event)) }]);
    const results = await transaction.commit();
    const written = results.find((r) => r.topic === AUDIT_TOPIC)!;
    return { topic: AUDIT_TOPIC, partition: written.partition, offset: written.offset };
  } catch (err) {
    await transaction.abort().catch(() => undefined);
    throw err;
  }
}

/** The last audit events, newest first, each with its position under `audit`. */
export async function readAuditEvents(log: Log, limit: number): Promise<unknown[]> {
  if (!(await log.listTopics()).some((t) => t.name === AUDIT_TOPIC)) return [];
  const events: Array<{ offset: number; event: unknown }> = [];
  for (const { partition, start, end } of await log.partitionOffsets(AUDIT_TOPIC)) {
    const from = Math.max(start, end - limit);
    for (let at = from; at < end; ) {
      const batch = await log.read(AUDIT_TOPIC, partition, offset(at), { maxRecords: limit });
      if (batch.records.length === 0) break;
      for (const r of batch.records) {
        try {
          events.push({ offset: r.offset, event: { ...(JSON.parse(r.value?.toString('utf8') ?? 'null') as object), audit: { topic: AUDIT_TOPIC, partition, offset: r.offset } } });
        } catch {
          // not an event of ours
        }
      }
      at = batch.nextOffset;
    }
  }
  return events.sort((a, b) => b.offset - a.offset).slice(0, limit).map((e) => e.event);
}
