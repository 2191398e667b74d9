import { isIPv4, isIPv6 } from 'node:net';
import avro from 'avsc';
import { MillraceError, errorMessage } from '../errors.js';

/**
 * Millrace's validating Avro types: what a schema can ask ingestion to check beyond the Avro types themselves.
 *
 * - `{"type": "string", "logicalType": "iso-datetime"}`: an ISO 8601 date-time with a time zone
 *   (`2026-01-02T03:04:05.123Z`, `2026-01-02T04:04:05+01:00`). The value stays a string.
 * - `{"type": "string", "logicalType": "ipv4" | "ipv6" | "ip"}`: an IP address (`ip` takes either).
 * - `{"type": "int" | "long" | "float" | "double", "minimum": 0, "maximum": 100}`: an inclusive range.
 *
 * The checks run when a value is validated (`validateValue`, which the Avro serde runs before encoding), never when
 * one is decoded: events already in a log stay readable when a later schema version tightens a rule.
 *
 * Unions are unwrapped (`["null", "string"]` takes `null` or `"text"`) unless their branches cannot be told apart
 * from a JSON value (two number types, two records); such unions take `{"<branch name>": value}`.
 */

/** One problem with a value, at a JSON pointer into it (`/items/2/ip`; `''` is the value itself). */
export interface ValidationIssue {
  readonly path: string;
  readonly message: string;
}

export const STRING_FORMATS = ['iso-datetime', 'ipv4', 'ipv6', 'ip'] as const;
export type StringFormat = (typeof STRING_FORMATS)[number];

const NUMERIC_TYPES: ReadonlySet<unknown> = new Set(['int', 'long', 'float', 'double']);

type SchemaObject = Record<string, unknown>;

// Date, time, fraction (any precision), then a mandatory zone: Z or ±hh:mm (the RFC 3339 profile of ISO 8601).
const ISO_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:Z|[+-](\d{2}):(\d{2}))$/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

export function isIsoDateTime(value: string): boolean {
  const m = ISO_DATE_TIME.exec(value);
  if (m === null) return false;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]!;
  if (day > days) return false;
  if (Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6]) > 59) return false;
  if (m[7] !== undefined && (Number(m[7]) > 23 || Number(m[8]) > 59)) return false;
  return true;
}

const FORMAT_CHECKS: Record<StringFormat, (value: string) => boolean> = {
  'iso-datetime': isIsoDateTime,
  ipv4: isIPv4,
  ipv6: isIPv6,
  ip: (value) => isIPv4(value) || isIPv6(value),
};

const FORMAT_LABELS: Record<StringFormat, string> = {
  'iso-datetime': 'an ISO 8601 date-time',
  ipv4: 'an IPv4 address',
  ipv6: 'an IPv6 address',
  ip: 'an IP address',
};

/** The avsc resolver type (not exported by its typings). */
type Resolver = ReturnType<avro.Type['createResolver']>;
interface MutableResolver {
  _read: ((tap: unknown, lazy?: boolean) => unknown) | null;
}

type CheckHook = (value: unknown, type: avro.Type) => void;

/** A logical type that checks values on validation, and reads and writes them exactly as its underlying type. */
abstract class ValidatingType extends avro.types.LogicalType {
  /** A human sentence saying why `value` is refused; only called for values that `accepts` refuses. */
  abstract describeProblem(value: unknown): string;
  protected abstract accepts(value: unknown): boolean;

  protected override _fromValue(value: unknown): unknown {
    return value;
  }

  protected override _toValue(value: unknown): unknown {
    return value;
  }

  // Only validation checks (avsc's `isValid`, and unions choosing a branch): encoding does not, since avsc encodes
  // field defaults while it parses, before `parseAvroSchema` can report a bad one clearly.
  _check(value: unknown, flags: number, hook: CheckHook | undefined, path: string[]): boolean {
    if (!this.accepts(value)) {
      hook?.(value, this);
      return false;
    }
    return (this.underlyingType as unknown as ValidatingType)._check(value, flags, hook, path);
  }

  protected override _resolve(): unknown {
    throw new TypeError('unreachable: ValidatingType resolves through _update');
  }

