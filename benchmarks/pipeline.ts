/**
 * The ML pipeline end to end (`topologies/pipeline/*`), as `millrace up` processes fed a backlog of traffic:
 *
 * - `driftRound`: the pipeline with its drift stage against the same pipeline without it, on the embedded log;
 * - `workersRound`: the whole pipeline on Apache Kafka in one `millrace up` process against two in the same consumer
 *   groups (separate data directories and ports), which split the tasks between them.
 *
 * "The whole pipeline" is every stage that runs without the Python trainer: ingest, features, scoring (the fixture
 * logistic regression `fraud-logreg`, registered and promoted before the run, with reference distributions for
 * drift), outcomes, drift, the model registry, the retraining controller (it counts labels and judges outcomes; the
 * first-model bootstrap is switched off) and the training topology (idle: nothing asks for training). Projections
 * are left out: see `pipelineBenchConfig`. How the input is fed and completion detected: `pipeline-harness.ts`.
 *
 * Figures: events/s = transactions / seconds of the timed part, which ends at the status poll (every 100 ms) that
 * finds every application's inputs committed to their end, labels included; CPU-µs per event = the engine
 * processes' user + system CPU over the same span (/proc/<pid>/stat, every thread: inference workers and LevelDB's
 * too), summed, divided by the transactions. On the embedded log the timed part starts when the engine process is
 * spawned on the pre-produced input, so it includes the start (about 1 s and 0.6 CPU-s with nothing to do); on
 * Kafka, when the input is first appended to engines already settled (see `workersRound`).
 */
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { KafkaLog } from '../engine/log/kafka/kafka-log.js';
import {
  MODEL_VERSION,
  appendInput,
  applicationIds,
  freePort,
  installModel,
  machineCpuUs,
  pipelineBenchConfig,
  pipelineInput,
  preProduceEmbedded,
  prepareLog,
  processCpuUs,
  readyClients,
  resetKafka,
  runUntilProcessed,
  settled,
  sleep,
  spawnEngine,
  verifyOutput,
  withTempDir,
  type EngineChild,
  type Figures,
  type InstalledModel,
  type PipelineInput,
} from './pipeline-harness.js';

export type { Figures } from './pipeline-harness.js';

/** A run that takes longer than this fails. */
const RUN_TIMEOUT_MS = 10 * 60_000;

export interface PipelineRoundOptions {
  readonly events: number;
  readonly round: number;
  /** One line per run (time to ready, drift evaluations, …). Default: stderr. */
  readonly log?: (line: string) => void;
}

const defaultLog = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** The input of a size, made once per process: every round and both sides of a round read the same traffic. */
const inputs = new Map<number, PipelineInput>();
function inputOf(events: number): PipelineInput {
  if (!Number.isSafeInteger(events) || events < 1) throw new RangeError(`pipeline benchmark: events must be a positive integer, got ${events}`);
  let input = inputs.get(events);
  if (input === undefined) inputs.set(events, (input = pipelineInput(events)));
  return input;
}

function figures(events: number, run: { seconds: number; cpuUs: number }): Figures {
  return { eventsPerS: events / run.seconds, cpuUsPerEvent: run.cpuUs / events };
}

/** A run's line: its figures, and what tells a reader whether to trust them (the machine's load, the output). */
function describe(name: string, events: number, run: { seconds: number; cpuUs: number; machineBusyCores: number }, start: string, extra: string): string {
  const f = figures(events, run);
  const cores = cpus().length;
  return `  pipeline ${name}: ${events} transactions in ${run.seconds.toFixed(2)} s (${start}): ` +
    `${Math.round(f.eventsPerS)} events/s, ${Math.round(f.cpuUsPerEvent)} CPU-µs/event (engines ${(run.cpuUs / 1e6 / run.seconds).toFixed(2)} cores, ` +
    `machine ${run.machineBusyCores.toFixed(2)} of ${cores} busy); ${extra}`;
}

async function stopAll(engines: readonly EngineChild[]): Promise<void> {
  await Promise.all(engines.map((e) => e.stop()));
}

async function embeddedRun(options: { name: string; drift: boolean; input: PipelineInput; model: InstalledModel; dir: string; log: (line: string) => void }): Promise<Figures> {
  const { input } = options;
  const dataDir = join(options.dir, 'data');
  const configPath = join(options.dir, 'millrace.config.json');
  await writeFile(configPath, JSON.stringify(pipelineBenchConfig({ drift: options.drift, kafka: false })));
  await preProduceEmbedded(dataDir, input, options.model);
  const port = await freePort();
  const machineStartUs = machineCpuUs().busy;
  const startedMs = performance.now();
  const engine = spawnEngine({ configPath, dataDir, port });
  try {
    const run = await runUntilProcessed({ engines: [engine], apps: applicationIds(options.drift), startedMs, machineStartUs, timeoutMs: RUN_TIMEOUT_MS });
    const verified = await verifyOutput(run.clients, input, { drift: options.drift });
    options.log(describe(options.name, input.events, run, `HTTP answered after ${run.readySeconds.toFixed(2)} s`, `${verified.predictions} predictions, ${verified.outcomes} outcomes, ${verified.driftEvaluations} drift evaluations, ${verified.driftVerdicts} verdicts`));
    return figures(input.events, run);
  } finally {
    await stopAll([engine]);
  }
}

/**
 * The pipeline with and without its drift stage on the embedded log, one run each (the first alternates by round:
 * with drift first in even rounds), on the same pre-produced input.
 */
