import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { MillraceError } from '../errors.js';
import type { ProjectionManager } from '../projections/manager.js';

/**
 * The read side over HTTP: projections (list, get a key, scan by prefix, `asOf` any retained moment), rebuilds,
 * and replays with their steps and diff. Every error is an RFC 7807 problem (the server's error handler).
 */

type Query = Record<string, string | string[] | undefined>;

function single(query: Query, name: string): string | undefined {
  const value = query[name];
  if (Array.isArray(value)) throw invalid(`give ${name} once`);
  return value;
}

function invalid(detail: string): MillraceError {
  return new MillraceError('MILLRACE_HTTP_VALIDATION', detail);
}

/** The latest moment a JavaScript Date can hold, in ms since the epoch. */
const MAX_AS_OF_MS = 8_640_000_000_000_000;

/** `asOf` as an ISO 8601 time (with a zone) or ms since the epoch. */
export function parseAsOf(text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  if (/^\d{1,16}$/.test(text)) {
    // Answers echo asOf as an ISO time, which a later moment does not have.
    if (Number(text) > MAX_AS_OF_MS) throw invalid(`asOf must be at most ${MAX_AS_OF_MS} ms since the epoch, got ${text}`);
    return Number(text);
  }
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}T.*(Z|[+-]\d{2}:?\d{2})$/.test(text) || Number.isNaN(ms) || ms < 0) {
    throw invalid(`asOf must be an ISO 8601 time with a zone (2026-11-24T08:00:00Z) or ms since the epoch, got ${JSON.stringify(text)}`);
  }
  return ms;
}

function parseLimit(text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > max) throw invalid(`limit must be an integer from 1 to ${max}, got ${JSON.stringify(text)}`);
  return n;
}

const iso = (ms: number): string => new Date(ms).toISOString();

function notRetained(name: string, asOfMs: number, retainedFromMs: number): MillraceError {
  return new MillraceError(
    'MILLRACE_PROJECTION_NOT_RETAINED',
    `projection ${name} keeps history from ${iso(retainedFromMs)}; ${iso(asOfMs)} is older: replay the log to that moment (POST /replays with "to") to see it`,
    { details: { projection: name, asOf: iso(asOfMs), retainedFrom: iso(retainedFromMs) } },
  );
}

const ReplayBody = z.object({
  projection: z.string().min(1).optional().describe('The projection to replay.'),
  topology: z.string().min(1).optional().describe('Or the topology (application id) to replay.'),
  from: z.union([z.string().min(1), z.number().int().min(0)]).optional(),
  to: z.union([z.string().min(1), z.number().int().min(0)]).optional(),
  code: z.string().min(1).optional().describe('A module on the engine\'s machine with the handler code to replay with.'),
}).strict();

export function registerProjectionRoutes(app: FastifyInstance, projections: ProjectionManager): void {
  const maxScanLimit = projections.store.limits.maxScanLimit;

  app.get('/projections', async () => ({ projections: projections.list() }));

  app.get('/projections/:name', async (request) => {
    const { name } = request.params as { name: string };
    const query = request.query as Query;
    const asOfMs = parseAsOf(single(query, 'asOf'));
    const prefix = single(query, 'prefix');
    const cursor = single(query, 'cursor');
    const limit = parseLimit(single(query, 'limit'), Math.min(100, maxScanLimit), maxScanLimit);
    const info = projections.info(name);
    const page = await projections.scan(name, {
      limit,
      ...(prefix === undefined ? {} : { prefix }),
      ...(cursor === undefined ? {} : { cursor }),
      ...(asOfMs === undefined ? {} : { asOfMs }),
    });
    if (page.status === 'not-retained') throw notRetained(name, asOfMs!, page.retainedFromMs);
    return {
      projection: name,
      namespace: info.namespace,
      ...(asOfMs === undefined ? {} : { asOf: iso(asOfMs) }),
      items: page.items.map((item) => ({ key: item.key, value: item.value, validFrom: iso(item.timestampMs) })),
      ...(page.nextCursor === undefined ? {} : { nextCursor: page.nextCursor }),
    };
  });

  // The key is a wildcard, not a `:key` parameter: parameters are capped at the server's maxParamLength (512
  // characters) and keys are not (the store's maxKeyBytes). A `/` in a key arrives as `/` whether sent as %2F or not.
  app.get('/projections/:name/*', async (request) => {
    const { name, '*': key } = request.params as { name: string; '*': string };
    const asOfMs = parseAsOf(single(request.query as Query, 'asOf'));
    const got = await projections.get(name, key, asOfMs === undefined ? {} : { asOfMs });
    if (got.status === 'not-retained') throw notRetained(name, asOfMs!, got.retainedFromMs);
    if (got.status === 'absent') {
      throw new MillraceError('MILLRACE_PROJECTION_KEY_ABSENT', `projection ${name} has no ${JSON.stringify(key)}${asOfMs === undefined ? '' : ` as of ${iso(asOfMs)}`}`, {
        details: { projection: name, key, ...(asOfMs === undefined ? {} : { asOf: iso(asOfMs) }) },
      });
    }
    return { projection: name, key, ...(asOfMs === undefined ? {} : { asOf: iso(asOfMs) }), value: got.value, validFrom: iso(got.timestampMs) };
  });

  app.post('/projections/:name/rebuild', async (request, reply) => {
    const { name } = request.params as { name: string };
    const status = await projections.rebuild(name);
    return reply.code(202).header('location', `/projections/${encodeURIComponent(name)}`).send({ projection: name, rebuild: status });
  });

  app.get('/replays', async () => ({ replays: projections.replays.list() }));

  app.post('/replays', async (request, reply) => {
    const parsed = ReplayBody.safeParse(request.body);
    if (!parsed.success) {
      throw invalid(parsed.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : 'body'}: ${i.message}`).join('; '));
    }
    const replay = await projections.replays.create(parsed.data);
    return reply.code(201).header('location', `/replays/${replay.id}`).send(replay);
  });

  app.get('/replays/:id', async (request) => projections.replays.get((request.params as { id: string }).id));

  app.delete('/replays/:id', async (request, reply) => {
    await projections.replays.delete((request.params as { id: string }).id);
    return reply.code(204).send();
  });

  app.get('/replays/:id/steps', async (request) => {
    const query = request.query as Query;
    const cursor = single(query, 'cursor');
    return projections.replays.steps((request.params as { id: string }).id, {
      limit: parseLimit(single(query, 'limit'), Math.min(100, maxScanLimit), maxScanLimit),
      ...(cursor === undefined ? {} : { cursor }),
    });
  });

  app.get('/replays/:id/diff', async (request) => {
    const query = request.query as Query;
    const cursor = single(query, 'cursor');
    return projections.replays.diff((request.params as { id: string }).id, {
      limit: parseLimit(single(query, 'limit'), Math.min(100, maxScanLimit), maxScanLimit),
      ...(cursor === undefined ? {} : { cursor }),
    });
  });
}
