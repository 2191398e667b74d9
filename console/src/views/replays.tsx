import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, deleteJson, getJson, path, postJson, query, usePoll } from '../api.js';
import { Badge, ConfirmDialog, Freshness, Json, Link, Loading, Page, Panel, Problem, Tabs, fmt, fmtTime } from '../components/ui.js';
import { useReadOnly } from '../config.js';
import { navigate } from '../router.js';
import './replays.css';

// ------------------------------------------------------------------------------------------------ shapes

type ReplayState = 'running' | 'finished' | 'failed' | 'stopped' | 'interrupted';

interface ReplayRequest {
  readonly projection?: string;
  readonly topology?: string;
  readonly from?: string | number;
  readonly to?: string | number;
  readonly code?: string;
}

interface Replay {
  readonly id: string;
  readonly kind: 'projection' | 'topology';
  readonly projection: string;
  readonly namespace: string;
  readonly state: ReplayState;
  readonly request: ReplayRequest;
  readonly createdAt: string;
  readonly finishedAt?: string;
  readonly partitions: ReadonlyArray<{ topic: string; partition: number; from: number; to: number; position: number }>;
  readonly seededAsOfMs: number | null;
  readonly diffAsOfMs: number | null;
  readonly progress: { readonly records: number; readonly total: number; readonly applied: number; readonly errors: number; readonly percent: number };
  readonly steps: number;
  readonly stepsTruncated: boolean;
  readonly keysChanged: number;
  readonly error?: string;
}

type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

interface Step {
  readonly seq: number;
  readonly event: { topic: string; partition: number; offset: number; timestamp: string; key: string | null; value: JsonValue };
  readonly before: Record<string, JsonValue>;
  readonly after: Record<string, JsonValue>;
  readonly outputs: ReadonlyArray<Record<string, JsonValue>>;
  readonly error?: JsonValue;
  /** The step was too large to keep whole: only its event's position is. */
  readonly truncated?: boolean;
}

interface DiffEntry {
  readonly key: string;
  readonly change: 'added' | 'removed' | 'changed';
  readonly sandbox: JsonValue;
  readonly live: JsonValue;
}

function replayTone(state: ReplayState): 'ok' | 'warn' | 'bad' | 'info' {
  if (state === 'finished') return 'ok';
  if (state === 'failed') return 'bad';
  if (state === 'interrupted' || state === 'stopped') return 'warn';
  return 'info';
}

const msIso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function boundText(b: string | number | undefined, side: 'from' | 'to'): string {
  if (b === undefined) return side === 'from' ? 'the start of the log' : 'the end when it started';
  return typeof b === 'number' || /^\d+$/.test(b) ? `offset ${b}` : fmtTime(b);
}

function Progress(props: { replay: Replay; compact?: boolean }): JSX.Element {
  const p = props.replay.progress;
  return (
    <span class={props.compact === true ? 'replay-progress compact' : 'replay-progress'}>
      <progress max={100} value={p.percent} aria-label={`Replay ${props.replay.id} progress`} />
      <span>
        {props.compact === true ? '' : `${fmt(p.percent)} % · `}
        {fmt(p.records)} / {fmt(p.total)} records
      </span>
    </span>
  );
}

// ------------------------------------------------------------------------------------------------ list

