import type { JSX } from 'preact';

/** A small trend line; the last value is marked. No axes: it answers "growing or draining?" at a glance. */
export function Sparkline(props: { values: readonly number[]; width?: number; height?: number; label: string }): JSX.Element {
  const width = props.width ?? 120;
  const height = props.height ?? 28;
  const values = props.values;
  if (values.length < 2) {
    return (
      <svg width={width} height={height} role="img" aria-label={`${props.label}: not enough samples yet`}>
        <line x1="0" y1={height - 2} x2={width} y2={height - 2} class="spark-empty" />
      </svg>
    );
  }
  const max = Math.max(1, ...values);
  const step = width / (values.length - 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`).join(' ');
  const first = values[0]!;
  const last = values[values.length - 1]!;
  const trend = last > first ? 'growing' : last < first ? 'draining' : 'flat';
  return (
    <svg width={width} height={height} role="img" aria-label={`${props.label}: ${trend}, from ${first} to ${last}`} class={`spark ${trend}`}>
      <polyline points={points} fill="none" />
    </svg>
  );
}

export interface Series {
  readonly name: string;
  readonly points: ReadonlyArray<{ x: number; y: number }>;
}

const PALETTE = ['#2563eb', '#d97706', '#059669', '#db2777', '#7c3aed', '#0891b2', '#65a30d', '#dc2626', '#4b5563', '#9333ea', '#0d9488'];

export function colorOf(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

/** A line chart over time (x in ms), with an optional horizontal threshold line. */
export function LineChart(props: {
  series: readonly Series[];
  label: string;
  threshold?: { y: number; label: string };
  height?: number;
  yLabel?: string;
  onPick?: (x: number) => void;
}): JSX.Element {
  const width = 720;
  const height = props.height ?? 220;
  const pad = { left: 48, right: 12, top: 10, bottom: 28 };
  const all = props.series.flatMap((s) => s.points);
  if (all.length === 0) return <p class="muted">No data yet.</p>;
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y);
  const minX = Math.min(...xs);
  const maxX = Math.max(...xs, minX + 1);
  const maxY = Math.max(...ys, props.threshold?.y ?? 0) * 1.1 || 1;
  const sx = (x: number): number => pad.left + ((x - minX) / (maxX - minX)) * (width - pad.left - pad.right);
  const sy = (y: number): number => height - pad.bottom - (y / maxY) * (height - pad.top - pad.bottom);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * maxY);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={props.label} preserveAspectRatio="xMidYMid meet">
        {ticks.map((t) => (
          <g>
            <line x1={pad.left} x2={width - pad.right} y1={sy(t)} y2={sy(t)} class="grid" />
            <text x={pad.left - 6} y={sy(t) + 4} text-anchor="end" class="axis">
              {t < 10 ? t.toFixed(2) : t.toFixed(0)}
            </text>
          </g>
        ))}
        <text x={pad.left} y={height - 8} class="axis">
          {new Date(minX).toISOString().slice(0, 16).replace('T', ' ')}
        </text>
        <text x={width - pad.right} y={height - 8} text-anchor="end" class="axis">
          {new Date(maxX).toISOString().slice(0, 16).replace('T', ' ')}
        </text>
        {props.threshold === undefined ? null : (
          <g>
            <line x1={pad.left} x2={width - pad.right} y1={sy(props.threshold.y)} y2={sy(props.threshold.y)} class="threshold" />
            <text x={width - pad.right - 4} y={sy(props.threshold.y) - 4} text-anchor="end" class="axis">
              {props.threshold.label}
            </text>
          </g>
        )}
        {props.series.map((s, i) => (
          <polyline
            points={s.points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ')}
            fill="none"
            stroke={colorOf(i)}
            stroke-width="1.8"
          />
        ))}
        {props.onPick === undefined
          ? null
          : all.map((p) => <circle cx={sx(p.x)} cy={sy(p.y)} r="3" class="pick" onClick={() => props.onPick!(p.x)} />)}
      </svg>
      <figcaption class="legend">
        {props.series.map((s, i) => (
          <span>
            <i style={{ background: colorOf(i) }} aria-hidden="true" />
            {s.name}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

/** Two distributions over the same bins, side by side per bin (reference vs live). */
export function BinBars(props: { edges: readonly number[]; reference: readonly number[]; live: readonly number[]; label: string }): JSX.Element {
  const width = 340;
  const height = 160;
  const pad = { left: 8, right: 8, top: 8, bottom: 22 };
  const k = props.reference.length;
  const max = Math.max(0.0001, ...props.reference, ...props.live);
  const band = (width - pad.left - pad.right) / Math.max(1, k);
  const bar = band * 0.4;
  const sy = (v: number): number => ((height - pad.top - pad.bottom) * v) / max;
  const edge = (i: number): string => {
    const v = props.edges[i];
    return v === undefined ? '' : Math.abs(v) >= 1000 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
  };
  return (
    <figure class="chart small">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={props.label}>
        {props.reference.map((r, i) => {
          const l = props.live[i] ?? 0;
          const x = pad.left + i * band;
          return (
            <g>
              <rect x={x + band * 0.1} y={height - pad.bottom - sy(r)} width={bar} height={sy(r)} class="bar-reference">
                <title>{`bin ${i + 1} [${edge(i)}, ${edge(i + 1)}): reference ${(r * 100).toFixed(1)} %`}</title>
              </rect>
              <rect x={x + band * 0.5} y={height - pad.bottom - sy(l)} width={bar} height={sy(l)} class="bar-live">
                <title>{`bin ${i + 1} [${edge(i)}, ${edge(i + 1)}): live ${(l * 100).toFixed(1)} %`}</title>
              </rect>
            </g>
          );
        })}
        <text x={pad.left} y={height - 6} class="axis">
          {edge(0)}
        </text>
        <text x={width - pad.right} y={height - 6} text-anchor="end" class="axis">
          {edge(props.edges.length - 1)}
        </text>
      </svg>
      <figcaption class="legend">
        <span>
          <i class="bar-reference-key" aria-hidden="true" />
          reference
        </span>
        <span>
          <i class="bar-live-key" aria-hidden="true" />
          live
        </span>
      </figcaption>
    </figure>
  );
}
