import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { MillraceError } from '../errors.js';
import type { ModelService } from '../ml/model-service.js';
import { actorOf } from './dead-letter-routes.js';

/**
 * An operator's promotion or rollback of a model version over HTTP, in the two steps of dead-letter actions: the
 * body without a token is a dry run answering the plan and its token; with the token, the decision is taken and
 * leaves an audit event (`GET /audit`). The retraining controller reads the decision from `model-registry`.
 */

const DecisionBody = z.object({
  version: z.string().min(1).max(200),
  reason: z.string().max(1_000).optional(),
  /** The token of a dry run: carry it out. */
  token: z.string().min(1).max(100).optional(),
}).strict();

export function registerModelRoutes(app: FastifyInstance, models: ModelService): void {
  for (const action of ['promote', 'rollback'] as const) {
    app.post(`/models/:name/${action}`, async (request) => {
      const { name } = request.params as { name: string };
      const parsed = DecisionBody.safeParse(request.body);
      if (!parsed.success) {
        throw new MillraceError(
          'MILLRACE_HTTP_VALIDATION',
          parsed.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : 'body'}: ${i.message}`).join('; '),
        );
      }
      const { version, reason, token } = parsed.data;
      const decided = await models.decide(name, action, {
        version,
        actor: actorOf(request.headers, request.ip),
        ...(reason === undefined ? {} : { reason }),
        ...(token === undefined ? {} : { token }),
      });
      return { dryRun: token === undefined, ...decided };
    });
  }
}
