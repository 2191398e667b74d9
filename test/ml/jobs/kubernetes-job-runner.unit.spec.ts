import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMillraceError } from '../../../engine/errors.js';
import { TRAINING_FAILED, trainerArguments, type TrainingFailure, type TrainingJobSpec } from '../../../engine/ml/jobs/job-runner.js';
import {
  GPU_RESOURCE,
  KubernetesJobRunner,
  kubernetesJobName,
  kubernetesLabelValue,
  type KubernetesJobManifest,
  type KubernetesJobRunnerOptions,
} from '../../../engine/ml/jobs/kubernetes-job-runner.js';
import { FEATURE_NAMES, FEATURE_VERSION } from '../../../topologies/pipeline/contract.js';
import { runJobRunnerSuite } from '../../conformance/job-runner.js';
import { describeWithTrainer, TRAINER_DIR } from '../../support/trainer.js';
import { expandContainerArg, jobProblems } from './batch-v1-job.js';

const FAKE_KUBECTL = join(dirname(fileURLToPath(import.meta.url)), 'fake-kubectl.mjs');

const OPTIONS: KubernetesJobRunnerOptions = {
  image: 'registry.example.com/millrace-trainer:0.1.0',
  namespace: 'ml-training',
  dataVolume: { claimName: 'training-sets', mountPath: '/data' },
  outputVolume: { claimName: 'models', mountPath: '/models' },
  // 90 minutes and 1 ms: the deadline rounds up to whole seconds.
  timeoutMs: 90 * 60_000 + 1,
};

const JOB: TrainingJobSpec = {
  jobId: 'fraud-12',
  model: 'fraud',
  version: 'v12',
  dataPath: '/data/sets/fraud-12.csv',
  outDir: '/models/fraud/v12',
  seed: 2 ** 32 - 1,
  holdoutFraction: 0.2,
  featureVersion: FEATURE_VERSION,
  featureNames: FEATURE_NAMES,
  offsets: { features: [{ partition: 0, from: 0, to: 900 }, { partition: 1, from: 3, to: 600 }] },
  trainerVersion: '0.1.0',
};

const render = (options: Partial<KubernetesJobRunnerOptions> = {}, job: Partial<TrainingJobSpec> = {}): KubernetesJobManifest =>
  new KubernetesJobRunner({ ...OPTIONS, ...options }).render({ ...JOB, ...job });

const containerOf = (manifest: KubernetesJobManifest) => {
  const [container, ...others] = manifest.spec.template.spec.containers;
  expect(others).toEqual([]);
  return container!;
};

/** The trainer's command line as the kubelet starts it: command and args with `$(VAR)` expanded from the env. */
const commandLine = (manifest: KubernetesJobManifest): string[] => {
  const container = containerOf(manifest);
  return [...container.command, ...container.args].map((part) => expandContainerArg(part, container.env));
};

/** `--name=value` arguments as a map. */
const optionsOf = (args: readonly string[]): Record<string, string> =>
  Object.fromEntries(args.filter((arg) => arg.startsWith('--')).map((arg) => [arg.slice(2, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]));

const clone = <T>(value: T): T => structuredClone(value);

async function failure(promise: Promise<unknown>, expected: TrainingFailure): Promise<Record<string, unknown>> {
  const err: unknown = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!isMillraceError(err, TRAINING_FAILED)) throw new Error(`expected ${TRAINING_FAILED}, got ${String(err)}`, { cause: err });
  expect(err.details?.failure).toBe(expected);
  return err.details ?? {};
}

// ---------------------------------------------------------------- the rendered manifest

