import type { JSX } from 'preact';
import { usePoll } from '../api.js';
import { Freshness, Link, Loading, Page, Panel, Problem, fmt, fmtTime } from '../components/ui.js';
import type { EngineStatus } from '../types.js';

/** Event time per task: stream time, the watermark, and the windows still waiting for it to close them. */
export function EventTimeView(): JSX.Element {
  const status = usePoll<EngineStatus>('/status');
  const apps = status.data?.applications ?? [];
  return (
    <Page
      title="Event time"
      subtitle="Stream time is the latest record time a task has seen; windows close when the watermark (stream time minus grace) passes their end."
      actions={<Freshness updatedAt={status.updatedAt} error={status.error} />}
    >
      <Problem error={status.error} context="Status" />
      {status.data === undefined ? <Loading what="status" /> : null}
      {apps.map((app) => {
        const windowed = app.tasks.flatMap((t) => t.nodes.filter((n) => n.openWindows !== undefined).map((n) => ({ task: t.taskId, node: n })));
        return (
          <Panel title={<Link to={`/topologies/${encodeURIComponent(app.applicationId)}`}>{app.applicationId}</Link>}>
            <table>
              <thead>
                <tr>
                  <th scope="col">Task</th>
                  <th scope="col">Stream time</th>
                  <th scope="col">Watermark</th>
                  <th scope="col" class="num">Windows waiting</th>
                  <th scope="col">Next close</th>
                </tr>
              </thead>
              <tbody>
                {app.tasks.map((t) => {
                  const nodes = t.nodes.filter((n) => n.openWindows !== undefined);
                  const open = nodes.reduce((sum, n) => sum + (n.openWindows ?? 0), 0);
                  const next = nodes.map((n) => n.nextWindowCloseAt).filter((x): x is string => typeof x === 'string').sort()[0];
                  return (
                    <tr data-testid={`time-row-${app.applicationId}-${t.taskId}`}>
                      <th scope="row">{t.taskId}</th>
                      <td>{fmtTime(t.streamTime)}</td>
                      <td>{fmtTime(t.watermark)}</td>
                      <td class="num">{nodes.length === 0 ? '—' : fmt(open)}</td>
                      <td>{fmtTime(next ?? null)}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
            {windowed.length === 0 ? null : (
              <details>
                <summary>By windowed operator</summary>
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Task</th>
                      <th scope="col">Operator</th>
                      <th scope="col" class="num">Open windows</th>
                      <th scope="col">Next close</th>
                    </tr>
                  </thead>
                  <tbody>
                    {windowed.map(({ task, node }) => (
                      <tr>
                        <td>{task}</td>
                        <td>{node.node}</td>
                        <td class="num">{fmt(node.openWindows)}</td>
                        <td>{fmtTime(node.nextWindowCloseAt ?? null)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </details>
            )}
          </Panel>
        );
      })}
    </Page>
  );
}
