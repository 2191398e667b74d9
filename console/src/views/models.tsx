import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError, getJson, path, postJson, query, usePoll } from '../api.js';
import { Badge, ConfirmDialog, Freshness, Link, Loading, Page, Panel, Problem, Tabs, fmt, fmtTime, stateTone } from '../components/ui.js';
import { useReadOnly } from '../config.js';
import { navigate } from '../router.js';
import { keyPart, scanPrefix, type ScanResult } from './drift.js';
import './models.css';

// ------------------------------------------------------------------------------------------------ shapes

interface LastDecision {
  readonly action: 'promote' | 'rollback';
  readonly decidedBy: 'operator' | 'controller';
  readonly at: string;
  readonly reason?: string;
  readonly evidence?: string;
}

interface VersionView {
  readonly version: string;
  readonly stage: string;
  readonly trafficPercent: number;
  readonly sha256: string;
  readonly artifactUri: string;
  readonly metrics: Readonly<Record<string, number>>;
  readonly lastDecision?: LastDecision;
}

interface Routing {
  readonly stable: string | null;
  readonly canary: { readonly version: string; readonly percent: number } | null;
}

interface ModelView extends Routing {
  readonly name: string;
  readonly versions: readonly VersionView[];
}

type Action = 'promote' | 'rollback';

interface Plan {
  readonly action: Action;
  readonly model: string;
  readonly version: string;
  readonly from: Routing;
  readonly to: Routing;
  readonly token: string;
}

interface Decision {
  readonly action: Action;
  readonly model: string;
  readonly version: string;
  readonly audit: { readonly topic: string; readonly partition: number; readonly offset: number };
}

/** `model-performance` `<model>/<version>/all`: live quality from outcomes (the fields the table shows). */
interface Performance {
  readonly count: number;
  readonly auc: number | null;
  readonly accuracy: number;
  readonly precision: number | null;
  readonly recall: number | null;
  readonly log_loss: number;
  readonly last_at: string;
}

interface StoryEntry {
  readonly type: string;
  readonly model: string;
  readonly at: string;
  readonly version: string | null;
  readonly job_id: string | null;
  readonly reason: string | null;
  readonly evidence: string | null;
  readonly percent: number | null;
  readonly metrics: Readonly<Record<string, number>> | null;
  readonly since: string | null;
  readonly drifted_features: readonly string[] | null;
  readonly runner: string | null;
  readonly sha256: string | null;
}

/** What an operator may ask of a version in each stage (the registry refuses anything else). */
const PROMOTABLE = new Set(['canary', 'registered', 'retired']);
const ROLLBACKABLE = new Set(['canary', 'stable']);

const ACTION_LABEL: Record<Action, { verb: string; done: string }> = {
  promote: { verb: 'Promote', done: 'Promoted' },
  rollback: { verb: 'Roll back', done: 'Rolled back' },
};

/** `v12` sorts after `v9`. */
function versionOrder(a: string, b: string): number {
  const na = /(\d+)$/.exec(a)?.[1];
  const nb = /(\d+)$/.exec(b)?.[1];
  if (na !== undefined && nb !== undefined && na !== nb) return Number(nb) - Number(na);
  return b.localeCompare(a);
}

function routingText(r: Routing): string {
  return `stable ${r.stable ?? 'none'}, ${r.canary === null ? 'no canary' : `canary ${r.canary.version} at ${fmt(r.canary.percent)} %`}`;
}

// ------------------------------------------------------------------------------------------------ view

type Outcome = { readonly ok: true; readonly decision: Decision; readonly plan: Plan } | { readonly ok: false; readonly error: ApiError | Error; readonly context: string };