describe('KubernetesJobRunner.render', () => {
  it('renders a valid batch/v1 Job that requests nvidia.com/gpu', () => {
    const manifest = render();
    expect(jobProblems(manifest)).toEqual([]);
    expect(manifest).toMatchObject({ apiVersion: 'batch/v1', kind: 'Job', metadata: { namespace: 'ml-training' } });

    const resources = containerOf(manifest).resources;
    expect(resources.limits[GPU_RESOURCE]).toBe('1');
    expect(resources.requests[GPU_RESOURCE]).toBe(resources.limits[GPU_RESOURCE]);
    expect(manifest.spec.template.spec.tolerations).toEqual([{ key: GPU_RESOURCE, operator: 'Exists', effect: 'NoSchedule' }]);
  });

  it('asks for as many GPUs as configured, as a whole number', () => {
    for (const gpu of [1, 2, 8]) {
      const manifest = render({ gpu });
      expect(jobProblems(manifest)).toEqual([]);
      expect(containerOf(manifest).resources).toMatchObject({ limits: { [GPU_RESOURCE]: String(gpu) }, requests: { [GPU_RESOURCE]: String(gpu) } });
    }
  });

  it('renders a CPU-only Job without any GPU resource when gpu is 0', () => {
    const manifest = render({ gpu: 0, cpu: '500m', memory: '2Gi' });
    expect(jobProblems(manifest)).toEqual([]);
    expect(JSON.stringify(manifest)).not.toContain(GPU_RESOURCE);
    expect(manifest.spec.template.spec.tolerations).toBeUndefined();
    expect(containerOf(manifest).resources).toEqual({ requests: { cpu: '500m', memory: '2Gi' }, limits: { memory: '2Gi' } });
  });

  it('runs one pod that is never restarted in place, with a deadline, retries and clean-up', () => {
    const manifest = render({ backoffLimit: 3, ttlSecondsAfterFinished: 600 });
    expect(manifest.spec.template.spec.restartPolicy).toBe('Never');
    expect(manifest.spec).toMatchObject({ completions: 1, parallelism: 1, backoffLimit: 3, ttlSecondsAfterFinished: 600 });
    expect(manifest.spec.activeDeadlineSeconds).toBe(90 * 60 + 1);
    expect(render({ timeoutMs: 1_000 }).spec.activeDeadlineSeconds).toBe(1);
    expect(render().spec).toMatchObject({ backoffLimit: 2, ttlSecondsAfterFinished: 24 * 60 * 60 });
    // The trainer's operating errors (exit 2) fail the Job at once; a retry would only repeat them.
    expect(manifest.spec.podFailurePolicy.rules).toContainEqual({
      action: 'FailJob',
      onExitCodes: { containerName: containerOf(manifest).name, operator: 'In', values: [2] },
    });
  });

  it('starts the trainer with the job\'s data path, output directory, seed, version and offsets', () => {
    const manifest = render();
    const [python, ...rest] = commandLine(manifest);
    expect(python).toBe('python');
    expect(rest.slice(0, 3)).toEqual(['-m', 'millrace_trainer', 'train']);
    expect(rest.slice(2)).toEqual(trainerArguments(JOB));
    expect(optionsOf(rest)).toEqual({
      data: '/data/sets/fraud-12.csv',
      out: '/models/fraud/v12',
      seed: '4294967295',
      holdout: '0.2',
      'model-name': 'fraud',
      version: 'v12',
      'feature-version': FEATURE_VERSION,
      'offsets-json': JSON.stringify(JOB.offsets),
      'trainer-version': '0.1.0',
    });
    // The seed and offsets are visible in the pod's environment, and reach the command line from there.
    const env = Object.fromEntries(containerOf(manifest).env.map((entry) => [entry.name, entry.value]));
    expect(env).toMatchObject({ MILLRACE_TRAINER_SEED: '4294967295', MILLRACE_TRAINER_OFFSETS: JSON.stringify(JOB.offsets), PYTHONHASHSEED: '0' });
    expect(containerOf(manifest).args).toContain('--seed=$(MILLRACE_TRAINER_SEED)');
    expect(render({ python: '/opt/venv/bin/python' }).spec.template.spec.containers[0]?.command[0]).toBe('/opt/venv/bin/python');
  });

  it('passes any value through the kubelet\'s $(VAR) expansion unchanged', () => {
    const text = fc.string({ unit: fc.constantFrom('$', '(', ')', 'A', 'HOME', '-', '=', ' ', 'é'), maxLength: 24 });
    fc.assert(
      fc.property(text, text, text, (model, version, dir) => {
        const job: TrainingJobSpec = { ...JOB, model: model || 'm', version: version || 'v', outDir: `/models/${dir}x` };
        const manifest = render({}, job);
        expect(commandLine(manifest).slice(3)).toEqual(trainerArguments(job));
        expect(optionsOf(commandLine(manifest))).toMatchObject({ 'model-name': job.model, version: job.version });
        expect(jobProblems(manifest)).toEqual([]);
      }),
    );
  });

  it('names and labels every Job validly, whatever its id, model and version', () => {
    const jobId = fc.stringMatching(/^[\w.:-]{1,200}$/);
    fc.assert(
      fc.property(jobId, fc.string({ minLength: 1, maxLength: 100 }), fc.string({ minLength: 1, maxLength: 100 }), (id, model, version) => {
        const manifest = render({}, { jobId: id, model, version });
        expect(jobProblems(manifest)).toEqual([]);
        expect(manifest.metadata.name).toBe(kubernetesJobName(id));
        expect(manifest.metadata.annotations).toMatchObject({ 'millrace.dev/job-id': id, 'millrace.dev/model': model, 'millrace.dev/model-version': version });
        expect(manifest.spec.template.metadata.labels).toEqual(manifest.metadata.labels);
      }),
    );
    // Ids that differ only in case or punctuation still get their own Job.
    expect(kubernetesJobName('Fraud-1')).not.toBe(kubernetesJobName('fraud-1'));
    expect(kubernetesJobName('fraud.1')).not.toBe(kubernetesJobName('fraud-1'));
    expect(kubernetesLabelValue('fraud-v1')).toBe('fraud-v1');
    expect(kubernetesLabelValue('x'.repeat(64))).toHaveLength(63);
  });

  it('mounts the training set read-only and the output read-write', () => {
    const manifest = render();
    expect(manifest.spec.template.spec.volumes).toEqual([
      { name: 'data', persistentVolumeClaim: { claimName: 'training-sets', readOnly: true } },
      { name: 'output', persistentVolumeClaim: { claimName: 'models', readOnly: false } },
    ]);
    expect(containerOf(manifest).volumeMounts).toEqual([
      { name: 'data', mountPath: '/data', readOnly: true },
      { name: 'output', mountPath: '/models', readOnly: false },
    ]);
  });

  it('mounts one claim twice at two paths, or once at one path', () => {
    const twoPaths = render({
      dataVolume: { claimName: 'training', mountPath: '/data', subPath: 'sets' },
      outputVolume: { claimName: 'training', mountPath: '/models', subPath: 'models' },
    });
    expect(jobProblems(twoPaths)).toEqual([]);
    expect(twoPaths.spec.template.spec.volumes).toEqual([{ name: 'training', persistentVolumeClaim: { claimName: 'training', readOnly: false } }]);
    expect(containerOf(twoPaths).volumeMounts).toEqual([
      { name: 'training', mountPath: '/data', readOnly: true, subPath: 'sets' },
      { name: 'training', mountPath: '/models', readOnly: false, subPath: 'models' },
    ]);

    // A pod cannot mount two volumes at one path: the same claim at the same path is one read-write mount.
    const onePath = render(
      { dataVolume: { claimName: 'training', mountPath: '/training' }, outputVolume: { claimName: 'training', mountPath: '/training' } },
      { dataPath: '/training/sets/fraud-12.csv', outDir: '/training/models/fraud/v12' },
    );
    expect(jobProblems(onePath)).toEqual([]);
    expect(containerOf(onePath).volumeMounts).toEqual([{ name: 'training', mountPath: '/training', readOnly: false }]);
  });

  it('refuses a job whose paths are outside the volumes', () => {
    const refused = (job: Partial<TrainingJobSpec>): void => {
      let caught: unknown;
      try {
        render({}, job);
      } catch (err) {
        caught = err;
      }
      expect(isMillraceError(caught, TRAINING_FAILED) && caught.details?.failure).toBe('invalid-job');
    };
    refused({ dataPath: '/elsewhere/train.csv' });
    refused({ dataPath: '/data' });
    refused({ dataPath: '/models/train.csv' });
    refused({ outDir: '/models/../etc' });
    refused({ outDir: '/data/out' });
    refused({ seed: -1 });
  });

  it('refuses a bad configuration', () => {
    const bad: Array<Partial<KubernetesJobRunnerOptions>> = [
      { image: '' },
      { namespace: 'ML' },
      { namespace: 'a'.repeat(64) },
      { gpu: -1 },
      { gpu: 0.5 },
      { timeoutMs: 500 },
      { timeoutMs: Number.POSITIVE_INFINITY },
      { timeoutMs: 1_500.5 },
      { backoffLimit: -1 },
      { ttlSecondsAfterFinished: -1 },
      { ttlSecondsAfterFinished: 0.5 },
      { cpu: 'two' },
      { memory: '8GB' },
      { pollIntervalMs: 10 },
      { kubectlTimeoutMs: 10 },
      { dataVolume: { claimName: '', mountPath: '/data' } },
      { dataVolume: { claimName: 'training-sets', mountPath: 'data' } },
      { dataVolume: { claimName: 'training-sets', mountPath: '/data', subPath: '../secrets' } },
      { dataVolume: { claimName: 'training-sets', mountPath: '/models' } },
    ];
    for (const options of bad) {
      expect(() => new KubernetesJobRunner({ ...OPTIONS, ...options }), JSON.stringify(options)).toThrow(
        expect.objectContaining({ code: 'MILLRACE_CONFIG_INVALID' }),
      );
    }
  });
});

