/**
 * The ML pipeline's read side: the projections users query, as built-in modules. A config runs them beside the
 * pipeline's topologies:
 *
 *   { "topologies": pipelineTopologies(), "projections": pipelineProjections({ alerts: { threshold: 0.8 } }) }
 *
 * Key schemes (every key part URI-encoded; times ISO 8601 UTC with milliseconds, so byte order is time order):
 *
 *   user-risk           <user>                                    latest features and score, counts
 *   alerts              tx/<transaction id>                       an alert and its outcome
 *                       user/<user>/<at>/<transaction id>         a user's alerts, in time order
 *   model-performance   <model>/<version>/all | amount=<band> | country=<CC> | route=<route>
 *   drift-timeline      <model>/<version>/<window end>            drift verdicts, in time order
 *                       <model>/evaluations/<version>/<window end> every evaluation, with reference and live bins
 *                       <model>/story/<at>/<step>-<type>/<subject> drift → retrain → canary → promote / roll back
 *   dead-letters        <dlq topic> | <dlq topic>/<code>          totals, and per problem code
 */

/** The built-in modules, in data-flow order. */
export const PIPELINE_PROJECTIONS = ['pipeline/user-risk', 'pipeline/alerts', 'pipeline/model-performance', 'pipeline/drift-timeline', 'pipeline/dead-letters'] as const;

/** A projection by its module's name: `alerts` for `pipeline/alerts`. */
export type PipelineProjection = NameOf<(typeof PIPELINE_PROJECTIONS)[number]>;

type NameOf<Module> = Module extends `pipeline/${infer Name}` ? Name : never;

/** Module references for a config's `projections`, with `options` by projection name (`alerts: { threshold }`). */
export function pipelineProjections(options: Partial<Record<PipelineProjection, Record<string, unknown>>> = {}): Array<{ module: string; options: Record<string, unknown> }> {
  return PIPELINE_PROJECTIONS.map((module) => ({ module, options: { ...options[module.slice('pipeline/'.length) as PipelineProjection] } }));
}
