import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, getJson, path, postJson, query, usePoll } from '../api.js';
import { Badge, ConfirmDialog, Freshness, Link, Loading, Page, Panel, Problem, fmt, fmtTime } from '../components/ui.js';
import { useReadOnly } from '../config.js';
import { navigate } from '../router.js';
import type { RecordView } from '../types.js';
import type { AuditEvent } from './audit.js';
import { eventPath, headerText, type EventsAnswer, type PartitionBounds, type TopicInfo } from './topics.js';
import './dead-letters.css';

// ------------------------------------------------------------------------------------------------ shapes

const DLQ_SUFFIX = '.dlq';
/** Headers a dead letter carries (engine/runtime/dead-letter.ts). */
const H_CODE = 'millrace.dlq.code';
const H_TOPIC = 'millrace.source.topic';
const H_PARTITION = 'millrace.source.partition';
const H_OFFSET = 'millrace.source.offset';
/** Dead letters shown per partition: the newest. Older ones are reachable with the range form and the topic view. */
const SHOWN_PER_PARTITION = 200;
/** The most one action takes (MAX_REDRIVE_RECORDS). */
const MAX_RANGE = 1_000;
/** Audit events read to tell which dead letters were handled. */
const AUDIT_WINDOW = 1_000;

interface DeadLetterTopics {
  readonly deadLetterTopics: ReadonlyArray<{ readonly topic: string; readonly partitions: readonly PartitionBounds[]; readonly records: number }>;
}

type Action = 'redrive' | 'skip';

interface Range {
  readonly partition: number;
  readonly from: number;
  readonly to: number;
}

interface PlanItem {
  readonly offset: number;
  readonly target: { readonly topic: string; readonly partition: number } | null;
  readonly code: string | null;
  readonly detail: string | null;
  readonly handled: boolean;
  readonly problem?: string;
}

interface Plan {
  readonly dryRun: true;
  readonly action: Action;
  readonly range: { readonly topic: string } & Range;
  readonly items: readonly PlanItem[];
  readonly count: number;
  readonly token: string;
}

interface ActionResult {
  readonly dryRun: false;
  readonly action: Action;
  readonly count: number;
  readonly audit: { readonly topic: string; readonly partition: number; readonly offset: number };
}

interface Handling {
  readonly type: string;
  readonly at: string;
  /** Where the audit event is. */
  readonly audit: { readonly partition: number; readonly offset: number };
}

/** The newest audit events. */
async function readAuditTrail(signal: AbortSignal): Promise<AuditEvent[]> {
  return (await getJson<{ events: AuditEvent[] }>(`/audit${query({ limit: AUDIT_WINDOW })}`, signal)).events;
}

/** Which dead letters of `topic` an audit event took: `partition/offset` → the newest action on it. */
function handledIn(events: readonly AuditEvent[] | undefined, topic: string): Map<string, Handling> {
  const handled = new Map<string, Handling>();
  // Newest first: the first event seen for a dead letter wins.
  for (const e of events ?? []) {
    if (e.topic !== topic || e.partition === undefined || !Array.isArray(e.offsets)) continue;
    for (const at of e.offsets) {
      const id = `${e.partition}/${at}`;
      if (!handled.has(id)) handled.set(id, { type: e.type, at: e.at, audit: { partition: e.audit.partition, offset: e.audit.offset } });
    }
  }
  return handled;
}

function handledLabel(type: string): string {
  return type === 'DeadLettersRedriven' ? 'redriven' : type === 'DeadLettersSkipped' ? 'skipped' : type;
}

const ACTION_LABEL: Record<Action, { verb: string; done: string }> = {
  redrive: { verb: 'Redrive', done: 'Redriven' },
  skip: { verb: 'Skip', done: 'Skipped' },
};

function plural(n: number, one: string, many = `${one}s`): string {
  return `${fmt(n)} ${n === 1 ? one : many}`;
}

// ------------------------------------------------------------------------------------------------ all dead-letter topics

