/**
 * Runs `millrace up` as a real child process, for tests that kill it. Start, wait for readiness (the printed URL
 * and a `/health` that answers), SIGKILL or SIGTERM it, start it again on the same data directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO_ROOT, 'bin', 'millrace.js');

/** The CLI runs the compiled engine: fail with a clear reason when it was not built. */
export function requireBuild(): void {
  if (!existsSync(join(REPO_ROOT, 'dist', 'engine', 'cli', 'main.js'))) {
    throw new Error('dist/ is missing: run `npm run build` first (`npm test` does it for you)');
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface EngineProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything the process wrote to stderr (its structured logs). */
  readonly stderr: () => string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  kill(signal: NodeJS.Signals): Promise<number | string>;
}

export interface StartOptions {
  readonly config?: string;
  readonly dataDir: string;
  readonly port: number;
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** Run on Kafka: `--brokers`. */
  readonly brokers?: string;
  /** A Confluent-compatible schema registry: `--schema-registry`. */
  readonly schemaRegistry?: string;
  /** More flags for `up` (`--demo`, `--console-read-only`). */
  readonly args?: readonly string[];
}

function withoutEngineDefaults(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { MILLRACE_BROKERS: _brokers, MILLRACE_SCHEMA_REGISTRY: _registry, ...rest } = env;
  return rest;
}

/** An engine with no topics and no topologies (and the repository's schemas/). */
export const EMPTY_CONFIG = join(REPO_ROOT, 'test', 'fixtures', 'engine', 'empty.config.json');

export async function startEngine(options: StartOptions): Promise<EngineProcess> {
  requireBuild();
  const args = [CLI, 'up', '--data-dir', options.dataDir, '--port', String(options.port)];
  // Without --config, `up` runs the ML pipeline; tests that want a bare engine get an empty config.
  args.push('--config', options.config ?? EMPTY_CONFIG);
  if (options.brokers !== undefined) args.push('--brokers', options.brokers);
  if (options.schemaRegistry !== undefined) args.push('--schema-registry', options.schemaRegistry);
  args.push(...(options.args ?? []));
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    // The engine reads MILLRACE_BROKERS and MILLRACE_SCHEMA_REGISTRY as defaults of its flags; the tests use them to
    // switch servers off. Only what the options say reaches the engine.
    env: { ...withoutEngineDefaults(process.env), ...options.env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let url: string | undefined;
  let ended = false;
  void exited.then(() => (ended = true));
  while (url === undefined) {
    const match = / at (http:\/\/\S+)/.exec(stdout);
    if (match !== null) url = match[1]!;
    else {
      if (ended) throw new Error(`millrace up exited before it was ready:\n${stdout}\n${stderr}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`millrace up was not ready in time:\n${stdout}\n${stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  for (;;) {
    try {
      const response = await fetch(`${url}/health`);
      await response.arrayBuffer();
      if (response.ok) break;
    } catch {
      // not answering yet
    }
    if (ended || Date.now() > deadline) throw new Error(`millrace up never answered /health:\n${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    url,
    child,
    stderr: () => stderr,
    exited,
    async kill(signal) {
      if (!ended) child.kill(signal);
      return exited;
    },
  };
}

/** A small deterministic PRNG (mulberry32), so a failing random schedule can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
