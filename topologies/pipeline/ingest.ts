import { access } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MillraceError } from '../../engine/errors.js';
import type { TopologyContext } from '../../engine/runtime/modules.js';
import { avroSerde } from '../../engine/serde/avro-serde.js';
import { isIsoDateTime, validateValue, type ValidationIssue } from '../../engine/serde/logical-types.js';
import type { SchemaRegistry } from '../../engine/serde/registry.js';
import { registerSchemaFolder } from '../../engine/serde/schema-files.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import type { StreamRecord } from '../../engine/topology/record.js';
import { Topics, type Feedback, type Transaction } from './contract.js';

/**
 * The pipeline's first stage (DESIGN §6): raw JSON events in, clean Avro events out.
 *
 *   transactions-raw ─ validate-transaction ─ key-by-user ──────────── transactions   (Avro `transaction`)
 *                      └ invalid ─────────────────────────────────── transactions-raw.dlq
 *   feedback-raw ───── validate-feedback ─── key-by-transaction-id ── feedback       (Avro `feedback`)
 *                      └ invalid ─────────────────────────────────── feedback-raw.dlq
 *
 * Each event is checked against the latest version of its schema (`validateValue`: types, required and unknown
 * fields, ISO 8601 date-times, IP addresses, ranges) and against what Avro cannot say (country codes, currency
 * codes, non-empty ids, event times from 1970). An invalid event is dead-lettered with every issue it has, as
 * `MILLRACE_SCHEMA_VIOLATION` with `issues` (JSON pointers and messages) in the problem body.
 *
 * Valid events are written as they came (no field is rewritten), keyed by user or transaction id, at their event
 * time: the timestamp of each output record is the event's `at`.
 *
 * Options:
 * - `applicationId` (default `ingest`);
 * - `schemasDir`: the folder with `transaction/` and `feedback/` (default: the package's `schemas/`); a relative
 *   path is resolved against the working directory.
 *
 * The module registers the schema folders under `transactions-value` and `feedback-value` when it loads (a version
 * already registered is left as it is).
 */

export const TRANSACTIONS_SUBJECT = `${Topics.transactions}-value`;
export const FEEDBACK_SUBJECT = `${Topics.feedback}-value`;

export interface IngestOptions {
  readonly applicationId?: string;
  readonly schemasDir?: string;
}

export default async function ingest({ options, registry }: TopologyContext): Promise<StreamsBuilder> {
  const applicationId = stringOption(options, 'applicationId') ?? 'ingest';
  const schemasDir = await resolveSchemasDir(stringOption(options, 'schemasDir'));
  await registerSchemaFolder(registry, TRANSACTIONS_SUBJECT, schemasDir, 'transaction');
  await registerSchemaFolder(registry, FEEDBACK_SUBJECT, schemasDir, 'feedback');

  const builder = new StreamsBuilder(applicationId);
  builder
    .stream<string | null, unknown>(Topics.transactionsRaw, { name: 'transactions-raw', timestampExtractor: eventTime })
    .mapValues('validate-transaction', (value) => validateTransaction(registry, value))
    .map('key-by-user', (r) => ({ key: r.value.user, value: r.value }))
    .to(Topics.transactions, { name: 'to-transactions', valueSerde: avroSerde<Transaction>(registry, TRANSACTIONS_SUBJECT) });
  builder
    .stream<string | null, unknown>(Topics.feedbackRaw, { name: 'feedback-raw', timestampExtractor: eventTime })
    .mapValues('validate-feedback', (value) => validateFeedback(registry, value))
    .map('key-by-transaction-id', (r) => ({ key: r.value.transaction_id, value: r.value }))
    .to(Topics.feedback, { name: 'to-feedback', valueSerde: avroSerde<Feedback>(registry, FEEDBACK_SUBJECT) });
  return builder;
}

// ---------------------------------------------------------------- validation

type Check = (value: string) => string | undefined;

const nonEmpty: Check = (value) => (value.trim() === '' ? 'must not be empty' : undefined);

const countryCode: Check = (value) =>
  /^[A-Z]{2}$/.test(value) ? undefined : `expected an ISO 3166-1 alpha-2 country code (two upper-case letters), got ${JSON.stringify(value)}`;

const currencyCode: Check = (value) =>
  /^[A-Z]{3}$/.test(value) ? undefined : `expected an ISO 4217 currency code (three upper-case letters), got ${JSON.stringify(value)}`;

// A valid ISO date-time before 1970 is refused: event times are ms since the epoch, never negative.
const fromEpoch: Check = (value) =>
  isIsoDateTime(value) && !(Date.parse(value) >= 0) ? `${JSON.stringify(value)} is before 1970-01-01T00:00:00Z` : undefined;

/** What Avro cannot check, by field: each runs only on a string (Avro reports anything else). */
const TRANSACTION_CHECKS: Readonly<Record<string, Check>> = {
  id: nonEmpty,
  user: nonEmpty,
  merchant: nonEmpty,
  country: countryCode,
  currency: currencyCode,
  at: fromEpoch,
};