  // avsc's default resolution reads with the writer's type and then converts; delegating to the underlying type
  // keeps Avro's promotions (int → long, bytes → string) and reads a writer that used the same logical type.
  _update(resolver: MutableResolver, writerType: avro.Type, opts: unknown): void {
    const inner = this.underlyingType.createResolver(writerType, opts as object) as unknown as MutableResolver;
    const read = inner._read;
    if (read !== null) resolver._read = (tap, lazy) => read.call(inner, tap, lazy);
  }
}

class StringFormatType extends ValidatingType {
  readonly format: StringFormat;
  readonly #check: (value: string) => boolean;

  constructor(schema: SchemaObject, opts: unknown) {
    super(schema as avro.Schema, opts);
    this.format = schema['logicalType'] as StringFormat;
    this.#check = FORMAT_CHECKS[this.format];
  }

  protected accepts(value: unknown): boolean {
    return typeof value === 'string' && this.#check(value);
  }

  describeProblem(value: unknown): string {
    return `expected ${FORMAT_LABELS[this.format]}, got ${describeValue(value)}`;
  }
}

class RangeType extends ValidatingType {
  readonly minimum: number | undefined;
  readonly maximum: number | undefined;
  /** A logical type Millrace does not implement (`timestamp-millis`), kept so the schema exports unchanged. */
  readonly declaredLogicalType: string | undefined;

  constructor(schema: SchemaObject, opts: unknown) {
    super(schema as avro.Schema, opts);
    this.minimum = schema['minimum'] as number | undefined;
    this.maximum = schema['maximum'] as number | undefined;
    this.declaredLogicalType = schema['logicalType'] as string | undefined;
  }

  protected accepts(value: unknown): boolean {
    return (
      typeof value === 'number' &&
      (this.minimum === undefined || value >= this.minimum) &&
      (this.maximum === undefined || value <= this.maximum)
    );
  }

  protected override _export(schema: avro.Schema): void {
    const attrs = schema as SchemaObject;
    if (this.declaredLogicalType === undefined) delete attrs['logicalType'];
    if (this.minimum !== undefined) attrs['minimum'] = this.minimum;
    if (this.maximum !== undefined) attrs['maximum'] = this.maximum;
  }

  describeProblem(value: unknown): string {
    if (typeof value !== 'number' || Number.isNaN(value)) {
      return `expected ${describeType(this.underlyingType)}, got ${describeValue(value)}`;
    }
    if (this.minimum !== undefined && value < this.minimum) return `${value} is below the minimum ${this.minimum}`;
    return `${value} is above the maximum ${String(this.maximum)}`;
  }
}

Object.defineProperty(RangeType.prototype, 'typeName', {
  enumerable: true,
  get(this: RangeType) {
    return `logical:${this.declaredLogicalType ?? 'range'}`;
  },
});

/** Schemas handed to a validating type's constructor, which parses them again as its underlying type. */
const underlyingSchemas = new WeakSet<object>();

function construct(Type: typeof StringFormatType | typeof RangeType, schema: SchemaObject, opts: unknown): avro.Type {
  underlyingSchemas.add(schema);
  try {
    return new Type(schema, opts);
  } finally {
    underlyingSchemas.delete(schema);
  }
}

function typeHook(schema: avro.Schema, opts: unknown): avro.Type | undefined {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema) || underlyingSchemas.has(schema)) {
    return undefined;
  }
  const attrs = schema as SchemaObject;
  const logicalType = attrs['logicalType'];
  const hasRange = attrs['minimum'] !== undefined || attrs['maximum'] !== undefined;
  if (typeof logicalType === 'string' && (STRING_FORMATS as readonly string[]).includes(logicalType)) {
    if (attrs['type'] !== 'string') {
      throw new Error(`logical type ${logicalType} applies to strings, not to ${JSON.stringify(attrs['type'])}`);
    }
    if (hasRange) throw new Error('minimum and maximum apply to int, long, float and double, not to strings');
    return construct(StringFormatType, attrs, opts);
  }
  if (!hasRange) return undefined;
  if (!NUMERIC_TYPES.has(attrs['type'])) {
    throw new Error(`minimum and maximum apply to int, long, float and double, not to ${JSON.stringify(attrs['type'])}`);
  }
  for (const bound of ['minimum', 'maximum'] as const) {
    const n = attrs[bound];
    if (n !== undefined && (typeof n !== 'number' || !Number.isFinite(n))) {
      throw new Error(`${bound} must be a finite number, got ${JSON.stringify(n)}`);
    }
  }
  if ((attrs['minimum'] as number | undefined)! > (attrs['maximum'] as number | undefined)!) {
    throw new Error(`minimum ${String(attrs['minimum'])} is above maximum ${String(attrs['maximum'])}`);
  }
  return construct(RangeType, attrs, opts);
}

