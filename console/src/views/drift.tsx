import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { getJson, path, query, usePoll } from '../api.js';
import { BinBars, LineChart, type Series } from '../components/charts.js';
import { Badge, Freshness, Link, Loading, Page, Panel, Problem, Tabs, fmt, fmtTime } from '../components/ui.js';
import { navigate } from '../router.js';
import './drift.css';

// ------------------------------------------------------------------------------------------------ prefix scans

export interface ScanItem<T> {
  readonly key: string;
  readonly value: T;
  readonly validFrom: string;
}

export interface ScanResult<T> {
  readonly items: ReadonlyArray<ScanItem<T>>;
  /** More keys match than were read. */
  readonly truncated: boolean;
}

/** Most entries one view reads from a prefix: enough for a chart or a story, never a whole store per poll. */
export const SCAN_BOUND = 500;

/**
 * A projection's keys under `prefix`, in key order, page by page up to `bound`. Pages may come back short (the
 * store stops a page early), so the page count is bounded too.
 */
export async function scanPrefix<T>(projection: string, prefix: string, bound: number = SCAN_BOUND, signal?: AbortSignal): Promise<ScanResult<T>> {
  const items: Array<ScanItem<T>> = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await getJson<{ items: Array<ScanItem<T>>; nextCursor?: string }>(
      `${path('/projections', projection)}${query({ prefix, limit: Math.min(100, bound - items.length), cursor })}`,
      signal,
    );
    items.push(...page.items);
    cursor = page.nextCursor;
    pages++;
  } while (cursor !== undefined && items.length < bound && pages < bound);
  return { items, truncated: cursor !== undefined };
}

/** One part of a projection key: the pipeline's projections URI-encode every part. */
export const keyPart = (text: string): string => encodeURIComponent(text);

// ------------------------------------------------------------------------------------------------ shapes

interface Bins {
  readonly edges: readonly number[];
  readonly reference: readonly number[];
  readonly live: readonly number[];
}

interface FeatureStatistics {
  readonly ks: number;
  readonly ks_p_value: number;
  readonly psi: number;
  readonly js: number;
  readonly drifted: boolean;
  /** Evaluations only; null when the reference has too many bins to keep. */
  readonly bins?: Bins | null;
}

/** A drift evaluation (`<model>/evaluations/<version>/<window_end>`) or verdict (`<model>/<version>/<window_end>`). */
interface Evaluation {
  readonly kind: 'evaluation' | 'drift';
  readonly model: string;
  readonly version: string;
  readonly window_start: string;
  readonly window_end: string;
  readonly window_size: number;
  readonly drifted_features: readonly string[];
  readonly statistics: Readonly<Record<string, FeatureStatistics>>;
  readonly at: string;
}

interface ModelSummary {
  readonly name: string;
  readonly stable: string | null;
  readonly versions: ReadonlyArray<{ readonly version: string; readonly stage: string }>;
}

type Metric = 'psi' | 'ks';

const PSI_THRESHOLD = 0.2;

/** Features in the order the detector reports them, the model's score last. */
function featuresOf(evaluations: readonly Evaluation[]): string[] {
  const seen = new Set<string>();
  for (const e of evaluations) for (const f of Object.keys(e.statistics)) seen.add(f);
  const names = [...seen].filter((f) => f !== 'score');
  return seen.has('score') ? [...names, 'score'] : names;
}

function seriesOf(evaluations: readonly Evaluation[], features: readonly string[], metric: Metric): Series[] {
  return features.map((feature) => ({
    name: feature,
    points: evaluations.flatMap((e) => {
      const s = e.statistics[feature];
      const x = Date.parse(e.window_end);
      const y = s?.[metric];
      return s === undefined || Number.isNaN(x) || typeof y !== 'number' || !Number.isFinite(y) ? [] : [{ x, y }];
    }),
  }));
}

// ------------------------------------------------------------------------------------------------ view

