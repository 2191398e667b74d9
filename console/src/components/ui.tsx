import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { ApiError } from '../api.js';
import { href, onLinkClick } from '../router.js';

export function Link(props: { to: string; children: ComponentChildren; class?: string; title?: string; 'data-testid'?: string }): JSX.Element {
  return (
    <a href={href(props.to)} class={props.class} title={props.title} data-testid={props['data-testid']} onClick={(e) => onLinkClick(e, props.to)}>
      {props.children}
    </a>
  );
}

export function Page(props: { title: string; subtitle?: ComponentChildren; actions?: ComponentChildren; children: ComponentChildren }): JSX.Element {
  useEffect(() => {
    document.title = `${props.title} · Millrace`;
  }, [props.title]);
  return (
    <section class="page" aria-labelledby="page-title">
      <header class="page-header">
        <div>
          <h1 id="page-title">{props.title}</h1>
          {props.subtitle === undefined ? null : <p class="subtitle">{props.subtitle}</p>}
        </div>
        {props.actions === undefined ? null : <div class="page-actions">{props.actions}</div>}
      </header>
      {props.children}
    </section>
  );
}

export function Panel(props: { title: ComponentChildren; children: ComponentChildren; id?: string; aside?: ComponentChildren }): JSX.Element {
  return (
    <section class="panel" aria-label={typeof props.title === 'string' ? props.title : undefined} id={props.id}>
      <header class="panel-header">
        <h2>{props.title}</h2>
        {props.aside}
      </header>
      <div class="panel-body">{props.children}</div>
    </section>
  );
}

/** An error the engine answered (RFC 7807) or a failure to reach it. */
export function Problem(props: { error: ApiError | Error | undefined; context?: string }): JSX.Element | null {
  if (props.error === undefined) return null;
  const code = 'code' in props.error ? (props.error as ApiError).code : undefined;
  return (
    <div class="problem" role="alert">
      <strong>{props.context ?? 'Error'}</strong>
      {code === undefined ? null : <code class="code">{code}</code>}
      <span>{props.error.message}</span>
    </div>
  );
}

export function Loading(props: { what?: string }): JSX.Element {
  return <p class="muted" aria-busy="true">Loading{props.what === undefined ? '' : ` ${props.what}`}…</p>;
}

export function Stat(props: { label: string; value: ComponentChildren; hint?: string; testid?: string; tone?: 'ok' | 'warn' | 'bad' }): JSX.Element {
  return (
    <div class={`stat ${props.tone ?? ''}`}>
      <div class="stat-label">{props.label}</div>
      <div class="stat-value" data-testid={props.testid}>
        {props.value}
      </div>
      {props.hint === undefined ? null : <div class="stat-hint">{props.hint}</div>}
    </div>
  );
}

export function Badge(props: { tone?: 'ok' | 'warn' | 'bad' | 'info'; children: ComponentChildren; title?: string }): JSX.Element {
  return (
    <span class={`badge ${props.tone ?? 'info'}`} title={props.title}>
      {props.children}
    </span>
  );
}

export function stateTone(state: string): 'ok' | 'warn' | 'bad' | 'info' {
  if (state === 'running' || state === 'stable') return 'ok';
  if (state === 'failed' || state === 'rolled-back' || state === 'refused') return 'bad';
  if (state === 'canary' || state === 'restoring' || state === 'starting' || state === 'stopping') return 'warn';
  return 'info';
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

export function fmt(n: number | null | undefined, digits?: number): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  if (digits !== undefined) return n.toFixed(digits);
  return Number.isInteger(n) ? integer.format(n) : decimal.format(n);
}

export function fmtTime(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace('T', ' ').replace('Z', ' UTC');
}

export function fmtSeconds(s: number | null | undefined): string {
  if (s === null || s === undefined) return '—';
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7_200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** JSON, pretty and bounded (a huge value must not freeze the page). */
export function Json(props: { value: unknown; maxChars?: number; label?: string }): JSX.Element {
  let text = JSON.stringify(props.value, null, 2) ?? 'undefined';
  const max = props.maxChars ?? 20_000;
  if (text.length > max) text = `${text.slice(0, max)}\n… (${text.length - max} more characters)`;
  return (
    <pre class="json" tabIndex={0} aria-label={props.label ?? 'JSON value'}>
      {text}
    </pre>
  );
}

/**
 * A confirmation for an action that changes something: it shows what the dry run said would happen, and acts only
 * on an explicit click. A native <dialog>, so focus and Escape behave.
 */
export function ConfirmDialog(props: {
  open: boolean;
  title: string;
  confirmLabel: string;
  onConfirm: () => void;
  onCancel: () => void;
  busy?: boolean;
  danger?: boolean;
  children: ComponentChildren;
}): JSX.Element {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog === null) return;
    if (props.open && !dialog.open) dialog.showModal();
    if (!props.open && dialog.open) dialog.close();
  }, [props.open]);
  return (
    <dialog ref={ref} class="dialog" aria-labelledby="dialog-title" onCancel={(e) => { e.preventDefault(); props.onCancel(); }}>
      <h2 id="dialog-title">{props.title}</h2>
      <div class="dialog-body">{props.children}</div>
      <div class="dialog-actions">
        <button type="button" class="secondary" onClick={props.onCancel} disabled={props.busy}>
          Cancel
        </button>
        <button type="button" class={props.danger === true ? 'danger' : 'primary'} onClick={props.onConfirm} disabled={props.busy} data-testid="confirm-action">
          {props.busy === true ? 'Working…' : props.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

/** Tabs as links would re-render the whole page; these keep the state of a view. */
export function Tabs<T extends string>(props: { value: T; options: ReadonlyArray<{ value: T; label: string }>; onChange: (value: T) => void; label: string }): JSX.Element {
  return (
    <div class="tabs" role="tablist" aria-label={props.label}>
      {props.options.map((o) => (
        <button type="button" role="tab" aria-selected={o.value === props.value} class={o.value === props.value ? 'tab active' : 'tab'} onClick={() => props.onChange(o.value)}>
          {o.label}
        </button>
      ))}
    </div>
  );
}

/** "updated 3 s ago", ticking. */
export function Freshness(props: { updatedAt: number | undefined; error?: ApiError | undefined }): JSX.Element {
  const [, setNow] = useState(0);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1_000);
    return () => clearInterval(timer);
  }, []);
  if (props.updatedAt === undefined) return <span class="muted">—</span>;
  const age = Math.max(0, Math.round((Date.now() - props.updatedAt) / 1000));
  return <span class={props.error === undefined ? 'muted' : 'warn-text'}>{props.error === undefined ? `live · updated ${age} s ago` : `stale · last update ${age} s ago`}</span>;
}
