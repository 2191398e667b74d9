// Fuzzes the Avro serde's `deserialize` with hostile bytes, in its own process: if the bounds check ever let a
// poison record through, avsc would exhaust the heap and abort this process, not the test runner.
//
// Run by test/serde/avro-fuzz.unit.spec.ts against the build in dist/ (`npm run build`). Every call must return or
// throw MILLRACE_DESERIALIZATION. Prints one JSON summary line and exits 0, or prints the failures and exits 1.
//
//   node test/serde/fuzz-avro-decoder.mjs [iterations-per-schema] [seed]

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dist = new URL('../../dist/engine/serde/', import.meta.url);
const { avroSerde, encodeFramed } = await import(new URL('avro-serde.js', dist).href);
const { parseAvroSchema } = await import(new URL('logical-types.js', dist).href);

const ITERATIONS = Number(process.argv[2] ?? 12_000);
const SEED = Number(process.argv[3] ?? 0x5eed);

// mulberry32: a small seeded generator, so a failure can be replayed with the same seed.
let state = SEED >>> 0;
function random() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(random() * n);
const pick = (items) => items[int(items.length)];

/** A zigzag varint of a (safe or not) integer, as Avro writes longs. */
function varint(n) {
  let z = n >= 0 ? n * 2 : -n * 2 - 1;
  const out = [];
  while (z >= 0x80) {
    out.push((z % 0x80) | 0x80);
    z = Math.floor(z / 0x80);
  }
  out.push(z);
  return out;
}

