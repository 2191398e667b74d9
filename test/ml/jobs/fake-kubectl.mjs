/**
 * A stand-in for `kubectl` and a one-node cluster, for testing `KubernetesJobRunner.run` without Kubernetes.
 *
 *   node fake-kubectl.mjs <stateDir> [--kubeconfig F] [--context C] [--request-timeout=Ns] --namespace N <command…>
 *
 * It answers the commands the runner uses — `version --client`, `create -f -`, `get job NAME -o json`,
 * `logs job/NAME`, `delete job NAME` — and records each call in `<stateDir>/calls.jsonl`. A created Job runs as
 * a local process, the way the kubelet would start its container: `command` and `args` with `$(VAR)` expanded
 * from the container's env (and `$$` turned into `$`), that env plus PATH and PYTHONPATH (the image's working
 * directory, `trainerDir` in `<stateDir>/config.json`), and the volumes' mount paths taken as host paths. The
 * Job's controller is emulated for what the runner relies on: `activeDeadlineSeconds` (condition Failed,
 * DeadlineExceeded), `podFailurePolicy` FailJob on exit codes (PodFailurePolicy), `backoffLimit` retries
 * (BackoffLimitExceeded), and Complete on exit 0. Delete kills the pod.
 *
 * Plain JavaScript on purpose: kubectl is a separate executable, started by the runner with spawn().
 */
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [stateDir, ...argv] = process.argv.slice(2);
if (!stateDir) {
  process.stderr.write('usage: fake-kubectl.mjs <stateDir> <kubectl arguments>\n');
  process.exit(2);
}
const jobsDir = join(stateDir, 'jobs');
mkdirSync(jobsDir, { recursive: true });

const fail = (message, code = 1) => {
  process.stderr.write(`${message}\n`);
  process.exit(code);
};
const jobDir = (name) => join(jobsDir, name);
const writeJson = (path, value) => {
  writeFileSync(`${path}.tmp`, JSON.stringify(value));
  renameSync(`${path}.tmp`, path);
};
const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));

function expand(text, env) {
  const values = new Map(env.map((entry) => [entry.name, entry.value]));
  return text.replace(/\$\$|\$\(([^)]*)\)/g, (match, name) => (match === '$$' ? '$' : values.has(name) ? values.get(name) : match));
}

// ---------------------------------------------------------------- the pod (a detached process per Job)

async function runPod(name) {
  const dir = jobDir(name);
  const manifest = readJson(join(dir, 'manifest.json'));
  const config = readJson(join(stateDir, 'config.json'));
  const pod = manifest.spec.template.spec;
  const [container] = pod.containers;
  const env = container.env ?? [];
  const [program, ...rest] = [...(container.command ?? []), ...(container.args ?? [])].map((part) => expand(part, env));
  const failJobCodes = (manifest.spec.podFailurePolicy?.rules ?? [])
    .filter((rule) => rule.action === 'FailJob' && rule.onExitCodes?.operator === 'In')
    .flatMap((rule) => rule.onExitCodes.values);
  const status = { startTime: new Date().toISOString(), active: 1, failed: 0, succeeded: 0, conditions: [] };
  const finish = (type, reason) => {
    status.active = 0;
    status.conditions.push({ type, status: 'True', ...(reason ? { reason } : {}) });
    try {
      writeJson(join(dir, 'status.json'), status);
    } catch {
      // Deleted meanwhile: nothing to report to.
    }
  };
  writeJson(join(dir, 'status.json'), status);

  let child;
  let stopped = false;
  process.on('SIGTERM', () => {
    stopped = true;
    child?.kill('SIGKILL');
    process.exit(0);
  });
  const deadline = manifest.spec.activeDeadlineSeconds;
  if (deadline !== undefined) {
    setTimeout(() => {
      stopped = true;
      child?.kill('SIGKILL');
      finish('Failed', 'DeadlineExceeded');
      process.exit(0);
    }, deadline * 1000);
  }

  for (;;) {
    const log = openSync(join(dir, 'pod.log'), 'a');
    child = spawn(program, rest, {
      cwd: config.trainerDir,
      env: { PATH: process.env.PATH, PYTHONPATH: config.trainerDir, ...Object.fromEntries(env.map((e) => [e.name, e.value])) },
      stdio: ['ignore', log, log],
    });
    writeFileSync(join(dir, 'pod.pid'), String(child.pid ?? ''));
    const code = await new Promise((resolve) => {
      child.on('error', () => resolve(128));
      child.on('exit', (exitCode) => resolve(exitCode ?? 137));
    });
    if (stopped) return;
    if (code === 0) {
      status.succeeded = 1;
      finish('Complete');
      process.exit(0);
    }
    status.failed += 1;
    if (failJobCodes.includes(code)) {
      finish('Failed', 'PodFailurePolicy');
      process.exit(0);
    }
    if (status.failed > (manifest.spec.backoffLimit ?? 6)) {
      finish('Failed', 'BackoffLimitExceeded');
      process.exit(0);
    }
  }
}

