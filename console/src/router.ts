import { useEffect, useState } from 'preact/hooks';

/** Every view has a path under `/console`; the engine answers `index.html` for each, so links can be shared. */
export const BASE = '/console';

function current(): { path: string; search: URLSearchParams } {
  const { pathname, search } = window.location;
  const path = pathname.startsWith(BASE) ? pathname.slice(BASE.length) || '/' : '/';
  return { path, search: new URLSearchParams(search) };
}

const listeners = new Set<() => void>();

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  const url = `${BASE}${to === '/' ? '' : to}`;
  if (options.replace === true) window.history.replaceState(null, '', url);
  else window.history.pushState(null, '', url);
  for (const listener of listeners) listener();
}

export function useRoute(): { path: string; search: URLSearchParams } {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const update = (): void => setRoute(current());
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return route;
}

/** Matches `/topics/:topic` style patterns; parameters come back decoded. */
export function match(pattern: string, path: string): Record<string, string> | undefined {
  const p = pattern.split('/').filter((s) => s !== '');
  const s = path.split('/').filter((x) => x !== '');
  if (p.length !== s.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    const part = p[i]!;
    if (part.startsWith(':')) params[part.slice(1)] = decodeURIComponent(s[i]!);
    else if (part !== s[i]) return undefined;
  }
  return params;
}

/** A console-internal link: `to` is a path under `/console`, segments already encoded (use `path()`). */
export function href(to: string): string {
  return `${BASE}${to === '/' ? '' : to}`;
}

export function onLinkClick(event: MouseEvent, to: string): void {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(to);
}
