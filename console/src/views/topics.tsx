import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, getJson, path, query, usePoll } from '../api.js';
import { Badge, Freshness, Json, Link, Loading, Page, Panel, Problem, fmt, fmtTime } from '../components/ui.js';
import { navigate } from '../router.js';
import type { RecordView } from '../types.js';
import './topics.css';

// ------------------------------------------------------------------------------------------------ shapes

/** `GET /topics/:topic`, and each entry of `GET /topics`. */
export interface TopicInfo {
  readonly name: string;
  readonly partitions: number;
  readonly cleanupPolicy: string;
  readonly retentionMs: number | null;
  readonly retentionBytes: number | null;
  readonly internal: boolean;
  readonly schema: { readonly subject: string; readonly id: number; readonly version: number } | null;
  readonly offsets: ReadonlyArray<PartitionBounds>;
}

export interface PartitionBounds {
  readonly partition: number;
  /** First offset still held. */
  readonly start: number;
  /** The offset the next record gets. */
  readonly end: number;
}

/** `GET /topics/:topic/events`. */
export interface EventsAnswer {
  readonly records: readonly RecordView[];
  readonly next: Readonly<Record<string, number>>;
  readonly highWatermarks: Readonly<Record<string, number>>;
}

/** `GET /topics/:topic/keys/:key`. */
interface KeyLookup {
  readonly topic: string;
  readonly key: string;
  /** The one partition the partitioner sends this key to. */
  readonly partition?: number;
  readonly records: readonly RecordView[];
  readonly scanned?: number;
  /** False when the scan stopped at its bound: older records may hold the key too. */
  readonly complete?: boolean;
}

// ------------------------------------------------------------------------------------------------ helpers

/** The console path of one record. */
export function eventPath(topic: string, partition: number, offset: number): string {
  return path('/topics', topic, partition, offset);
}

/** Keys and header values are UTF-8 text, or `{"base64": …}` for bytes that are not. */
export function displayBytes(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && typeof (value as { base64?: unknown }).base64 === 'string') return `base64:${(value as { base64: string }).base64}`;
  return JSON.stringify(value);
}

export function KeyText(props: { value: unknown }): JSX.Element {
  if (props.value === null || props.value === undefined) return <span class="muted">no key</span>;
  return <code>{displayBytes(props.value)}</code>;
}

/** A header as text, when the record has it. */
export function headerText(record: RecordView, name: string): string | undefined {
  const value = record.headers?.[name] as unknown;
  return value === undefined ? undefined : displayBytes(value);
}

/** One line of a value for a table cell; the event view shows it whole. */
export function preview(value: unknown, max = 120): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? 'undefined');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function recordsOf(info: TopicInfo): number {
  return info.offsets.reduce((n, o) => n + Math.max(0, o.end - o.start), 0);
}

/** A whole number from the query string within [min, max], else the fallback. */
function intParam(search: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = search.get(name);
  if (raw === null || !/^\d{1,15}$/.test(raw)) return fallback;
  const n = Number(raw);
  return n < min ? min : n > max ? max : n;
}

// ------------------------------------------------------------------------------------------------ topics

