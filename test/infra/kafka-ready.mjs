#!/usr/bin/env node
// Waits until a Kafka broker serves requests: a kafkajs admin describeCluster() answers.
// A listening port is not enough: the broker accepts connections before it can serve metadata.
//
//   node test/infra/kafka-ready.mjs --brokers 127.0.0.1:19092 [--timeout-s 90] [--warm]
//
// --warm also creates the group and transaction coordinators' internal topics (__consumer_offsets,
// __transaction_state) by asking for a group coordinator and initialising a transactional producer,
// so the first test that uses a group or a transaction does not pay for it (or time out on it).
//
// Exit 0 when ready (prints the cluster's brokers and controller to stderr), 1 on timeout.
import { Kafka, logLevel } from 'kafkajs';

function parseArgs(argv) {
  const args = { brokers: process.env.MILLRACE_KAFKA_BROKERS ?? '127.0.0.1:19092', timeoutS: 90, warm: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--brokers') args.brokers = argv[++i];
    else if (arg === '--timeout-s') args.timeoutS = Number(argv[++i]);
    else if (arg === '--warm') args.warm = true;
    else throw new Error(`unknown argument ${arg}`);
  }
  if (!Number.isFinite(args.timeoutS) || args.timeoutS <= 0) throw new Error('--timeout-s must be a positive number');
  return args;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function client(brokers) {
  return new Kafka({
    clientId: 'millrace-kafka-ready',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2_000,
    requestTimeout: 5_000,
    // Retries are done here, with a deadline; kafkajs's own would hide progress.
    retry: { retries: 0 },
  });
}

async function attempt(kafka, fn) {
  const admin = kafka.admin();
  try {
    await admin.connect();
    return await fn(admin);
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

async function untilDeadline(deadline, what, fn) {
  let lastError;
  let tries = 0;
  while (Date.now() < deadline) {
    tries++;
    try {
      return await fn();
    } catch (error) {
      lastError = error;
      if (tries === 1 || tries % 10 === 0) {
        process.stderr.write(`[kafka-ready] waiting for ${what}: ${error?.message ?? error}\n`);
      }
      await sleep(Math.min(250 * tries, 1_000));
    }
  }
  throw new Error(`${what} not ready: ${lastError?.message ?? lastError ?? 'timed out'}`);
}

async function main() {
  const { brokers, timeoutS, warm } = parseArgs(process.argv.slice(2));
  const deadline = Date.now() + timeoutS * 1_000;
  const kafka = client(brokers);

  const cluster = await untilDeadline(deadline, `describeCluster on ${brokers}`, () =>
    attempt(kafka, (admin) => admin.describeCluster()),
  );
  if (!cluster.brokers.length) throw new Error('describeCluster answered with no brokers');
  process.stderr.write(
    `[kafka-ready] cluster ${cluster.clusterId}: brokers ${cluster.brokers
      .map((b) => `${b.nodeId}@${b.host}:${b.port}`)
      .join(', ')}, controller ${cluster.controller}\n`,
  );

  if (warm) {
    // FindCoordinator(GROUP) makes the broker create __consumer_offsets; describeGroups retries on
    // COORDINATOR_NOT_AVAILABLE / COORDINATOR_LOAD_IN_PROGRESS until the coordinator is up.
    await untilDeadline(deadline, 'the group coordinator', () =>
      attempt(kafka, async (admin) => {
        // kafkajs's admin fills its broker pool only on a metadata request: describeGroups straight
        // after connect() fails with "No brokers in the broker pool".
        await admin.describeCluster();
        const { groups } = await admin.describeGroups(['millrace-kafka-ready']);
        if (groups[0]?.errorCode) throw new Error(`describeGroups error code ${groups[0].errorCode}`);
      }),
    );
    // FindCoordinator(TRANSACTION) + InitProducerId(transactional id) make it create __transaction_state.
    await untilDeadline(deadline, 'the transaction coordinator', async () => {
      const producer = kafka.producer({
        transactionalId: 'millrace-kafka-ready',
        idempotent: true,
        maxInFlightRequests: 1,
        // kafkajs refuses an idempotent producer without retries; they cover COORDINATOR_NOT_AVAILABLE
        // while __transaction_state is being created.
        retry: { retries: 5, initialRetryTime: 100 },
      });
      try {
        await producer.connect();
        // connect() only initialises the idempotent producer id; the transactional one (through the
        // transaction coordinator) is initialised by the first transaction().
        const transaction = await producer.transaction();
        await transaction.abort();
      } finally {
        await producer.disconnect().catch(() => {});
      }
    });
    process.stderr.write('[kafka-ready] group and transaction coordinators ready\n');
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`[kafka-ready] ${error?.message ?? error}\n`);
    process.exit(1);
  },
);
