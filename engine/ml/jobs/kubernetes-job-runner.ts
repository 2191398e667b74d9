/**
 * Runs a training job as a Kubernetes `batch/v1` Job, for training on a GPU node (DESIGN §6, retraining).
 *
 * `render(job)` builds the Job manifest: one pod, `restartPolicy: Never`, the trainer's command line, requests and
 * limits of `nvidia.com/gpu` (with the matching toleration), the training set's volume mounted read-only and the
 * output volume read-write (PersistentVolumeClaims), `activeDeadlineSeconds` from the timeout, a pod failure policy
 * that fails the Job at once when the trainer reports an operating error (exit status 2: bad data or arguments,
 * which a retry would only repeat) while evictions and crashes are retried up to `backoffLimit`, and
 * `ttlSecondsAfterFinished` so finished Jobs are cleaned up.
 *
 * When the data and output volumes are the same claim at the same path (and subPath), the pod mounts it once,
 * read-write: a pod may not mount two volumes at one path.
 *
 * `run(job)` needs `kubectl` on PATH with a context that can create Jobs in the namespace: it creates the Job
 * (`kubectl create -f -`, so a second Job with the same id is refused rather than merged), polls its status and
 * relays the pod's log lines as progress, and once the Job completes reads the output through `outputRoot` — the
 * path where this process sees the output volume (a shared ReadWriteMany volume, mounted on both sides). On a
 * timeout or an abort it deletes the Job. Without kubectl, `run` fails at once with failure `spawn`; every kubectl
 * call is bounded by `kubectlTimeoutMs`, so an unreachable API server fails the job instead of hanging it.
 *
 * The image must hold the trainer: `training/` with its requirements installed (training/Dockerfile), and for GPU
 * training `training/requirements-gpu.txt` as well.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MillraceError, errorMessage } from '../../errors.js';
import type { Logger } from '../../logger.js';
import {
  OutputTail,
  parseTrainerLine,
  readTrainingOutput,
  trainerArguments,
  trainerReason,
  trainingFailed,
  validateJob,
  type JobRunOptions,
  type JobRunner,
  type TrainingJobResult,
  type TrainingJobSpec,
} from './job-runner.js';

/** A PersistentVolumeClaim mounted into the trainer's pod. */
export interface PersistentVolumeMount {
  readonly claimName: string;
  /** Absolute path in the pod. Job paths (`dataPath`, `outDir`) must lie under it. */
  readonly mountPath: string;
  /** A folder of the volume to mount instead of its root. */
  readonly subPath?: string;
}

export interface KubernetesJobRunnerOptions {
  /** The trainer's image (training/Dockerfile). */
  readonly image: string;
  readonly namespace: string;
  /** GPUs requested (and limited to): `nvidia.com/gpu`. 0 trains on CPU. Default 1. */
  readonly gpu?: number;
  readonly serviceAccount?: string;
  /** Where the training sets are; mounted read-only. */
  readonly dataVolume: PersistentVolumeMount;
  /** Where the job writes its output; mounted read-write. May be the same claim as `dataVolume`. */
  readonly outputVolume: PersistentVolumeMount;
  /** Where this process sees `outputVolume.mountPath`, to read the results. Default: the same path. */
  readonly outputRoot?: string;
  /** The Job's `activeDeadlineSeconds`, rounded up to seconds. Default 2 hours. */
  readonly timeoutMs?: number;
  /** Pod failures (other than the trainer's exit status 2) retried before the Job fails. Default 2. */
  readonly backoffLimit?: number;
  /** How long a finished Job (and its pod's logs) is kept. Default 1 day. */
  readonly ttlSecondsAfterFinished?: number;
  /** CPU and memory requests; memory is also the limit. Defaults `2` and `8Gi`. */
  readonly cpu?: string;
  readonly memory?: string;
  readonly nodeSelector?: Readonly<Record<string, string>>;
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** The interpreter in the image. Default `python`. */
  readonly python?: string;
  /** The kubectl binary. Default `kubectl` (from PATH). */
  readonly kubectl?: string;
  /** A kubectl context other than the current one. */
  readonly context?: string;
  /** A kubeconfig file other than kubectl's default (`KUBECONFIG`, `~/.kube/config`). */
  readonly kubeconfig?: string;
  /** Bounds each kubectl call (its `--request-timeout`, then the process is killed). Default 60 s. */
  readonly kubectlTimeoutMs?: number;
  /** Between status polls. Default 5 s. */
  readonly pollIntervalMs?: number;
  /** Extra time past the Job's deadline that `run` waits (for scheduling and image pulls) before deleting it. Default 10 min. */
  readonly scheduleSlackMs?: number;
  readonly logger?: Logger;
}

