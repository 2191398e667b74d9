import { pipelineProjections } from '../../projections/pipeline/index.js';
import { Topics } from './contract.js';

/**
 * The ML pipeline as an engine configuration: what `millrace up` runs when no `--config` is given. A config file
 * can run the same topologies with other options (the tests shorten the bootstrap and the canary stages):
 *
 *   { "topics": [...pipelineTopics()], "topologies": pipelineTopologies({ retraining: { bootstrapLabels: 500 } }) }
 *
 * Partitions: the per-transaction topics have 4 (keyed by user or transaction id: predictions and feedback share the
 * transaction id, so outcomes join them partition by partition); the model-level topics have 1, so one task sees a
 * model's decisions in order; `model-routing` is compacted (the latest table per model).
 */

export const PIPELINE_PARTITIONS = 4;

export interface PipelineTopic {
  readonly name: string;
  readonly partitions: number;
  readonly compacted?: boolean;
}

export function pipelineTopics(partitions = PIPELINE_PARTITIONS): PipelineTopic[] {
  const wide = [Topics.transactionsRaw, Topics.feedbackRaw, Topics.transactions, Topics.feedback, Topics.features, Topics.predictions];
  const narrow = [Topics.outcomes, Topics.drift, Topics.driftEvaluations, Topics.trainingJobs, Topics.modelRegistry];
  return [
    ...wide.map((name) => ({ name, partitions })),
    ...narrow.map((name) => ({ name, partitions: 1 })),
    { name: Topics.modelRouting, partitions: 1, compacted: true },
  ];
}

/** The pipeline's stages, in data-flow order; `options` by stage name. */
export const PIPELINE_STAGES = ['ingest', 'features', 'scoring', 'outcomes', 'drift', 'registry', 'retraining', 'training'] as const;

export type PipelineStage = (typeof PIPELINE_STAGES)[number];

/**
 * What the pipeline runs with unless told otherwise. The first model waits out a day of labels — the 24-hour
 * features settle only then — and trains on the 10,000 labels after it (at most six hours of them).
 */
export const PIPELINE_DEFAULTS: Readonly<Partial<Record<PipelineStage, Readonly<Record<string, unknown>>>>> = {
  retraining: { bootstrapLabels: 10_000, bootstrapWarmUpMs: 24 * 3_600_000, bootstrapWindowMs: 6 * 3_600_000 },
};

export function pipelineTopologies(options: Partial<Record<PipelineStage, Record<string, unknown>>> = {}): Array<{ module: string; options: Record<string, unknown> }> {
  return PIPELINE_STAGES.map((stage) => ({ module: `pipeline/${stage}`, options: { ...PIPELINE_DEFAULTS[stage], ...options[stage] } }));
}

/**
 * The whole configuration (without dataDir, http or log settings, which keep their defaults): the topics, the
 * topologies, and the read side users query (`projections/pipeline/`).
 */
export function pipelineConfig(options: Partial<Record<PipelineStage, Record<string, unknown>>> = {}): {
  topics: PipelineTopic[];
  topologies: ReturnType<typeof pipelineTopologies>;
  projections: ReturnType<typeof pipelineProjections>;
} {
  return { topics: pipelineTopics(), topologies: pipelineTopologies(options), projections: pipelineProjections() };
}