export function ModelsView(props: { search: URLSearchParams }): JSX.Element {
  const models = usePoll<{ models: ModelView[] }>('/models');
  const readOnly = useReadOnly();
  const [outcome, setOutcome] = useState<Outcome | undefined>();
  const list = models.data?.models ?? [];
  const asked = props.search.get('model');
  const model = list.find((m) => m.name === asked) ?? list[0];
  return (
    <Page title="Models" subtitle="Versions, routing and live quality, and the drift → retrain → canary → promote story" actions={<Freshness updatedAt={models.updatedAt} error={models.error} />}>
      <Problem error={models.error} context="Cannot read the model registry" />
      <div role="status" data-testid="action-result" class="models-result">
        {outcome === undefined ? null : outcome.ok ? (
          <div class="success">
            <strong>
              {ACTION_LABEL[outcome.decision.action].done} {outcome.decision.model} {outcome.decision.version}.
            </strong>{' '}
            Routing now: {routingText(outcome.plan.to)}. Audit event at {outcome.decision.audit.topic} partition {outcome.decision.audit.partition}, offset{' '}
            {outcome.decision.audit.offset}:{' '}
            <Link to={path('/topics', outcome.decision.audit.topic, outcome.decision.audit.partition, outcome.decision.audit.offset)}>the event</Link>,{' '}
            <Link to="/audit">the audit log</Link>.
          </div>
        ) : (
          <Problem error={outcome.error} context={outcome.context} />
        )}
      </div>
      {models.data === undefined ? (
        models.error === undefined ? <Loading what="models" /> : null
      ) : model === undefined ? (
        <p class="notice">No model is registered yet. Retraining asks for the first model once enough labelled outcomes exist.</p>
      ) : (
        <>
          {asked !== null && asked !== model.name ? <p class="notice">No model is named {asked}; showing {model.name}.</p> : null}
          {list.length > 1 ? (
            <Tabs label="Model" value={model.name} options={list.map((m) => ({ value: m.name, label: m.name }))} onChange={(name) => navigate(`/models${query({ model: name })}`)} />
          ) : null}
          <ModelDetail
            key={model.name}
            model={model}
            readOnly={readOnly}
            onOutcome={(o) => {
              setOutcome(o);
              models.reload();
            }}
          />
        </>
      )}
    </Page>
  );
}

interface Pending {
  readonly action: Action;
  readonly version: string;
  readonly plan?: Plan;
  readonly busy: boolean;
  readonly error?: ApiError | Error;
  /** Why the plan was made again. */
  readonly note?: string;
}