// ---------------------------------------------------------------- the manifest's types (the parts it uses)

export interface KubernetesJobManifest {
  readonly apiVersion: 'batch/v1';
  readonly kind: 'Job';
  readonly metadata: {
    readonly name: string;
    readonly namespace: string;
    readonly labels: Record<string, string>;
    readonly annotations: Record<string, string>;
  };
  readonly spec: {
    readonly backoffLimit: number;
    readonly completions: number;
    readonly parallelism: number;
    readonly activeDeadlineSeconds: number;
    readonly ttlSecondsAfterFinished: number;
    readonly podFailurePolicy: {
      readonly rules: ReadonlyArray<{
        readonly action: 'FailJob' | 'Ignore' | 'Count';
        readonly onExitCodes?: { readonly containerName: string; readonly operator: 'In' | 'NotIn'; readonly values: number[] };
        readonly onPodConditions?: ReadonlyArray<{ readonly type: string; readonly status: string }>;
      }>;
    };
    readonly template: {
      readonly metadata: { readonly labels: Record<string, string>; readonly annotations: Record<string, string> };
      readonly spec: KubernetesPodSpec;
    };
  };
}

export interface KubernetesPodSpec {
  readonly restartPolicy: 'Never';
  readonly serviceAccountName?: string;
  readonly automountServiceAccountToken: boolean;
  readonly nodeSelector?: Record<string, string>;
  readonly tolerations?: ReadonlyArray<{ readonly key: string; readonly operator: 'Exists'; readonly effect: 'NoSchedule' }>;
  readonly containers: ReadonlyArray<{
    readonly name: string;
    readonly image: string;
    readonly imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
    readonly command: string[];
    readonly args: string[];
    readonly env: ReadonlyArray<{ readonly name: string; readonly value: string }>;
    readonly resources: { readonly requests: Record<string, string>; readonly limits: Record<string, string> };
    readonly volumeMounts: ReadonlyArray<{ readonly name: string; readonly mountPath: string; readonly readOnly: boolean; readonly subPath?: string }>;
    readonly securityContext: { readonly allowPrivilegeEscalation: false };
  }>;
  readonly volumes: ReadonlyArray<{ readonly name: string; readonly persistentVolumeClaim: { readonly claimName: string; readonly readOnly: boolean } }>;
}

// ---------------------------------------------------------------- names and labels

const RUNNER = 'kubernetes';
const CONTAINER = 'trainer';
export const GPU_RESOURCE = 'nvidia.com/gpu';
/** The trainer's exit status for an operating error (training/millrace_trainer/errors.py). */
const TRAINER_OPERATING_ERROR_EXIT = 2;
const LABEL_VALUE_MAX = 63;
const KUBECTL_STDERR_BYTES = 64 * 1024;
/** kubectl gets this long past its own --request-timeout to give up before it is killed. */
const KUBECTL_KILL_SLACK_MS = 5_000;
/** A week: a longer deadline is more likely a mistake in units than a training run. */
const MAX_TIMEOUT_MS = 7 * 24 * 60 * 60_000;
/** A Kubernetes quantity (`2`, `500m`, `8Gi`, `1.5e3`). */
const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$/;
type Defaulted =
  | 'gpu'
  | 'timeoutMs'
  | 'backoffLimit'
  | 'ttlSecondsAfterFinished'
  | 'cpu'
  | 'memory'
  | 'imagePullPolicy'
  | 'python'
  | 'kubectl'
  | 'kubectlTimeoutMs'
  | 'pollIntervalMs'
  | 'scheduleSlackMs';
type ResolvedOptions = Readonly<KubernetesJobRunnerOptions & Required<Pick<KubernetesJobRunnerOptions, Defaulted>>>;
const DEFAULTS: Required<Pick<KubernetesJobRunnerOptions, Defaulted>> = {
  gpu: 1,
  timeoutMs: 2 * 60 * 60_000,
  backoffLimit: 2,
  ttlSecondsAfterFinished: 24 * 60 * 60,
  cpu: '2',
  memory: '8Gi',
  imagePullPolicy: 'IfNotPresent',
  python: 'python',
  kubectl: 'kubectl',
  kubectlTimeoutMs: 60_000,
  pollIntervalMs: 5_000,
  scheduleSlackMs: 10 * 60_000,
};

