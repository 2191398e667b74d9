import { useEffect, useRef, useState } from 'preact/hooks';

/** An RFC 7807 problem the engine answered, or a failure to reach it at all (status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string | undefined;
  readonly detail: string;

  constructor(status: number, detail: string, code?: string) {
    super(detail);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

async function problemOf(response: Response): Promise<ApiError> {
  try {
    const body = (await response.json()) as { detail?: string; title?: string; code?: string };
    return new ApiError(response.status, body.detail ?? body.title ?? response.statusText, body.code);
  } catch {
    return new ApiError(response.status, response.statusText);
  }
}

/** Connection health as every request sees it: the banner says when the engine cannot be reached. */
type Listener = (online: boolean) => void;
const listeners = new Set<Listener>();
let online = true;
function setOnline(value: boolean): void {
  if (value === online) return;
  online = value;
  for (const listener of listeners) listener(value);
}

export function useOnline(): boolean {
  const [state, setState] = useState(online);
  useEffect(() => {
    listeners.add(setState);
    return () => listeners.delete(setState);
  }, []);
  return state;
}

async function request(path: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<Response> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), init.timeoutMs ?? 15_000);
  init.signal?.addEventListener('abort', () => controller.abort());
  try {
    const response = await fetch(path, { ...init, signal: controller.signal });
    setOnline(true);
    return response;
  } catch (err) {
    if (init.signal?.aborted !== true) setOnline(false);
    throw new ApiError(0, `the engine cannot be reached (${err instanceof Error ? err.message : String(err)})`);
  } finally {
    clearTimeout(timer);
  }
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const response = await request(path, { headers: { accept: 'application/json' }, ...(signal === undefined ? {} : { signal }) });
  if (!response.ok) throw await problemOf(response);
  return (await response.json()) as T;
}

export async function getText(path: string, signal?: AbortSignal): Promise<string> {
  const response = await request(path, signal === undefined ? {} : { signal });
  if (!response.ok) throw await problemOf(response);
  return response.text();
}

export async function postJson<T>(path: string, body: unknown): Promise<T> {
  const response = await request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', 'x-millrace-actor': 'console' },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw await problemOf(response);
  return (await response.json()) as T;
}

export async function deleteJson(path: string): Promise<void> {
  const response = await request(path, { method: 'DELETE', headers: { 'x-millrace-actor': 'console' } });
  if (!response.ok) throw await problemOf(response);
}

export interface Polled<T> {
  readonly data: T | undefined;
  readonly error: ApiError | undefined;
  /** When data last arrived. */
  readonly updatedAt: number | undefined;
  reload(): void;
}

/** How often views refresh by default. */
export const POLL_INTERVAL_MS = 2_000;

/**
 * A GET kept fresh: fetched at once, then every `intervalMs` after the previous answer (never two in flight), and
 * again when `path` changes. The last good data stays on screen through errors (an engine restarting), which show
 * beside it. `path` null: nothing to fetch.
 */
export function usePoll<T>(path: string | null, intervalMs: number = POLL_INTERVAL_MS, read: (path: string, signal: AbortSignal) => Promise<T> = getJson): Polled<T> {
  const [state, setState] = useState<{ data: T | undefined; error: ApiError | undefined; updatedAt: number | undefined; path: string | null }>({
    data: undefined,
    error: undefined,
    updatedAt: undefined,
    path,
  });
  const [tick, setTick] = useState(0);
  const readRef = useRef(read);
  readRef.current = read;
  useEffect(() => {
    if (path === null) return;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async (): Promise<void> => {
      try {
        const data = await readRef.current(path, controller.signal);
        if (!controller.signal.aborted) setState({ data, error: undefined, updatedAt: Date.now(), path });
      } catch (err) {
        if (controller.signal.aborted) return;
        const error = err instanceof ApiError ? err : new ApiError(0, String(err));
        setState((s) => ({ ...s, data: s.path === path ? s.data : undefined, error, path }));
      }
      if (!controller.signal.aborted && intervalMs > 0) timer = setTimeout(() => void run(), intervalMs);
    };
    void run();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [path, intervalMs, tick]);
  const same = state.path === path;
  return {
    data: same ? state.data : undefined,
    error: same ? state.error : undefined,
    updatedAt: same ? state.updatedAt : undefined,
    reload: () => setTick((t) => t + 1),
  };
}

/** Path segments are encoded one by one: topic names and keys may hold `/`, `?` or `#`. */
export function path(...segments: Array<string | number>): string {
  return segments.map((s, i) => (i === 0 ? String(s) : encodeURIComponent(String(s)))).join('/');
}

export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}

// ------------------------------------------------------------------------------------------------ metrics

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The Prometheus text format, as far as the console reads it: sample lines, labels, values. */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    if (match[3] !== undefined) {
      for (const m of match[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_all, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1]!, labels, value: Number(match[4]) });
  }
  return samples;
}

export function sumOf(samples: readonly Sample[], name: string, filter: Readonly<Record<string, string>> = {}): number {
  let total = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(filter).every(([k, v]) => s.labels[k] === v)) total += s.value;
  }
  return total;
}

export const getMetrics = async (p: string, signal: AbortSignal): Promise<Sample[]> => parseMetrics(await getText(p, signal));