const FEEDBACK_CHECKS: Readonly<Record<string, Check>> = {
  transaction_id: nonEmpty,
  user: nonEmpty,
  at: fromEpoch,
};

/** The value as a `Transaction`, or `MILLRACE_SCHEMA_VIOLATION` naming every issue. */
export function validateTransaction(registry: SchemaRegistry, value: unknown): Transaction {
  return validate<Transaction>(registry, TRANSACTIONS_SUBJECT, TRANSACTION_CHECKS, value);
}

/** The value as a `Feedback`, or `MILLRACE_SCHEMA_VIOLATION` naming every issue. */
export function validateFeedback(registry: SchemaRegistry, value: unknown): Feedback {
  return validate<Feedback>(registry, FEEDBACK_SUBJECT, FEEDBACK_CHECKS, value);
}

function validate<T>(registry: SchemaRegistry, subject: string, checks: Readonly<Record<string, Check>>, value: unknown): T {
  const schema = registry.cachedLatest(subject);
  if (schema === undefined) {
    throw new MillraceError('MILLRACE_SCHEMA_UNKNOWN', `no schema is registered under ${subject}: the ingest module registers it when it loads`);
  }
  const issues = validateValue(schema.type, value);
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const fields = value as Record<string, unknown>;
    for (const [field, check] of Object.entries(checks)) {
      const raw = fields[field];
      const problem = typeof raw === 'string' ? check(raw) : undefined;
      if (problem !== undefined) issues.push({ path: `/${field}`, message: problem });
    }
  }
  if (issues.length === 0) return value as T;
  const order = fieldOrder(schema.schema);
  const sorted = issues
    .map((issue, i) => ({ issue, i, rank: order.get(issue.path.split('/')[1] ?? '') ?? order.size }))
    .sort((a, b) => a.rank - b.rank || a.i - b.i)
    .map((entry) => entry.issue);
  throw violation(subject, schema.version, schema.id, sorted);
}

function violation(subject: string, version: number, schemaId: number, issues: readonly ValidationIssue[]): MillraceError {
  const listed = issues.map((issue) => `${issue.path === '' ? '' : `${issue.path}: `}${issue.message}`).join('; ');
  return new MillraceError(
    'MILLRACE_SCHEMA_VIOLATION',
    `the event does not match ${subject} v${version}: ${listed}`,
    { details: { issues, subject, version, schemaId } },
  );
}

const fieldOrders = new WeakMap<object, ReadonlyMap<string, number>>();

/** Field name → position in the schema, so issues come in the order of the fields. */
function fieldOrder(schema: unknown): ReadonlyMap<string, number> {
  if (typeof schema !== 'object' || schema === null) return new Map();
  let order = fieldOrders.get(schema);
  if (order === undefined) {
    const fields = (schema as { fields?: ReadonlyArray<{ name: string }> }).fields ?? [];
    order = new Map(fields.map((f, i) => [f.name, i]));
    fieldOrders.set(schema, order);
  }
  return order;
}

/**
 * Event time from `at`. An event whose `at` is not a usable date-time keeps the log record's timestamp: validation
 * then dead-letters it with every issue it has, rather than the timestamp extractor stopping at the first.
 */
export function eventTime(record: StreamRecord<unknown, unknown>): number {
  const value = record.value;
  if (typeof value === 'object' && value !== null) {
    const at = (value as { at?: unknown }).at;
    if (typeof at === 'string' && isIsoDateTime(at)) {
      const ms = Date.parse(at);
      if (Number.isSafeInteger(ms) && ms >= 0) return ms;
    }
  }
  return record.timestamp;
}

// ---------------------------------------------------------------- options

function stringOption(options: Readonly<Record<string, unknown>>, name: keyof IngestOptions): string | undefined {
  const value = options[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') {
    throw new MillraceError('MILLRACE_CONFIG_INVALID', `the ingest topology's option ${name} must be a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** The package's `schemas/`, from this file in the sources (topologies/pipeline) or in the build (dist/topologies/pipeline). */
const PACKAGE_SCHEMAS = [new URL('../../schemas/', import.meta.url), new URL('../../../schemas/', import.meta.url)].map((u) => fileURLToPath(u));

async function resolveSchemasDir(option: string | undefined): Promise<string> {
  if (option !== undefined) return isAbsolute(option) ? option : resolve(option);
  for (const dir of PACKAGE_SCHEMAS) {
    try {
      await access(resolve(dir, 'transaction', 'v1.avsc'));
      return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  throw new MillraceError(
    'MILLRACE_TOPOLOGY_MODULE',
    `the ingest topology found no schemas/transaction/v1.avsc in ${PACKAGE_SCHEMAS.join(' or ')}; set its option schemasDir`,
  );
}