export function DeadLettersView(): JSX.Element {
  const dlq = usePoll<DeadLetterTopics>('/dead-letters');
  const audit = usePoll<AuditEvent[]>(`/audit${query({ limit: AUDIT_WINDOW })}`, 5_000, (_key, signal) => readAuditTrail(signal));
  const topics = dlq.data?.deadLetterTopics ?? [];
  return (
    <Page
      title="Dead letters"
      subtitle="Records a task could not process, kept with their problem and original bytes until they are redriven or skipped."
      actions={<Freshness updatedAt={dlq.updatedAt} error={dlq.error} />}
    >
      <Problem error={dlq.error} context="Dead letters" />
      {dlq.data === undefined ? (
        dlq.error === undefined ? <Loading what="dead-letter topics" /> : null
      ) : topics.length === 0 ? (
        <p class="success" data-testid="no-dead-letters">
          No dead-letter topics: no task has dead-lettered a record.
        </p>
      ) : (
        <Panel title="Dead-letter topics">
          <table data-testid="dlq-topics">
            <caption class="muted table-note">
              Handled: dead letters still held that a redrive or skip took, as the last {fmt(AUDIT_WINDOW)} audit events say.
            </caption>
            <thead>
              <tr>
                <th scope="col">Dead-letter topic</th>
                <th scope="col">Source topic</th>
                <th scope="col" class="num">Partitions</th>
                <th scope="col" class="num">Dead letters</th>
                <th scope="col" class="num">Handled</th>
                <th scope="col" class="num">Open</th>
              </tr>
            </thead>
            <tbody>
              {[...topics]
                .sort((a, b) => a.topic.localeCompare(b.topic))
                .map((t) => {
                  const source = t.topic.endsWith(DLQ_SUFFIX) ? t.topic.slice(0, -DLQ_SUFFIX.length) : null;
                  const handled = audit.data === undefined ? undefined : countHandled(handledIn(audit.data, t.topic), t.partitions);
                  const open = handled === undefined ? undefined : t.records - handled;
                  return (
                    <tr>
                      <th scope="row">
                        <Link to={path('/dead-letters', t.topic)} data-testid={`dlq-topic-${t.topic}`}>
                          {t.topic}
                        </Link>
                      </th>
                      <td>{source === null ? '—' : <Link to={path('/topics', source)}>{source}</Link>}</td>
                      <td class="num">{t.partitions.length}</td>
                      <td class="num" data-testid={`dlq-count-${t.topic}`}>
                        {fmt(t.records)}
                      </td>
                      <td class="num">{handled === undefined ? '—' : fmt(handled)}</td>
                      <td class="num">{open === undefined ? '—' : open > 0 ? <Badge tone="warn">{fmt(open)}</Badge> : <Badge tone="ok">0</Badge>}</td>
                    </tr>
                  );
                })}
            </tbody>
          </table>
        </Panel>
      )}
    </Page>
  );
}

/** Handled dead letters still held (retention may have deleted older ones). */
function countHandled(handled: Map<string, Handling>, partitions: readonly PartitionBounds[]): number {
  let n = 0;
  for (const id of handled.keys()) {
    const [p, o] = id.split('/').map(Number) as [number, number];
    const bounds = partitions.find((b) => b.partition === p);
    if (bounds !== undefined && o >= bounds.start && o < bounds.end) n++;
  }
  return n;
}

// ------------------------------------------------------------------------------------------------ one dead-letter topic

interface Letters {
  readonly info: TopicInfo;
  readonly records: readonly RecordView[];
}

interface Pending {
  readonly action: Action;
  readonly range: Range;
  readonly reason: string;
}

function parseWhole(text: string): number | undefined {
  const t = text.trim();
  return /^\d{1,15}$/.test(t) ? Number(t) : undefined;
}