// ---------------------------------------------------------------- kubectl

function parseGlobal(args) {
  const global = {};
  const rest = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--kubeconfig' || arg === '--context' || arg === '--namespace') global[arg.slice(2)] = args[++i];
    else if (arg.startsWith('--request-timeout=')) global.requestTimeout = arg.slice('--request-timeout='.length);
    else rest.push(arg);
  }
  return { global, rest };
}

async function readStdin() {
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  return text;
}

async function kubectl() {
  const { global, rest } = parseGlobal(argv);
  const [command, ...args] = rest;
  const stdin = command === 'create' ? await readStdin() : undefined;
  appendFileSync(join(stateDir, 'calls.jsonl'), `${JSON.stringify({ ...global, command, args, ...(stdin === undefined ? {} : { stdin }) })}\n`);
  if (!global.namespace) fail('error: the fake kubectl wants --namespace');

  switch (command) {
    case 'version':
      process.stdout.write(JSON.stringify({ clientVersion: { major: '1', minor: '31', gitVersion: 'v1.31.0-fake' } }));
      return;
    case 'create': {
      if (args.join(' ') !== '-f -') fail(`error: the fake kubectl only creates from stdin, got ${args.join(' ')}`);
      const manifest = JSON.parse(stdin);
      if (manifest.kind !== 'Job' || manifest.metadata?.namespace !== global.namespace) fail('error: the fake kubectl only creates Jobs in --namespace');
      const name = manifest.metadata.name;
      if (existsSync(jobDir(name))) fail(`Error from server (AlreadyExists): error when creating "STDIN": jobs.batch "${name}" already exists`);
      mkdirSync(jobDir(name));
      writeJson(join(jobDir(name), 'manifest.json'), manifest);
      const pod = spawn(process.execPath, [fileURLToPath(import.meta.url), stateDir, '__pod', name], { detached: true, stdio: 'ignore' });
      writeFileSync(join(jobDir(name), 'supervisor.pid'), String(pod.pid));
      pod.unref();
      process.stdout.write(`job.batch/${name} created\n`);
      return;
    }
    case 'get': {
      const [kind, name] = args;
      if (kind !== 'job') fail(`error: the fake kubectl only gets jobs, got ${kind}`);
      if (!existsSync(join(jobDir(name), 'manifest.json'))) fail(`Error from server (NotFound): jobs.batch "${name}" not found`);
      const manifest = readJson(join(jobDir(name), 'manifest.json'));
      const status = existsSync(join(jobDir(name), 'status.json')) ? readJson(join(jobDir(name), 'status.json')) : {};
      process.stdout.write(JSON.stringify({ ...manifest, status }));
      return;
    }
    case 'logs': {
      const name = (args[0] ?? '').replace(/^job\//, '');
      if (!existsSync(jobDir(name))) fail(`Error from server (NotFound): jobs.batch "${name}" not found`);
      if (!existsSync(join(jobDir(name), 'pod.log'))) fail(`Error from server (BadRequest): container "trainer" in pod "${name}-x" is waiting to start`);
      process.stdout.write(readFileSync(join(jobDir(name), 'pod.log'), 'utf8'));
      return;
    }
    case 'delete': {
      const [kind, name] = args;
      if (kind !== 'job') fail(`error: the fake kubectl only deletes jobs, got ${kind}`);
      if (!existsSync(jobDir(name))) {
        if (args.includes('--ignore-not-found')) return;
        fail(`Error from server (NotFound): jobs.batch "${name}" not found`);
      }
      const pid = Number(readFileSync(join(jobDir(name), 'supervisor.pid'), 'utf8'));
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // The pod had already finished.
      }
      mkdirSync(join(stateDir, 'deleted'), { recursive: true });
      renameSync(jobDir(name), join(stateDir, 'deleted', `${name}-${Date.now()}`));
      process.stdout.write(`job.batch "${name}" deleted\n`);
      return;
    }
    default:
      fail(`error: the fake kubectl does not know "${command}"`);
  }
}

if (argv[0] === '__pod') await runPod(argv[1]);
else await kubectl();