// ---------------------------------------------------------------- the validator itself

describe('the batch/v1 Job schema', () => {
  const valid = render();
  const problems = (change: (manifest: Record<string, any>) => void): string[] => {
    const manifest = clone(valid) as unknown as Record<string, any>;
    change(manifest);
    return jobProblems(manifest);
  };

  it('accepts the rendered Job and refuses each kind of mistake', () => {
    expect(jobProblems(valid)).toEqual([]);
    const mistakes: Record<string, (m: Record<string, any>) => void> = {
      'a misspelt field': (m) => {
        m.spec.template.spec.restartpolicy = m.spec.template.spec.restartPolicy;
      },
      'a field of another kind': (m) => {
        m.spec.replicas = 1;
      },
      'another apiVersion': (m) => {
        m.apiVersion = 'batch/v1beta1';
      },
      'restartPolicy Always': (m) => {
        m.spec.template.spec.restartPolicy = 'Always';
      },
      'a Job name of 64 characters': (m) => {
        m.metadata.name = 'a'.repeat(64);
      },
      'an upper-case name': (m) => {
        m.metadata.name = 'Train';
      },
      'a label value of 64 characters': (m) => {
        m.metadata.labels['millrace.dev/model'] = 'a'.repeat(64);
      },
      'a label value with a space': (m) => {
        m.metadata.labels['millrace.dev/model'] = 'a b';
      },
      'a label key with two slashes': (m) => {
        m.metadata.labels['a/b/c'] = 'x';
      },
      'a GPU only in requests': (m) => {
        delete m.spec.template.spec.containers[0].resources.limits[GPU_RESOURCE];
      },
      'a GPU request unlike its limit': (m) => {
        m.spec.template.spec.containers[0].resources.requests[GPU_RESOURCE] = '2';
      },
      'half a GPU': (m) => {
        m.spec.template.spec.containers[0].resources.limits[GPU_RESOURCE] = '500m';
        m.spec.template.spec.containers[0].resources.requests[GPU_RESOURCE] = '500m';
      },
      'a GPU count as a number': (m) => {
        m.spec.template.spec.containers[0].resources.limits[GPU_RESOURCE] = 1;
      },
      'memory requested above its limit': (m) => {
        m.spec.template.spec.containers[0].resources.requests.memory = '16Gi';
      },
      'a mount of an undeclared volume': (m) => {
        m.spec.template.spec.containers[0].volumeMounts[0].name = 'nowhere';
      },
      'two mounts at one path': (m) => {
        m.spec.template.spec.containers[0].volumeMounts[1].mountPath = '/data';
      },
      'a relative mount path': (m) => {
        m.spec.template.spec.containers[0].volumeMounts[0].mountPath = 'data';
      },
      'a negative backoffLimit': (m) => {
        m.spec.backoffLimit = -1;
      },
      'a zero activeDeadlineSeconds': (m) => {
        m.spec.activeDeadlineSeconds = 0;
      },
      'a fractional ttlSecondsAfterFinished': (m) => {
        m.spec.ttlSecondsAfterFinished = 1.5;
      },
      'a failure policy for a container the pod lacks': (m) => {
        m.spec.podFailurePolicy.rules[0].onExitCodes.containerName = 'other';
      },
      'exit code 0 with operator In': (m) => {
        m.spec.podFailurePolicy.rules[0].onExitCodes.values = [0, 2];
      },
      'a toleration with Exists and a value': (m) => {
        m.spec.template.spec.tolerations[0].value = 'present';
      },
      'an env var without a value': (m) => {
        m.spec.template.spec.containers[0].env[0] = { name: 'X' };
      },
    };
    for (const [mistake, change] of Object.entries(mistakes)) {
      expect(problems(change), mistake).not.toEqual([]);
    }
  });
});