export function DeadLetterTopicView(props: { topic: string; search: URLSearchParams }): JSX.Element {
  const { topic, search } = props;
  const readOnly = useReadOnly();
  const partitionFilter = search.get('partition');
  const shownPartition = partitionFilter !== null && /^\d{1,9}$/.test(partitionFilter) ? Number(partitionFilter) : undefined;

  // The newest dead letters of each partition: offsets first, then a bounded read from near the end.
  const letters = usePoll<Letters>(`${path('/dead-letters', topic)}?letters=${shownPartition ?? 'all'}`, undefined, async (_key, signal) => {
    const info = await getJson<TopicInfo>(path('/topics', topic), signal);
    const records: RecordView[] = [];
    for (const b of info.offsets) {
      if (shownPartition !== undefined && b.partition !== shownPartition) continue;
      const from = Math.max(b.start, b.end - SHOWN_PER_PARTITION);
      if (from >= b.end) continue;
      const answer = await getJson<EventsAnswer>(path('/topics', topic, 'events') + query({ partition: b.partition, offset: from, limit: SHOWN_PER_PARTITION }), signal);
      records.push(...answer.records.filter((r) => r.partition === b.partition && r.offset >= from));
    }
    records.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
    return { info, records };
  });
  const audit = usePoll<AuditEvent[]>(`/audit${query({ limit: AUDIT_WINDOW })}`, undefined, (_key, signal) => readAuditTrail(signal));
  const handled = handledIn(audit.data, topic);

  // The two steps of an action: a dry run answers a plan, which the operator confirms (or not).
  const [plan, setPlan] = useState<{ plan: Plan; reason: string } | undefined>();
  const [busy, setBusy] = useState<string | undefined>();
  const [problem, setProblem] = useState<{ error: ApiError; retry: Pending | undefined } | undefined>();
  const [empty, setEmpty] = useState<Plan | undefined>();
  const [result, setResult] = useState<{ result: ActionResult; range: Range; reason: string } | undefined>();
  const [reason, setReason] = useState(search.get('reason') ?? '');
  // The dialog exists only while a plan waits for confirmation; focus then goes back to what opened it.
  const opener = useRef<HTMLElement | null>(null);
  useEffect(() => {
    if (plan === undefined && opener.current?.isConnected === true) opener.current.focus();
  }, [plan]);

  const actionPath = (action: Action): string => path('/dead-letters', topic, action);

  const dryRun = async (pending: Pending): Promise<void> => {
    opener.current = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    setBusy(`${pending.action}-${pending.range.partition}-${pending.range.from}-${pending.range.to}`);
    setProblem(undefined);
    setEmpty(undefined);
    setResult(undefined);
    try {
      const answer = await postJson<Plan>(actionPath(pending.action), { ...pending.range, dryRun: true });
      if (answer.count === 0) setEmpty(answer);
      else setPlan({ plan: answer, reason: pending.reason });
    } catch (err) {
      setProblem({ error: asApiError(err), retry: undefined });
    } finally {
      setBusy(undefined);
    }
  };

  const confirm = async (): Promise<void> => {
    if (plan === undefined) return;
    const { action, range } = plan.plan;
    const reason = plan.reason.trim();
    const pending: Pending = { action, range: { partition: range.partition, from: range.from, to: range.to }, reason: plan.reason };
    setBusy('confirm');
    try {
      const answer = await postJson<ActionResult>(actionPath(action), {
        partition: range.partition,
        from: range.from,
        to: range.to,
        dryRun: false,
        token: plan.plan.token,
        ...(reason === '' ? {} : { reason }),
      });
      setResult({ result: answer, range: pending.range, reason });
      setPlan(undefined);
      letters.reload();
      audit.reload();
    } catch (err) {
      const error = asApiError(err);
      setPlan(undefined);
      // 409: the dead letters changed since the dry run; the plan shown is no longer the one the token names.
      setProblem({ error, retry: error.status === 409 ? pending : undefined });
    } finally {
      setBusy(undefined);
    }
  };

  const info = letters.data?.info;
  const records = letters.data?.records ?? [];
  const source = topic.endsWith(DLQ_SUFFIX) ? topic.slice(0, -DLQ_SUFFIX.length) : null;
  const total = info?.offsets.reduce((n, o) => n + (o.end - o.start), 0);
  const setPartitionFilter = (value: string): void => navigate(path('/dead-letters', topic) + query({ partition: value === 'all' ? null : value }), { replace: true });

  return (
    <Page
      title={topic}
      subtitle={
        <>
          <Link to="/dead-letters">Dead letters</Link> / {topic}
          {source === null ? null : (
            <>
              {' '}
              · from <Link to={path('/topics', source)}>{source}</Link>
            </>
          )}
          {total === undefined ? null : ` · ${plural(total, 'dead letter')} held`} · <Link to={path('/topics', topic)}>raw topic</Link>
        </>
      }
      actions={<Freshness updatedAt={letters.updatedAt} error={letters.error} />}
    >
      <Problem error={letters.error} context="Dead letters" />

      <div data-testid="action-result" role="status" class={result === undefined ? undefined : 'success'}>
        {result === undefined ? null : <ResultText topic={topic} {...result} />}
      </div>
      {problem === undefined ? null : (
        <div class="problem-with-retry">
          <Problem error={problem.error} context={problem.error.status === 409 ? 'The plan changed' : 'Action'} />
          {problem.retry === undefined || readOnly ? null : (
            <button type="button" class="primary" onClick={() => void dryRun(problem.retry!)} disabled={busy !== undefined} data-testid="retry-dry-run">
              Run the dry run again
            </button>
          )}
        </div>
      )}
      {empty === undefined ? null : (
        <div class="notice" role="status" data-testid="dry-run-empty">
          <p>
            <strong>Nothing to {empty.action}</strong> in partition {empty.range.partition}, offsets {empty.range.from} to {empty.range.to}: every dead letter there was handled before, cannot be{' '}
            {empty.action === 'redrive' ? 'redriven' : 'skipped'}, or the range holds none.
          </p>
          {empty.items.length === 0 ? null : <PlanTable plan={empty} />}
          <button type="button" onClick={() => setEmpty(undefined)}>
            Dismiss
          </button>
        </div>
      )}

      {readOnly ? null : (
        <RangeForm
          search={search}
          reason={reason}
          onReason={setReason}
          partitions={info?.offsets.map((o) => o.partition) ?? []}
          busy={busy !== undefined}
          onAction={(pending) => void dryRun(pending)}
        />
      )}

      <Panel
        title="Newest dead letters"
        aside={
          <label>
            Filter
            <select value={shownPartition === undefined ? 'all' : String(shownPartition)} onChange={(e) => setPartitionFilter(e.currentTarget.value)} data-testid="dlq-partition-filter">
              <option value="all">all partitions</option>
              {(info?.offsets ?? []).map((o) => (
                <option value={String(o.partition)}>partition {o.partition}</option>
              ))}
              {shownPartition !== undefined && !(info?.offsets ?? []).some((o) => o.partition === shownPartition) ? <option value={String(shownPartition)}>partition {shownPartition}</option> : null}
            </select>
          </label>
        }
      >
        {letters.data === undefined ? (
          letters.error === undefined ? <Loading what="dead letters" /> : null
        ) : records.length === 0 ? (
          <p class="muted" data-testid="dlq-empty">
            {shownPartition === undefined ? 'This topic holds no dead letters.' : `Partition ${shownPartition} holds no dead letters.`}
          </p>
        ) : (
          <table data-testid="dead-letters">
            <caption class="muted table-note">
              The newest {SHOWN_PER_PARTITION} of each partition, oldest first. Handled: as the last {fmt(AUDIT_WINDOW)} audit events say
              {audit.error === undefined ? '' : ' (the audit log cannot be read right now)'}.
            </caption>
            <thead>
              <tr>
                <th scope="col">Dead letter</th>
                <th scope="col">Time</th>
                <th scope="col">Source</th>
                <th scope="col">Error</th>
                <th scope="col">Problem</th>
                <th scope="col">State</th>
                {readOnly ? null : <th scope="col">Actions</th>}
              </tr>
            </thead>
            <tbody>
              {records.map((r) => (
                <DeadLetterRow
                  topic={topic}
                  record={r}
                  handling={handled.get(`${r.partition}/${r.offset}`)}
                  auditKnown={audit.data !== undefined}
                  readOnly={readOnly}
                  busy={busy}
                  onAction={(action) => void dryRun({ action, range: { partition: r.partition, from: r.offset, to: r.offset }, reason })}
                />
              ))}
            </tbody>
          </table>
        )}
      </Panel>

      {readOnly || plan === undefined ? null : (
        <ConfirmDialog
          open
          title={`${ACTION_LABEL[plan.plan.action].verb} ${plural(plan.plan.count, 'dead letter')}?`}
          confirmLabel={`${ACTION_LABEL[plan.plan.action].verb} ${plural(plan.plan.count, 'dead letter')}`}
          danger={plan.plan.action === 'skip'}
          busy={busy === 'confirm'}
          onCancel={() => {
            if (busy !== 'confirm') setPlan(undefined);
          }}
          onConfirm={() => void confirm()}
        >
          <p data-testid="plan-summary">
            The dry run of <strong>{plan.plan.action}</strong> on {topic}, partition {plan.plan.range.partition}, offsets {plan.plan.range.from} to {plan.plan.range.to}:{' '}
            <strong data-testid="plan-count">{plural(plan.plan.count, 'dead letter')}</strong>{' '}
            {plan.plan.action === 'redrive' ? 'would be sent back to the topic each came from' : 'would be marked handled without being sent anywhere'}. Nothing has changed yet.
          </p>
          <PlanTable plan={plan.plan} />
          <p data-testid="plan-reason">
            {plan.reason.trim() === '' ? (
              <span class="muted">No reason given: the audit event will have none (cancel and fill in Reason to add one).</span>
            ) : (
              <>
                Reason, for the audit event: <q>{plan.reason.trim()}</q>
              </>
            )}
          </p>
        </ConfirmDialog>
      )}
    </Page>
  );
}

