import type { JSX } from 'preact';
import { path, usePoll } from '../api.js';
import { Badge, Freshness, Json, Link, Loading, Page, Problem, fmt, fmtTime } from '../components/ui.js';
import type { RecordView } from '../types.js';
import { KeyText, eventPath } from './topics.js';
import './lineage.css';

/** `GET /lineage/:topic/:partition/:offset`: the record, then breadth first the records its value points at. */
interface LineageAnswer {
  readonly root: { readonly topic: string; readonly partition: number; readonly offset: number };
  readonly records: ReadonlyArray<{
    readonly depth: number;
    /** The link of the record before that led here (`features`, `transaction`, `source`); null for the first. */
    readonly via: string | null;
    readonly record: RecordView;
    readonly links: ReadonlyArray<{ readonly name: string; readonly topic: string; readonly partition: number; readonly offset: number; readonly found: boolean }>;
  }>;
}

function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>)[name] : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Feature values (name → number) when the record carries them. */
function featuresOf(value: unknown): Array<[string, unknown]> | undefined {
  const features = field(value, 'features');
  if (typeof features !== 'object' || features === null || Array.isArray(features)) return undefined;
  const entries = Object.entries(features as Record<string, unknown>);
  return entries.length === 0 ? undefined : entries;
}

export function LineageView(props: { topic: string; partition: number; offset: number }): JSX.Element {
  const { topic, partition, offset } = props;
  const valid = Number.isSafeInteger(partition) && partition >= 0 && Number.isSafeInteger(offset) && offset >= 0;
  // Records do not change, but a link may point at one not written yet: checked again now and then.
  const lineage = usePoll<LineageAnswer>(valid ? path('/lineage', topic, partition, offset) : null, 10_000);
  const records = lineage.data?.records ?? [];
  return (
    <Page
      title="Lineage"
      subtitle={
        <>
          Where{' '}
          <Link to={eventPath(topic, partition, offset)}>
            {topic}/{partition}/{offset}
          </Link>{' '}
          came from: the record, then each record it names (a prediction → its feature vector → the input transaction).
        </>
      }
      actions={<Freshness updatedAt={lineage.updatedAt} error={lineage.error} />}
    >
      {!valid ? <Problem error={new Error('partition and offset must be non-negative whole numbers')} context="Address" /> : null}
      <Problem error={lineage.error} context="Lineage" />
      {!valid || lineage.data === undefined ? (
        valid && lineage.error === undefined ? <Loading what="lineage" /> : null
      ) : (
        <>
          {records.length === 1 && records[0]!.links.length === 0 ? (
            <p class="notice">This record names no other record (no <code>source</code> or <code>lineage</code> in its value): the chain ends here.</p>
          ) : null}
          <ol class="lineage-chain" aria-label="Lineage, from the record asked for to its sources">
            {records.map((node, i) => (
              <LineageCard node={node} index={i} />
            ))}
          </ol>
        </>
      )}
    </Page>
  );
}

function LineageCard(props: { node: LineageAnswer['records'][number]; index: number }): JSX.Element {
  const { node } = props;
  const r = node.record;
  const value = r.value;
  const model = text(field(value, 'model'));
  const version = text(field(value, 'version'));
  const sha = text(field(value, 'model_sha256'));
  const featureVersion = text(field(value, 'feature_version'));
  const features = featuresOf(value);
  const probability = field(value, 'probability');
  const route = text(field(value, 'route'));
  const name = node.via ?? (node.depth === 0 ? 'record' : 'linked');
  const topic = r.topic ?? '';
  const headingId = `lineage-${props.index}`;
  return (
    <li class="panel lineage-card" data-testid="lineage-record">
      <header class="panel-header">
        <h2 id={headingId}>
          <span data-testid="lineage-link-name">{props.index === 0 ? 'Asked for' : `via ${name}`}</span>
          {' · '}
          <Link to={eventPath(topic, r.partition, r.offset)} data-testid="lineage-coordinates">
            {topic}/{r.partition}/{r.offset}
          </Link>
        </h2>
        {node.depth === 0 ? <Badge tone="info">start</Badge> : <span class="muted">step {node.depth}</span>}
      </header>
      <div class="panel-body">
        <dl class="kv">
          <dt>Timestamp</dt>
          <dd>{fmtTime(r.timestamp)}</dd>
          <dt>Key</dt>
          <dd>
            <KeyText value={r.key} />
          </dd>
          {typeof probability === 'number' ? (
            <>
              <dt>Probability</dt>
              <dd>
                {fmt(probability, 4)}
                {route === undefined ? null : ` (${route})`}
              </dd>
            </>
          ) : null}
          {featureVersion === undefined ? null : (
            <>
              <dt>Feature version</dt>
              <dd>
                <code>{featureVersion}</code>
              </dd>
            </>
          )}
        </dl>
        {version === undefined && sha === undefined ? null : (
          <dl class="kv notice lineage-model" data-testid="lineage-model">
            {model === undefined ? null : (
              <>
                <dt>Model</dt>
                <dd>
                  <strong>{model}</strong>
                </dd>
              </>
            )}
            {version === undefined ? null : (
              <>
                <dt>Model version</dt>
                <dd>
                  <strong data-testid="model-version">{version}</strong>
                </dd>
              </>
            )}
            {sha === undefined ? null : (
              <>
                <dt>SHA-256</dt>
                <dd>
                  <code data-testid="model-sha256">{sha}</code>
                </dd>
              </>
            )}
          </dl>
        )}
        {typeof r['error'] === 'string' ? (
          <div class="problem" role="alert">
            <strong>The value could not be read:</strong> <span>{r['error']}</span>
          </div>
        ) : null}
        {features === undefined ? null : (
          <table class="lineage-features" data-testid="lineage-features">
            <caption class="lineage-caption">Feature values</caption>
            <thead>
              <tr>
                <th scope="col">Feature</th>
                <th scope="col" class="num">Value</th>
              </tr>
            </thead>
            <tbody>
              {features.map(([feature, v]) => (
                <tr>
                  <th scope="row">
                    <code>{feature}</code>
                  </th>
                  <td class="num">{typeof v === 'number' ? (Number.isInteger(v) ? fmt(v) : String(Number(v.toPrecision(6)))) : JSON.stringify(v)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {node.links.length === 0 ? null : (
          <div class="lineage-links">
            <h3>Points at</h3>
            <ul>
              {node.links.map((l) => (
                <li>
                  {l.name}:{' '}
                  <Link to={eventPath(l.topic, l.partition, l.offset)}>
                    {l.topic}/{l.partition}/{l.offset}
                  </Link>{' '}
                  {l.found ? null : <Badge tone="warn">not found (deleted by retention, or not written yet)</Badge>}
                </li>
              ))}
            </ul>
          </div>
        )}
        <details>
          <summary>Whole value</summary>
          <Json value={value} label={`Value of ${topic}/${r.partition}/${r.offset}`} />
        </details>
      </div>
    </li>
  );
}