/** Attributes a record field may carry; Millrace's annotations belong on the field's type. */
const MISPLACED_FIELD_ATTRIBUTES = ['logicalType', 'minimum', 'maximum'];

function checkFieldAttributes(schema: unknown): void {
  if (Array.isArray(schema)) {
    for (const branch of schema) checkFieldAttributes(branch);
    return;
  }
  if (typeof schema !== 'object' || schema === null) return;
  const attrs = schema as SchemaObject;
  const fields = attrs['fields'];
  if (Array.isArray(fields)) {
    for (const field of fields as unknown[]) {
      if (typeof field !== 'object' || field === null) continue;
      const f = field as SchemaObject;
      const misplaced = MISPLACED_FIELD_ATTRIBUTES.find((key) => f[key] !== undefined);
      if (misplaced !== undefined) {
        throw new Error(
          `field ${JSON.stringify(f['name'])} declares ${misplaced} on the field, where Avro ignores it; ` +
            `put it on the field's type: {"name": ${JSON.stringify(f['name'])}, "type": {"type": ` +
            `${JSON.stringify(f['type'])}, "${misplaced}": …}}`,
        );
      }
      checkFieldAttributes(f['type']);
    }
  }
  checkFieldAttributes(attrs['items']);
  checkFieldAttributes(attrs['values']);
  if (typeof attrs['type'] === 'object') checkFieldAttributes(attrs['type']);
}

/**
 * Parses an Avro schema with Millrace's validating types. Throws `MILLRACE_SCHEMA_INVALID` for anything that is not
 * a valid Avro schema, for misplaced annotations and for field defaults that fail their own checks.
 */
export function parseAvroSchema(schema: avro.Schema): avro.Type {
  let type: avro.Type;
  try {
    checkFieldAttributes(schema);
    // avsc mutates the options (registry, namespace): a fresh object per parse.
    type = avro.Type.forSchema(schema, { typeHook, wrapUnions: 'auto', registry: {} } as Partial<avro.ForSchemaOptions>);
  } catch (err) {
    throw new MillraceError('MILLRACE_SCHEMA_INVALID', `invalid Avro schema: ${errorMessage(err)}`, { cause: err });
  }
  checkUnions(type);
  checkDefaults(type);
  return type;
}

/**
 * avsc leaves a union unwrapped when its only clash involves a logical type, and then throws on every value both
 * branches take (`["int", {"type": "double", "minimum": 0}]` and any number): refuse such a schema up front.
 */
function checkUnions(root: avro.Type): void {
  forEachType(root, (type) => {
    if (type.typeName !== 'union:unwrapped') return;
    const seen = new Map<string, avro.Type>();
    for (const branch of (type as avro.types.UnwrappedUnionType).types) {
      const bucket = typeBucket(branch);
      const other = seen.get(bucket);
      if (other !== undefined) {
        throw new MillraceError(
          'MILLRACE_SCHEMA_INVALID',
          `invalid Avro schema: the union ${JSON.stringify(type.schema({ exportAttrs: true }))} has two branches ` +
            `a JSON value cannot tell apart (${String(other.branchName)} and ${String(branch.branchName)}); keep one`,
        );
      }
      seen.set(bucket, branch);
    }
  });
}

function checkDefaults(root: avro.Type): void {
  forEachType(root, (type) => {
    if (!isRecord(type)) return;
    for (const field of type.fields) {
      const value: unknown = field.defaultValue();
      if (value === undefined) continue;
      const issue = validateValue(field.type, value)[0];
      if (issue !== undefined) {
        throw new MillraceError(
          'MILLRACE_SCHEMA_INVALID',
          `invalid Avro schema: the default of field ${field.name} of ${String(type.name)} is invalid` +
            `${issue.path === '' ? '' : ` at ${issue.path}`}: ${issue.message}`,
        );
      }
    }
  });
}

