import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { MillraceError } from '../errors.js';
import type { Log } from '../log/log.js';
import { DEAD_LETTER_SUFFIX } from '../runtime/dead-letter.js';
import { readAuditEvents } from '../runtime/audit.js';
import { MAX_REDRIVE_RECORDS, planDeadLetterAction, runDeadLetterAction } from '../runtime/redrive.js';

/**
 * Dead letters over HTTP: which dead-letter topics hold what, and the two-step actions on a range of them (a dry run
 * answering a plan and its token, then the action with the token), each leaving an audit event (`GET /audit`).
 */

const ActionBody = z.object({
  partition: z.number().int().min(0).default(0),
  from: z.number().int().min(0),
  to: z.number().int().min(0),
  /** Default true: only show what would happen. */
  dryRun: z.boolean().default(true),
  token: z.string().min(1).max(100).optional(),
  reason: z.string().max(1_000).optional(),
}).strict();

/** Who acted, as the audit event records it: the `x-millrace-actor` header, else the client's address. */
export function actorOf(headers: Record<string, string | string[] | undefined>, ip: string): string {
  const named = headers['x-millrace-actor'];
  const actor = Array.isArray(named) ? named[0] : named;
  return actor !== undefined && actor.trim() !== '' ? actor.trim().slice(0, 200) : `http:${ip}`;
}

export function registerDeadLetterRoutes(app: FastifyInstance, log: Log): void {
  app.get('/dead-letters', async () => {
    const topics = (await log.listTopics()).filter((t) => t.name.endsWith(DEAD_LETTER_SUFFIX));
    const out = [];
    for (const topic of topics) {
      const offsets = await log.partitionOffsets(topic.name);
      out.push({
        topic: topic.name,
        partitions: offsets.map((o) => ({ partition: o.partition, start: o.start, end: o.end })),
        records: offsets.reduce((n, o) => n + (o.end - o.start), 0),
      });
    }
    return { deadLetterTopics: out };
  });

  for (const action of ['redrive', 'skip'] as const) {
    app.post(`/dead-letters/:topic/${action}`, async (request) => {
      const { topic } = request.params as { topic: string };
      const parsed = ActionBody.safeParse(request.body);
      if (!parsed.success) {
        throw new MillraceError('MILLRACE_HTTP_VALIDATION', parsed.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : 'body'}: ${i.message}`).join('; '), {
          details: { maxRecords: MAX_REDRIVE_RECORDS },
        });
      }
      const { partition, from, to, dryRun, token, reason } = parsed.data;
      const range = { topic, partition, from, to };
      if (dryRun) return { dryRun: true, ...(await planDeadLetterAction(log, action, range)) };
      if (token === undefined) throw new MillraceError('MILLRACE_REDRIVE_INVALID', 'confirm with the token of a dry run ({"dryRun": true} first)');
      const result = await runDeadLetterAction(log, action, range, {
        token,
        actor: actorOf(request.headers, request.ip),
        ...(reason === undefined ? {} : { reason }),
      });
      return { dryRun: false, ...result };
    });
  }

  app.get('/audit', async (request) => {
    const raw = (request.query as Record<string, string | undefined>)['limit'];
    const limit = raw === undefined ? 100 : Number(raw);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1_000) throw new MillraceError('MILLRACE_HTTP_VALIDATION', `limit must be an integer from 1 to 1000, got ${JSON.stringify(raw)}`);
    return { events: await readAuditEvents(log, limit) };
  });
}