export function TopicsView(): JSX.Element {
  const topics = usePoll<{ topics: TopicInfo[] }>('/topics');
  const [filter, setFilter] = useState('');
  const needle = filter.trim().toLowerCase();
  const all = topics.data?.topics ?? [];
  const shown = all.filter((t) => needle === '' || t.name.toLowerCase().includes(needle)).sort((a, b) => a.name.localeCompare(b.name));
  return (
    <Page title="Topics" subtitle="Every topic of the log, its partitions and how many records each holds." actions={<Freshness updatedAt={topics.updatedAt} error={topics.error} />}>
      <Problem error={topics.error} context="Topics" />
      <div class="toolbar" role="search">
        <label>
          Filter topics
          <input type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} placeholder="name contains…" data-testid="topic-filter" />
        </label>
        {topics.data === undefined ? null : (
          <span class="muted" aria-live="polite">
            {shown.length} of {all.length} topics
          </span>
        )}
      </div>
      {topics.data === undefined ? (
        topics.error === undefined ? <Loading what="topics" /> : null
      ) : (
        <Panel title="Topics">
          {shown.length === 0 ? (
            <p class="muted">{all.length === 0 ? 'The log holds no topics yet.' : `No topic name contains “${filter.trim()}”.`}</p>
          ) : (
            <table>
              <caption class="muted table-note">
                Records: the offsets each partition still holds (end − start), summed.
              </caption>
              <thead>
                <tr>
                  <th scope="col">Topic</th>
                  <th scope="col" class="num">Partitions</th>
                  <th scope="col" class="num">Records</th>
                  <th scope="col">Schema</th>
                  <th scope="col">Cleanup</th>
                  <th scope="col">Internal</th>
                </tr>
              </thead>
              <tbody>
                {shown.map((t) => (
                  <tr data-testid={`topic-row-${t.name}`}>
                    <th scope="row">
                      <Link to={path('/topics', t.name)}>{t.name}</Link>
                    </th>
                    <td class="num">{fmt(t.partitions)}</td>
                    <td class="num">{fmt(recordsOf(t))}</td>
                    <td>{t.schema === null ? <span class="muted">JSON, no schema</span> : `${t.schema.subject} v${t.schema.version}`}</td>
                    <td>{t.cleanupPolicy}</td>
                    <td>{t.internal ? <Badge tone="info">internal</Badge> : <span class="muted">no</span>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Panel>
      )}
    </Page>
  );
}

// ------------------------------------------------------------------------------------------------ one topic

const DEFAULT_TAIL = 20;
const MAX_TAIL = 500;

interface Tail {
  readonly bounds: PartitionBounds;
  readonly from: number;
  readonly records: readonly RecordView[];
}

export function TopicView(props: { topic: string; search: URLSearchParams }): JSX.Element {
  const { topic, search } = props;
  const topicPath = path('/topics', topic);
  const info = usePoll<TopicInfo>(topicPath);
  const partition = intParam(search, 'partition', 0, 0, Number.MAX_SAFE_INTEGER);
  const tailSize = intParam(search, 'n', DEFAULT_TAIL, 1, MAX_TAIL);
  const key = search.get('key');

  /** The view's state lives in its address, so that every tail and lookup can be shared as a link. */
  const go = (changes: Record<string, string | number | null>, replace = true): void => {
    const next: Record<string, string | number | null> = { partition: search.get('partition'), n: search.get('n'), key: search.get('key'), ...changes };
    navigate(topicPath + query(next), { replace });
  };

  // The tail is read from where the partition ends now, so each poll asks the topic for its offsets first.
  const tail = usePoll<Tail>(`${topicPath}/events?partition=${partition}&tail=${tailSize}`, undefined, async (_key, signal) => {
    const current = await getJson<TopicInfo>(topicPath, signal);
    const bounds = current.offsets.find((o) => o.partition === partition);
    if (bounds === undefined) throw new ApiError(404, `topic ${topic} has ${current.partitions} partitions; partition ${partition} does not exist`, 'MILLRACE_PARTITION_UNKNOWN');
    const from = Math.max(bounds.start, bounds.end - tailSize);
    if (from >= bounds.end) return { bounds, from, records: [] };
    const answer = await getJson<EventsAnswer>(path('/topics', topic, 'events') + query({ partition, offset: from, limit: tailSize }), signal);
    return { bounds, from, records: answer.records.filter((r) => r.partition === partition && r.offset >= from) };
  });

  const t = info.data;
  return (
    <Page
      title={topic}
      subtitle={
        <>
          <Link to="/topics">Topics</Link> / {topic}
          {t === undefined ? null : ` · ${t.partitions} partition${t.partitions === 1 ? '' : 's'} · ${fmt(recordsOf(t))} records · ${t.schema === null ? 'JSON values' : `${t.schema.subject} v${t.schema.version}`}${t.internal ? ' · internal' : ''}`}
        </>
      }
      actions={<Freshness updatedAt={tail.updatedAt ?? info.updatedAt} error={tail.error ?? info.error} />}
    >
      <Problem error={info.error} context="Topic" />
      <div class="grid-2">
        <Panel title="Offsets">
          {t === undefined ? (
            info.error === undefined ? <Loading what="offsets" /> : null
          ) : (
            <table data-testid="partition-offsets">
              <thead>
                <tr>
                  <th scope="col">Partition</th>
                  <th scope="col" class="num">Start</th>
                  <th scope="col" class="num">End</th>
                  <th scope="col" class="num">Records</th>
                </tr>
              </thead>
              <tbody>
                {t.offsets.map((o) => (
                  <tr class={o.partition === partition ? 'selected' : ''} data-testid={`partition-row-${o.partition}`}>
                    <th scope="row">
                      <Link to={topicPath + query({ partition: o.partition, n: search.get('n') })} title={`Show the last records of partition ${o.partition}`}>
                        {o.partition === partition ? <span aria-current="true">{o.partition} (shown)</span> : o.partition}
                      </Link>
                    </th>
                    <td class="num">{fmt(o.start)}</td>
                    <td class="num">{fmt(o.end)}</td>
                    <td class="num">{fmt(o.end - o.start)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Panel>
        <KeyLookupPanel topic={topic} keyParam={key} onLookup={(k) => go({ key: k }, false)} />
      </div>
      <Panel
        title="Newest records"
        aside={
          <form class="inline tail-options" onSubmit={(e) => e.preventDefault()}>
            <label>
              Partition
              <select value={String(partition)} onChange={(e) => go({ partition: e.currentTarget.value })} data-testid="tail-partition">
                {(t?.offsets ?? [{ partition }]).map((o) => (
                  <option value={String(o.partition)}>{o.partition}</option>
                ))}
              </select>
            </label>
            <label>
              Count
              <select value={String(tailSize)} onChange={(e) => go({ n: e.currentTarget.value })} data-testid="tail-size">
                {[...new Set([10, 20, 50, 100, 200, 500, tailSize])].sort((a, b) => a - b).map((n) => (
                  <option value={String(n)}>{n}</option>
                ))}
              </select>
            </label>
          </form>
        }
      >
        <Problem error={tail.error} context="Records" />
        {tail.data === undefined ? (
          tail.error === undefined ? <Loading what="records" /> : null
        ) : tail.data.records.length === 0 ? (
          <p class="muted">
            Partition {partition} holds no records{tail.data.bounds.end > 0 ? ` (offsets ${fmt(tail.data.bounds.start)} to ${fmt(tail.data.bounds.end)} hold none that can be read)` : ' yet'}.
          </p>
        ) : (
          <RecordTable topic={topic} records={tail.data.records} testid="tail-records" caption={`Partition ${partition}, offsets ${fmt(tail.data.from)} to ${fmt(tail.data.bounds.end - 1)}, oldest first; new records appear at the bottom.`} />
        )}
      </Panel>
    </Page>
  );
}

export function RecordTable(props: { topic: string; records: readonly RecordView[]; testid?: string; caption?: string; showPartition?: boolean }): JSX.Element {
  return (
    <table data-testid={props.testid}>
      {props.caption === undefined ? null : (
        <caption class="muted table-note">
          {props.caption}
        </caption>
      )}
      <thead>
        <tr>
          {props.showPartition === true ? <th scope="col" class="num">Partition</th> : null}
          <th scope="col" class="num">Offset</th>
          <th scope="col">Timestamp</th>
          <th scope="col">Key</th>
          <th scope="col">Value</th>
        </tr>
      </thead>
      <tbody>
        {props.records.map((r) => (
          <tr data-testid="record-row">
            {props.showPartition === true ? <td class="num">{r.partition}</td> : null}
            <th scope="row" class="num">
              <Link to={eventPath(r.topic ?? props.topic, r.partition, r.offset)} title={`Open the record at partition ${r.partition}, offset ${r.offset}`}>
                {r.offset}
              </Link>
            </th>
            <td>{fmtTime(r.timestamp)}</td>
            <td>
              <KeyText value={r.key} />
            </td>
            <td>
              {typeof r['error'] === 'string' ? (
                <Badge tone="warn" title={r['error']}>
                  unreadable
                </Badge>
              ) : null}{' '}
              <code>{preview(r.value)}</code>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function KeyLookupPanel(props: { topic: string; keyParam: string | null; onLookup: (key: string) => void }): JSX.Element {
  const [draft, setDraft] = useState(props.keyParam ?? '');
  // A key arriving from the address (back, forward, a shared link) shows in the box.
  useEffect(() => setDraft(props.keyParam ?? ''), [props.keyParam]);
  const lookupPath = props.keyParam === null || props.keyParam === '' ? null : path('/topics', props.topic, 'keys', props.keyParam);
  // A lookup scans the key's partition from its end: asked once per submit, not polled.
  const lookup = usePoll<KeyLookup>(lookupPath, 0);
  const submit = (e: Event): void => {
    e.preventDefault();
    const key = draft;
    if (key === '') return;
    if (key === props.keyParam) lookup.reload();
    else props.onLookup(key);
  };
  const answer = lookup.data;
  return (
    <Panel title="Exact lookup">
      <form class="inline" onSubmit={submit}>
        <label>
          Key
          <input type="text" value={draft} required onInput={(e) => setDraft(e.currentTarget.value)} data-testid="key-input" autoComplete="off" spellcheck={false} />
        </label>
        <button type="submit" class="primary" data-testid="key-lookup">
          Look up
        </button>
      </form>
      <p class="muted">Exact match on the key's bytes, in the one partition the partitioner sends that key to; newest first.</p>
      <Problem error={lookup.error} context="Lookup" />
      {lookupPath === null ? null : answer === undefined ? (
        lookup.error === undefined ? <Loading what="matches" /> : null
      ) : (
        <div data-testid="key-results" aria-live="polite">
          <p>
            {answer.partition === undefined ? null : (
              <>
                The partitioner sends key <code>{answer.key}</code> to <strong data-testid="key-partition">partition {answer.partition}</strong>.{' '}
              </>
            )}
            {answer.records.length === 0 ? 'No record has this key' : `${answer.records.length} record${answer.records.length === 1 ? '' : 's'} found`}
            {answer.scanned === undefined ? '' : ` (${fmt(answer.scanned)} records scanned`}
            {answer.scanned === undefined ? '' : answer.complete === false ? '; older records were not scanned)' : ')'}.
          </p>
          {answer.records.length === 0 ? null : <RecordTable topic={props.topic} records={answer.records} testid="key-matches" showPartition />}
        </div>
      )}
    </Panel>
  );
}

// ------------------------------------------------------------------------------------------------ one record

export function EventView(props: { topic: string; partition: number; offset: number }): JSX.Element {
  const { topic, partition, offset } = props;
  const valid = Number.isSafeInteger(partition) && partition >= 0 && Number.isSafeInteger(offset) && offset >= 0;
  // Polled: a record not written yet shows up once it is.
  const answer = usePoll<EventsAnswer>(valid ? path('/topics', topic, 'events') + query({ partition, offset, limit: 1 }) : null, 5_000);
  const first = answer.data?.records[0];
  const record = first !== undefined && first.offset === offset && first.partition === partition ? first : undefined;
  const end = answer.data?.highWatermarks[String(partition)];
  const title = `${topic} · ${partition} · ${offset}`;
  return (
    <Page
      title={title}
      subtitle={
        <>
          <Link to="/topics">Topics</Link> / <Link to={path('/topics', topic) + query({ partition })}>{topic}</Link> / partition {partition} / offset {offset}
        </>
      }
      actions={<Freshness updatedAt={answer.updatedAt} error={answer.error} />}
    >
      <nav class="toolbar" aria-label="Record navigation">
        {valid && offset > 0 ? (
          <Link to={eventPath(topic, partition, offset - 1)} data-testid="prev-offset">
            ← Previous offset ({offset - 1})
          </Link>
        ) : null}
        {valid ? (
          <Link to={eventPath(topic, partition, offset + 1)} data-testid="next-offset">
            Next offset ({offset + 1}) →
          </Link>
        ) : null}
        {valid ? (
          <Link to={path('/lineage', topic, partition, offset)} data-testid="open-lineage">
            Lineage
          </Link>
        ) : null}
      </nav>
      {!valid ? <Problem error={new Error('partition and offset must be non-negative whole numbers')} context="Address" /> : null}
      <Problem error={answer.error} context="Record" />
      {!valid || answer.data === undefined ? (
        valid && answer.error === undefined ? <Loading what="the record" /> : null
      ) : record === undefined ? (
        <div class="notice" role="status" data-testid="no-record">
          <strong>No record at offset {offset}</strong> of partition {partition}.{' '}
          {end !== undefined && offset >= end
            ? `The partition ends at offset ${end}: nothing has been written there yet (this page checks again every few seconds).`
            : first !== undefined && first.offset > offset
              ? 'The offset is taken by something that is not a record (on Kafka, a transaction’s commit or abort marker), or its record was deleted by retention or compaction.'
              : 'Its record was deleted by retention or compaction, or the offset holds a transaction marker.'}{' '}
          {first !== undefined && first.partition === partition && first.offset > offset ? (
            <>
              The next record is at <Link to={eventPath(topic, partition, first.offset)}>offset {first.offset}</Link>.
            </>
          ) : null}
        </div>
      ) : (
        <RecordDetail record={record} />
      )}
    </Page>
  );
}

function RecordDetail(props: { record: RecordView }): JSX.Element {
  const r = props.record;
  const headers = Object.entries(r.headers ?? {});
  const error = typeof r['error'] === 'string' ? r['error'] : undefined;
  return (
    <>
      <div class="grid-2">
        <Panel title="Record">
          <dl class="kv" data-testid="record-meta">
            <dt>Topic</dt>
            <dd>{r.topic}</dd>
            <dt>Partition</dt>
            <dd>{r.partition}</dd>
            <dt>Offset</dt>
            <dd data-testid="record-offset">{r.offset}</dd>
            <dt>Timestamp</dt>
            <dd data-testid="record-timestamp">{fmtTime(r.timestamp)}</dd>
            <dt>Key</dt>
            <dd data-testid="record-key">
              <KeyText value={r.key} />
            </dd>
          </dl>
        </Panel>
        <Panel title={`Headers (${headers.length})`}>
          {headers.length === 0 ? (
            <p class="muted">No headers.</p>
          ) : (
            <table data-testid="record-headers">
              <thead>
                <tr>
                  <th scope="col">Header</th>
                  <th scope="col">Value</th>
                </tr>
              </thead>
              <tbody>
                {headers.map(([name, value]) => (
                  <tr>
                    <th scope="row">
                      <code>{name}</code>
                    </th>
                    <td>
                      <code>{displayBytes(value)}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Panel>
      </div>
      <Panel title="Value">
        {error === undefined ? null : (
          <div class="problem" role="alert">
            <strong>The value could not be read as this topic's format:</strong> <span>{error}</span>
          </div>
        )}
        <div data-testid="record-value">
          <Json value={r.value} label="Record value" />
        </div>
      </Panel>
    </>
  );
}
