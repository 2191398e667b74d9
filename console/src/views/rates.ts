import { useRef } from 'preact/hooks';

/**
 * Rates from counters between two polls (records per second per name): the status answers totals, and the
 * console shows what moves. A counter that went down (the engine restarted) starts over.
 */
export function useRates(counters: ReadonlyMap<string, number> | undefined, atMs: number | undefined): ReadonlyMap<string, number> {
  const previous = useRef<{ atMs: number; counters: ReadonlyMap<string, number> } | undefined>(undefined);
  const rates = useRef<ReadonlyMap<string, number>>(new Map());
  if (counters === undefined || atMs === undefined) return rates.current;
  const last = previous.current;
  if (last === undefined || last.atMs !== atMs) {
    if (last !== undefined && atMs > last.atMs) {
      const seconds = (atMs - last.atMs) / 1000;
      const next = new Map<string, number>();
      for (const [name, value] of counters) {
        const before = last.counters.get(name);
        next.set(name, before === undefined || value < before ? 0 : (value - before) / seconds);
      }
      rates.current = next;
    }
    previous.current = { atMs, counters };
  }
  return rates.current;
}