/** Visits every type reachable from `root` once (named types are shared, so recursive schemas terminate). */
function forEachType(root: avro.Type, visit: (type: avro.Type) => void): void {
  const seen = new Set<avro.Type>();
  const stack = [root];
  while (stack.length > 0) {
    const type = stack.pop()!;
    if (seen.has(type)) continue;
    seen.add(type);
    visit(type);
    const name = type.typeName;
    if (name.startsWith('logical:')) stack.push((type as avro.types.LogicalType).underlyingType);
    else if (isRecord(type)) for (const field of type.fields) stack.push(field.type);
    else if (name === 'array') stack.push((type as avro.types.ArrayType).itemsType);
    else if (name === 'map') stack.push((type as avro.types.MapType).valuesType as avro.Type);
    else if (name.startsWith('union:')) stack.push(...(type as avro.types.UnwrappedUnionType).types);
  }
}

/**
 * What makes two schemas the same registration: avsc's export with attributes (names, defaults, docs, aliases,
 * Millrace's annotations), plus every other attribute written in the schema (`logicalType`s Millrace does not
 * implement, `precision`, `scale`…), which avsc drops. Attributes are listed by the position of their type in
 * document order, which two schemas with the same export share.
 */
export function canonicalSchemaKey(schema: avro.Schema, type: avro.Type): string {
  const extras: unknown[] = [];
  let position = 0;
  const visit = (node: unknown): void => {
    const at = position++;
    if (Array.isArray(node)) {
      for (const branch of node) visit(branch);
      return;
    }
    if (typeof node !== 'object' || node === null || avro.Type.isType(node)) return;
    const attrs = node as SchemaObject;
    const own = extraAttributes(attrs, TYPE_ATTRIBUTES);
    if (own !== undefined) extras.push(['type', at, own]);
    if (Array.isArray(attrs['fields'])) {
      (attrs['fields'] as unknown[]).forEach((field, i) => {
        if (typeof field !== 'object' || field === null) return;
        const fieldExtras = extraAttributes(field as SchemaObject, FIELD_ATTRIBUTES);
        if (fieldExtras !== undefined) extras.push(['field', at, i, fieldExtras]);
        visit((field as SchemaObject)['type']);
      });
    }
    if (attrs['items'] !== undefined) visit(attrs['items']);
    if (attrs['values'] !== undefined) visit(attrs['values']);
    if (typeof attrs['type'] === 'object') visit(attrs['type']);
  };
  visit(schema);
  return JSON.stringify(type.schema({ exportAttrs: true })) + '\n' + stableStringify(extras);
}

const TYPE_ATTRIBUTES = new Set([
  ...['type', 'name', 'namespace', 'aliases', 'doc'],
  ...['fields', 'items', 'values', 'symbols', 'size', 'default'],
]);
const FIELD_ATTRIBUTES = new Set(['name', 'type', 'default', 'order', 'aliases', 'doc']);

function extraAttributes(attrs: SchemaObject, known: ReadonlySet<string>): SchemaObject | undefined {
  let extras: SchemaObject | undefined;
  for (const key of Object.keys(attrs).sort()) {
    if (known.has(key)) continue;
    extras ??= {};
    extras[key] = attrs[key];
  }
  return extras;
}

