import type { JSX } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import { usePoll } from '../api.js';
import { Badge, Freshness, Json, Link, Loading, Page, Panel, Problem, fmt, fmtTime, stateTone } from '../components/ui.js';
import type { EngineStatus, TopologyDescription, TopologyNode } from '../types.js';
import { useRates } from './rates.js';

interface Box {
  readonly id: string;
  readonly label: string;
  readonly kind: TopologyNode['kind'] | 'topic';
  readonly operator: string;
  readonly node?: TopologyNode;
  x: number;
  y: number;
}

const BOX_W = 150;
const BOX_H = 40;
const COL_GAP = 46;
const ROW_GAP = 14;

/**
 * Lays the graph out in columns by longest path from a topic: topics a source reads come first, each node one
 * column right of its furthest parent, and a sink's topic right of the sink. Sub-topologies meet through their
 * topics (a repartition topic is one box with a sink on its left and a source on its right).
 */
function layout(description: TopologyDescription): { boxes: Box[]; edges: Array<[string, string]>; width: number; height: number } {
  const boxes = new Map<string, Box>();
  const edges: Array<[string, string]> = [];
  const topicId = (t: string): string => `topic:${t}`;
  const addTopic = (t: string): void => {
    if (!boxes.has(topicId(t))) boxes.set(topicId(t), { id: topicId(t), label: t, kind: 'topic', operator: 'topic', x: 0, y: 0 });
  };
  for (const sub of description.subtopologies) {
    for (const node of sub.nodes) {
      boxes.set(node.name, { id: node.name, label: node.name, kind: node.kind, operator: node.operator, node, x: 0, y: 0 });
      for (const parent of node.parents) edges.push([parent, node.name]);
      if (node.kind === 'source') for (const t of node.topics ?? []) { addTopic(t); edges.push([topicId(t), node.name]); }
      if (node.kind === 'sink' && node.topic !== undefined) { addTopic(node.topic); edges.push([node.name, topicId(node.topic)]); }
    }
  }
  for (const g of description.globalStores) { addTopic(g.topic); }
  const parents = new Map<string, string[]>();
  for (const [from, to] of edges) parents.set(to, [...(parents.get(to) ?? []), from]);
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const depthOf = (id: string): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (visiting.has(id)) return 0; // a cycle through a topic: cut it
    visiting.add(id);
    const d = Math.max(-1, ...(parents.get(id) ?? []).map(depthOf)) + 1;
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  const columns: Box[][] = [];
  for (const box of boxes.values()) {
    const d = depthOf(box.id);
    (columns[d] ??= []).push(box);
  }
  let height = 0;
  columns.forEach((col, c) => {
    col.forEach((box, r) => {
      box.x = 10 + c * (BOX_W + COL_GAP);
      box.y = 10 + r * (BOX_H + ROW_GAP);
    });
    height = Math.max(height, 10 + col.length * (BOX_H + ROW_GAP));
  });
  return { boxes: [...boxes.values()], edges, width: 20 + columns.length * (BOX_W + COL_GAP), height: height + 10 };
}