const shortHash = (text: string): string => createHash('sha256').update(text).digest('hex').slice(0, 8);

/** A DNS-1123 label (what a Job name must be for its pods' `job-name` label): unique per job id. */
export function kubernetesJobName(jobId: string): string {
  const slug = jobId
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 38)
    .replace(/-$/, '');
  // The hash keeps ids that differ only in case or punctuation apart.
  return `millrace-train-${slug ? `${slug}-` : ''}${shortHash(jobId)}`;
}

/** A label value (≤ 63 characters of [A-Za-z0-9_.-], alphanumeric at both ends); the raw value goes in an annotation. */
export function kubernetesLabelValue(value: string): string {
  let cleaned = value.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  if (cleaned.length > LABEL_VALUE_MAX || cleaned !== value) {
    cleaned = `${cleaned.slice(0, LABEL_VALUE_MAX - 9).replace(/[^A-Za-z0-9]+$/, '')}-${shortHash(value)}`.replace(/^-/, '');
  }
  return cleaned;
}

/**
 * The kubelet expands `$(NAME)` in a container's args from its env and turns every `$$` into `$`, so a literal `$`
 * is written `$$` (escaping only `$(` would turn a literal `$$` into `$`).
 */
const escapeArg = (arg: string): string => arg.replaceAll('$', () => '$$');

function isUnder(path: string, root: string): boolean {
  const relative = posix.relative(root, path);
  return relative !== '' && !relative.startsWith('..') && !posix.isAbsolute(relative);
}

function checkMount(mount: PersistentVolumeMount, what: string): void {
  if (!mount?.claimName || !posix.isAbsolute(mount.mountPath ?? '')) {
    throw new MillraceError('MILLRACE_CONFIG_INVALID', `KubernetesJobRunner: ${what} needs a claimName and an absolute mountPath`);
  }
  if (mount.subPath !== undefined && (posix.isAbsolute(mount.subPath) || mount.subPath.split('/').includes('..'))) {
    throw new MillraceError('MILLRACE_CONFIG_INVALID', `KubernetesJobRunner: ${what}.subPath must be a relative path without '..'`);
  }
}

/** The data and output volumes are one mount: the same claim, path and subPath. */
function sameMount(a: PersistentVolumeMount, b: PersistentVolumeMount): boolean {
  return a.claimName === b.claimName && posix.normalize(a.mountPath) === posix.normalize(b.mountPath) && (a.subPath ?? '') === (b.subPath ?? '');
}

// ---------------------------------------------------------------- the runner

export class KubernetesJobRunner implements JobRunner {
  readonly name = RUNNER;
  private readonly options: ResolvedOptions;

