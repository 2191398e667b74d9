import type { JSX } from 'preact';
import { usePoll } from '../api.js';
import { Sparkline } from '../components/charts.js';
import { Badge, Freshness, Link, Loading, Page, Panel, Problem, fmt, fmtSeconds } from '../components/ui.js';
import type { EngineStatus } from '../types.js';

/** Lag per partition, in records and seconds, with its trend; a stalled partition names the record it waits at. */
export function LagView(): JSX.Element {
  const status = usePoll<EngineStatus>('/status');
  const rows = (status.data?.applications ?? []).flatMap((app) =>
    app.tasks.flatMap((task) => task.inputs.map((input) => ({ app: app.applicationId, task, input }))),
  );
  rows.sort((a, b) => Number(b.input.stalled) - Number(a.input.stalled) || b.input.lag - a.input.lag || a.app.localeCompare(b.app));
  const stalled = rows.filter((r) => r.input.stalled).length;
  return (
    <Page
      title="Lag"
      subtitle="Per application, topic and partition: how far behind, in records and in seconds, and where it is heading (sampled every 5 s, up to 10 min)."
      actions={<Freshness updatedAt={status.updatedAt} error={status.error} />}
    >
      <Problem error={status.error} context="Status" />
      {stalled > 0 ? (
        <div class="problem" role="alert" data-testid="stalled-alert">
          <strong>{stalled} stalled partition{stalled === 1 ? '' : 's'}</strong> — the position has not moved for 30 s while records wait.
        </div>
      ) : null}
      {status.data === undefined ? (
        <Loading what="status" />
      ) : (
        <Panel title="Partitions">
          <table>
            <thead>
              <tr>
                <th scope="col">Application</th>
                <th scope="col">Topic</th>
                <th scope="col" class="num">Partition</th>
                <th scope="col" class="num">Position</th>
                <th scope="col" class="num">Committed</th>
                <th scope="col" class="num">End</th>
                <th scope="col" class="num">Lag (records)</th>
                <th scope="col" class="num">Lag (time)</th>
                <th scope="col">Trend</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {rows.map(({ app, task, input }) => (
                <tr class={input.stalled ? 'stalled' : ''} data-testid={`lag-row-${app}-${input.topic}-${input.partition}`}>
                  <td>
                    <Link to={`/topologies/${encodeURIComponent(app)}`}>{app}</Link>
                  </td>
                  <td>
                    <Link to={`/topics/${encodeURIComponent(input.topic)}`}>{input.topic}</Link>
                  </td>
                  <td class="num">{input.partition}</td>
                  <td class="num">{fmt(input.position)}</td>
                  <td class="num">{fmt(input.committed)}</td>
                  <td class="num">{fmt(input.highWatermark)}</td>
                  <td class="num" data-testid="lag-records">
                    {fmt(input.lag)}
                  </td>
                  <td class="num">{input.lag === 0 ? '0 s' : fmtSeconds(input.lagSeconds)}</td>
                  <td>
                    <Sparkline values={input.lagTrend ?? []} label={`lag of ${input.topic} partition ${input.partition}`} />
                  </td>
                  <td>
                    {input.stalled ? (
                      <span>
                        <Badge tone="bad">stalled {fmtSeconds(input.stalledForMs / 1000)}</Badge>{' '}
                        at{' '}
                        <Link to={`/topics/${encodeURIComponent(input.topic)}/${input.partition}/${input.position}`}>
                          offset {input.position}
                        </Link>
                        {task.error === null ? null : <div class="warn-text">{task.error}</div>}
                      </span>
                    ) : input.lag > 0 ? (
                      <Badge tone="warn">catching up</Badge>
                    ) : (
                      <Badge tone="ok">current</Badge>
                    )}
                    {task.state === 'failed' ? <Badge tone="bad" title={task.error ?? undefined}>task failed</Badge> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </Panel>
      )}
    </Page>
  );
}
