import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { path, query, usePoll, type ApiError } from '../api.js';
import { Freshness, Json, Link, Loading, Page, Panel, Problem, fmt, fmtTime } from '../components/ui.js';
import { navigate } from '../router.js';
import './query.css';

interface ProjectionInfo {
  readonly name: string;
  readonly description?: string;
  readonly state: string;
  readonly lag: number;
  readonly historyRetentionMs: number;
}

interface KeyAnswer {
  readonly projection: string;
  readonly key: string;
  readonly asOf?: string;
  readonly value: unknown;
  readonly validFrom: string;
}

interface ScanAnswer {
  readonly projection: string;
  readonly asOf?: string;
  readonly items: ReadonlyArray<{ key: string; value: unknown; validFrom: string }>;
  readonly nextCursor?: string;
}

/** The query as the URL holds it: a shared link runs the same query. */
interface QueryState {
  readonly projection: string;
  readonly key: string;
  readonly prefix: string;
  readonly asOf: string;
  readonly limit: string;
}

const PAGE_SIZES = ['25', '100', '500'];

function stateOf(search: URLSearchParams): QueryState {
  return {
    projection: search.get('projection') ?? '',
    key: search.get('key') ?? '',
    prefix: search.get('prefix') ?? '',
    asOf: search.get('asOf') ?? '',
    limit: search.get('limit') ?? '',
  };
}

function urlOf(q: QueryState, cursor?: string): string {
  return `/query${query({
    projection: q.projection,
    key: q.key,
    prefix: q.key === '' ? q.prefix : undefined,
    asOf: q.asOf,
    limit: q.key === '' ? q.limit : undefined,
    cursor,
  })}`;
}

/** The engine's path for a query: a key is read alone, else the keys under the prefix are scanned. */
function targetOf(q: QueryState, cursor?: string): string {
  return q.key !== ''
    ? `${path('/projections', q.projection, q.key)}${query({ asOf: q.asOf })}`
    : `${path('/projections', q.projection)}${query({ prefix: q.prefix, limit: q.limit, cursor, asOf: q.asOf })}`;
}

/** The latest moment a Date holds (ms): `toISOString` throws past it. */
const MAX_DATE_MS = 8_640_000_000_000_000;

/** An `asOf` (ISO time or ms since the epoch) as `datetime-local` shows it, in UTC; empty when it is not one. */
function localOf(asOf: string): string {
  const text = asOf.trim();
  if (text === '') return '';
  const ms = /^\d{1,16}$/.test(text) ? Number(text) : Date.parse(text);
  if (Number.isNaN(ms) || ms < 0 || ms > MAX_DATE_MS) return '';
  const iso = new Date(ms).toISOString();
  return /^\d{4}-/.test(iso) ? iso.slice(0, 19) : '';
}

/** `datetime-local` has no zone: the console reads it as UTC. */
function isoOfLocal(local: string): string {
  if (local === '') return '';
  const ms = Date.parse(`${local.length === 16 ? `${local}:00` : local}Z`);
  return Number.isNaN(ms) ? '' : new Date(ms).toISOString();
}

export function QueryView(props: { search: URLSearchParams }): JSX.Element {
  const current = stateOf(props.search);
  const cursor = props.search.get('cursor') ?? undefined;
  const projections = usePoll<{ projections: ProjectionInfo[] }>('/projections', 10_000);
  const list = projections.data?.projections ?? [];
  const [form, setForm] = useState<QueryState>(current);
  const searchText = props.search.toString();
  // Back and forward, or a link, change the query: the form follows.
  useEffect(() => setForm(stateOf(props.search)), [searchText]);
  const chosen = form.projection !== '' ? form.projection : (list[0]?.name ?? '');

  const asked = current.projection !== '';
  const target = asked ? targetOf(current, cursor) : null;
  // A moment in the past does not change: read it once. The present is followed live.
  const result = usePoll<KeyAnswer | ScanAnswer>(target, current.asOf === '' ? 5_000 : 0);

  const run = (e: Event): void => {
    e.preventDefault();
    const next: QueryState = { ...form, projection: chosen, key: form.key.trim() === '' ? '' : form.key, asOf: form.asOf.trim() };
    // The same query again reads it again (an `asOf` answer is not polled).
    if (targetOf(next) === target) result.reload();
    const url = urlOf(next);
    if (url !== `/query${searchText === '' ? '' : `?${searchText}`}`) navigate(url);
  };

  const info = list.find((p) => p.name === (asked ? current.projection : chosen));
  return (
    <Page title="Query" subtitle="Read a projection: one key, or the keys under a prefix, now or as of any retained moment" actions={<Freshness updatedAt={result.updatedAt ?? projections.updatedAt} error={result.error} />}>
      <Panel title="Query">
        <Problem error={projections.error} context="Cannot list projections" />
        <form class="query-form" onSubmit={run} data-testid="query-form">
          <div class="toolbar">
            <label>
              Projection
              <select value={chosen} onChange={(e) => setForm({ ...form, projection: e.currentTarget.value })} data-testid="query-projection">
                {chosen !== '' && !list.some((p) => p.name === chosen) ? <option value={chosen}>{chosen}</option> : null}
                {list.length === 0 && chosen === '' ? <option value="">{projections.data === undefined ? 'loading…' : 'none'}</option> : null}
                {list.map((p) => (
                  <option value={p.name}>{p.name}</option>
                ))}
              </select>
            </label>
            <label>
              Key
              <input type="text" value={form.key} onInput={(e) => setForm({ ...form, key: e.currentTarget.value })} size={36} data-testid="query-key" />
            </label>
            <label>
              Prefix
              <input
                type="text"
                value={form.prefix}
                onInput={(e) => setForm({ ...form, prefix: e.currentTarget.value })}
                size={28}
                disabled={form.key !== ''}
                title={form.key !== '' ? 'A key is given: it is read alone' : undefined}
                data-testid="query-prefix"
              />
            </label>
            <label>
              Page size
              <select value={form.limit === '' ? '100' : form.limit} onChange={(e) => setForm({ ...form, limit: e.currentTarget.value === '100' ? '' : e.currentTarget.value })} disabled={form.key !== ''}>
                {PAGE_SIZES.map((n) => (
                  <option value={n}>{n}</option>
                ))}
              </select>
            </label>
          </div>
          <div class="toolbar">
            <label>
              As of (UTC)
              <input type="datetime-local" step={1} value={localOf(form.asOf)} onInput={(e) => setForm({ ...form, asOf: isoOfLocal(e.currentTarget.value) })} data-testid="query-asof-local" />
            </label>
            <label>
              As of (ISO 8601 with zone, or ms since the epoch)
              <input type="text" value={form.asOf} placeholder="2026-11-24T08:00:00Z" onInput={(e) => setForm({ ...form, asOf: e.currentTarget.value })} size={30} data-testid="query-asof" />
            </label>
            {form.asOf === '' ? null : (
              <button type="button" onClick={() => setForm({ ...form, asOf: '' })}>
                Clear as of
              </button>
            )}
            <button type="submit" class="primary" disabled={chosen === ''}>
              Run query
            </button>
          </div>
        </form>
        {info === undefined ? null : (
          <p class="muted query-info">
            {info.description ?? info.name} · {info.state}
            {info.lag > 0 ? `, ${fmt(info.lag)} records behind` : ''} · history kept for {fmt(info.historyRetentionMs / 86_400_000)} days
          </p>
        )}
      </Panel>

      <Panel title="Result">
        <div data-testid="query-result">
          {!asked ? (
            <p class="muted">Choose a projection and run a query. Without a key, the keys under the prefix (all keys when it is empty) are listed.</p>
          ) : (
            <>
              <ResultProblem error={result.error} state={current} />
              {result.data === undefined ? (
                result.error === undefined ? <Loading what="the result" /> : null
              ) : 'items' in result.data ? (
                <ScanResult answer={result.data} state={current} cursor={cursor} />
              ) : (
                <KeyResult answer={result.data} />
              )}
            </>
          )}
        </div>
      </Panel>
    </Page>
  );
}