/** Light (idle) to a strong blue (busiest node); text stays dark on every shade. */
function loadFill(share: number): string {
  const lightness = 96 - Math.round(Math.min(1, Math.max(0, share)) * 34);
  return `hsl(214 90% ${lightness}%)`;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export function TopologyView(props: { app: string }): JSX.Element {
  const topologies = usePoll<{ topologies: TopologyDescription[] }>('/topologies', 30_000);
  const status = usePoll<EngineStatus>('/status');
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const description = topologies.data?.topologies.find((t) => t.applicationId === props.app);
  const app = status.data?.applications.find((a) => a.applicationId === props.app);
  const graph = useMemo(() => (description === undefined ? undefined : layout(description)), [description]);

  const counters = useMemo(() => {
    if (app === undefined) return undefined;
    const totals = new Map<string, number>();
    for (const task of app.tasks) for (const n of task.nodes) totals.set(n.node, (totals.get(n.node) ?? 0) + n.records);
    return totals;
  }, [app]);
  const rates = useRates(counters, status.updatedAt);
  const maxRate = Math.max(1, ...rates.values());
  const selectedNode = graph?.boxes.find((b) => b.id === selected);

  return (
    <Page title={`Topology ${props.app}`} subtitle={app === undefined ? undefined : <>State <Badge tone={stateTone(app.state)}>{app.state}</Badge></>} actions={<Freshness updatedAt={status.updatedAt} error={status.error} />}>
      <Problem error={topologies.error} context="Topologies" />
      <Problem error={status.error} context="Status" />
      {topologies.data !== undefined && description === undefined ? <Problem error={new Error(`no running topology named ${props.app}`)} /> : null}
      {graph === undefined ? (
        <Loading what="the topology" />
      ) : (
        <Panel title="Graph" aside={<span class="muted">nodes coloured by records per second (busiest: {fmt(Math.round(maxRate))}/s)</span>}>
          <div class="graph" data-testid="topology-graph">
            <svg viewBox={`0 0 ${graph.width} ${graph.height}`} role="group" aria-label={`Graph of ${props.app}: ${graph.boxes.length} nodes and topics`}>
              <defs>
                <marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                  <path d="M0,0 L8,4 L0,8 z" fill="#94a3b8" />
                </marker>
              </defs>
              {graph.edges.map(([from, to]) => {
                const a = graph.boxes.find((b) => b.id === from);
                const b = graph.boxes.find((x) => x.id === to);
                if (a === undefined || b === undefined) return null;
                const x1 = a.x + BOX_W;
                const y1 = a.y + BOX_H / 2;
                const x2 = b.x;
                const y2 = b.y + BOX_H / 2;
                const mid = (x1 + x2) / 2;
                return <path class="edge" d={`M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`} marker-end="url(#arrow)" />;
              })}
              {graph.boxes.map((box) => {
                const rate = rates.get(box.id) ?? 0;
                return (
                  <g
                    class={`node ${box.kind === 'topic' ? 'topic' : ''} ${selected === box.id ? 'selected' : ''}`}
                    transform={`translate(${box.x},${box.y})`}
                    role="button"
                    tabIndex={0}
                    aria-label={`${box.kind} ${box.label}${box.kind === 'topic' ? '' : `, ${Math.round(rate)} records per second`}`}
                    data-testid={`graph-node-${box.id}`}
                    onClick={() => setSelected(box.id)}
                    onKeyDown={(e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); setSelected(box.id); } }}
                  >
                    <rect width={BOX_W} height={BOX_H} fill={box.kind === 'topic' ? undefined : loadFill(rate / maxRate)} />
                    <text x="8" y="16">{clip(box.label, 22)}</text>
                    <text x="8" y="31" class="kind">
                      {box.kind === 'topic' ? 'topic' : `${box.operator} · ${fmt(Math.round(rate))}/s`}
                    </text>
                    <title>{box.label}</title>
                  </g>
                );
              })}
            </svg>
          </div>
          {selectedNode === undefined ? (
            <p class="muted">Select a node or topic for its details.</p>
          ) : selectedNode.kind === 'topic' ? (
            <p>
              Topic <strong>{selectedNode.label}</strong>: <Link to={`/topics/${encodeURIComponent(selectedNode.label)}`}>browse its records</Link>
            </p>
          ) : (
            <div class="grid-2">
              <dl class="kv" aria-label="Node">
                <dt>Node</dt>
                <dd>{selectedNode.label}</dd>
                <dt>Kind</dt>
                <dd>{selectedNode.kind} ({selectedNode.operator})</dd>
                <dt>Stores</dt>
                <dd>{selectedNode.node?.stores.join(', ') || '—'}</dd>
                <dt>Records</dt>
                <dd>{fmt(counters?.get(selectedNode.id) ?? 0)} ({fmt(Math.round(rates.get(selectedNode.id) ?? 0))}/s)</dd>
              </dl>
              {selectedNode.node?.detail === undefined ? null : <Json value={selectedNode.node.detail} label="Node detail" />}
            </div>
          )}
        </Panel>
      )}
      {app === undefined ? null : (
        <Panel title="Tasks">
          <table>
            <thead>
              <tr>
                <th scope="col">Task</th>
                <th scope="col">State</th>
                <th scope="col" class="num">Records/s</th>
                <th scope="col" class="num">p50 ms</th>
                <th scope="col" class="num">p95 ms</th>
                <th scope="col" class="num">p99 ms</th>
                <th scope="col" class="num">Processed</th>
                <th scope="col" class="num">Dead letters</th>
                <th scope="col" class="num">Commits</th>
                <th scope="col">Last commit</th>
                <th scope="col">Watermark</th>
                <th scope="col">Error</th>
              </tr>
            </thead>
            <tbody>
              {app.tasks.map((t) => (
                <tr data-testid={`task-row-${t.taskId}`}>
                  <th scope="row">{t.taskId}</th>
                  <td>
                    <Badge tone={stateTone(t.state)}>{t.state}</Badge>
                  </td>
                  <td class="num">{fmt(t.recordsPerSecond)}</td>
                  <td class="num">{fmt(t.latencyMs?.p50)}</td>
                  <td class="num">{fmt(t.latencyMs?.p95)}</td>
                  <td class="num">{fmt(t.latencyMs?.p99)}</td>
                  <td class="num" data-testid={`task-processed-${t.taskId}`}>
                    {fmt(t.processed)}
                  </td>
                  <td class="num">{fmt(t.deadLettered)}</td>
                  <td class="num">{fmt(t.commits)}</td>
                  <td>{fmtTime(t.lastCommitAt)}</td>
                  <td>{fmtTime(t.watermark)}</td>
                  <td>{t.error === null ? '—' : <span class="warn-text">{t.error}</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p class="muted">Latency: from taking a batch's first record to its durable checkpoint, over the task's last checkpoints.</p>
        </Panel>
      )}
    </Page>
  );
}