export async function driftRound(options: PipelineRoundOptions): Promise<{ on: Figures; off: Figures }> {
  const log = options.log ?? defaultLog;
  const input = inputOf(options.events);
  return withTempDir('millrace-bench-pipeline-', async (dir) => {
    const model = await installModel(join(dir, 'models', MODEL_VERSION));
    const order: Array<'on' | 'off'> = options.round % 2 === 0 ? ['on', 'off'] : ['off', 'on'];
    const out: Partial<Record<'on' | 'off', Figures>> = {};
    for (const side of order) {
      out[side] = await withTempDir(`millrace-bench-pipeline-${side}-`, (runDir) =>
        embeddedRun({ name: `drift ${side} (round ${options.round})`, drift: side === 'on', input, model, dir: runDir, log }),
      );
    }
    return { on: out.on!, off: out.off! };
  });
}

/**
 * Deletes what an earlier run left on the broker and creates the pipeline's topics afresh. Topics just deleted can
 * linger in the broker's metadata for a moment (`UNKNOWN_TOPIC_OR_PARTITION` while creating them again): tried
 * again from the start, at most three times.
 */
async function freshTopics(producer: KafkaLog, brokers: string[], model: InstalledModel): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await resetKafka(brokers);
    try {
      await prepareLog(producer, model);
      return;
    } catch (err) {
      if (attempt >= 3) throw err;
      await sleep(1_000 * attempt);
    }
  }
}

async function kafkaRun(options: {
  name: string;
  brokers: string[];
  processes: number;
  input: PipelineInput;
  model: InstalledModel;
  dir: string;
  log: (line: string) => void;
}): Promise<Figures> {
  const { input, brokers } = options;
  const configPath = join(options.dir, 'millrace.config.json');
  await writeFile(configPath, JSON.stringify(pipelineBenchConfig({ drift: true, kafka: true })));
  // The input's producer: an application writing to Kafka, outside the engines.
  const producer = new KafkaLog({ brokers, clientId: 'millrace-bench-producer' });
  await producer.open();
  const engines: EngineChild[] = [];
  const apps = applicationIds(true);
  try {
    await freshTopics(producer, brokers, options.model);
    const ports = await Promise.all(Array.from({ length: options.processes }, () => freePort()));
    const spawnedMs = performance.now();
    for (let i = 0; i < options.processes; i++) {
      engines.push(spawnEngine({ configPath, dataDir: join(options.dir, `data-${i}`), port: ports[i]!, brokers }));
    }
    // The start is not timed: on Kafka it joins the eight topologies' groups one after another (seconds each).
    await settled(await readyClients(engines), apps);
    const startSeconds = (performance.now() - spawnedMs) / 1000;
    const cpuStartUs = engines.reduce((sum, e) => sum + processCpuUs(e.pid), 0);
    const machineStartUs = machineCpuUs().busy;
    const startedMs = performance.now();
    await appendInput(producer, input);
    const produceSeconds = (performance.now() - startedMs) / 1000;
    const run = await runUntilProcessed({ engines, apps, startedMs, cpuStartUs, machineStartUs, timeoutMs: RUN_TIMEOUT_MS });
    const verified = await verifyOutput(run.clients, input, { drift: true });
    options.log(
      describe(options.name, input.events, run, `settled ${startSeconds.toFixed(2)} s after the start, not timed; input appended in ${produceSeconds.toFixed(2)} s`,
        `${verified.predictions} predictions, ${verified.outcomes} outcomes, ${verified.driftEvaluations} drift evaluations, ${verified.driftVerdicts} verdicts`),
    );
    return figures(input.events, run);
  } finally {
    await stopAll(engines);
    await producer.close();
    await resetKafka(brokers);
  }
}

/**
 * The whole pipeline on Apache Kafka in one `millrace up` process, then in two (the first alternates by round: one
 * process first in even rounds). The pipeline's topic names and group ids are fixed, so each run deletes them from
 * the broker before and after: no other pipeline may run on `brokers` meanwhile.
 *
 * Unlike the embedded runs, the timed part starts with the engines up and their tasks settled (assigned, each to
 * one process, unchanged for 2 s): started on a backlog, a run of a minute measured mostly the engines' start,
 * which joins the eight groups one after another (11 to 19 s here) while the two processes' rebalances fence each
 * other's tasks. The input (transactions, then labels) is then produced to Kafka from this process as fast as it
 * goes, and the time runs from the first append until everything is processed; CPU is the engines' over that span,
 * summed (not this producer's, nor the broker's).
 */
export async function workersRound(options: PipelineRoundOptions & { brokers: string[] }): Promise<{ one: Figures; two: Figures }> {
  const log = options.log ?? defaultLog;
  const input = inputOf(options.events);
  return withTempDir('millrace-bench-pipeline-', async (dir) => {
    const model = await installModel(join(dir, 'models', MODEL_VERSION));
    const order: Array<'one' | 'two'> = options.round % 2 === 0 ? ['one', 'two'] : ['two', 'one'];
    const out: Partial<Record<'one' | 'two', Figures>> = {};
    for (const side of order) {
      out[side] = await withTempDir(`millrace-bench-pipeline-${side}-`, (runDir) =>
        kafkaRun({ name: `kafka ${side === 'one' ? 1 : 2} worker${side === 'one' ? '' : 's'} (round ${options.round})`, brokers: options.brokers, processes: side === 'one' ? 1 : 2, input, model, dir: runDir, log }),
      );
    }
    return { one: out.one!, two: out.two! };
  });
}