/** The registry surface the serde uses, in memory. */
class MemoryRegistry {
  #byId = new Map();
  #latest = new Map();
  add(subject, schema) {
    const registered = { id: this.#byId.size + 1, subject, version: 1, schema, type: parseAvroSchema(schema) };
    this.#byId.set(registered.id, registered);
    this.#latest.set(subject, registered);
    return registered;
  }
  cachedById(id) {
    return this.#byId.get(id);
  }
  cachedLatest(subject) {
    return this.#latest.get(subject);
  }
  async byId(id) {
    const found = this.#byId.get(id);
    if (found === undefined) throw Object.assign(new Error(`no schema ${id}`), { code: 'MILLRACE_SCHEMA_UNKNOWN' });
    return found;
  }
  async latest(subject) {
    return this.#latest.get(subject);
  }
  async versions(subject) {
    return this.#latest.has(subject) ? [this.#latest.get(subject)] : [];
  }
  async subjects() {
    return [...this.#latest.keys()];
  }
  async register() {
    throw new Error('not used');
  }
}

const randomString = (max) => Array.from({ length: int(max) }, () => String.fromCharCode(97 + int(26))).join('');

function tree(depth) {
  return {
    label: randomString(4),
    next: depth > 0 && random() < 0.5 ? tree(depth - 1) : null,
    children: depth > 0 ? Array.from({ length: int(3) }, () => tree(depth - 1)) : [],
  };
}

const exampleEvent = JSON.parse(readFileSync(fileURLToPath(new URL('../../schemas/example-event/v2.avsc', import.meta.url)), 'utf8'));

const subjects = [
  {
    name: 'poison-int',
    schema: { type: 'record', name: 'P', fields: [{ name: 's', type: 'string' }, { name: 'a', type: { type: 'array', items: 'int' } }] },
  },
  {
    name: 'poison-null',
    schema: { type: 'record', name: 'Q', fields: [{ name: 's', type: 'string' }, { name: 'a', type: { type: 'array', items: 'null' } }] },
  },
  {
    name: 'order',
    schema: {
      type: 'record',
      name: 'Order',
      fields: [
        { name: 'id', type: 'string' },
        { name: 'tags', type: { type: 'map', values: 'string' } },
        {
          name: 'lines',
          type: {
            type: 'array',
            items: {
              type: 'record',
              name: 'Line',
              fields: [
                { name: 'sku', type: 'string' },
                { name: 'qty', type: 'int' },
                { name: 'price', type: 'double' },
                { name: 'meta', type: { type: 'map', values: { type: 'array', items: 'long' } } },
              ],
            },
          },
        },
        { name: 'note', type: ['null', 'string'] },
        { name: 'status', type: { type: 'enum', name: 'Status', symbols: ['NEW', 'PAID', 'SHIPPED'] } },
        { name: 'hash', type: { type: 'fixed', name: 'Hash', size: 16 } },
        { name: 'flags', type: { type: 'array', items: 'boolean' } },
        { name: 'nothing', type: { type: 'array', items: 'null' } },
        { name: 'mixed', type: { type: 'array', items: ['int', 'double', 'string', 'bytes'] } },
      ],
    },
  },
  {
    name: 'tree',
    schema: {
      type: 'record',
      name: 'Tree',
      fields: [
        { name: 'label', type: 'string' },
        { name: 'next', type: ['null', 'Tree'] },
        { name: 'children', type: { type: 'array', items: 'Tree' } },
      ],
    },
    value: () => tree(4),
  },
  { name: 'example-event', schema: exampleEvent },
  { name: 'string', schema: 'string' },
];

const registry = new MemoryRegistry();
for (const subject of subjects) {
  subject.registered = registry.add(subject.name, subject.schema);
  subject.serde = avroSerde(registry, subject.name);
  subject.context = { topic: subject.name, isKey: false };
  if (subject.value === undefined) {
    // Random values from avsc, except for Millrace's logical types, whose random strings are not valid events.
    subject.value =
      subject.name === 'example-event'
        ? () => ({
            id: randomString(10),
            user: randomString(6),
            amount: random() * 1000,
            at: '2026-01-02T03:04:05.123Z',
            ip: pick(['203.0.113.7', '2001:db8::1']),
            country: pick([null, 'FR', 'NO']),
          })
        : () => subject.registered.type.random();
  }
}

const stats = { calls: 0, decoded: 0, refused: 0, byKind: {} };
const failures = [];

function attempt(subject, bytes, kind) {
  stats.calls++;
  const counts = (stats.byKind[kind] ??= { calls: 0, decoded: 0 });
  counts.calls++;
  try {
    subject.serde.deserialize(bytes, subject.context);
    stats.decoded++;
    counts.decoded++;
  } catch (err) {
    if (err?.name === 'MillraceError' && err.code === 'MILLRACE_DESERIALIZATION') {
      stats.refused++;
      return;
    }
    if (failures.length < 20) {
      failures.push({ subject: subject.name, kind, hex: bytes.subarray(0, 256).toString('hex'), error: String(err?.stack ?? err) });
    }
  }
}

function header(id) {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(id, 1);
  return h;
}

const framed = (subject, body) => Buffer.concat([header(subject.registered.id), Buffer.from(body)]);
const randomBytes = (n) => Buffer.from(Array.from({ length: n }, () => int(256)));

/** A hostile varint: counts and lengths far beyond what the bytes hold, or malformed ones. */
function hostileVarint() {
  switch (int(6)) {
    case 0:
      return varint(pick([200_000_000, 20_000_000, 2 ** 31, 2 ** 40, 2 ** 53, 1_000_001]));
    case 1:
      return varint(-pick([200_000_000, 2 ** 31, 2 ** 52]));
    case 2:
      return Array.from({ length: 10 + int(4) }, () => 0xff);
    case 3:
      return [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    case 4:
      return varint(int(1_000_000));
    default:
      return [0x80 | int(128)];
  }
}

function mutate(body) {
  const bytes = [...body];
  switch (int(6)) {
    case 0: // flip bytes
      for (let i = 0, n = 1 + int(4); i < n && bytes.length > 0; i++) bytes[int(bytes.length)] = int(256);
      return bytes;
    case 1: // truncate
      return bytes.slice(0, int(bytes.length + 1));
    case 2: // extend
      return [...bytes, ...randomBytes(1 + int(16))];
    case 3: // a hostile varint somewhere
    case 4: {
      const at = int(bytes.length + 1);
      return [...bytes.slice(0, at), ...hostileVarint(), ...bytes.slice(at + int(3))];
    }
    default: // a slice of itself inserted (plausible-looking structure in the wrong place)
    {
      const from = int(bytes.length + 1);
      const to = from + int(bytes.length - from + 1);
      const at = int(bytes.length + 1);
      return [...bytes.slice(0, at), ...bytes.slice(from, to), ...bytes.slice(at)];
    }
  }
}

const startedAt = process.hrtime.bigint();

for (const subject of subjects) {
  // Crafted: the six-byte poison record and its relatives.
  for (const count of [200_000_000, -200_000_000, 20_000_000, 2 ** 40, 1_000_001]) {
    attempt(subject, framed(subject, [0x00, ...varint(count)]), 'crafted');
    attempt(subject, framed(subject, [0x00, ...varint(count), ...varint(4), 0, 0, 0, 0]), 'crafted');
    attempt(subject, framed(subject, [...varint(count)]), 'crafted');
  }
  for (const length of [2 ** 31, 2 ** 40, 2 ** 62, 2 ** 30, -5]) attempt(subject, framed(subject, varint(length)), 'crafted');
  // Deep nesting: union branch 1 again and again.
  attempt(subject, framed(subject, Array.from({ length: 200_000 }, (_, i) => (i % 2 === 0 ? 0x00 : 0x02))), 'crafted');
  // Framing: wrong magic byte, unknown id, short.
  attempt(subject, Buffer.from([1, 0, 0, 0, 1, 0]), 'crafted');
  attempt(subject, Buffer.concat([header(999), Buffer.from([0])]), 'crafted');
  attempt(subject, Buffer.from([0, 0, 0]), 'crafted');

  for (let i = 0; i < ITERATIONS; i++) {
    const r = random();
    if (r < 0.25) {
      attempt(subject, framed(subject, randomBytes(int(64))), 'random');
    } else {
      const body = encodeFramed(subject.registered, subject.value()).subarray(5);
      attempt(subject, framed(subject, r < 0.3 ? body : mutate(body)), r < 0.3 ? 'valid' : 'mutated');
    }
  }
}

const elapsedMs = Number(process.hrtime.bigint() - startedAt) / 1e6;
// maxRSS is in kilobytes.
const summary = { ...stats, failures: failures.length, elapsedMs: Math.round(elapsedMs), maxRssBytes: process.resourceUsage().maxRSS * 1024, seed: SEED };
if (failures.length > 0) {
  console.error(JSON.stringify(failures, null, 2));
  console.log(JSON.stringify(summary));
  process.exit(1);
}
console.log(JSON.stringify(summary));