export function ReplaysView(): JSX.Element {
  const replays = usePoll<{ replays: Replay[] }>('/replays');
  const readOnly = useReadOnly();
  const list = replays.data?.replays ?? [];
  return (
    <Page
      title="Replays"
      subtitle="A slice of history run again into a sandbox, optionally with other handler code, step by step, and compared with live"
      actions={<Freshness updatedAt={replays.updatedAt} error={replays.error} />}
    >
      {readOnly ? null : <StartReplay />}
      <Panel title="Replays">
        <Problem error={replays.error} context="Cannot list replays" />
        {replays.data === undefined ? (
          replays.error === undefined ? <Loading what="replays" /> : null
        ) : list.length === 0 ? (
          <p class="muted">No replay yet.</p>
        ) : (
          <table data-testid="replays">
            <thead>
              <tr>
                <th scope="col">Replay</th>
                <th scope="col">Of</th>
                <th scope="col">State</th>
                <th scope="col">Progress</th>
                <th scope="col">Slice</th>
                <th scope="col" class="num">Steps</th>
                <th scope="col" class="num">Keys changed</th>
                <th scope="col">Started</th>
                <th scope="col">Finished</th>
              </tr>
            </thead>
            <tbody>
              {list.map((r) => (
                <tr data-testid={`replay-${r.id}`}>
                  <th scope="row">
                    <Link to={path('/replays', r.id)}>{r.id}</Link>
                  </th>
                  <td>
                    {r.kind} <code>{r.projection}</code>
                    {r.request.code === undefined ? null : <div class="muted">code {r.request.code}</div>}
                  </td>
                  <td>
                    <Badge tone={replayTone(r.state)}>{r.state}</Badge>
                  </td>
                  <td>
                    <Progress replay={r} />
                  </td>
                  <td>
                    {boundText(r.request.from, 'from')} → {boundText(r.request.to, 'to')}
                  </td>
                  <td class="num">{r.state === 'running' ? '…' : fmt(r.steps)}</td>
                  <td class="num">{fmt(r.keysChanged)}</td>
                  <td>
                    <time dateTime={r.createdAt}>{fmtTime(r.createdAt)}</time>
                  </td>
                  <td>{r.finishedAt === undefined ? <span class="muted">—</span> : <time dateTime={r.finishedAt}>{fmtTime(r.finishedAt)}</time>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Panel>
    </Page>
  );
}

/** `datetime-local` has no zone: the console reads it as UTC. */
function utcOf(local: string): string | undefined {
  if (local === '') return undefined;
  const ms = Date.parse(`${local.length === 16 ? `${local}:00` : local}Z`);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}

function StartReplay(): JSX.Element {
  const projections = usePoll<{ projections: Array<{ name: string; description?: string }> }>('/projections', 30_000);
  const topologies = usePoll<{ topologies: Array<{ applicationId: string }> }>('/topologies', 30_000);
  const [kind, setKind] = useState<'projection' | 'topology'>('projection');
  const [target, setTarget] = useState('');
  const [by, setBy] = useState<'time' | 'offset'>('time');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | Error | undefined>();

  const names = kind === 'projection' ? (projections.data?.projections ?? []).map((p) => p.name) : (topologies.data?.topologies ?? []).map((t) => t.applicationId);
  const chosen = names.includes(target) ? target : (names[0] ?? '');

  const bound = (text: string, label: string): string | number | undefined => {
    if (text.trim() === '') return undefined;
    if (by === 'offset') {
      if (!/^\d+$/.test(text.trim())) throw new Error(`${label} must be an offset (a whole number of 0 or more)`);
      return Number(text.trim());
    }
    const iso = utcOf(text);
    if (iso === undefined) throw new Error(`${label} is not a time`);
    return iso;
  };

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    let body: ReplayRequest;
    try {
      if (chosen === '') throw new Error(`choose a ${kind} to replay`);
      const f = bound(from, 'From');
      const t = bound(to, 'To');
      body = {
        ...(kind === 'projection' ? { projection: chosen } : { topology: chosen }),
        ...(f === undefined ? {} : { from: f }),
        ...(t === undefined ? {} : { to: t }),
        ...(code.trim() === '' ? {} : { code: code.trim() }),
      };
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    setBusy(true);
    try {
      const replay = await postJson<Replay>('/replays', body);
      navigate(path('/replays', replay.id));
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
      setBusy(false);
    }
  };

  return (
    <Panel title="Start a replay">
      <form class="inline replay-form" onSubmit={(e) => void submit(e)} data-testid="replay-form">
        {/* Labelled by `for`, not by wrapping: a wrapping label's name would take in the chosen option's text. */}
        <div class="replay-field">
          <label for="replay-kind">Kind</label>
          <select id="replay-kind" value={kind} onChange={(e) => setKind(e.currentTarget.value === 'topology' ? 'topology' : 'projection')}>
            <option value="projection">projection</option>
            <option value="topology">topology</option>
          </select>
        </div>
        <label>
          {kind === 'projection' ? 'Projection' : 'Topology'}
          <select value={chosen} onChange={(e) => setTarget(e.currentTarget.value)} data-testid="replay-target">
            {names.length === 0 ? <option value="">{(kind === 'projection' ? projections : topologies).data === undefined ? 'loading…' : 'none'}</option> : null}
            {names.map((n) => (
              <option value={n}>{n}</option>
            ))}
          </select>
        </label>
        <label>
          Slice by
          <select
            value={by}
            onChange={(e) => {
              setBy(e.currentTarget.value === 'offset' ? 'offset' : 'time');
              setFrom('');
              setTo('');
            }}
          >
            <option value="time">event time (UTC)</option>
            <option value="offset">offset (every partition)</option>
          </select>
        </label>
        {by === 'time' ? (
          <>
            <label>
              From (UTC)
              <input type="datetime-local" step={1} value={from} onInput={(e) => setFrom(e.currentTarget.value)} data-testid="replay-from" />
            </label>
            <label>
              To (UTC, inclusive)
              <input type="datetime-local" step={1} value={to} onInput={(e) => setTo(e.currentTarget.value)} data-testid="replay-to" />
            </label>
          </>
        ) : (
          <>
            <label>
              From offset
              <input type="number" min={0} step={1} value={from} onInput={(e) => setFrom(e.currentTarget.value)} data-testid="replay-from" />
            </label>
            <label>
              To offset (inclusive)
              <input type="number" min={0} step={1} value={to} onInput={(e) => setTo(e.currentTarget.value)} data-testid="replay-to" />
            </label>
          </>
        )}
        <label class="replay-code">
          Handler code (optional module path on the engine's machine)
          <input type="text" value={code} placeholder="./projections/my-fix.js" onInput={(e) => setCode(e.currentTarget.value)} data-testid="replay-code" />
        </label>
        <button type="submit" class="primary" disabled={busy} data-testid="start-replay">
          {busy ? 'Starting…' : 'Start replay'}
        </button>
      </form>
      <p class="muted replay-hint">Empty bounds: from the start of the log, to its end when the replay starts. A slice that starts later begins from live as it stood just before it.</p>
      <Problem error={error} context="Cannot start the replay" />
    </Panel>
  );
}

// ------------------------------------------------------------------------------------------------ one replay

type Tab = 'steps' | 'diff';

export function ReplayView(props: { id: string; search: URLSearchParams }): JSX.Element {
  const { id, search } = props;
  const readOnly = useReadOnly();
  const [interval, setIntervalMs] = useState(1_000);
  const replay = usePoll<Replay>(path('/replays', id), interval);
  const r = replay.data;
  // Poll fast while it runs; a finished replay changes no more.
  useEffect(() => setIntervalMs(r === undefined || r.state === 'running' ? 1_000 : 10_000), [r?.state]);
  const tab: Tab = search.get('tab') === 'diff' ? 'diff' : 'steps';
  const stepParam = Number(search.get('step') ?? '1');
  const step = Number.isSafeInteger(stepParam) && stepParam >= 1 ? stepParam : 1;
  const [deleting, setDeleting] = useState<'ask' | 'busy' | undefined>();
  const [deleteError, setDeleteError] = useState<ApiError | Error | undefined>();

  const go = (next: { tab?: Tab; step?: number }): void => {
    const t = next.tab ?? tab;
    const s = next.step ?? step;
    navigate(`${path('/replays', id)}${query({ tab: t === 'diff' ? 'diff' : undefined, step: s === 1 ? undefined : s })}`, { replace: true });
  };

  const remove = async (): Promise<void> => {
    setDeleting('busy');
    try {
      await deleteJson(path('/replays', id));
      navigate('/replays');
    } catch (err) {
      setDeleting(undefined);
      setDeleteError(err instanceof Error ? err : new Error(String(err)));
    }
  };

  return (
    <Page
      title={`Replay ${id}`}
      subtitle={r === undefined ? undefined : `${r.kind} ${r.projection}${r.request.code === undefined ? '' : ` with code ${r.request.code}`}`}
      actions={
        <span class="replay-actions">
          <Link to="/replays">All replays</Link>
          {readOnly || r === undefined ? null : (
            <button type="button" class="danger" onClick={() => setDeleting('ask')} disabled={deleting !== undefined}>
              Delete replay
            </button>
          )}
        </span>
      }
    >
      <Problem error={replay.error} context={replay.error?.status === 404 ? 'No such replay' : 'Cannot read the replay'} />
      <Problem error={deleteError} context="Cannot delete the replay" />
      {r === undefined ? (
        replay.error === undefined ? <Loading what="the replay" /> : null
      ) : (
        <>
          <ReplayStatus replay={r} updatedAt={replay.updatedAt} error={replay.error} />
          <Tabs
            label="Replay details"
            value={tab}
            options={[
              { value: 'steps', label: 'Steps' },
              { value: 'diff', label: 'Diff' },
            ]}
            onChange={(t) => go({ tab: t })}
          />
          {tab === 'steps' ? <Steps replay={r} index={step} onGo={(s) => go({ step: s })} /> : <Diff replay={r} />}
        </>
      )}
      {readOnly ? null : (
        <ConfirmDialog
          open={deleting !== undefined}
          title={`Delete replay ${id}?`}
          confirmLabel="Delete"
          danger
          busy={deleting === 'busy'}
          onConfirm={() => void remove()}
          onCancel={() => setDeleting(undefined)}
        >
          <p>The replay is stopped if it runs, and its sandbox, steps and diff are removed. Live is not touched.</p>
        </ConfirmDialog>
      )}
    </Page>
  );
}

function ReplayStatus(props: { replay: Replay; updatedAt: number | undefined; error: ApiError | undefined }): JSX.Element {
  const r = props.replay;
  return (
    <Panel title="Status" aside={<Freshness updatedAt={props.updatedAt} error={props.error} />}>
      <div class="stats">
        <div class="stat">
          <div class="stat-label">State</div>
          <div class="stat-value" data-testid="replay-state">
            <Badge tone={replayTone(r.state)}>{r.state}</Badge>
          </div>
        </div>
        <div class="stat">
          <div class="stat-label">Progress</div>
          <div class="stat-value" data-testid="replay-progress">
            {fmt(r.progress.percent)} %
          </div>
          <div class="stat-hint">
            <Progress replay={r} compact />
          </div>
        </div>
        <div class="stat">
          <div class="stat-label">Applied</div>
          {/* The engine counts these when the replay ends. */}
          <div class="stat-value">{r.state === 'running' ? '…' : fmt(r.progress.applied)}</div>
          <div class="stat-hint">{r.state === 'running' ? 'counted when it ends' : `${fmt(r.progress.errors)} would have been dead-lettered`}</div>
        </div>
        <div class="stat">
          <div class="stat-label">Keys changed</div>
          <div class="stat-value">{fmt(r.keysChanged)}</div>
        </div>
      </div>
      {r.error === undefined ? null : <Problem error={new Error(r.error)} context="The replay failed" />}
      <dl class="kv">
        <dt>Slice</dt>
        <dd>
          {boundText(r.request.from, 'from')} → {boundText(r.request.to, 'to')}
        </dd>
        <dt>Sandbox starts from</dt>
        <dd>{r.seededAsOfMs === null ? 'empty (the slice starts at the log’s start)' : `live as of ${fmtTime(msIso(r.seededAsOfMs))}`}</dd>
        <dt>Diff compares with</dt>
        <dd>{r.diffAsOfMs === null ? 'live (once a record is replayed)' : `live as of ${fmtTime(msIso(r.diffAsOfMs))}`}</dd>
        <dt>Started</dt>
        <dd>{fmtTime(r.createdAt)}</dd>
        <dt>Finished</dt>
        <dd>{r.finishedAt === undefined ? '—' : fmtTime(r.finishedAt)}</dd>
        <dt>Sandbox namespace</dt>
        <dd>
          <code>{r.namespace}</code>
        </dd>
      </dl>
      {r.partitions.length === 0 ? null : (
        <details class="replay-partitions">
          <summary>Partitions ({r.partitions.length})</summary>
          <table>
            <thead>
              <tr>
                <th scope="col">Topic</th>
                <th scope="col" class="num">Partition</th>
                <th scope="col" class="num">From offset</th>
                <th scope="col" class="num">To (exclusive)</th>
                <th scope="col" class="num">Position</th>
              </tr>
            </thead>
            <tbody>
              {r.partitions.map((p) => (
                <tr>
                  <td>
                    <Link to={path('/topics', p.topic)}>{p.topic}</Link>
                  </td>
                  <td class="num">{p.partition}</td>
                  <td class="num">{fmt(p.from)}</td>
                  <td class="num">{fmt(p.to)}</td>
                  <td class="num">{fmt(p.position)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      )}
    </Panel>
  );
}

// ------------------------------------------------------------------------------------------------ steps

const STEP_PAGE = 100;

interface StepPage {
  readonly steps: readonly Step[];
  readonly nextCursor?: string;
}

/** What is remembered of a page of steps: where it ends and the cursor after it; its steps only near the one shown. */
interface PageMark {
  lastSeq: number;
  nextCursor: string | undefined;
  steps: readonly Step[] | undefined;
}

/**
 * One step by its sequence number. Steps are paged by cursor only, so reaching step n walks the pages before it;
 * the cursors are kept (the way back to any page), the steps only of the page shown and its neighbours. A page
 * without a next cursor (the end so far) is read again while the replay runs.
 */
function useStep(id: string, seq: number, generation: string): { step: Step | undefined; missing: boolean; error: ApiError | Error | undefined; loading: boolean } {
  const cache = useRef<{ id: string; pages: PageMark[] }>({ id, pages: [] });
  const [state, setState] = useState<{ key: string; step: Step | undefined; missing: boolean; error: ApiError | Error | undefined }>({ key: '', step: undefined, missing: false, error: undefined });
  const key = `${id}:${seq}`;
  useEffect(() => {
    if (cache.current.id !== id) cache.current = { id, pages: [] };
    const pages = cache.current.pages;
    const controller = new AbortController();
    const keepNear = (p: number): void => {
      pages.forEach((mark, i) => {
        if (Math.abs(i - p) > 1) mark.steps = undefined;
      });
    };
    const run = async (): Promise<void> => {
      for (let p = 0; p < 10_000_000; p++) {
        let mark = pages[p];
        const grown = mark !== undefined && mark.nextCursor === undefined && mark.lastSeq < seq;
        const dropped = mark !== undefined && mark.lastSeq >= seq && mark.steps === undefined;
        if (mark === undefined || grown || dropped) {
          const cursor = p === 0 ? undefined : pages[p - 1]!.nextCursor;
          const page = await getJson<StepPage>(`${path('/replays', id, 'steps')}${query({ limit: STEP_PAGE, cursor })}`, controller.signal);
          // A page can come back short, even empty, and still have a next cursor.
          mark = { lastSeq: page.steps.at(-1)?.seq ?? (p === 0 ? -1 : pages[p - 1]!.lastSeq), nextCursor: page.nextCursor, steps: page.steps };
          pages[p] = mark;
          if (grown) pages.length = p + 1;
          keepNear(p);
        }
        if (mark.lastSeq >= seq) {
          keepNear(p);
          const hit = mark.steps?.find((s) => s.seq === seq);
          return setState({ key, step: hit, missing: hit === undefined, error: undefined });
        }
        if (mark.nextCursor === undefined) return setState({ key, step: undefined, missing: true, error: undefined });
      }
    };
    run().catch((err: unknown) => {
      if (!controller.signal.aborted) setState({ key, step: undefined, missing: false, error: err instanceof Error ? err : new Error(String(err)) });
    });
    return () => controller.abort();
  }, [id, seq, generation]);
  const current = state.key === key;
  return { step: current ? state.step : undefined, missing: current && state.missing, error: current ? state.error : undefined, loading: !current };
}

function Steps(props: { replay: Replay; index: number; onGo: (step: number) => void }): JSX.Element {
  const r = props.replay;
  const running = r.state === 'running';
  // While it runs, the count of steps is not known yet; the records replayed so far bound it.
  const total = running ? Math.min(r.progress.records, Number.MAX_SAFE_INTEGER) : r.steps;
  const { step, missing, error, loading } = useStep(r.id, props.index - 1, running ? `running:${r.progress.records}` : r.state);
  const last = Math.max(1, total);
  return (
    <Panel title="Steps" aside={r.stepsTruncated ? <span class="warn-text">only the first {fmt(r.steps)} steps were recorded</span> : undefined}>
      <div class="toolbar replay-stepper">
        <button type="button" data-testid="step-prev" disabled={props.index <= 1} onClick={() => props.onGo(props.index - 1)}>
          Previous step
        </button>
        <span data-testid="step-index" aria-live="polite">
          Step {fmt(props.index)} {running ? `(${fmt(total)} replayed so far)` : `of ${fmt(total)}`}
        </span>
        <button type="button" data-testid="step-next" disabled={props.index >= last} onClick={() => props.onGo(props.index + 1)}>
          Next step
        </button>
        <StepJump index={props.index} last={last} onGo={props.onGo} />
      </div>
      <Problem error={error} context="Cannot read the step" />
      {loading ? (
        <Loading what={`step ${props.index}`} />
      ) : missing || step === undefined ? (
        error === undefined ? (
          <p class="muted" data-testid="step-missing">
            {total === 0 ? 'This replay recorded no step: its slice held no record.' : running ? `Step ${fmt(props.index)} is not recorded yet.` : `This replay has no step ${fmt(props.index)}.`}{' '}
            {!running && total > 0 && props.index > total ? (
              <button type="button" onClick={() => props.onGo(total)}>
                Go to the last step
              </button>
            ) : null}
          </p>
        ) : null
      ) : (
        <StepDetail step={step} kind={r.kind} />
      )}
    </Panel>
  );
}

function StepJump(props: { index: number; last: number; onGo: (step: number) => void }): JSX.Element {
  const [text, setText] = useState(String(props.index));
  useEffect(() => setText(String(props.index)), [props.index]);
  return (
    <form
      class="inline replay-jump"
      onSubmit={(e) => {
        e.preventDefault();
        const n = Number(text);
        if (Number.isSafeInteger(n) && n >= 1) props.onGo(n);
      }}
    >
      <label>
        Go to step
        <input type="number" min={1} max={props.last} step={1} value={text} onInput={(e) => setText(e.currentTarget.value)} size={8} />
      </label>
      <button type="submit">Go</button>
    </form>
  );
}

function StepDetail(props: { step: Step; kind: Replay['kind'] }): JSX.Element {
  const s = props.step;
  const keys = [...new Set([...Object.keys(s.before), ...Object.keys(s.after)])].sort();
  return (
    <div data-testid="step-detail">
      <section class="replay-section" aria-label="Event">
        <h3>Event</h3>
        <dl class="kv">
          <dt>Record</dt>
          <dd>
            <Link to={path('/topics', s.event.topic, s.event.partition, s.event.offset)} data-testid="step-event-link">
              {s.event.topic} / {s.event.partition} @ {s.event.offset}
            </Link>{' '}
            <span class="muted">(sequence {s.seq})</span>
          </dd>
          <dt>Time</dt>
          <dd>{fmtTime(s.event.timestamp)}</dd>
          <dt>Key</dt>
          <dd>{s.event.key === null ? <span class="muted">null</span> : <code>{s.event.key}</code>}</dd>
        </dl>
        {s.truncated === true ? <p class="notice">This step was too large to record whole: only the event's position is kept.</p> : <Json value={s.event.value} label="Event value" />}
      </section>
      {s.error === undefined ? null : (
        <section class="replay-section" aria-label="Error">
          <h3>Would have been dead-lettered</h3>
          <div class="problem" role="note">
            <strong>{typeof s.error === 'object' && s.error !== null && !Array.isArray(s.error) && typeof s.error['detail'] === 'string' ? s.error['detail'] : 'The handler failed'}</strong>
          </div>
          <Json value={s.error} label="Problem" />
        </section>
      )}
      <section class="replay-section" aria-label="State before and after">
        <h3>State {props.kind === 'topology' ? '(store/key)' : 'per key'}</h3>
        {keys.length === 0 ? (
          <p class="muted">No state changed.</p>
        ) : (
          <table data-testid="step-state">
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Before</th>
                <th scope="col">After</th>
              </tr>
            </thead>
            <tbody>
              {keys.map((k) => (
                <tr>
                  <th scope="row">
                    <code>{k}</code>
                  </th>
                  <td class="replay-json">
                    {k in s.before && s.before[k] !== null ? <Json value={s.before[k]} label={`${k} before`} maxChars={6_000} /> : <span class="muted">absent</span>}
                  </td>
                  <td class="replay-json">
                    {k in s.after && s.after[k] !== null ? <Json value={s.after[k]} label={`${k} after`} maxChars={6_000} /> : <span class="muted">absent</span>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section class="replay-section" aria-label="Outputs">
        <h3>Outputs</h3>
        {s.outputs.length === 0 ? (
          <p class="muted">None.</p>
        ) : (
          <table data-testid="step-outputs">
            <thead>
              <tr>
                <th scope="col">{props.kind === 'topology' ? 'Topic' : 'Change'}</th>
                <th scope="col">Key</th>
                <th scope="col">Value</th>
                <th scope="col">Time</th>
              </tr>
            </thead>
            <tbody>
              {s.outputs.map((o) => (
                <tr>
                  <td>{'topic' in o ? <code>{String(o['topic'])}</code> : <Badge tone={o['type'] === 'del' ? 'bad' : 'info'}>{String(o['type'])}</Badge>}</td>
                  <td>
                    <code>{typeof o['key'] === 'string' ? o['key'] : JSON.stringify(o['key'])}</code>
                  </td>
                  <td class="replay-json">{o['value'] === undefined ? <span class="muted">—</span> : <Json value={o['value']} label="Output value" maxChars={6_000} />}</td>
                  <td>{typeof o['timestamp'] === 'string' ? fmtTime(o['timestamp']) : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}

// ------------------------------------------------------------------------------------------------ diff

/** Pages read per "load": a diff page can hold few entries, even none, and still go on. */
const DIFF_PAGES_PER_LOAD = 20;
const DIFF_WANTED = 50;

function Diff(props: { replay: Replay }): JSX.Element {
  const r = props.replay;
  const [state, setState] = useState<{ id: string; entries: DiffEntry[]; nextCursor?: string; asOf: string | null; done: boolean; busy: boolean; error?: ApiError | Error }>({
    id: '',
    entries: [],
    asOf: null,
    done: false,
    busy: false,
  });
  const running = r.state === 'running';

  const load = async (from: { entries: DiffEntry[]; cursor?: string }): Promise<void> => {
    setState((s) => ({ ...s, id: r.id, busy: true, error: undefined }));
    const entries = [...from.entries];
    let cursor = from.cursor;
    let asOf: string | null = null;
    try {
      for (let pages = 0; pages < DIFF_PAGES_PER_LOAD && entries.length - from.entries.length < DIFF_WANTED; pages++) {
        const page = await getJson<{ asOf: string | null; entries: DiffEntry[]; nextCursor?: string }>(`${path('/replays', r.id, 'diff')}${query({ limit: 100, cursor })}`);
        entries.push(...page.entries);
        asOf = page.asOf;
        cursor = page.nextCursor;
        if (cursor === undefined) break;
        // Each page compares a hundred keys with live: show what differs as it comes.
        const shown = [...entries];
        const at = asOf;
        setState((s) => ({ ...s, entries: shown, asOf: at }));
      }
      setState({ id: r.id, entries, ...(cursor === undefined ? {} : { nextCursor: cursor }), asOf, done: cursor === undefined, busy: false });
    } catch (err) {
      setState((s) => ({ ...s, busy: false, error: err instanceof Error ? err : new Error(String(err)) }));
    }
  };

  useEffect(() => {
    if (!running && state.id !== r.id) void load({ entries: [] });
  }, [r.id, running]);

  if (running) {
    return (
      <Panel title="Diff">
        <p class="notice">The diff is ready when the replay finishes ({fmt(r.progress.percent)} % so far).</p>
      </Panel>
    );
  }
  const mine = state.id === r.id;
  return (
    <Panel
      title="Diff: sandbox vs live"
      aside={
        <button type="button" onClick={() => void load({ entries: [] })} disabled={state.busy}>
          Refresh diff
        </button>
      }
    >
      <Problem error={mine ? state.error : undefined} context="Cannot read the diff" />
      {!mine || (state.busy && state.entries.length === 0) ? (
        <Loading what="the diff" />
      ) : (
        <>
          <p class="muted">
            Of the {fmt(r.keysChanged)} keys the replay changed, those whose sandbox value differs from live{state.asOf === null ? '' : ` as of ${fmtTime(state.asOf)}`}
            {state.done ? '' : ' (more to read)'}.
          </p>
          {state.entries.length === 0 ? (
            <p data-testid="diff-empty">{state.done ? 'No difference: the sandbox agrees with live on every key it changed.' : 'No difference found so far.'}</p>
          ) : (
            <table data-testid="replay-diff">
              <thead>
                <tr>
                  <th scope="col">Key</th>
                  <th scope="col">Change</th>
                  <th scope="col">Live</th>
                  <th scope="col">Sandbox</th>
                </tr>
              </thead>
              <tbody>
                {state.entries.map((d) => (
                  <tr>
                    <th scope="row">
                      <code>{d.key}</code>
                    </th>
                    <td>
                      <Badge tone={d.change === 'changed' ? 'warn' : d.change === 'removed' ? 'bad' : 'info'}>{d.change}</Badge>
                    </td>
                    <td class="replay-json">{d.live === null ? <span class="muted">absent</span> : <Json value={d.live} label={`${d.key} live`} maxChars={6_000} />}</td>
                    <td class="replay-json">{d.sandbox === null ? <span class="muted">absent</span> : <Json value={d.sandbox} label={`${d.key} sandbox`} maxChars={6_000} />}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {state.done ? null : (
            <button type="button" onClick={() => void load({ entries: state.entries, ...(state.nextCursor === undefined ? {} : { cursor: state.nextCursor }) })} disabled={state.busy}>
              {state.busy ? 'Reading…' : 'Load more differences'}
            </button>
          )}
        </>
      )}
    </Panel>
  );
}
