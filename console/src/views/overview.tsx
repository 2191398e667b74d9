import type { JSX } from 'preact';
import { getMetrics, sumOf, usePoll, type Sample } from '../api.js';
import { Badge, Freshness, Link, Loading, Page, Panel, Problem, Stat, fmt, fmtSeconds, fmtTime, stateTone } from '../components/ui.js';
import type { EngineStatus, TaskStatus } from '../types.js';

export function appTotals(tasks: readonly TaskStatus[]): { processed: number; rate: number; deadLettered: number; lag: number; maxLagSeconds: number | null; stalled: number; p95: number | null; failed: number } {
  let processed = 0;
  let rate = 0;
  let deadLettered = 0;
  let lag = 0;
  let maxLagSeconds: number | null = null;
  let stalled = 0;
  let p95: number | null = null;
  let failed = 0;
  for (const t of tasks) {
    processed += t.processed;
    rate += t.recordsPerSecond;
    deadLettered += t.deadLettered;
    if (t.state === 'failed') failed++;
    if (t.latencyMs !== null) p95 = Math.max(p95 ?? 0, t.latencyMs.p95);
    for (const i of t.inputs) {
      lag += i.lag;
      if (i.stalled) stalled++;
      if (i.lagSeconds !== null) maxLagSeconds = Math.max(maxLagSeconds ?? 0, i.lagSeconds);
    }
  }
  return { processed, rate, deadLettered, lag, maxLagSeconds, stalled, p95, failed };
}

export function Overview(): JSX.Element {
  const status = usePoll<EngineStatus>('/status');
  const metrics = usePoll<Sample[]>('/metrics', undefined, getMetrics);
  const s = status.data;
  const m = metrics.data;
  const all = s === undefined ? undefined : appTotals(s.applications.flatMap((a) => a.tasks));
  return (
    <Page
      title="Overview"
      subtitle={s === undefined ? undefined : `Millrace ${s.version} · ${s.log.kind} log (${s.log.location}) · up since ${fmtTime(s.startedAt)}`}
      actions={<Freshness updatedAt={status.updatedAt} error={status.error} />}
    >
      <Problem error={status.error} context="Status" />
      {s === undefined || all === undefined ? (
        <Loading what="status" />
      ) : (
        <>
          <div class="stats">
            <Stat label="Engine" value={<Badge tone={stateTone(s.state)}>{s.state}</Badge>} />
            <Stat label="Records processed" value={fmt(all.processed)} testid="total-processed" hint="since each task started (status)" />
            <Stat label="Records in" value={m === undefined ? '—' : fmt(sumOf(m, 'millrace_records_in_total'))} testid="metrics-records-in" hint="millrace_records_in_total (/metrics)" />
            <Stat label="Throughput" value={`${fmt(Math.round(all.rate))}/s`} testid="total-rate" />
            <Stat label="Lag" value={fmt(all.lag)} hint={all.maxLagSeconds === null ? 'records' : `records · oldest ${fmtSeconds(all.maxLagSeconds)}`} testid="total-lag" tone={all.stalled > 0 ? 'bad' : undefined} />
            <Stat label="Dead letters" value={fmt(all.deadLettered)} testid="total-dead-letters" tone={all.deadLettered > 0 ? 'warn' : undefined} />
            <Stat label="p95 latency" value={all.p95 === null ? '—' : `${fmt(all.p95)} ms`} hint="worst task, to a durable checkpoint" />
          </div>
          <Panel title="Applications">
            <table>
              <thead>
                <tr>
                  <th scope="col">Application</th>
                  <th scope="col">State</th>
                  <th scope="col" class="num">Tasks</th>
                  <th scope="col" class="num">Processed</th>
                  <th scope="col" class="num">Records in (metrics)</th>
                  <th scope="col" class="num">Records/s</th>
                  <th scope="col" class="num">p95 ms</th>
                  <th scope="col" class="num">Lag</th>
                  <th scope="col" class="num">Dead letters</th>
                  <th scope="col">Problems</th>
                </tr>
              </thead>
              <tbody>
                {s.applications.map((app) => {
                  const t = appTotals(app.tasks);
                  return (
                    <tr data-testid={`app-row-${app.applicationId}`}>
                      <th scope="row">
                        <Link to={`/topologies/${encodeURIComponent(app.applicationId)}`}>{app.applicationId}</Link>
                      </th>
                      <td>
                        <Badge tone={stateTone(app.state)}>{app.state}</Badge>
                      </td>
                      <td class="num">{app.tasks.length}</td>
                      <td class="num" data-testid={`app-processed-${app.applicationId}`}>
                        {fmt(t.processed)}
                      </td>
                      <td class="num" data-testid={`app-records-in-${app.applicationId}`}>
                        {m === undefined ? '—' : fmt(sumOf(m, 'millrace_records_in_total', { application: app.applicationId }))}
                      </td>
                      <td class="num">{fmt(Math.round(t.rate))}</td>
                      <td class="num">{t.p95 === null ? '—' : fmt(t.p95)}</td>
                      <td class="num">{fmt(t.lag)}</td>
                      <td class="num">{fmt(t.deadLettered)}</td>
                      <td>
                        {app.error !== null ? <Badge tone="bad" title={app.error}>error</Badge> : null}
                        {t.stalled > 0 ? (
                          <Link to="/lag">
                            <Badge tone="bad">{t.stalled} stalled</Badge>
                          </Link>
                        ) : null}
                        {t.failed > 0 ? <Badge tone="bad">{t.failed} failed</Badge> : null}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </Panel>
        </>
      )}
    </Page>
  );
}
