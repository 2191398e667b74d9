export { TopologyTestDriver, TestInputTopic, TestOutputTopic, type TopologyTestDriverOptions } from './topology-test-driver.js';
export { ProjectionTestDriver, type ProjectionTestInput } from './projection-test-driver.js';
