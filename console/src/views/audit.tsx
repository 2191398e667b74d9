import type { JSX } from 'preact';
import { path, query, usePoll } from '../api.js';
import { Badge, Freshness, Link, Loading, Page, Panel, Problem, fmtTime } from '../components/ui.js';
import { eventPath } from './topics.js';

const LIMIT = 100;

interface Routing {
  readonly stable: string | null;
  readonly canary: { readonly version: string; readonly percent: number } | null;
}

/** One operator action, as `GET /audit` answers it (newest first), with where it is in the audit topic. */
export interface AuditEvent {
  readonly type: string;
  readonly at: string;
  readonly actor?: string;
  readonly reason?: string;
  /** Where the event is in the audit topic. */
  readonly audit: { readonly topic: string; readonly partition: number; readonly offset: number };
  // Dead-letter actions
  readonly topic?: string;
  /** The dead-letter partition acted on. */
  readonly partition?: number;
  readonly offsets?: readonly number[];
  readonly redriven?: ReadonlyArray<{ readonly from: number; readonly topic: string; readonly partition: number }>;
  // Model decisions
  readonly model?: string;
  readonly version?: string;
  readonly from?: Routing;
  readonly to?: Routing;
}

const TYPE_LABEL: Record<string, { label: string; tone: 'ok' | 'warn' | 'bad' | 'info' }> = {
  DeadLettersRedriven: { label: 'dead letters redriven', tone: 'ok' },
  DeadLettersSkipped: { label: 'dead letters skipped', tone: 'warn' },
  ModelPromoted: { label: 'model promoted', tone: 'info' },
  ModelRolledBack: { label: 'model rolled back', tone: 'bad' },
};

/** `3–7, 9, 12–13`: offsets taken by one action, as ranges, bounded. */
function ranges(offsets: readonly number[], max = 8): string {
  const sorted = [...offsets].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}–${sorted[j]}`);
    i = j + 1;
  }
  return parts.length > max ? `${parts.slice(0, max).join(', ')}, … (${parts.length - max} more)` : parts.join(', ');
}

function routingText(r: Routing | undefined): string {
  if (r === undefined) return '?';
  const stable = r.stable ?? 'none';
  return r.canary === null ? stable : `${stable} + canary ${r.canary.version} at ${r.canary.percent}%`;
}

export function AuditView(): JSX.Element {
  const audit = usePoll<{ events: AuditEvent[] }>(`/audit${query({ limit: LIMIT })}`);
  const events = audit.data?.events ?? [];
  return (
    <Page
      title="Audit"
      subtitle={`Every operator action — dead-letter redrives and skips, model promotions and rollbacks — newest first (the last ${LIMIT}).`}
      actions={<Freshness updatedAt={audit.updatedAt} error={audit.error} />}
    >
      <Problem error={audit.error} context="Audit" />
      {audit.data === undefined ? (
        audit.error === undefined ? <Loading what="audit events" /> : null
      ) : events.length === 0 ? (
        <p class="muted" data-testid="audit-empty">
          No audit events yet: redrives, skips, promotions and rollbacks appear here.
        </p>
      ) : (
        <Panel title={`Audit events (${events.length})`}>
          <table data-testid="audit-events">
            <thead>
              <tr>
                <th scope="col">Type</th>
                <th scope="col">At</th>
                <th scope="col">Actor</th>
                <th scope="col">Topic / model</th>
                <th scope="col" class="num">Partition</th>
                <th scope="col">Offsets / version</th>
                <th scope="col">Reason</th>
                <th scope="col">Audit record</th>
              </tr>
            </thead>
            <tbody>
              {events.map((e) => (
                <AuditRow event={e} />
              ))}
            </tbody>
          </table>
        </Panel>
      )}
    </Page>
  );
}

function AuditRow(props: { event: AuditEvent }): JSX.Element {
  const e = props.event;
  const type = TYPE_LABEL[e.type];
  const isModel = e.model !== undefined;
  const targets = [...new Set((e.redriven ?? []).map((r) => `${r.topic}/${r.partition}`))];
  return (
    <tr data-testid="audit-row">
      <th scope="row">
        <Badge tone={type?.tone ?? 'info'} title={e.type}>
          {type?.label ?? e.type}
        </Badge>
      </th>
      <td>
        <time dateTime={e.at}>{fmtTime(e.at)}</time>
      </td>
      <td>{e.actor ?? <span class="muted">—</span>}</td>
      <td>
        {isModel ? (
          <Link to={`/models${query({ model: e.model })}`}>{e.model}</Link>
        ) : e.topic !== undefined ? (
          <Link to={path('/dead-letters', e.topic)}>{e.topic}</Link>
        ) : (
          <span class="muted">—</span>
        )}
      </td>
      <td class="num">{isModel || e.topic === undefined ? <span class="muted">—</span> : e.partition ?? <span class="muted">—</span>}</td>
      <td>
        {isModel ? (
          <>
            <strong>{e.version}</strong>
            {e.from === undefined && e.to === undefined ? null : (
              <div class="muted">
                {routingText(e.from)} → {routingText(e.to)}
              </div>
            )}
          </>
        ) : e.offsets !== undefined ? (
          <>
            {e.offsets.length === 1 ? '1 dead letter' : `${e.offsets.length} dead letters`}: {ranges(e.offsets)}
            {targets.length === 0 ? null : <div class="muted">to {targets.join(', ')}</div>}
          </>
        ) : (
          <span class="muted">—</span>
        )}
      </td>
      <td>{e.reason ?? <span class="muted">—</span>}</td>
      <td>
        <Link to={eventPath(e.audit.topic, e.audit.partition, e.audit.offset)} title="The audit event itself">
          {e.audit.topic}/{e.audit.partition}/{e.audit.offset}
        </Link>
      </td>
    </tr>
  );
}
