/**
 * Must-show of the ML pipeline, on the embedded log: drift injected → drift events name the shifted features →
 * the real trainer retrains → the new version goes through canary → promoted, and on the drifted traffic its AUC
 * (from feedback) beats the old version's. The scenario is in test/support/pipeline.ts; the Kafka run is beside it.
 */
import { it } from 'vitest';
import { requireBuild } from '../support/engine-process.js';
import { expectPipelineMustShows, runPipelineScenario } from '../support/pipeline.js';
import { describeWithTrainer } from '../support/trainer.js';

describeWithTrainer('the ML pipeline on the embedded log', (python) => {
  it('retrains on drift, walks the new model through canary, promotes it, and the new model judges drifted traffic better', { timeout: 1_800_000 }, async () => {
    requireBuild();
    const result = await runPipelineScenario({ python });
    expectPipelineMustShows(result);
  });
});
