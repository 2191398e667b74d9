import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type avro from 'avsc';
import { MillraceError, errorMessage } from '../errors.js';
import { parseAvroSchema } from './logical-types.js';
import type { RegisteredSchema, SchemaRegistry } from './registry.js';

/**
 * The `schemas/` folder: one folder per event type, one file per version, golden fixtures beside them.
 *
 *     schemas/<name>/v1.avsc, v2.avsc, …        the versions, from v1 with no gaps
 *     schemas/<name>/fixtures/<anything>.json   golden fixtures
 *
 * A fixture is one event as a producer of one version wrote it:
 *
 *     {
 *       "description": "what the fixture shows",
 *       "schemaVersion": 1,        // the file it was written with (v1.avsc)
 *       "value": { … },            // the event as JSON, valid for that version
 *       "avroHex": "0a…",          // optional: its Avro body (no Confluent header), pinned byte for byte
 *       "readAsLatest": { … }      // optional: the event as the newest version reads it
 *     }
 *
 * Values use avsc's JSON mapping: unions are plain values unless their branches are ambiguous (see logical-types).
 */

export interface SchemaFixture {
  /** The fixture's file name, for test names and errors. */
  readonly file: string;
  readonly description: string;
  readonly schemaVersion: number;
  readonly value: unknown;
  readonly avroHex?: string;
  readonly readAsLatest?: unknown;
}

const NAME_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
const VERSION_FILE = /^v([1-9][0-9]*)\.avsc$/;

/** The event types in a schemas folder: its subfolders that hold a `v1.avsc`, sorted. */
export async function listSchemaFolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || !NAME_PATTERN.test(entry.name)) continue;
    const files = await readdir(join(dir, entry.name));
    if (files.includes('v1.avsc')) names.push(entry.name);
  }
  return names.sort();
}

/**
 * The versions of one event type, oldest first, each checked to be a valid schema. `MILLRACE_SCHEMA_UNKNOWN` when
 * the folder is missing or empty, `MILLRACE_SCHEMA_INVALID` for a gap in the versions or an invalid file.
 */
export async function loadSchemaVersions(dir: string, name: string): Promise<avro.Schema[]> {
  const folder = eventFolder(dir, name);
  let files: string[];
  try {
    files = await readdir(folder);
  } catch (err) {
    throw new MillraceError('MILLRACE_SCHEMA_UNKNOWN', `no schema folder ${folder} (${errorMessage(err)})`, { cause: err });
  }
  const versions = files
    .map((file) => ({ file, match: VERSION_FILE.exec(file) }))
    .filter((v) => v.match !== null)
    .map((v) => ({ file: v.file, version: Number(v.match![1]) }))
    .sort((a, b) => a.version - b.version);
  if (versions.length === 0) throw new MillraceError('MILLRACE_SCHEMA_UNKNOWN', `no v1.avsc in ${folder}`);
  const schemas: avro.Schema[] = [];
  for (const [index, { file, version }] of versions.entries()) {
    if (version !== index + 1) {
      throw new MillraceError(
        'MILLRACE_SCHEMA_INVALID',
        `${folder} has ${file} but no v${index + 1}.avsc: versions must not skip`,
      );
    }
    const path = join(folder, file);
    const schema = (await readJson(path)) as avro.Schema;
    try {
      parseAvroSchema(schema);
    } catch (err) {
      throw new MillraceError('MILLRACE_SCHEMA_INVALID', `${path}: ${errorMessage(err)}`, { cause: err });
    }
    schemas.push(schema);
  }
  return schemas;
}

/** The golden fixtures of one event type, sorted by file name; none when there is no fixtures folder. */
export async function loadSchemaFixtures(dir: string, name: string): Promise<SchemaFixture[]> {
  const folder = join(eventFolder(dir, name), 'fixtures');
  let files: string[];
  try {
    files = (await readdir(folder)).filter((f) => f.endsWith('.json')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const fixtures: SchemaFixture[] = [];
  for (const file of files) {
    const path = join(folder, file);
    const raw = (await readJson(path)) as Partial<SchemaFixture> | null;
    if (
      typeof raw !== 'object' ||
      raw === null ||
      !Number.isSafeInteger(raw.schemaVersion) ||
      raw.value === undefined ||
      (raw.avroHex !== undefined && (typeof raw.avroHex !== 'string' || !/^([0-9a-f]{2})*$/.test(raw.avroHex)))
    ) {
      throw new MillraceError(
        'MILLRACE_SCHEMA_INVALID',
        `${path}: a fixture is {"description", "schemaVersion": <n>, "value": {…}, ` +
          '"avroHex"?: "<lower-case hex>", "readAsLatest"?: {…}}',
      );
    }
    const { schemaVersion, value } = raw as SchemaFixture;
    fixtures.push({ ...raw, file, description: raw.description ?? file, schemaVersion, value });
  }
  return fixtures;
}

/**
 * Registers every version of an event type under `subject`, in order, so that each is checked BACKWARD compatible
 * with the one before. Versions already registered are returned as they are. Returns one registration per file.
 */
export async function registerSchemaFolder(
  registry: SchemaRegistry,
  subject: string,
  dir: string,
  name: string,
): Promise<RegisteredSchema[]> {
  const registered: RegisteredSchema[] = [];
  for (const schema of await loadSchemaVersions(dir, name)) registered.push(await registry.register(subject, schema));
  return registered;
}

function eventFolder(dir: string, name: string): string {
  if (!NAME_PATTERN.test(name)) {
    throw new MillraceError('MILLRACE_SCHEMA_UNKNOWN', `${JSON.stringify(name)} is not an event type folder name`);
  }
  return join(dir, name);
}

async function readJson(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new MillraceError('MILLRACE_SCHEMA_INVALID', `${path} is not valid JSON: ${errorMessage(err)}`, { cause: err });
  }
}