export function DriftView(props: { search: URLSearchParams }): JSX.Element {
  const search = props.search;
  const models = usePoll<{ models: ModelSummary[] }>('/models', 10_000);
  const list = models.data?.models ?? [];
  const modelName = search.get('model') ?? list[0]?.name;
  const model = list.find((m) => m.name === modelName);
  const version = search.get('version') ?? model?.stable ?? model?.versions.at(-1)?.version;
  const metric: Metric = search.get('metric') === 'ks' ? 'ks' : 'psi';
  const within = search.get('within') ?? '';
  const chosenAt = search.get('at');

  const set = (changes: Record<string, string | null>): void => {
    const next: Record<string, string | undefined> = {
      model: modelName,
      version: search.get('version') ?? undefined,
      metric: metric === 'ks' ? 'ks' : undefined,
      within: within === '' ? undefined : within,
      at: chosenAt ?? undefined,
    };
    for (const [k, v] of Object.entries(changes)) next[k] = v ?? undefined;
    // Another model or version is a new page to go back from; the rest refines the one on screen.
    navigate(`/drift${query(next)}`, { replace: !('model' in changes || 'version' in changes) });
  };

  const ready = modelName !== undefined && version !== undefined;
  const base = ready ? `${keyPart(modelName)}/evaluations/${keyPart(version)}/${within}` : '';
  const verdictBase = ready ? `${keyPart(modelName)}/${keyPart(version)}/${within}` : '';
  // Evaluations hold every window with its bins; drift verdicts only those the detector reported.
  const evaluations = usePoll<ScanResult<Evaluation>>(ready ? `scan:evaluations:${base}` : null, 10_000, (_p, signal) =>
    scanPrefix<Evaluation>('drift-timeline', base, SCAN_BOUND, signal),
  );
  const verdicts = usePoll<ScanResult<Evaluation>>(ready ? `scan:verdicts:${verdictBase}` : null, 10_000, (_p, signal) =>
    scanPrefix<Evaluation>('drift-timeline', verdictBase, SCAN_BOUND, signal),
  );

  const evaluated = (evaluations.data?.items ?? []).map((i) => i.value);
  const verdictList = (verdicts.data?.items ?? []).map((i) => i.value);
  const fallback = evaluations.data !== undefined && evaluated.length === 0;
  const points = fallback ? verdictList : evaluated;
  const source = fallback ? verdicts : evaluations;
  const features = featuresOf(points);
  const series = seriesOf(points, features, metric);
  const selected = points.find((e) => e.window_end === chosenAt) ?? points.at(-1);

  const pick = (x: number): void => {
    let best: Evaluation | undefined;
    for (const e of points) if (best === undefined || Math.abs(Date.parse(e.window_end) - x) < Math.abs(Date.parse(best.window_end) - x)) best = e;
    if (best !== undefined) set({ at: best.window_end });
  };

  return (
    <Page
      title="Drift"
      subtitle={
        <>
          How far each feature's live distribution has moved from the model's training reference, evaluation by evaluation
          {modelName === undefined ? null : (
            <>
              {' · '}
              <Link to={`/models${query({ model: modelName })}`}>{modelName}: versions and story</Link>
            </>
          )}
        </>
      }
      actions={<Freshness updatedAt={source.updatedAt} error={source.error} />}
    >
      <Problem error={models.error} context="Cannot read the model registry" />
      <div class="toolbar">
        <label>
          Model
          <select value={modelName ?? ''} onChange={(e) => set({ model: e.currentTarget.value, version: null, at: null })} disabled={list.length === 0}>
            {modelName !== undefined && model === undefined ? <option value={modelName}>{modelName}</option> : null}
            {list.map((m) => (
              <option value={m.name}>{m.name}</option>
            ))}
          </select>
        </label>
        <label>
          Version
          <select value={version ?? ''} onChange={(e) => set({ version: e.currentTarget.value, at: null })} disabled={model === undefined}>
            {version !== undefined && model?.versions.some((v) => v.version === version) !== true ? <option value={version}>{version}</option> : null}
            {[...(model?.versions ?? [])].reverse().map((v) => (
              <option value={v.version}>
                {v.version} ({v.stage})
              </option>
            ))}
          </select>
        </label>
        <WithinFilter value={within} onApply={(v) => set({ within: v === '' ? null : v, at: null })} />
      </div>

      {models.data === undefined && !ready ? <Loading what="models" /> : null}
      {models.data !== undefined && list.length === 0 && !ready ? <p class="notice">No model is registered yet: drift is measured against a model's training reference once one serves.</p> : null}

      {!ready ? null : (
        <>
          <Panel
            title={`${metric === 'psi' ? 'PSI' : 'KS statistic'} per feature — ${modelName} ${version}`}
            aside={<Tabs label="Statistic" value={metric} options={[{ value: 'psi', label: 'PSI' }, { value: 'ks', label: 'KS' }]} onChange={(m) => set({ metric: m === 'ks' ? 'ks' : null })} />}
          >
            <Problem error={source.error} context="Cannot read drift evaluations" />
            {source.data === undefined ? (
              source.error === undefined ? <Loading what="drift evaluations" /> : null
            ) : points.length === 0 ? (
              <p class="muted" data-testid="drift-empty">
                No drift evaluation of {modelName} {version}
                {within === '' ? '' : ` with a window ending ${within}…`} yet: the detector evaluates once its window of live traffic is full.
              </p>
            ) : (
              <>
                {fallback ? (
                  <p class="notice">Only drift verdicts are recorded for this version (no evaluations with distributions): the chart shows the windows the detector reported.</p>
                ) : null}
                {source.data.truncated ? (
                  <p class="notice">
                    Showing the first {points.length} windows. Narrow by window end (a day such as {points.at(-1)!.window_end.slice(0, 10)}, or an hour) to see later ones.
                  </p>
                ) : null}
                <LineChart
                  series={series}
                  label={`${metric === 'psi' ? 'PSI' : 'KS statistic'} per feature over time for ${modelName} ${version}; pick a point to show that evaluation`}
                  threshold={metric === 'psi' ? { y: PSI_THRESHOLD, label: 'PSI 0.2' } : undefined}
                  yLabel={metric === 'psi' ? 'PSI' : 'KS'}
                  onPick={pick}
                />
              </>
            )}
          </Panel>

          {selected === undefined ? null : (
            <Distributions
              evaluation={selected}
              features={features}
              choices={points}
              onChoose={(windowEnd) => set({ at: windowEnd })}
            />
          )}

          <Panel title="Drift verdicts" aside={<span class="muted">windows where the detector reported drift</span>}>
            <Problem error={verdicts.error} context="Cannot read drift verdicts" />
            {verdicts.data === undefined ? (
              verdicts.error === undefined ? <Loading what="verdicts" /> : null
            ) : (
              <VerdictTable verdicts={verdictList} truncated={verdicts.data.truncated} selectable={new Set(points.map((p) => p.window_end))} selected={selected?.window_end} onChoose={(w) => set({ at: w })} />
            )}
          </Panel>
        </>
      )}
    </Page>
  );
}

/** A window-end prefix (a day, an hour): keys are ordered by it, so it narrows the scan to that stretch of time. */
function WithinFilter(props: { value: string; onApply: (value: string) => void }): JSX.Element {
  const [text, setText] = useState(props.value);
  useEffect(() => setText(props.value), [props.value]);
  return (
    <form
      class="inline drift-within"
      onSubmit={(e) => {
        e.preventDefault();
        props.onApply(text.trim());
      }}
    >
      <label>
        Window end starts with (UTC)
        <input type="text" value={text} placeholder="2026-11-24 or 2026-11-24T08" onInput={(e) => setText(e.currentTarget.value)} size={22} />
      </label>
      <button type="submit">Apply</button>
    </form>
  );
}

function Distributions(props: { evaluation: Evaluation; features: readonly string[]; choices: readonly Evaluation[]; onChoose: (windowEnd: string) => void }): JSX.Element {
  const e = props.evaluation;
  const names = [...props.features.filter((f) => e.statistics[f] !== undefined), ...Object.keys(e.statistics).filter((f) => !props.features.includes(f))];
  return (
    <Panel title={`Reference vs live — window ending ${fmtTime(e.window_end)}`}>
      <div class="toolbar">
        <label>
          Evaluation (window end, UTC)
          <select value={e.window_end} onChange={(ev) => props.onChoose(ev.currentTarget.value)} data-testid="drift-evaluation">
            {[...props.choices].reverse().map((c) => (
              <option value={c.window_end}>
                {fmtTime(c.window_end)}
                {c.drifted_features.length > 0 ? ` — drifted: ${c.drifted_features.join(', ')}` : ''}
              </option>
            ))}
          </select>
        </label>
      </div>
      {e.kind === 'drift' ? <p class="notice">A drift verdict keeps each feature's statistics, not its distributions.</p> : null}
      <dl class="kv drift-summary">
        <dt>Window</dt>
        <dd>
          {fmtTime(e.window_start)} → {fmtTime(e.window_end)}
        </dd>
        <dt>Rows</dt>
        <dd>{fmt(e.window_size)}</dd>
        <dt>Drifted features</dt>
        <dd>{e.drifted_features.length === 0 ? 'none' : e.drifted_features.join(', ')}</dd>
        <dt>Evaluated at</dt>
        <dd>{fmtTime(e.at)}</dd>
      </dl>
      <div class="grid-3" data-testid="drift-distributions">
        {names.map((feature) => {
          const s = e.statistics[feature]!;
          return (
            <section class="drift-feature" aria-label={`Feature ${feature}`}>
              <header>
                <h3>{feature}</h3>
                {s.drifted ? <Badge tone="bad">drifted</Badge> : <Badge tone="ok">no drift</Badge>}
              </header>
              <dl class="kv">
                <dt>PSI</dt>
                <dd>{fmt(s.psi, 3)}</dd>
                <dt>KS</dt>
                <dd>
                  {fmt(s.ks, 3)} <span class="muted">(p = {s.ks_p_value < 0.001 ? s.ks_p_value.toExponential(1) : fmt(s.ks_p_value, 3)})</span>
                </dd>
                <dt>JS</dt>
                <dd>{fmt(s.js, 3)}</dd>
              </dl>
              {s.bins === undefined ? null : s.bins === null ? (
                <p class="muted">The reference has too many bins to keep.</p>
              ) : (
                <BinBars edges={s.bins.edges} reference={s.bins.reference} live={s.bins.live} label={`${feature}: share of the reference and of the live window per bin`} />
              )}
            </section>
          );
        })}
      </div>
    </Panel>
  );
}

/** Verdicts listed at first, newest first; the rest on request. */
const VERDICT_ROWS = 50;

function VerdictTable(props: { verdicts: readonly Evaluation[]; truncated: boolean; selectable: ReadonlySet<string>; selected: string | undefined; onChoose: (windowEnd: string) => void }): JSX.Element {
  const [all, setAll] = useState(false);
  if (props.verdicts.length === 0) return <p class="muted">No drift reported for this version{props.truncated ? '' : ' yet'}.</p>;
  const newestFirst = [...props.verdicts].reverse();
  const shown = all ? newestFirst : newestFirst.slice(0, VERDICT_ROWS);
  return (
    <>
      {props.truncated ? <p class="notice">Read the first {props.verdicts.length} verdicts only.</p> : null}
      <table data-testid="drift-verdicts">
        <thead>
          <tr>
            <th scope="col">Window end</th>
            <th scope="col" class="num">Rows</th>
            <th scope="col">Drifted features</th>
            <th scope="col" class="num">Largest PSI</th>
            <th scope="col">Window</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((v) => {
            const psi = Math.max(...Object.entries(v.statistics).filter(([f]) => f !== 'score').map(([, s]) => s.psi), 0);
            return (
              <tr class={v.window_end === props.selected ? 'selected' : ''}>
                <td>
                  <time dateTime={v.window_end}>{fmtTime(v.window_end)}</time>
                </td>
                <td class="num">{fmt(v.window_size)}</td>
                <td>{v.drifted_features.length === 0 ? <span class="muted">none</span> : v.drifted_features.join(', ')}</td>
                <td class="num">{fmt(psi, 3)}</td>
                <td>
                  {props.selectable.has(v.window_end) ? (
                    <button type="button" onClick={() => props.onChoose(v.window_end)}>
                      Show this window
                    </button>
                  ) : null}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {shown.length < newestFirst.length ? (
        <button type="button" class="drift-more" onClick={() => setAll(true)}>
          Show all {fmt(newestFirst.length)} verdicts
        </button>
      ) : null}
    </>
  );
}
