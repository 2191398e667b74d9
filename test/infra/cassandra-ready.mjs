#!/usr/bin/env node
// Waits until a Cassandra node answers CQL: `SELECT release_version FROM system.local` through cassandra-driver.
// The native transport port opens a moment before the node serves queries, and "Startup complete" in the log
// says nothing about whether a client can use it, so the query is what counts.
//
//   node test/infra/cassandra-ready.mjs --contact-point 127.0.0.1:19042 [--timeout-s 180] [--pid N] [--check]
//
// --pid N    stop waiting (exit 2) as soon as process N is gone: the node died during start-up
// --check    one attempt only (a health check for `status`), no waiting
//
// Exit 0 when the query answers (prints the node's release_version to stdout), 1 on timeout, 2 when the
// --pid process exited.
import cassandra from 'cassandra-driver';

const args = { contactPoint: '127.0.0.1:19042', timeoutS: 180, pid: undefined, check: false };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const arg = argv[i];
  if (arg === '--contact-point') args.contactPoint = argv[++i];
  else if (arg === '--timeout-s') args.timeoutS = Number(argv[++i]);
  else if (arg === '--pid') args.pid = Number(argv[++i]);
  else if (arg === '--check') args.check = true;
  else {
    process.stderr.write(`unknown argument ${arg}\n`);
    process.exit(64);
  }
}
if (!Number.isFinite(args.timeoutS) || args.timeoutS <= 0) {
  process.stderr.write('--timeout-s must be a positive number\n');
  process.exit(64);
}

const say = (line) => process.stderr.write(`[cassandra] ${line}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function alive(pid) {
  if (pid === undefined) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

// One client per attempt: a client whose first connect() failed does not retry it.
async function query() {
  const client = new cassandra.Client({
    contactPoints: [args.contactPoint],
    // SimpleSnitch puts every node in this data centre.
    localDataCenter: 'datacenter1',
    socketOptions: { connectTimeout: 2_000, readTimeout: 5_000 },
    // Only this one node: do not wait for or reconnect to anything else.
    policies: { reconnection: new cassandra.policies.reconnection.ConstantReconnectionPolicy(500) },
  });
  try {
    await client.connect();
    const result = await client.execute('SELECT release_version FROM system.local');
    const version = result.first()?.get('release_version');
    if (!version) throw new Error('system.local answered without a release_version');
    return version;
  } finally {
    await client.shutdown().catch(() => {});
  }
}

async function main() {
  if (args.check) {
    process.stdout.write(`${await query()}\n`);
    return;
  }
  const deadline = Date.now() + args.timeoutS * 1000;
  let lastError;
  for (let tries = 1; Date.now() < deadline; tries++) {
    if (!alive(args.pid)) {
      say(`process ${args.pid} exited before the node answered CQL`);
      process.exit(2);
    }
    try {
      const version = await query();
      say(`CQL answers on ${args.contactPoint}: release_version ${version}`);
      process.stdout.write(`${version}\n`);
      return;
    } catch (error) {
      lastError = error;
      if (tries === 1 || tries % 10 === 0) say(`waiting for CQL on ${args.contactPoint}: ${error?.message ?? error}`);
      await sleep(Math.min(250 * tries, 1_000));
    }
  }
  throw new Error(`no CQL answer within ${args.timeoutS}s: ${lastError?.message ?? lastError ?? 'timed out'}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    if (!args.check) say(error?.message ?? String(error));
    process.exit(1);
  },
);