// ---------------------------------------------------------------- run() without a cluster

/** A stand-in cluster: fake-kubectl.mjs behind an executable named kubectl. */
interface FakeCluster {
  readonly kubectl: string;
  readonly dir: string;
  calls(): Promise<Array<{ command: string; args: string[]; namespace?: string; context?: string; stdin?: string }>>;
  /** The manifests `kubectl create` was given. */
  created(): Promise<unknown[]>;
  /** The pid of a Job's last pod process, or undefined. */
  podPid(name: string): Promise<number | undefined>;
  close(): Promise<void>;
}

async function fakeCluster(): Promise<FakeCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'millrace-fake-k8s-'));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ trainerDir: TRAINER_DIR }));
  const kubectl = join(dir, 'kubectl');
  await writeFile(kubectl, `#!/bin/sh\nexec '${process.execPath}' '${FAKE_KUBECTL}' '${dir}' "$@"\n`);
  await chmod(kubectl, 0o755);
  const calls = async () => {
    const text = await readFile(join(dir, 'calls.jsonl'), 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { command: string; args: string[]; namespace?: string; context?: string; stdin?: string });
  };
  const pidIn = async (path: string): Promise<number | undefined> => {
    const text = await readFile(path, 'utf8').catch(() => '');
    return text ? Number(text) : undefined;
  };
  return {
    kubectl,
    dir,
    calls,
    async created() {
      return (await calls()).filter((call) => call.command === 'create').map((call) => JSON.parse(call.stdin ?? 'null') as unknown);
    },
    async podPid(name) {
      const deleted = await readdir(join(dir, 'deleted')).catch(() => [] as string[]);
      const where = deleted.find((entry) => entry.startsWith(`${name}-`));
      return pidIn(join(dir, where ? join('deleted', where) : join('jobs', name), 'pod.pid'));
    },
    async close() {
      // A Job still running when the tests end: stop its pod (the processes this fake started, by their pids).
      for (const name of await readdir(join(dir, 'jobs')).catch(() => [] as string[])) {
        const status = await readFile(join(dir, 'jobs', name, 'status.json'), 'utf8').catch(() => '{}');
        if ((JSON.parse(status) as { conditions?: unknown[] }).conditions?.length) continue;
        for (const file of ['supervisor.pid', 'pod.pid']) {
          const pid = await pidIn(join(dir, 'jobs', name, file));
          if (pid !== undefined) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              // Already gone.
            }
          }
        }
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

describe('KubernetesJobRunner.run without a cluster', () => {
  it('fails with spawn, at once, when kubectl is not installed', async () => {
    for (const kubectl of ['/nonexistent/bin/kubectl', 'millrace-no-such-kubectl']) {
      const details = await failure(new KubernetesJobRunner({ ...OPTIONS, kubectl }).run(JOB), 'spawn');
      expect(details.reason).toEqual(expect.stringContaining('not installed or not on PATH'));
    }
  });

  it('refuses an invalid job before calling kubectl', async () => {
    const cluster = await fakeCluster();
    try {
      await failure(new KubernetesJobRunner({ ...OPTIONS, kubectl: cluster.kubectl }).run({ ...JOB, holdoutFraction: 2 }), 'invalid-job');
      await failure(new KubernetesJobRunner({ ...OPTIONS, kubectl: cluster.kubectl }).run({ ...JOB, dataPath: '/tmp/x.csv' }), 'invalid-job');
      expect(await cluster.calls()).toEqual([]);
    } finally {
      await cluster.close();
    }
  });

  const kubectlOnPath = (() => {
    try {
      execFileSync('kubectl', ['version', '--client', '-o', 'json'], { stdio: 'ignore', timeout: 10_000 });
      return true;
    } catch {
      return false;
    }
  })();

  describe.skipIf(!kubectlOnPath)('with the real kubectl (skips when kubectl is not on PATH)', () => {
    let dir: string;
    let silent: Server;
    const held = new Set<Socket>();

    /** A kubeconfig of its own, so the test never reaches the user's clusters. */
    const kubeconfig = async (name: string, port: number): Promise<string> => {
      const path = join(dir, `${name}.kubeconfig.json`);
      await writeFile(
        path,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'none', cluster: { server: `http://127.0.0.1:${port}` } }],
          contexts: [{ name: 'none', context: { cluster: 'none', user: 'none' } }],
          users: [{ name: 'none', user: {} }],
          'current-context': 'none',
        }),
      );
      return path;
    };
    const listen = (server: Server): Promise<number> =>
      new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'millrace-kubectl-'));
      // Accepts connections and never answers: an API server that hangs.
      silent = createServer((socket) => held.add(socket));
    });

    afterAll(async () => {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
      await rm(dir, { recursive: true, force: true });
    });

    it('fails with spawn when no API server answers on the cluster\'s address', async () => {
      const closed = createServer();
      const port = await listen(closed);
      await new Promise((resolve) => closed.close(resolve));
      const runner = new KubernetesJobRunner({ ...OPTIONS, kubeconfig: await kubeconfig('refused', port) });
      const details = await failure(runner.run(JOB), 'spawn');
      expect(details.reason).toEqual(expect.stringContaining(`kubectl create job ${kubernetesJobName(JOB.jobId)} failed`));
    });

    it('fails with spawn instead of hanging when the API server never responds', async () => {
      const runner = new KubernetesJobRunner({ ...OPTIONS, kubeconfig: await kubeconfig('silent', await listen(silent)), kubectlTimeoutMs: 1_000 });
      await failure(runner.run(JOB), 'spawn');
    });
  });
});