function ModelDetail(props: { model: ModelView; readOnly: boolean; onOutcome: (outcome: Outcome) => void }): JSX.Element {
  const { model } = props;
  const versions = [...model.versions].sort((a, b) => versionOrder(a.version, b.version));
  const [pending, setPending] = useState<Pending | undefined>();
  const [reason, setReason] = useState('');

  const storyPrefix = `${keyPart(model.name)}/story/`;
  const story = usePoll<ScanResult<StoryEntry>>(`scan:${storyPrefix}`, 5_000, (_p, signal) => scanPrefix<StoryEntry>('drift-timeline', storyPrefix, 500, signal));

  const dryRun = async (action: Action, version: string, note?: string): Promise<void> => {
    // Planning again keeps the old plan on screen (busy) rather than closing the dialog under the operator.
    setPending((p) => (note !== undefined && p !== undefined ? { ...p, busy: true } : { action, version, busy: true }));
    try {
      const plan = await postJson<Plan>(path('/models', model.name, action), { version });
      setPending({ action, version, plan, busy: false, ...(note === undefined ? {} : { note }) });
    } catch (err) {
      setPending(undefined);
      props.onOutcome({ ok: false, error: asError(err), context: note === undefined ? `Cannot plan: ${ACTION_LABEL[action].verb.toLowerCase()} ${model.name} ${version}` : `${model.name} ${version} changed since the dry run` });
    }
  };

  const confirm = async (): Promise<void> => {
    const p = pending;
    if (p?.plan === undefined || p.busy) return;
    setPending({ ...p, busy: true });
    const why = reason.trim();
    try {
      const decision = await postJson<Decision>(path('/models', model.name, p.action), { version: p.version, token: p.plan.token, ...(why === '' ? {} : { reason: why }) });
      setPending(undefined);
      setReason('');
      props.onOutcome({ ok: true, decision, plan: p.plan });
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) {
        // The routing moved since the dry run: show what the decision would do now, to be confirmed again.
        await dryRun(p.action, p.version, 'The model changed since the dry run; this is the plan now. Confirm again to carry it out.');
      } else {
        setPending({ ...p, busy: false, error: asError(err) });
      }
    }
  };

  const cancel = (): void => {
    setPending(undefined);
    setReason('');
  };

  const canary = model.canary;
  // A stable version can only be rolled back to an earlier stable one still usable: retired is what those become.
  const hasFallback = model.versions.some((v) => v.stage === 'retired');
  return (
    <>
      <div class="stats">
        <div class="stat">
          <div class="stat-label">Stable</div>
          <div class="stat-value" data-testid="model-stable">
            {model.stable ?? '—'}
          </div>
          <div class="stat-hint">{canary === null ? 'serves all traffic' : `serves ${fmt(100 - canary.percent)} % of traffic`}</div>
        </div>
        <div class="stat">
          <div class="stat-label">Canary</div>
          <div class="stat-value" data-testid="model-canary">
            {canary === null ? '—' : canary.version}
          </div>
          <div class="stat-hint">{canary === null ? 'none running' : `${fmt(canary.percent)} % of traffic`}</div>
        </div>
        <div class="stat">
          <div class="stat-label">Versions</div>
          <div class="stat-value">{fmt(model.versions.length)}</div>
          <div class="stat-hint">
            <Link to={`/drift${query({ model: model.name })}`}>drift of {model.name}</Link>
          </div>
        </div>
      </div>

      <Panel title={`${model.name}: versions`} aside={<span class="muted">live outcomes from the model-performance projection</span>}>
        <table data-testid="model-versions" class="models-table">
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Stage</th>
              <th scope="col" class="num">Traffic</th>
              <th scope="col">SHA-256</th>
              <th scope="col" class="num">AUC</th>
              <th scope="col">Training metrics</th>
              <th scope="col" class="num">Live outcomes</th>
              <th scope="col" class="num">Live AUC</th>
              <th scope="col">Last decision</th>
              {props.readOnly ? null : <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {versions.map((v) => {
              const others = Object.entries(v.metrics)
                .filter(([k]) => k !== 'auc')
                .sort(([a], [b]) => metricRank(a) - metricRank(b));
              return (
                <tr data-testid={`version-${v.version}`}>
                  <th scope="row">{v.version}</th>
                  <td>
                    <Badge tone={stateTone(v.stage)}>{v.stage}</Badge>
                  </td>
                  <td class="num">{fmt(v.trafficPercent)} %</td>
                  <td>
                    <code title={v.sha256}>
                      {v.sha256.slice(0, 12)}…
                    </code>
                  </td>
                  <td class="num">{fmt(v.metrics['auc'], 3)}</td>
                  <td class="models-metrics" title={others.length > SHOWN_METRICS ? metricsText(Object.fromEntries(others)) : undefined}>
                    {others.length === 0 ? (
                      <span class="muted">—</span>
                    ) : (
                      <>
                        {others.slice(0, SHOWN_METRICS).map(([k, n]) => (
                          <span>{`${k} ${fmtMetric(n)}`}</span>
                        ))}
                        {others.length > SHOWN_METRICS ? <span class="muted">+{others.length - SHOWN_METRICS} more</span> : null}
                      </>
                    )}
                  </td>
                  <LiveCells model={model.name} version={v.version} stage={v.stage} />
                  <td>
                    {v.lastDecision === undefined ? (
                      <span class="muted">—</span>
                    ) : (
                      <span>
                        {v.lastDecision.action === 'promote' ? 'promoted' : 'rolled back'} by {v.lastDecision.decidedBy}
                        <br />
                        <span class="muted">
                          <time dateTime={v.lastDecision.at}>{fmtTime(v.lastDecision.at)}</time>
                          {v.lastDecision.reason === undefined ? '' : ` — ${v.lastDecision.reason}`}
                          {v.lastDecision.evidence === undefined ? '' : ` — ${v.lastDecision.evidence}`}
                        </span>
                      </span>
                    )}
                  </td>
                  {props.readOnly ? null : (
                    <td class="models-actions">
                      {PROMOTABLE.has(v.stage) ? (
                        <button type="button" data-testid={`promote-${v.version}`} disabled={pending !== undefined} onClick={() => void dryRun('promote', v.version)}>
                          Promote
                        </button>
                      ) : null}
                      {ROLLBACKABLE.has(v.stage) ? (
                        <button
                          type="button"
                          data-testid={`rollback-${v.version}`}
                          disabled={pending !== undefined || (v.stage === 'stable' && !hasFallback)}
                          title={v.stage === 'stable' && !hasFallback ? 'No earlier stable version could serve instead' : undefined}
                          onClick={() => void dryRun('rollback', v.version)}
                        >
                          Roll back
                        </button>
                      ) : null}
                    </td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
      </Panel>

      <Panel title={`${model.name}: story`} aside={<Freshness updatedAt={story.updatedAt} error={story.error} />}>
        <Problem error={story.error} context="Cannot read the story (drift-timeline)" />
        {story.data === undefined ? story.error === undefined ? <Loading what="the story" /> : null : <Story result={story.data} />}
      </Panel>

      {props.readOnly ? null : (
        <ConfirmDialog
          open={pending?.plan !== undefined}
          title={pending === undefined ? '' : `${ACTION_LABEL[pending.action].verb} ${model.name} ${pending.version}?`}
          confirmLabel={pending === undefined ? 'Confirm' : ACTION_LABEL[pending.action].verb}
          danger={pending?.action === 'rollback'}
          busy={pending?.busy === true}
          onConfirm={() => void confirm()}
          onCancel={cancel}
        >
          {pending?.plan === undefined ? null : (
            <>
              {pending.note === undefined ? null : <p class="notice">{pending.note}</p>}
              <p>The dry run says the routing changes like this:</p>
              <table data-testid="action-plan">
                <thead>
                  <tr>
                    <th scope="col">Route</th>
                    <th scope="col">Now</th>
                    <th scope="col">After</th>
                  </tr>
                </thead>
                <tbody>
                  <tr>
                    <th scope="row">Stable</th>
                    <td>{pending.plan.from.stable ?? 'none'}</td>
                    <td>{pending.plan.to.stable ?? 'none'}</td>
                  </tr>
                  <tr>
                    <th scope="row">Canary</th>
                    <td>{pending.plan.from.canary === null ? 'none' : `${pending.plan.from.canary.version} at ${fmt(pending.plan.from.canary.percent)} %`}</td>
                    <td>{pending.plan.to.canary === null ? 'none' : `${pending.plan.to.canary.version} at ${fmt(pending.plan.to.canary.percent)} %`}</td>
                  </tr>
                </tbody>
              </table>
              <p class="muted">
                From: {routingText(pending.plan.from)} → to: {routingText(pending.plan.to)}.
              </p>
              <label class="models-reason">
                Reason (optional, kept in the audit log)
                <input type="text" value={reason} maxLength={1000} onInput={(e) => setReason(e.currentTarget.value)} data-testid="action-reason" />
              </label>
              <Problem error={pending.error} context={`${ACTION_LABEL[pending.action].verb} failed`} />
            </>
          )}
        </ConfirmDialog>
      )}
    </>
  );
}

// ------------------------------------------------------------------------------------------------ live quality

/**
 * `<model>/<version>/all` by a one-key prefix scan rather than a read by key: an absent key (a version with no
 * outcomes yet) answers an empty page, not a 404 the browser would log as an error. The store answers a key with a
 * long history from its newest version, so the scan costs about what a read does.
 */
async function readPerformance(model: string, version: string, signal: AbortSignal): Promise<Performance | null> {
  const key = `${keyPart(model)}/${keyPart(version)}/all`;
  const page = await getJson<{ items: Array<{ key: string; value: Performance }> }>(`${path('/projections', 'model-performance')}${query({ prefix: key, limit: 1 })}`, signal);
  return page.items.find((item) => item.key === key)?.value ?? null;
}

/** Live outcomes and AUC of one version, polled on their own: one slow read does not hold up the table. */
function LiveCells(props: { model: string; version: string; stage: string }): JSX.Element {
  const { model, version, stage } = props;
  const live = usePoll<Performance | null>(`perf:${keyPart(model)}/${keyPart(version)}`, 5_000, (_p, signal) => readPerformance(model, version, signal));
  const p = live.data;
  if (p === undefined) {
    return (
      <>
        <td class="num" title={live.error?.message}>
          {live.error === undefined ? '…' : 'unavailable'}
        </td>
        <td class="num">—</td>
      </>
    );
  }
  return (
    <>
      <td class="num" data-testid={`live-count-${version}`}>
        {fmt(p?.count ?? 0)}
      </td>
      <td class="num" title={p === null ? undefined : `accuracy ${fmt(p.accuracy, 3)}, precision ${fmt(p.precision, 3)}, recall ${fmt(p.recall, 3)}, log loss ${fmt(p.log_loss, 3)}; last outcome ${fmtTime(p.last_at)}`}>
        {fmt(p?.auc, 3)}
      </td>
    </>
  );
}

function asError(err: unknown): ApiError | Error {
  return err instanceof Error ? err : new Error(String(err));
}

// ------------------------------------------------------------------------------------------------ story

const STORY: Record<string, { label: string; tone: 'ok' | 'warn' | 'bad' | 'info' }> = {
  DriftDetected: { label: 'Drift detected', tone: 'warn' },
  RetrainRequested: { label: 'Retraining requested', tone: 'info' },
  TrainingStarted: { label: 'Training started', tone: 'info' },
  ModelTrained: { label: 'Model trained', tone: 'ok' },
  TrainingFailed: { label: 'Training failed', tone: 'bad' },
  ModelRegistered: { label: 'Registered', tone: 'info' },
  ModelRefused: { label: 'Refused', tone: 'bad' },
  CanaryStarted: { label: 'Canary stage', tone: 'warn' },
  ModelPromoted: { label: 'Promoted', tone: 'ok' },
  ModelRolledBack: { label: 'Rolled back', tone: 'bad' },
};

const TIMELINE_CLASS: Record<'ok' | 'warn' | 'bad' | 'info', string> = { ok: 'ok', warn: 'warn', bad: 'bad', info: '' };

/** Training metrics shown in the versions table; the rest are in the cell's title. */
const SHOWN_METRICS = 4;

/** Quality first (AUC, then log loss), then counts. */
function metricRank(name: string): number {
  if (name.includes('auc')) return 0;
  if (name.includes('loss') || name.includes('brier')) return 1;
  return 2;
}

function fmtMetric(n: number): string {
  return fmt(n, Number.isInteger(n) ? undefined : 3);
}

function metricsText(metrics: Readonly<Record<string, number>>): string {
  return Object.entries(metrics)
    .sort(([a], [b]) => metricRank(a) - metricRank(b))
    .map(([k, n]) => `${k} ${fmtMetric(n)}`)
    .join(' · ');
}

function Story(props: { result: ScanResult<StoryEntry> }): JSX.Element {
  const items = props.result.items;
  if (items.length === 0) return <p class="muted">Nothing has happened to this model yet.</p>;
  return (
    <>
      {props.result.truncated ? <p class="notice">Showing the first {items.length} events of the story.</p> : null}
      <ol class="timeline" data-testid="model-story">
        {items.map(({ key, value: e }) => {
          const kind = STORY[e.type] ?? { label: e.type, tone: 'info' as const };
          const subject = safeDecode(key.slice(key.lastIndexOf('/') + 1));
          const facts: JSX.Element[] = [];
          if (e.drifted_features !== null && e.drifted_features.length > 0) {
            facts.push(
              <span>
                drifted: {e.drifted_features.join(', ')}
                {e.version === null ? null : (
                  <>
                    {' '}
                    (<Link to={`/drift${query({ model: e.model, version: e.version })}`}>distributions</Link>)
                  </>
                )}
              </span>,
            );
          }
          if (e.job_id !== null) facts.push(<span>job {e.job_id}</span>);
          if (e.job_id !== null && e.version !== null) facts.push(<span>version {e.version}</span>);
          if (e.percent !== null) facts.push(<span>{fmt(e.percent)} % of traffic</span>);
          if (e.metrics !== null && Object.keys(e.metrics).length > 0) {
            const all = Object.entries(e.metrics).sort(([a], [b]) => metricRank(a) - metricRank(b));
            facts.push(
              <span title={metricsText(e.metrics)}>
                {all
                  .slice(0, SHOWN_METRICS)
                  .map(([k, n]) => `${k} ${fmtMetric(n)}`)
                  .join(' · ')}
                {all.length > SHOWN_METRICS ? ` · +${all.length - SHOWN_METRICS} more` : ''}
              </span>,
            );
          }
          if (e.since !== null) facts.push(<span>labels since {fmtTime(e.since)}</span>);
          if (e.runner !== null) facts.push(<span>runner {e.runner}</span>);
          if (e.sha256 !== null) facts.push(<span title={e.sha256}>SHA-256 {e.sha256.slice(0, 12)}…</span>);
          if (e.evidence !== null) facts.push(<span>evidence: {e.evidence}</span>);
          if (e.reason !== null) facts.push(<span>reason: {e.reason}</span>);
          return (
            <li class={TIMELINE_CLASS[kind.tone]} data-type={e.type}>
              <time dateTime={e.at}>{fmtTime(e.at)}</time>
              <Badge tone={kind.tone}>{kind.label}</Badge> <strong>{subject}</strong>
              {facts.length === 0 ? null : <div class="models-facts">{facts}</div>}
            </li>
          );
        })}
      </ol>
    </>
  );
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
