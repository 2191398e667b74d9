#!/usr/bin/env node
// Waits until Apicurio Registry's Confluent-compatible API serves requests, and sets its compatibility rule.
//
//   node test/infra/apicurio-ready.mjs --url http://127.0.0.1:18081/apis/ccompat/v7 [--timeout-s 90] [--pid N]
//                                      [--compatibility BACKWARD] [--check]
//
// Ready = `GET <url>/subjects` answers 200 with a JSON array (`[]` on a fresh in-memory registry). The HTTP port
// opens a moment before the REST layer answers, so the port alone is not enough.
//
// --pid N              stop waiting (exit 2) as soon as process N is gone: the registry died during start-up
// --compatibility X    then `PUT <url>/config {"compatibility": X}` (the global rule) and read it back; Apicurio
//                      starts with none (NONE), so incompatible schemas would be accepted without it
// --check              one attempt only (a health check for `status`), no waiting
//
// Exit 0 when ready (and configured), 1 on timeout or a wrong answer, 2 when the --pid process exited.
const args = { url: 'http://127.0.0.1:18081/apis/ccompat/v7', timeoutS: 90, pid: undefined, compatibility: undefined, check: false };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const arg = argv[i];
  if (arg === '--url') args.url = argv[++i].replace(/\/+$/, '');
  else if (arg === '--timeout-s') args.timeoutS = Number(argv[++i]);
  else if (arg === '--pid') args.pid = Number(argv[++i]);
  else if (arg === '--compatibility') args.compatibility = argv[++i];
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

const say = (line) => process.stderr.write(`[schema-registry] ${line}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const HEADERS = { Accept: 'application/vnd.schemaregistry.v1+json, application/json' };

function alive(pid) {
  if (pid === undefined) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

async function request(method, path, body) {
  const response = await fetch(args.url + path, {
    method,
    headers: body === undefined ? HEADERS : { ...HEADERS, 'Content-Type': 'application/vnd.schemaregistry.v1+json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(3_000),
  });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, text, json };
}

async function subjectsAnswer() {
  const { status, text, json } = await request('GET', '/subjects');
  if (status !== 200 || !Array.isArray(json)) throw new Error(`GET /subjects answered ${status}: ${text.slice(0, 200)}`);
  return json;
}

async function waitReady() {
  const deadline = Date.now() + args.timeoutS * 1000;
  let lastError;
  for (let tries = 1; ; tries++) {
    if (!alive(args.pid)) {
      say(`process ${args.pid} exited before the registry answered`);
      process.exit(2);
    }
    try {
      return await subjectsAnswer();
    } catch (error) {
      lastError = error;
      if (args.check) break;
      if (tries % 50 === 0) say(`still waiting for ${args.url}/subjects (${error.cause?.code ?? error.message})`);
    }
    if (Date.now() >= deadline) break;
    await sleep(100);
  }
  say(`${args.url} did not answer: ${lastError?.cause?.code ?? lastError?.message}`);
  process.exit(1);
}

async function configure(level) {
  const put = await request('PUT', '/config', { compatibility: level });
  if (put.status !== 200) throw new Error(`PUT /config answered ${put.status}: ${put.text.slice(0, 200)}`);
  const get = await request('GET', '/config');
  const effective = get.json?.compatibilityLevel ?? get.json?.compatibility;
  if (get.status !== 200 || effective !== level) {
    throw new Error(`GET /config answered ${get.status} ${get.text.slice(0, 200)} after setting ${level}`);
  }
}

const subjects = await waitReady();
if (args.compatibility !== undefined) {
  try {
    await configure(args.compatibility);
  } catch (error) {
    say(`could not set the global compatibility: ${error.message}`);
    process.exit(1);
  }
}
if (!args.check) {
  say(`answering at ${args.url} (${subjects.length} subjects${args.compatibility ? `, compatibility ${args.compatibility}` : ''})`);
}