// ---------------------------------------------------------------- run() against a stand-in cluster

describe('KubernetesJobRunner.run against a stand-in cluster', () => {
  let cluster: FakeCluster;
  let dir: string;

  const job = (jobId: string, overrides: Partial<TrainingJobSpec> = {}): TrainingJobSpec => ({
    ...JOB,
    jobId,
    dataPath: join(dir, 'train.csv'),
    outDir: join(dir, 'out', jobId),
    ...overrides,
  });
  /** A runner whose pods run `script` (sh) in place of python. */
  const runner = async (name: string, script: string, options: Partial<KubernetesJobRunnerOptions> = {}): Promise<KubernetesJobRunner> => {
    const python = join(dir, name);
    await writeFile(python, `#!/bin/sh\n${script}\n`);
    await chmod(python, 0o755);
    return new KubernetesJobRunner({
      ...OPTIONS,
      dataVolume: { claimName: 'training', mountPath: dir },
      outputVolume: { claimName: 'training', mountPath: dir },
      context: 'stand-in',
      kubectl: cluster.kubectl,
      python,
      pollIntervalMs: 100,
      ...options,
    });
  };

  beforeAll(async () => {
    cluster = await fakeCluster();
    dir = await mkdtemp(join(tmpdir(), 'millrace-k8s-jobs-'));
  });

  afterAll(async () => {
    await cluster?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a valid Job in its namespace and context, and fails when the trainer leaves no output', async () => {
    const run = await runner('silent', 'exit 0');
    const details = await failure(run.run(job('no-output')), 'output');
    expect(details.reason).toEqual(expect.stringContaining('manifest.json'));
    const calls = await cluster.calls();
    expect(calls.map((call) => call.command)).toEqual(expect.arrayContaining(['version', 'create', 'get']));
    expect(calls.every((call) => call.namespace === OPTIONS.namespace && call.context === 'stand-in')).toBe(true);
    const created = await cluster.created();
    expect(created).toHaveLength(1);
    expect(jobProblems(created[0])).toEqual([]);
  });

  it('reports the trainer\'s error from the pod\'s log, and does not retry it', async () => {
    const script = `echo run >> "${dir}/runs-bad"; echo '{"event": "error", "code": "bad-data", "message": "row 3, column amount: not a number"}' >&2; exit 2`;
    const details = await failure((await runner('bad', script)).run(job('bad')), 'exit');
    expect(details.trainerCode).toBe('bad-data');
    expect(details.reason).toEqual(expect.stringContaining('row 3, column amount'));
    expect((await readFile(join(dir, 'runs-bad'), 'utf8')).trim().split('\n')).toHaveLength(1);
  });

  it('retries a crashing pod up to backoffLimit, then fails', async () => {
    const script = `echo run >> "${dir}/runs-crash"; echo 'Segmentation fault' >&2; exit 139`;
    const details = await failure((await runner('crash', script, { backoffLimit: 1 })).run(job('crash')), 'exit');
    expect(details.reason).toEqual(expect.stringContaining('BackoffLimitExceeded'));
    expect((await readFile(join(dir, 'runs-crash'), 'utf8')).trim().split('\n')).toHaveLength(2);
  });

  it('deletes the Job, and so its pod, when the caller aborts', async () => {
    const run = await runner('sleeper', `echo '{"event": "progress", "stage": "load", "message": "sleeping"}' >&2; exec sleep 600`);
    const controller = new AbortController();
    await failure(
      run.run(job('abort'), {
        signal: controller.signal,
        onProgress: (event) => {
          if (event.stage === 'load') controller.abort();
        },
      }),
      'aborted',
    );
    const name = kubernetesJobName('abort');
    expect(await cluster.calls()).toContainEqual(expect.objectContaining({ command: 'delete', args: expect.arrayContaining(['job', name]) }));
    const pid = await cluster.podPid(name);
    expect(pid).toBeDefined();
    await expect.poll(() => processGone(pid!), { timeout: 10_000 }).toBe(true);
  });

  it('is refused by the cluster when a Job with the same id exists', async () => {
    const run = await runner('silent-again', 'exit 0');
    await failure(run.run(job('no-output')), 'spawn');
  });
});

// ---------------------------------------------------------------- the conformance suite, through the stand-in cluster

// The trainer runs as the stand-in cluster's pod: the rendered command line, env and volumes, executed.
describeWithTrainer('KubernetesJobRunner', (python) => {
  runJobRunnerSuite('KubernetesJobRunner (stand-in cluster)', async () => {
    const cluster = await fakeCluster();
    const workDir = await mkdtemp(join(tmpdir(), 'millrace-k8s-conformance-'));
    return {
      workDir,
      runner: (options = {}) =>
        new KubernetesJobRunner({
          ...OPTIONS,
          dataVolume: { claimName: 'training', mountPath: workDir },
          outputVolume: { claimName: 'training', mountPath: workDir },
          kubectl: cluster.kubectl,
          python,
          timeoutMs: options.timeoutMs ?? 120_000,
          pollIntervalMs: 100,
        }),
      async close() {
        const created = await cluster.created();
        await cluster.close();
        await rm(workDir, { recursive: true, force: true });
        // Every Job the suite created was a valid batch/v1 Job.
        for (const manifest of created) expect(jobProblems(manifest)).toEqual([]);
      },
    };
  });
});