  constructor(options: KubernetesJobRunnerOptions) {
    const merged = { ...DEFAULTS, ...stripUndefined(options) } as ResolvedOptions;
    const invalid = (message: string): never => {
      throw new MillraceError('MILLRACE_CONFIG_INVALID', `KubernetesJobRunner: ${message}`);
    };
    if (!merged.image) invalid('image is required');
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(merged.namespace ?? '')) invalid(`namespace ${JSON.stringify(merged.namespace)} is not a DNS label`);
    if (!Number.isInteger(merged.gpu) || merged.gpu < 0 || merged.gpu > 16) invalid(`gpu must be an integer in [0, 16], got ${merged.gpu}`);
    if (!Number.isInteger(merged.backoffLimit) || merged.backoffLimit < 0 || merged.backoffLimit > 10) invalid('backoffLimit must be an integer in [0, 10]');
    if (!(Number.isInteger(merged.timeoutMs) && merged.timeoutMs >= 1_000 && merged.timeoutMs <= MAX_TIMEOUT_MS)) {
      invalid(`timeoutMs must be an integer in [1000, ${MAX_TIMEOUT_MS}], got ${merged.timeoutMs}`);
    }
    if (!(Number.isInteger(merged.ttlSecondsAfterFinished) && merged.ttlSecondsAfterFinished >= 0)) invalid('ttlSecondsAfterFinished must be an integer ≥ 0');
    if (!QUANTITY.test(merged.cpu)) invalid(`cpu ${JSON.stringify(merged.cpu)} is not a Kubernetes quantity (e.g. 2, 500m)`);
    if (!QUANTITY.test(merged.memory)) invalid(`memory ${JSON.stringify(merged.memory)} is not a Kubernetes quantity (e.g. 8Gi)`);
    if (!(Number.isInteger(merged.pollIntervalMs) && merged.pollIntervalMs >= 100)) invalid('pollIntervalMs must be an integer ≥ 100');
    if (!(Number.isInteger(merged.kubectlTimeoutMs) && merged.kubectlTimeoutMs >= 1_000)) invalid('kubectlTimeoutMs must be an integer ≥ 1000');
    if (!(Number.isInteger(merged.scheduleSlackMs) && merged.scheduleSlackMs >= 0)) invalid('scheduleSlackMs must be an integer ≥ 0');
    checkMount(merged.dataVolume, 'dataVolume');
    checkMount(merged.outputVolume, 'outputVolume');
    if (!sameMount(merged.dataVolume, merged.outputVolume) && posix.normalize(merged.dataVolume.mountPath) === posix.normalize(merged.outputVolume.mountPath)) {
      invalid('dataVolume and outputVolume are different volumes at the same mountPath; a pod cannot mount both there');
    }
    this.options = Object.freeze(merged);
  }

  /** The `batch/v1` Job that trains `job`. Throws (failure `invalid-job`) when a path is outside its volume. */
  render(job: TrainingJobSpec): KubernetesJobManifest {
    validateJob(job, RUNNER);
    const o = this.options;
    const invalid = (reason: string): never => {
      throw trainingFailed({ jobId: job.jobId, runner: RUNNER, failure: 'invalid-job', reason });
    };
    const dataPath = posix.normalize(job.dataPath);
    const outDir = posix.normalize(job.outDir);
    if (!isUnder(dataPath, o.dataVolume.mountPath)) invalid(`dataPath ${dataPath} is not under the data volume's ${o.dataVolume.mountPath}`);
    if (!isUnder(outDir, o.outputVolume.mountPath)) invalid(`outDir ${outDir} is not under the output volume's ${o.outputVolume.mountPath}`);

    const labels = {
      'app.kubernetes.io/name': 'millrace-trainer',
      'app.kubernetes.io/component': 'training-job',
      'app.kubernetes.io/managed-by': 'millrace',
      'millrace.dev/job-id': kubernetesLabelValue(job.jobId),
      'millrace.dev/model': kubernetesLabelValue(job.model),
      'millrace.dev/model-version': kubernetesLabelValue(job.version),
    };
    const annotations = {
      'millrace.dev/job-id': job.jobId,
      'millrace.dev/model': job.model,
      'millrace.dev/model-version': job.version,
      'millrace.dev/feature-version': job.featureVersion,
    };

    // The seed and the offsets travel in the environment (the pod shows what it trains on) and reach the command
    // line through $(VAR) expansion; every other argument is literal.
    const env = [
      { name: 'MILLRACE_TRAINER_JOB_ID', value: job.jobId },
      { name: 'MILLRACE_TRAINER_SEED', value: String(job.seed) },
      { name: 'MILLRACE_TRAINER_OFFSETS', value: JSON.stringify(job.offsets) },
      { name: 'PYTHONHASHSEED', value: '0' },
      { name: 'PYTHONUNBUFFERED', value: '1' },
      { name: 'OMP_NUM_THREADS', value: '1' },
    ];
    const fromEnv: Record<string, string> = { '--seed': 'MILLRACE_TRAINER_SEED', '--offsets-json': 'MILLRACE_TRAINER_OFFSETS' };
    const args = trainerArguments(job, { dataPath, outDir }).map((arg) => {
      const option = arg.slice(0, arg.indexOf('='));
      const variable = fromEnv[option];
      return variable === undefined ? escapeArg(arg) : `${option}=$(${variable})`;
    });

    const gpu: Record<string, string> = o.gpu > 0 ? { [GPU_RESOURCE]: String(o.gpu) } : {};
    const sameClaim = o.dataVolume.claimName === o.outputVolume.claimName;
    const volumes = sameClaim
      ? [{ name: 'training', persistentVolumeClaim: { claimName: o.outputVolume.claimName, readOnly: false } }]
      : [
          { name: 'data', persistentVolumeClaim: { claimName: o.dataVolume.claimName, readOnly: true } },
          { name: 'output', persistentVolumeClaim: { claimName: o.outputVolume.claimName, readOnly: false } },
        ];
    const mount = (name: string, volume: PersistentVolumeMount, readOnly: boolean) => ({
      name,
      mountPath: volume.mountPath,
      readOnly,
      ...(volume.subPath ? { subPath: volume.subPath } : {}),
    });

    const podSpec: KubernetesPodSpec = {
      restartPolicy: 'Never',
      ...(o.serviceAccount ? { serviceAccountName: o.serviceAccount } : {}),
      // The trainer never calls the Kubernetes API.
      automountServiceAccountToken: false,
      ...(o.nodeSelector ? { nodeSelector: { ...o.nodeSelector } } : {}),
      ...(o.gpu > 0 ? { tolerations: [{ key: GPU_RESOURCE, operator: 'Exists', effect: 'NoSchedule' }] as const } : {}),
      containers: [
        {
          name: CONTAINER,
          image: o.image,
          imagePullPolicy: o.imagePullPolicy,
          command: [o.python, '-m', 'millrace_trainer'],
          args,
          env,
          resources: {
            requests: { cpu: o.cpu, memory: o.memory, ...gpu },
            // Extended resources such as GPUs must have limits equal to requests.
            limits: { memory: o.memory, ...gpu },
          },
          volumeMounts: sameMount(o.dataVolume, o.outputVolume)
            ? [mount('training', o.outputVolume, false)]
            : [mount(sameClaim ? 'training' : 'data', o.dataVolume, true), mount(sameClaim ? 'training' : 'output', o.outputVolume, false)],
          securityContext: { allowPrivilegeEscalation: false },
        },
      ],
      volumes,
    };

    return {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: kubernetesJobName(job.jobId), namespace: o.namespace, labels, annotations },
      spec: {
        backoffLimit: o.backoffLimit,
        completions: 1,
        parallelism: 1,
        activeDeadlineSeconds: Math.ceil(o.timeoutMs / 1000),
        ttlSecondsAfterFinished: o.ttlSecondsAfterFinished,
        podFailurePolicy: {
          rules: [
            {
              action: 'FailJob',
              onExitCodes: { containerName: CONTAINER, operator: 'In', values: [TRAINER_OPERATING_ERROR_EXIT] },
            },
            // A pod evicted or preempted is not the trainer's failure: retry without counting it.
            { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
          ],
        },
        template: { metadata: { labels: { ...labels }, annotations: { ...annotations } }, spec: podSpec },
      },
    };
  }

  async run(job: TrainingJobSpec, options: JobRunOptions = {}): Promise<TrainingJobResult> {
    const manifest = this.render(job);
    const o = this.options;
    const name = manifest.metadata.name;
    const log = o.logger?.child({ runner: RUNNER, jobId: job.jobId, kubernetesJob: name });
    const fail = (failure: 'spawn' | 'exit' | 'timeout' | 'aborted', reason: string, extra: Record<string, unknown> = {}, cause?: unknown) =>
      trainingFailed({ jobId: job.jobId, runner: RUNNER, failure, reason, ...extra }, cause);

    await this.kubectl(['version', '--client', '-o', 'json']).catch((err: unknown) => {
      throw fail('spawn', `kubectl is needed to run training jobs on Kubernetes: ${errorMessage(err)}`, {}, err);
    });
    if (options.signal?.aborted) throw fail('aborted', 'aborted before it started');
    await this.kubectl(['create', '-f', '-'], JSON.stringify(manifest)).catch((err: unknown) => {
      throw fail('spawn', `kubectl create job ${name} failed: ${errorMessage(err)}`, {}, err);
    });
    log?.info({ namespace: o.namespace, gpu: o.gpu }, 'training job created');

    const deadline = Date.now() + o.timeoutMs + o.scheduleSlackMs;
    let linesSeen = 0;
    const relayLogs = async (): Promise<string> => {
      const text = await this.kubectl(['logs', `job/${name}`, '--tail=-1']).catch(() => '');
      const lines = text.split('\n').filter((line) => line.trim() !== '');
      for (const line of lines.slice(linesSeen)) {
        const parsed = parseTrainerLine(line);
        const stage = parsed.kind === 'progress' ? parsed.stage : parsed.kind;
        log?.info({ stage }, parsed.message);
        options.onProgress?.({ jobId: job.jobId, stage, message: parsed.message });
      }
      linesSeen = Math.max(linesSeen, lines.length);
      return text;
    };
    const remove = async (): Promise<void> => {
      await this.kubectl(['delete', 'job', name, '--ignore-not-found', '--wait=false', '--cascade=background']).catch((err: unknown) =>
        log?.warn({ err: errorMessage(err) }, 'could not delete the training job'),
      );
    };

    for (;;) {
      if (options.signal?.aborted) {
        await remove();
        throw fail('aborted', 'aborted by the caller; the Kubernetes Job was deleted');
      }
      const status = await this.jobStatus(name).catch((err: unknown) => {
        log?.warn({ err: errorMessage(err) }, 'kubectl get job failed; retrying');
        return undefined;
      });
      if (status === 'Complete') {
        await relayLogs();
        break;
      }
      if (status && status.failed) {
        const output = await relayLogs();
        const { reason, trainerCode } = trainerReason(output);
        if (status.reason === 'DeadlineExceeded') throw fail('timeout', `the Job ran past activeDeadlineSeconds (${Math.ceil(o.timeoutMs / 1000)} s)`);
        throw fail('exit', `${status.reason ?? 'Failed'}: ${reason}`, trainerCode === undefined ? {} : { trainerCode });
      }
      await relayLogs();
      if (Date.now() > deadline) {
        await remove();
        throw fail('timeout', `the Job did not finish within ${o.timeoutMs + o.scheduleSlackMs} ms; it was deleted`);
      }
      await sleep(o.pollIntervalMs, undefined, options.signal ? { signal: options.signal } : {}).catch(() => undefined);
    }

    const podRoot = o.outputVolume.mountPath;
    const localDir = o.outputRoot ? posix.join(o.outputRoot, posix.relative(podRoot, posix.normalize(job.outDir))) : job.outDir;
    return readTrainingOutput(job, localDir, RUNNER);
  }

  private async jobStatus(name: string): Promise<'Complete' | { failed: true; reason?: string } | undefined> {
    const text = await this.kubectl(['get', 'job', name, '-o', 'json']);
    const job = JSON.parse(text) as { status?: { conditions?: Array<{ type?: string; status?: string; reason?: string }> } };
    for (const condition of job.status?.conditions ?? []) {
      if (condition.status !== 'True') continue;
      if (condition.type === 'Complete') return 'Complete';
      if (condition.type === 'Failed') return condition.reason === undefined ? { failed: true } : { failed: true, reason: condition.reason };
    }
    return undefined;
  }

  /**
   * Runs kubectl in the runner's namespace (and context); resolves with stdout, rejects with stderr. Bounded twice:
   * kubectl's own `--request-timeout`, and a kill when the process outlives it (a dial that never returns).
   */
  private kubectl(args: string[], stdin?: string): Promise<string> {
    const o = this.options;
    const full = [
      ...(o.kubeconfig ? ['--kubeconfig', o.kubeconfig] : []),
      ...(o.context ? ['--context', o.context] : []),
      `--request-timeout=${Math.ceil(o.kubectlTimeoutMs / 1000)}s`,
      '--namespace',
      o.namespace,
      ...args,
    ];
    return new Promise((resolvePromise, reject) => {
      const child = spawn(o.kubectl, full, { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      const stderr = new OutputTail(KUBECTL_STDERR_BYTES);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, o.kubectlTimeoutMs + KUBECTL_KILL_SLACK_MS);
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
      child.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new Error(err.code === 'ENOENT' ? `${o.kubectl} is not installed or not on PATH` : err.message, { cause: err }));
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code === 0) resolvePromise(stdout);
        else if (timedOut) reject(new Error(`${o.kubectl} ${args[0] ?? ''} did not finish within ${o.kubectlTimeoutMs} ms and was killed`));
        else reject(new Error(`${o.kubectl} ${args[0] ?? ''} exited ${code}: ${stderr.toString().trim().split('\n').slice(-3).join(' | ')}`));
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(stdin ?? '');
    });
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
