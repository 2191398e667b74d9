export * from './job-runner.js';
export { LocalProcessRunner, type LocalProcessRunnerOptions } from './local-process-runner.js';
export {
  GPU_RESOURCE,
  KubernetesJobRunner,
  kubernetesJobName,
  kubernetesLabelValue,
  type KubernetesJobManifest,
  type KubernetesJobRunnerOptions,
  type KubernetesPodSpec,
  type PersistentVolumeMount,
} from './kubernetes-job-runner.js';