function asApiError(err: unknown): ApiError {
  return err instanceof ApiError ? err : new ApiError(0, err instanceof Error ? err.message : String(err));
}

function ResultText(props: { topic: string; result: ActionResult; range: Range; reason: string }): JSX.Element {
  const { result, range, topic } = props;
  const audit = result.audit;
  return (
    <>
      <strong>
        {ACTION_LABEL[result.action].done} {plural(result.count, 'dead letter')}
      </strong>{' '}
      of {topic}, partition {range.partition}, offsets {range.from} to {range.to}
      {props.reason === '' ? '' : ` (reason: ${props.reason})`}. Audit event{' '}
      <Link to={eventPath(audit.topic, audit.partition, audit.offset)} data-testid="audit-position">
        {audit.topic}/{audit.partition}/{audit.offset}
      </Link>{' '}
      — <Link to="/audit">see the audit log</Link>.
    </>
  );
}

function PlanTable(props: { plan: Plan }): JSX.Element {
  const { plan } = props;
  return (
    <table data-testid="plan-items">
      <thead>
        <tr>
          <th scope="col" class="num">Offset</th>
          <th scope="col">Target</th>
          <th scope="col">Error</th>
          <th scope="col">Outcome</th>
        </tr>
      </thead>
      <tbody>
        {plan.items.map((item) => (
          <tr data-testid="plan-item">
            <th scope="row" class="num">
              {item.offset}
            </th>
            <td>{item.target === null ? <span class="muted">none</span> : `${item.target.topic} / partition ${item.target.partition}`}</td>
            <td>{item.code === null ? <span class="muted">—</span> : <code>{item.code}</code>}</td>
            <td>
              {item.handled ? (
                <Badge tone="info">handled before: left out</Badge>
              ) : item.problem !== undefined && plan.action === 'redrive' ? (
                <>
                  <Badge tone="bad">left out</Badge> {item.problem}
                </>
              ) : (
                <>
                  <Badge tone={plan.action === 'redrive' ? 'ok' : 'warn'}>{plan.action === 'redrive' ? 'will be redriven' : 'will be skipped'}</Badge>
                  {item.problem === undefined ? null : ` (${item.problem})`}
                </>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function DeadLetterRow(props: {
  topic: string;
  record: RecordView;
  handling: Handling | undefined;
  auditKnown: boolean;
  readOnly: boolean;
  busy: string | undefined;
  onAction: (action: Action) => void;
}): JSX.Element {
  const r = props.record;
  const body = (typeof r.value === 'object' && r.value !== null ? r.value : {}) as Record<string, unknown>;
  const bodySource = (typeof body['source'] === 'object' && body['source'] !== null ? body['source'] : {}) as Record<string, unknown>;
  // The headers say where it came from and why; the body (an RFC 7807 problem) has the same and the detail.
  const sourceTopic = headerText(r, H_TOPIC) ?? (typeof bodySource['topic'] === 'string' ? bodySource['topic'] : undefined);
  const sourcePartition = Number(headerText(r, H_PARTITION) ?? bodySource['partition']);
  const sourceOffset = Number(headerText(r, H_OFFSET) ?? bodySource['offset']);
  const code = headerText(r, H_CODE) ?? (typeof body['code'] === 'string' ? body['code'] : undefined);
  const detail = typeof body['detail'] === 'string' ? body['detail'] : undefined;
  const title = typeof body['title'] === 'string' ? body['title'] : undefined;
  const id = `dl-${r.partition}-${r.offset}`;
  const h = props.handling;
  return (
    <tr data-testid={`dead-letter-${r.partition}-${r.offset}`}>
      <th scope="row" id={id}>
        <Link to={eventPath(r.topic ?? props.topic, r.partition, r.offset)} title="Open the dead letter">
          partition {r.partition}, offset {r.offset}
        </Link>
      </th>
      <td>{fmtTime(r.timestamp)}</td>
      <td>
        {sourceTopic === undefined ? (
          <span class="muted">unknown</span>
        ) : Number.isInteger(sourcePartition) && Number.isInteger(sourceOffset) && sourcePartition >= 0 && sourceOffset >= 0 ? (
          <Link to={eventPath(sourceTopic, sourcePartition, sourceOffset)} title="Open the record that failed">
            {sourceTopic}/{sourcePartition}/{sourceOffset}
          </Link>
        ) : (
          sourceTopic
        )}
      </td>
      <td>{code === undefined ? <span class="muted">—</span> : <code>{code}</code>}</td>
      <td class="dl-detail">
        {title === undefined ? null : <strong>{title}: </strong>}
        {detail ?? (typeof r['error'] === 'string' ? <span class="muted">unreadable dead letter: {r['error']}</span> : <span class="muted">—</span>)}
      </td>
      <td>
        {h !== undefined ? (
          <Badge tone={h.type === 'DeadLettersRedriven' ? 'ok' : 'info'} title={`${fmtTime(h.at)} · audit event ${h.audit.partition}/${h.audit.offset}`}>
            {handledLabel(h.type)}
          </Badge>
        ) : props.auditKnown ? (
          <Badge tone="warn">open</Badge>
        ) : (
          <span class="muted">unknown</span>
        )}
      </td>
      {props.readOnly ? null : (
        <td class="dl-actions">
          <button
            type="button"
            onClick={() => props.onAction('redrive')}
            disabled={props.busy !== undefined}
            aria-describedby={id}
            data-testid={`redrive-${r.partition}-${r.offset}`}
          >
            Redrive
          </button>
          <button type="button" onClick={() => props.onAction('skip')} disabled={props.busy !== undefined} aria-describedby={id} data-testid={`skip-${r.partition}-${r.offset}`}>
            Skip
          </button>
        </td>
      )}
    </tr>
  );
}

function RangeForm(props: {
  search: URLSearchParams;
  partitions: readonly number[];
  busy: boolean;
  reason: string;
  onReason: (reason: string) => void;
  onAction: (pending: Pending) => void;
}): JSX.Element {
  const { search, reason } = props;
  const [partition, setPartition] = useState(search.get('partition') ?? '0');
  const [from, setFrom] = useState(search.get('from') ?? '');
  const [to, setTo] = useState(search.get('to') ?? '');
  const [invalid, setInvalid] = useState<string | undefined>();

  const submit = (action: Action): void => {
    const p = parseWhole(partition);
    const f = parseWhole(from);
    const t = parseWhole(to);
    let message: string | undefined;
    if (p === undefined) message = 'Partition must be a whole number.';
    else if (f === undefined || t === undefined) message = 'From and To must be whole numbers (offsets).';
    else if (t < f) message = 'To must not be before From.';
    else if (t - f + 1 > MAX_RANGE) message = `One action takes at most ${fmt(MAX_RANGE)} dead letters: split the range.`;
    setInvalid(message);
    if (message !== undefined) return;
    props.onAction({ action, range: { partition: p!, from: f!, to: t! }, reason });
  };

  return (
    <Panel title="Actions">
      <form
        class="inline"
        aria-label="Dead-letter range"
        aria-describedby="range-help"
        onSubmit={(e) => {
          e.preventDefault();
          submit('redrive');
        }}
        data-testid="range-form"
      >
        <label>
          Partition
          {props.partitions.length > 0 ? (
            <select value={partition} onChange={(e) => setPartition(e.currentTarget.value)} data-testid="range-partition">
              {props.partitions.map((p) => (
                <option value={String(p)}>{p}</option>
              ))}
            </select>
          ) : (
            <input type="number" min={0} step={1} value={partition} onInput={(e) => setPartition(e.currentTarget.value)} data-testid="range-partition" />
          )}
        </label>
        <label>
          From
          <input type="number" min={0} step={1} required value={from} onInput={(e) => setFrom(e.currentTarget.value)} data-testid="range-from" />
        </label>
        <label>
          To
          <input type="number" min={0} step={1} required value={to} onInput={(e) => setTo(e.currentTarget.value)} data-testid="range-to" />
        </label>
        <label class="range-reason">
          Reason
          <input type="text" maxLength={1_000} value={reason} onInput={(e) => props.onReason(e.currentTarget.value)} data-testid="action-reason" aria-describedby="reason-help" />
        </label>
        <button type="submit" class="primary" disabled={props.busy} data-testid="range-redrive">
          Redrive range
        </button>
        <button type="button" disabled={props.busy} onClick={() => submit('skip')} data-testid="range-skip">
          Skip range
        </button>
      </form>
      <p id="range-help" class="muted">
        Act on a range of one partition, or on one dead letter with the buttons of its row. Each action first runs as a dry run and shows its plan; nothing changes until you
        confirm. Dead letters handled before are left out.
      </p>
      <p id="reason-help" class="muted">
        The reason is recorded in the audit event of the next action, from this form or from a row.
      </p>
      {invalid === undefined ? null : (
        <div class="problem" role="alert">
          {invalid}
        </div>
      )}
    </Panel>
  );
}
