/**
 * Must-show of the ML pipeline on Apache Kafka: the same scenario as on the embedded log (test/support/pipeline.ts),
 * with `millrace up --brokers` against the tests' broker. The pipeline's topics have fixed names, so any left by an
 * earlier run on a reused broker are deleted first, with the applications' internal topics.
 */
import { it } from 'vitest';
import { PIPELINE_STAGES, pipelineTopics } from '../../topologies/pipeline/config.js';
import { kafkaClient } from '../support/cluster.js';
import { requireBuild } from '../support/engine-process.js';
import { describeWithKafka } from '../support/kafka.js';
import { expectPipelineMustShows, runPipelineScenario } from '../support/pipeline.js';
import { describeWithTrainer } from '../support/trainer.js';

/** The application ids of the pipeline's topologies: their internal topics start with `<id>-`. */
const APPLICATIONS = PIPELINE_STAGES.map((stage) => (stage === 'registry' ? 'model-registry' : stage));

async function deletePipelineTopics(brokers: string): Promise<void> {
  const log = await kafkaClient(brokers);
  try {
    const names = new Set(pipelineTopics().flatMap((t) => [t.name, `${t.name}.dlq`]));
    for (const topic of await log.listTopics()) {
      if (names.has(topic.name) || APPLICATIONS.some((app) => topic.name.startsWith(`${app}-`))) await log.deleteTopic(topic.name);
    }
  } finally {
    await log.close();
  }
}

describeWithTrainer('the ML pipeline on Kafka', (python) => {
  describeWithKafka('with the tests\' broker', (brokers) => {
    it('retrains on drift, walks the new model through canary, promotes it, and the new model judges drifted traffic better', { timeout: 2_400_000 }, async () => {
      requireBuild();
      await deletePipelineTopics(brokers.join(','));
      const result = await runPipelineScenario({ python, brokers: brokers.join(',') });
      expectPipelineMustShows(result);
    });
  });
});
