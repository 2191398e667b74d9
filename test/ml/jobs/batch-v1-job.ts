/**
 * A strict schema of a Kubernetes `batch/v1` Job, for checking rendered manifests without a cluster.
 *
 * It follows the Kubernetes API reference (Job, JobSpec, PodFailurePolicy, PodTemplateSpec, PodSpec, Container,
 * EnvVar, ResourceRequirements, VolumeMount, Volume, PersistentVolumeClaimVolumeSource, Toleration,
 * SecurityContext, ObjectMeta) but declares only the fields `KubernetesJobRunner` writes: every object is strict, so
 * a misspelt or unexpected field fails here as it would be pruned or refused by the API server. On top of the shapes,
 * the API server's validation rules for those fields: DNS-1123 names, label keys and values, a Job name ≤ 63
 * characters (it becomes the pods' `job-name` label), `restartPolicy` Never or OnFailure, quantities, extended
 * resources (integer, in limits, requests equal to limits), mounts of declared volumes at distinct paths, and a pod
 * failure policy that names a container of the pod and only runs with `restartPolicy: Never`.
 */
import { z } from 'zod';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A label value, and the name part of a qualified name (label and annotation keys). */
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const ENV_VAR_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
/** resource.Quantity: a signed decimal number with an optional binary, decimal or exponent suffix. */
const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$/;
const INT32_MAX = 2 ** 31 - 1;
const ANNOTATIONS_MAX_BYTES = 256 * 1024;
/** Resources the kubelet knows; any other name (`vendor.com/thing`) is an extended resource. */
const NATIVE_RESOURCES = new Set(['cpu', 'memory', 'ephemeral-storage']);

const dnsLabel = z.string().max(63).regex(DNS1123_LABEL, 'must be a DNS-1123 label');
const dnsSubdomain = z.string().max(253).regex(DNS1123_SUBDOMAIN, 'must be a DNS-1123 subdomain');
const int32 = (min: number) => z.number().int().min(min).max(INT32_MAX);

function qualifiedNameProblem(key: string): string | undefined {
  const parts = key.split('/');
  if (parts.length > 2) return 'has more than one /';
  const name = parts.pop() ?? '';
  const prefix = parts[0];
  if (prefix !== undefined && !(prefix.length <= 253 && DNS1123_SUBDOMAIN.test(prefix))) return 'has a prefix that is not a DNS-1123 subdomain';
  if (!(name.length <= 63 && QUALIFIED_NAME_PART.test(name))) return 'is not a qualified name (≤ 63 of [-A-Za-z0-9_.], alphanumeric at both ends)';
  return undefined;
}

const labelKey = z.string().superRefine((key, ctx) => {
  const problem = qualifiedNameProblem(key);
  if (problem) ctx.addIssue({ code: 'custom', message: `label key ${JSON.stringify(key)} ${problem}` });
});
const labelValue = z
  .string()
  .max(63)
  .refine((value) => value === '' || QUALIFIED_NAME_PART.test(value), 'must be a label value (≤ 63 of [-A-Za-z0-9_.], alphanumeric at both ends)');
const labels = z.record(labelKey, labelValue);
const annotations = z
  .record(labelKey, z.string())
  .refine((map) => Buffer.byteLength(Object.entries(map).flat().join('')) <= ANNOTATIONS_MAX_BYTES, 'annotations exceed 256 KiB');
const quantity = z.string().regex(QUANTITY, 'must be a Kubernetes quantity');

/** ObjectMeta: the fields a created object sets. */
const ObjectMeta = z.strictObject({
  name: dnsSubdomain,
  namespace: dnsLabel,
  labels: labels.optional(),
  annotations: annotations.optional(),
});

const TemplateMeta = z.strictObject({ labels: labels.optional(), annotations: annotations.optional() });

const EnvVar = z.strictObject({ name: z.string().regex(ENV_VAR_NAME, 'must be a C identifier-like env var name'), value: z.string() });

const ResourceRequirements = z.strictObject({
  requests: z.record(z.string(), quantity).optional(),
  limits: z.record(z.string(), quantity).optional(),
});

const VolumeMount = z.strictObject({
  name: dnsLabel,
  mountPath: z.string().startsWith('/', 'must be an absolute path'),
  readOnly: z.boolean().optional(),
  subPath: z
    .string()
    .refine((path) => !path.startsWith('/') && !path.split('/').includes('..'), "must be a relative path without '..'")
    .optional(),
});

