import type { FastifyInstance } from 'fastify';
import { MillraceError } from '../errors.js';
import { offset, type Log, type LogRecord } from '../log/log.js';
import { partitionForKey } from '../log/partitioner.js';
import type { EngineApi } from '../runtime/status.js';
import { recordView, valueDecoderFor } from './codec.js';

/**
 * Finding records: by key (the partitioner names the one partition that can hold it, which is read from its end
 * backwards, bounded) and by lineage (a record and, recursively, the records its value points at).
 */

/** Records of the key's partition a lookup reads at most, newest first. */
export const DEFAULT_MAX_SCAN = 100_000;
const MAX_SCAN_LIMIT = 1_000_000;
/** Levels of `lineage` / `source` a lineage walk follows, and records it returns at most. */
const MAX_LINEAGE_DEPTH = 4;
const MAX_LINEAGE_RECORDS = 50;

type Query = Record<string, string | string[] | undefined>;

function integer(query: Query, name: string, fallback: number, min: number, max: number): number {
  const raw = query[name];
  if (raw === undefined) return fallback;
  const n = typeof raw === 'string' && /^\d{1,16}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(n >= min && n <= max)) throw new MillraceError('MILLRACE_HTTP_VALIDATION', `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

async function readOne(log: Log, topic: string, partition: number, at: number): Promise<LogRecord | undefined> {
  const batch = await log.read(topic, partition, offset(at), { maxRecords: 1 });
  const record = batch.records[0];
  return record?.offset === at ? record : undefined;
}

interface Coordinates {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

function isCoordinates(value: unknown): value is Coordinates {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v['topic'] === 'string' && Number.isInteger(v['partition']) && (v['partition'] as number) >= 0 && Number.isInteger(v['offset']) && (v['offset'] as number) >= 0;
}

/** The records a value points at: `source: {topic, partition, offset}` and each `lineage.<name>: {…}`, by name. */
export function lineageLinks(value: unknown): Array<{ name: string; at: Coordinates }> {
  if (typeof value !== 'object' || value === null) return [];
  const v = value as Record<string, unknown>;
  const links: Array<{ name: string; at: Coordinates }> = [];
  if (isCoordinates(v['source'])) links.push({ name: 'source', at: v['source'] });
  const lineage = v['lineage'];
  if (typeof lineage === 'object' && lineage !== null) {
    for (const [name, at] of Object.entries(lineage as Record<string, unknown>)) if (isCoordinates(at)) links.push({ name, at });
  }
  return links;
}

export function registerLookupRoutes(app: FastifyInstance, engine: EngineApi): void {
  const { log, registry } = engine;

  app.get('/topics/:topic/keys/:key', async (request) => {
    const { topic, key } = request.params as { topic: string; key: string };
    const query = request.query as Query;
    const limit = integer(query, 'limit', 10, 1, 1_000);
    const maxScan = integer(query, 'maxScan', DEFAULT_MAX_SCAN, 1, MAX_SCAN_LIMIT);
    const info = await log.describeTopic(topic);
    const keyBytes = Buffer.from(key, 'utf8');
    const partition = partitionForKey(keyBytes, info.partitions);
    const bounds = (await log.partitionOffsets(topic)).find((p) => p.partition === partition)!;
    const found: LogRecord[] = [];
    let scanned = 0;
    // Newest first: chunks read backwards from the end of the partition.
    let end: number = bounds.end;
    while (end > bounds.start && found.length < limit && scanned < maxScan) {
      const chunk = Math.min(1_000, end - bounds.start, maxScan - scanned);
      const from = end - chunk;
      const records: LogRecord[] = [];
      for (let at = from; at < end; ) {
        const batch = await log.read(topic, partition, offset(at), { maxRecords: end - at });
        if (batch.records.length === 0) break;
        for (const r of batch.records) if (r.offset < end) records.push(r);
        at = batch.nextOffset;
      }
      scanned += chunk;
      for (let i = records.length - 1; i >= 0 && found.length < limit; i--) {
        const r = records[i]!;
        if (r.key !== null && r.key.equals(keyBytes)) found.push(r);
      }
      end = from;
    }
    const decoder = await valueDecoderFor(registry, topic);
    const views = [];
    for (const r of found) views.push(await recordView(r, decoder));
    return {
      topic,
      key,
      partition,
      records: views,
      scanned,
      // Older records may hold the key too when the scan stopped at its bound.
      complete: end <= bounds.start || found.length >= limit,
    };
  });

  app.get('/lineage/:topic/:partition/:offset', async (request) => {
    const params = request.params as { topic: string; partition: string; offset: string };
    const coordinates = (p: string, name: string): number => {
      if (!/^\d{1,15}$/.test(p)) throw new MillraceError('MILLRACE_HTTP_VALIDATION', `${name} must be a non-negative integer, got ${JSON.stringify(p)}`);
      return Number(p);
    };
    const root = { topic: params.topic, partition: coordinates(params.partition, 'partition'), offset: coordinates(params.offset, 'offset') };
    await log.describeTopic(root.topic);
    const decoders = new Map<string, Awaited<ReturnType<typeof valueDecoderFor>>>();
    const view = async (record: LogRecord): Promise<Record<string, unknown>> => {
      let decoder = decoders.get(record.topic);
      if (decoder === undefined) {
        decoder = await valueDecoderFor(registry, record.topic);
        decoders.set(record.topic, decoder);
      }
      return recordView(record, decoder);
    };
    const first = await readOne(log, root.topic, root.partition, root.offset);
    if (first === undefined) {
      throw new MillraceError('MILLRACE_HTTP_NOT_FOUND', `${root.topic}/${root.partition} has no record at offset ${root.offset} (deleted by retention, or not written yet)`);
    }
    // Breadth first: each record, then the records it points at, each once.
    const seen = new Set<string>([`${root.topic}/${root.partition}/${root.offset}`]);
    const nodes: Array<{ depth: number; via: string | null; record: Record<string, unknown>; links: Array<{ name: string } & Coordinates & { found: boolean }> }> = [];
    let frontier: Array<{ depth: number; via: string | null; record: LogRecord }> = [{ depth: 0, via: null, record: first }];
    while (frontier.length > 0 && nodes.length < MAX_LINEAGE_RECORDS) {
      const next: typeof frontier = [];
      for (const { depth, via, record } of frontier) {
        if (nodes.length >= MAX_LINEAGE_RECORDS) break;
        const shown = await view(record);
        const links: Array<{ name: string } & Coordinates & { found: boolean }> = [];
        for (const { name, at } of depth < MAX_LINEAGE_DEPTH ? lineageLinks(shown['value']) : []) {
          const id = `${at.topic}/${at.partition}/${at.offset}`;
          const target = seen.has(id) ? undefined : await readOne(log, at.topic, at.partition, at.offset).catch(() => undefined);
          links.push({ name, ...at, found: target !== undefined || seen.has(id) });
          if (target !== undefined) {
            seen.add(id);
            next.push({ depth: depth + 1, via: name, record: target });
          }
        }
        nodes.push({ depth, via, record: shown, links });
      }
      frontier = next;
    }
    return { root, records: nodes };
  });
}