function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const attrs = value as SchemaObject;
    return `{${Object.keys(attrs)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableStringify(attrs[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const FAST_CHECK = { noUndeclaredFields: true } as const;

/**
 * Every problem with `value` as an event of `type`, or `[]` when it is valid: wrong types, missing required fields,
 * undeclared fields, and Millrace's checks (date-times, IP addresses, ranges).
 */
export function validateValue(type: avro.Type, value: unknown): ValidationIssue[] {
  try {
    if (type.isValid(value, FAST_CHECK)) return [];
  } catch {
    // avsc can throw on a value (two unwrapped union branches taking it); the slow path reports it with its path.
  }
  const issues: ValidationIssue[] = [];
  collectIssues(type, value, [], issues);
  return issues;
}

function collectIssues(type: avro.Type, value: unknown, prefix: readonly string[], issues: ValidationIssue[]): void {
  try {
    type.isValid(value, {
      noUndeclaredFields: true,
      errorHook: (path: string[], any: unknown, failing: avro.Type) => {
        reportIssue(failing, any, prefix.length === 0 ? path : [...prefix, ...path], issues);
      },
    });
  } catch (err) {
    // avsc throws when two branches of an unwrapped union both take a value ("ambiguous conversion").
    issues.push({ path: pointer(prefix), message: `cannot check this value: ${errorMessage(err)}` });
  }
}

function reportIssue(type: avro.Type, value: unknown, path: string[], issues: ValidationIssue[]): void {
  if (value === undefined) {
    issues.push({ path: pointer(path), message: path.length === 0 ? 'no value' : 'required field missing' });
    return;
  }
  if (isRecord(type) && isPlainObject(value)) {
    // avsc stops at a record with undeclared fields: name each one, then check the declared fields.
    const declared = new Set(type.fields.map((f) => f.name));
    for (const key of Object.keys(value)) {
      if (declared.has(key)) continue;
      issues.push({ path: pointer([...path, key]), message: `unknown field ${JSON.stringify(key)}` });
    }
    for (const field of type.fields) {
      const fieldValue = value[field.name];
      if (fieldValue === undefined && field.defaultValue() !== undefined) continue;
      collectIssues(field.type, fieldValue, [...path, field.name], issues);
    }
    return;
  }
  if (type.typeName === 'union:unwrapped') {
    // A union refuses a value no branch takes; when one branch is of the value's kind, its own message says why.
    const bucket = valueBucket(value);
    const candidates = (type as avro.types.UnwrappedUnionType).types.filter((t) => typeBucket(t) === bucket);
    if (candidates.length === 1) {
      collectIssues(candidates[0]!, value, path, issues);
      return;
    }
  }
  issues.push({ path: pointer(path), message: describeMismatch(type, value) });
}

function describeMismatch(type: avro.Type, value: unknown): string {
  if (type instanceof ValidatingType) return type.describeProblem(value);
  const got = describeValue(value);
  switch (type.typeName) {
    case 'union:unwrapped':
    case 'union:wrapped': {
      const branches = (type as avro.types.UnwrappedUnionType).types.map((t) => t.branchName ?? t.typeName).join(' or ');
      return type.typeName === 'union:wrapped'
        ? `expected ${branches}, written as {"<branch>": value}, got ${got}`
        : `expected ${branches}, got ${got}`;
    }
    case 'enum': {
      const symbols = (type as avro.types.EnumType).symbols;
      const listed = symbols.slice(0, 10).map((s) => JSON.stringify(s)).join(', ');
      return `expected one of ${listed}${symbols.length > 10 ? ', …' : ''}, got ${got}`;
    }
    default:
      return `expected ${describeType(type)}, got ${got}`;
  }
}

function describeType(type: avro.Type): string {
  switch (type.typeName) {
    case 'null':
      return 'null';
    case 'boolean':
      return 'a boolean';
    case 'int':
      return 'an int (a 32-bit integer)';
    case 'long':
    case 'abstract:long':
      return 'a long (a safe integer)';
    case 'float':
    case 'double':
      return `a ${type.typeName} (a number)`;
    case 'string':
      return 'a string';
    case 'bytes':
      return 'bytes';
    case 'fixed':
      return `${(type as avro.types.FixedType).size} bytes`;
    case 'array':
      return 'an array';
    case 'map':
      return 'an object (a map)';
    case 'record':
    case 'error':
      return `an object (record ${String(type.name)})`;
    default:
      return type.typeName;
  }
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') {
    return value.length > 64 ? `${JSON.stringify(value.slice(0, 64))}… (${value.length} characters)` : JSON.stringify(value);
  }
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return 'an array';
  if (Buffer.isBuffer(value)) return 'bytes';
  return `${typeof value === 'object' ? 'an object' : `a ${typeof value}`}`;
}

function valueBucket(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (Buffer.isBuffer(value)) return 'buffer';
  return typeof value;
}

function typeBucket(type: avro.Type): string {
  const t = type.typeName.startsWith('logical:') ? (type as avro.types.LogicalType).underlyingType : type;
  switch (t.typeName) {
    case 'int':
    case 'long':
    case 'float':
    case 'double':
    case 'abstract:long':
      return 'number';
    case 'bytes':
    case 'fixed':
      return 'buffer';
    case 'enum':
      return 'string';
    case 'map':
    case 'record':
    case 'error':
      return 'object';
    default:
      return t.typeName;
  }
}

function pointer(path: readonly string[]): string {
  let out = '';
  for (const segment of path) out += '/' + segment.replaceAll('~', '~0').replaceAll('/', '~1');
  return out;
}

function isRecord(type: avro.Type): type is avro.types.RecordType {
  return type.typeName === 'record' || type.typeName === 'error';
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

export type { Resolver as AvroResolver };