const SecurityContext = z.strictObject({
  allowPrivilegeEscalation: z.boolean().optional(),
  runAsNonRoot: z.boolean().optional(),
  readOnlyRootFilesystem: z.boolean().optional(),
});

const Container = z.strictObject({
  name: dnsLabel,
  image: z.string().min(1),
  imagePullPolicy: z.enum(['Always', 'Never', 'IfNotPresent']).optional(),
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).optional(),
  env: z.array(EnvVar).optional(),
  resources: ResourceRequirements.optional(),
  volumeMounts: z.array(VolumeMount).optional(),
  securityContext: SecurityContext.optional(),
});

const Volume = z.strictObject({
  name: dnsLabel,
  persistentVolumeClaim: z.strictObject({ claimName: z.string().min(1), readOnly: z.boolean().optional() }),
});

const Toleration = z
  .strictObject({
    key: labelKey.optional(),
    operator: z.enum(['Exists', 'Equal']).optional(),
    value: z.string().optional(),
    effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
    tolerationSeconds: z.number().int().optional(),
  })
  .refine((t) => t.operator !== 'Exists' || !t.value, 'a toleration with operator Exists has no value');

const PodSpec = z.strictObject({
  restartPolicy: z.enum(['Always', 'OnFailure', 'Never']).optional(),
  serviceAccountName: dnsSubdomain.optional(),
  automountServiceAccountToken: z.boolean().optional(),
  nodeSelector: z.record(labelKey, labelValue).optional(),
  tolerations: z.array(Toleration).optional(),
  containers: z.array(Container).min(1),
  volumes: z.array(Volume).optional(),
});

const PodFailurePolicyRule = z
  .strictObject({
    action: z.enum(['FailJob', 'FailIndex', 'Ignore', 'Count']),
    onExitCodes: z
      .strictObject({
        containerName: dnsLabel.optional(),
        operator: z.enum(['In', 'NotIn']),
        values: z.array(z.number().int().min(-(2 ** 31)).max(INT32_MAX)).min(1).max(255),
      })
      .refine((req) => req.values.every((v, i, all) => i === 0 || all[i - 1]! < v), 'values must be ordered and without duplicates')
      .refine((req) => req.operator !== 'In' || !req.values.includes(0), 'value 0 cannot be used with operator In')
      .optional(),
    onPodConditions: z
      .array(z.strictObject({ type: z.string().min(1), status: z.enum(['True', 'False', 'Unknown']) }))
      .max(20)
      .optional(),
  })
  .refine((rule) => (rule.onExitCodes === undefined) !== (rule.onPodConditions === undefined), 'a rule has exactly one of onExitCodes and onPodConditions');

const JobSpec = z.strictObject({
  backoffLimit: int32(0).optional(),
  completions: int32(0).optional(),
  parallelism: int32(0).optional(),
  activeDeadlineSeconds: z.number().int().positive().optional(),
  ttlSecondsAfterFinished: int32(0).optional(),
  podFailurePolicy: z.strictObject({ rules: z.array(PodFailurePolicyRule).max(20) }).optional(),
  template: z.strictObject({ metadata: TemplateMeta.optional(), spec: PodSpec }),
});

/** Parses a quantity to a number (for comparisons; exact enough for the small values a Job holds). */
export function quantityValue(text: string): number {
  const match = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(.*)$/.exec(text);
  if (!match) return Number.NaN;
  const number = Number(match[1]);
  const suffix = match[2] ?? '';
  const binary: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
  const decimal: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
  if (suffix in binary) return number * binary[suffix]!;
  if (suffix in decimal) return number * decimal[suffix]!;
  if (/^[eE][+-]?\d+$/.test(suffix)) return number * 10 ** Number(suffix.slice(1));
  return Number.NaN;
}

