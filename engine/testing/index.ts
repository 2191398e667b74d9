export { TopologyTestDriver, TestInputTopic, TestOutputTopic, type TopologyTestDriverOptions } from './topology-test-driver.js';