function ResultProblem(props: { error: ApiError | undefined; state: QueryState }): JSX.Element | null {
  const error = props.error;
  if (error === undefined) return null;
  if (error.code === 'MILLRACE_PROJECTION_KEY_ABSENT') return <Problem error={error} context="Not found" />;
  if (error.code === 'MILLRACE_PROJECTION_NOT_RETAINED') {
    return (
      <>
        <Problem error={error} context="Not retained" />
        <p class="muted">
          That moment is older than the history the projection keeps. <Link to="/replays">Replay the log</Link> up to it to see the projection as it was then.
        </p>
      </>
    );
  }
  if (error.code === 'MILLRACE_PROJECTION_UNKNOWN') return <Problem error={error} context={`No projection ${props.state.projection}`} />;
  return <Problem error={error} context="Query failed" />;
}

function KeyResult(props: { answer: KeyAnswer }): JSX.Element {
  const a = props.answer;
  return (
    <>
      <dl class="kv query-kv">
        <dt>Key</dt>
        <dd>
          <code data-testid="query-result-key">{a.key}</code>
        </dd>
        <dt>Valid from</dt>
        <dd>{fmtTime(a.validFrom)}</dd>
        {a.asOf === undefined ? null : (
          <>
            <dt>As of</dt>
            <dd>{fmtTime(a.asOf)}</dd>
          </>
        )}
      </dl>
      <Json value={a.value} label={`Value of ${a.key}`} />
    </>
  );
}

function ScanResult(props: { answer: ScanAnswer; state: QueryState; cursor: string | undefined }): JSX.Element {
  const a = props.answer;
  const q = props.state;
  return (
    <>
      <p class="muted">
        {fmt(a.items.length)} {a.items.length === 1 ? 'key' : 'keys'}
        {q.prefix === '' ? '' : ` under ${JSON.stringify(q.prefix)}`}
        {props.cursor === undefined ? '' : ' (a later page)'}
        {a.asOf === undefined ? '' : `, as of ${fmtTime(a.asOf)}`}
        {a.nextCursor === undefined ? '' : '; more follow'}.
      </p>
      {a.items.length === 0 ? (
        <p data-testid="query-empty">No key matches.</p>
      ) : (
        <table data-testid="query-items">
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Value</th>
              <th scope="col">Valid from</th>
            </tr>
          </thead>
          <tbody>
            {a.items.map((item) => (
              <tr>
                <th scope="row" class="query-key">
                  <Link to={urlOf({ ...q, key: item.key, prefix: '' })} title={`Read ${item.key} alone`}>
                    <code>{item.key}</code>
                  </Link>
                </th>
                <td class="query-value">
                  <Json value={item.value} label={`Value of ${item.key}`} maxChars={4_000} />
                </td>
                <td>{fmtTime(item.validFrom)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div class="toolbar query-paging">
        {props.cursor === undefined ? null : (
          <button type="button" onClick={() => navigate(urlOf(q))}>
            First page
          </button>
        )}
        {a.nextCursor === undefined ? null : (
          <button type="button" onClick={() => navigate(urlOf(q, a.nextCursor))} data-testid="query-next">
            Next page
          </button>
        )}
      </div>
    </>
  );
}