export const BatchV1Job = z
  .strictObject({
    apiVersion: z.literal('batch/v1'),
    kind: z.literal('Job'),
    metadata: ObjectMeta,
    spec: JobSpec,
  })
  .superRefine((job, ctx) => {
    const problem = (path: Array<string | number>, message: string): void => ctx.addIssue({ code: 'custom', path, message });
    // The Job's name becomes the value of its pods' job-name label.
    if (job.metadata.name.length > 63) problem(['metadata', 'name'], 'a Job name is at most 63 characters');

    const pod = job.spec.template.spec;
    const podPath = ['spec', 'template', 'spec'];
    if (pod.restartPolicy !== 'Never' && pod.restartPolicy !== 'OnFailure') {
      problem([...podPath, 'restartPolicy'], 'a Job\'s pods must have restartPolicy Never or OnFailure');
    }

    const volumeNames = (pod.volumes ?? []).map((volume) => volume.name);
    if (new Set(volumeNames).size !== volumeNames.length) problem([...podPath, 'volumes'], 'volume names must be unique');
    const containerNames = pod.containers.map((container) => container.name);
    if (new Set(containerNames).size !== containerNames.length) problem([...podPath, 'containers'], 'container names must be unique');

    pod.containers.forEach((container, index) => {
      const path = [...podPath, 'containers', index];
      const mountPaths = new Set<string>();
      (container.volumeMounts ?? []).forEach((mount, m) => {
        if (!volumeNames.includes(mount.name)) problem([...path, 'volumeMounts', m, 'name'], `mounts ${mount.name}, which is not a volume of the pod`);
        if (mountPaths.has(mount.mountPath)) problem([...path, 'volumeMounts', m, 'mountPath'], `${mount.mountPath} is mounted twice`);
        mountPaths.add(mount.mountPath);
      });
      const envNames = (container.env ?? []).map((env) => env.name);
      if (new Set(envNames).size !== envNames.length) problem([...path, 'env'], 'env var names must be unique');

      const requests = container.resources?.requests ?? {};
      const limits = container.resources?.limits ?? {};
      for (const [name, value] of Object.entries({ ...requests, ...limits })) {
        if (!NATIVE_RESOURCES.has(name) && qualifiedNameProblem(name)) problem([...path, 'resources'], `${name} is not a resource name`);
        if (quantityValue(value) < 0) problem([...path, 'resources'], `${name} must not be negative`);
      }
      for (const [name, request] of Object.entries(requests)) {
        const limit = limits[name];
        if (limit !== undefined && quantityValue(request) > quantityValue(limit)) problem([...path, 'resources', 'requests', name], `request ${request} exceeds limit ${limit}`);
      }
      for (const name of new Set([...Object.keys(requests), ...Object.keys(limits)])) {
        if (NATIVE_RESOURCES.has(name) || !name.includes('/')) continue;
        // Extended resources cannot be overcommitted: integers, limited, requests equal to limits.
        const limit = limits[name];
        const request = requests[name];
        if (limit === undefined) problem([...path, 'resources', 'limits'], `extended resource ${name} must have a limit`);
        for (const value of [limit, request]) {
          if (value !== undefined && !Number.isInteger(quantityValue(value))) problem([...path, 'resources'], `extended resource ${name} must be a whole number, got ${value}`);
        }
        if (request !== undefined && limit !== undefined && quantityValue(request) !== quantityValue(limit)) {
          problem([...path, 'resources'], `extended resource ${name}: request ${request} must equal limit ${limit}`);
        }
      }
    });

    const rules = job.spec.podFailurePolicy?.rules ?? [];
    if (rules.length > 0 && pod.restartPolicy !== 'Never') problem(['spec', 'podFailurePolicy'], 'a pod failure policy needs restartPolicy Never');
    rules.forEach((rule, index) => {
      const name = rule.onExitCodes?.containerName;
      if (name !== undefined && !containerNames.includes(name)) problem(['spec', 'podFailurePolicy', 'rules', index], `names container ${name}, which the pod does not have`);
    });
  });

export type BatchV1Job = z.infer<typeof BatchV1Job>;

/** Every problem with `manifest` as a Job, as `path: message` lines; empty when it is a valid Job. */
export function jobProblems(manifest: unknown): string[] {
  const result = BatchV1Job.safeParse(manifest);
  return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
}

/**
 * A container's argument as the kubelet passes it: `$(NAME)` becomes the value of env var NAME when it is defined
 * (and stays as it is otherwise), and `$$` becomes `$`.
 */
export function expandContainerArg(arg: string, env: ReadonlyArray<{ name: string; value: string }>): string {
  const values = new Map(env.map((entry) => [entry.name, entry.value]));
  return arg.replace(/\$\$|\$\(([^)]*)\)/g, (match, name: string | undefined) => {
    if (match === '$$') return '$';
    return name !== undefined && values.has(name) ? values.get(name)! : match;
  });
}
