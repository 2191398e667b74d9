import type avro from 'avsc';
import { MillraceError } from '../errors.js';
import { deserializationError, type SerdeContext } from './serde.js';

/**
 * A bounded check of Avro binary data before avsc decodes it.
 *
 * avsc trusts the counts it reads: six bytes holding an empty string and then an array block count of 2×10^8
 * make `fromBuffer` allocate until the heap is exhausted, which aborts the process (it cannot be caught). The check
 * walks the writer's type over the bytes, without decoding or allocating per item, and refuses any length or count
 * the bytes cannot justify, before avsc sees them.
 */

export interface AvroLimits {
  /** Most array items and map entries in one value, summed over all its arrays and maps (items of `null` too). */
  readonly maxCollectionItems: number;
  /** Longest `string` or `bytes` value. No length may exceed the bytes present, whatever this says. */
  readonly maxBytesLength: number;
  /** Deepest nesting of records, arrays and maps (a recursive schema can nest as deep as the bytes allow). */
  readonly maxDepth: number;
}

export const DEFAULT_AVRO_LIMITS: AvroLimits = Object.freeze({
  maxCollectionItems: 1_000_000,
  maxBytesLength: Number.POSITIVE_INFINITY,
  maxDepth: 256,
});

/** Fills in defaults and validates; `MILLRACE_CONFIG_INVALID` for a limit that is not a non-negative number. */
export function avroLimits(overrides: Partial<AvroLimits> = {}): AvroLimits {
  const limits = { ...DEFAULT_AVRO_LIMITS, ...overrides };
  const problems = [
    isCount(limits.maxCollectionItems, 0) ? undefined : 'maxCollectionItems must be an integer ≥ 0',
    typeof limits.maxBytesLength === 'number' && limits.maxBytesLength >= 0 ? undefined : 'maxBytesLength must be ≥ 0',
    isCount(limits.maxDepth, 1) ? undefined : 'maxDepth must be an integer ≥ 1',
  ].filter((p) => p !== undefined);
  if (problems.length > 0) {
    throw new MillraceError('MILLRACE_CONFIG_INVALID', `invalid Avro limits: ${problems.join('; ')}`);
  }
  return Object.freeze(limits);
}

function isCount(value: unknown, min: number): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min;
}

// Node kinds. A plain number keeps the walk's switch monomorphic.
const NULL = 0;
const BOOLEAN = 1;
const INT = 2;
const LONG = 3;
const FLOAT = 4;
const DOUBLE = 5;
const BYTES = 6; // and string
const FIXED = 7;
const ENUM = 8;
const ARRAY = 9;
const MAP = 10;
const RECORD = 11;
const UNION = 12;

/** The writer's type compiled for the walk: every node has the same shape. */
interface Node {
  kind: number;
  /** Fixed: its size. Enum: its symbol count. Union: its branch count. */
  size: number;
  /** A lower bound on the encoded size of any value of this type. */
  minBytes: number;
  /** The exact encoded size when every value has the same one, else -1 (such arrays are skipped, not walked). */
  width: number;
  /** Array items, map values. */
  child: Node | null;
  /** Record fields, union branches. */
  children: Node[];
}

const compiled = new WeakMap<avro.Type, Node>();

function nodeFor(type: avro.Type): Node {
  const cached = compiled.get(type);
  if (cached !== undefined) return cached;
  const created: Node[] = [];
  const node = compile(type, created);
  computeSizes(created);
  return node;
}

function compile(type: avro.Type, created: Node[]): Node {
  const cached = compiled.get(type);
  if (cached !== undefined) return cached;
  const name = type.typeName;
  if (name.startsWith('logical:')) {
    const node = compile((type as avro.types.LogicalType).underlyingType, created);
    compiled.set(type, node);
    return node;
  }
  const node: Node = { kind: NULL, size: 0, minBytes: 0, width: -1, child: null, children: [] };
  // Registered before the children, so that a recursive reference finds it.
  compiled.set(type, node);
  created.push(node);
  switch (name) {
    case 'null':
      node.kind = NULL;
      break;
    case 'boolean':
      node.kind = BOOLEAN;
      break;
    case 'int':
      node.kind = INT;
      break;
    case 'long':
    case 'abstract:long':
      node.kind = LONG;
      break;
    case 'float':
      node.kind = FLOAT;
      break;
    case 'double':
      node.kind = DOUBLE;
      break;
    case 'bytes':
    case 'string':
      node.kind = BYTES;
      break;
    case 'fixed':
      node.kind = FIXED;
      node.size = (type as avro.types.FixedType).size;
      break;
    case 'enum':
      node.kind = ENUM;
      node.size = (type as avro.types.EnumType).symbols.length;
      break;
    case 'array':
      node.kind = ARRAY;
      node.child = compile((type as avro.types.ArrayType).itemsType, created);
      break;
    case 'map':
      node.kind = MAP;
      node.child = compile((type as avro.types.MapType).valuesType as avro.Type, created);
      break;
    case 'record':
    case 'error':
      node.kind = RECORD;
      for (const field of (type as avro.types.RecordType).fields) node.children.push(compile(field.type, created));
      break;
    case 'union:wrapped':
    case 'union:unwrapped':
      node.kind = UNION;
      for (const branch of (type as avro.types.UnwrappedUnionType).types) node.children.push(compile(branch, created));
      node.size = node.children.length;
      break;
    default:
      throw new TypeError(`no Avro bounds check for type ${name}`);
  }
  return node;
}

const FIXED_WIDTHS = [0, 1, -1, -1, 4, 8, -1];

/**
 * Sizes by iteration to a fixed point, since recursive types refer to themselves. Starting from 0 and only
 * growing, every intermediate value is a lower bound, so stopping early (a type with no finite value) stays safe.
 */
function computeSizes(nodes: readonly Node[]): void {
  for (const node of nodes) {
    if (node.kind <= BYTES) {
      node.width = FIXED_WIDTHS[node.kind] ?? -1;
      node.minBytes = node.width >= 0 ? node.width : 1;
    } else if (node.kind === FIXED) {
      node.width = node.minBytes = node.size;
    } else if (node.kind !== RECORD && node.kind !== UNION) {
      node.minBytes = 1; // enum index, or the count that ends an array or map
    }
  }
  for (let round = 0, changed = true; changed && round < 64; round++) {
    changed = false;
    for (const node of nodes) {
      let min = node.minBytes;
      if (node.kind === RECORD) {
        min = 0;
        for (const child of node.children) min += child.minBytes;
      } else if (node.kind === UNION) {
        min = Number.POSITIVE_INFINITY;
        for (const child of node.children) min = Math.min(min, child.minBytes);
        min += 1; // the branch index
      }
      if (min !== node.minBytes) {
        node.minBytes = min;
        changed = true;
      }
    }
  }
  // Children were created after their parents: in reverse, a record's fields have their widths before it.
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i]!;
    if (node.kind === RECORD) {
      node.width = 0;
      for (const child of node.children) {
        if (child.width < 0 || child === node) {
          node.width = -1;
          break;
        }
        node.width += child.width;
      }
    }
  }
}

class BoundsViolation extends Error {
  constructor(
    readonly reason: string,
    readonly position: number,
  ) {
    super(reason);
  }
}

// State of the walk in progress. The walk is synchronous and never re-entered, so module-level scratch is safe and
// keeps the hot path free of per-call allocations.
let varint = 0;
let itemsLeft = 0;
let maxBytesLength = 0;
let maxDepth = 0;

/**
 * Throws `MILLRACE_DESERIALIZATION` unless `buf` from `start` to its end holds exactly one value of `type` (the
 * writer's type) within `limits`: every length and block count fits the bytes that remain, collections hold at most
 * `maxCollectionItems` items in all, nesting stays within `maxDepth`, union and enum indices are in range, varints are
 * well formed, and no bytes trail the value.
 */
export function checkAvroBounds(
  type: avro.Type,
  buf: Buffer,
  start: number,
  limits: AvroLimits = DEFAULT_AVRO_LIMITS,
  context?: SerdeContext,
): void {
  const root = nodeFor(type);
  itemsLeft = limits.maxCollectionItems;
  maxBytesLength = limits.maxBytesLength;
  maxDepth = limits.maxDepth;
  try {
    const end = walk(root, buf, start, buf.length, 1);
    if (end !== buf.length) throw new BoundsViolation(`${buf.length - end} bytes trail the value`, end);
  } catch (err) {
    if (!(err instanceof BoundsViolation)) throw err;
    const reason = `${err.reason} (at byte ${err.position})`;
    throw context === undefined
      ? new MillraceError('MILLRACE_DESERIALIZATION', `cannot deserialise Avro data: ${reason}`, {
          details: { position: err.position },
        })
      : deserializationError(context, reason);
  }
}

/** Reads a zigzag varint of at most `maxBytes` into `varint`; returns the position after it. */
function readVarint(buf: Buffer, pos: number, end: number, maxBytes: number, lastByteMax: number): number {
  const at = pos;
  let unsigned = 0;
  let scale = 1;
  let count = 0;
  let b: number;
  do {
    if (pos >= end) throw new BoundsViolation('truncated varint', at);
    if (count === maxBytes) throw new BoundsViolation(`varint longer than ${maxBytes} bytes`, at);
    b = buf[pos++]!;
    unsigned += (b & 0x7f) * scale;
    scale *= 128;
    count++;
  } while (b & 0x80);
  if (count === maxBytes && b > lastByteMax) {
    throw new BoundsViolation(`varint overflows ${maxBytes === 5 ? 32 : 64} bits`, at);
  }
  // Beyond 2^53 the parity is lost and the sign with it; such magnitudes are refused wherever they are used.
  varint = unsigned % 2 === 0 ? unsigned / 2 : -(unsigned + 1) / 2;
  return pos;
}

function readInt(buf: Buffer, pos: number, end: number): number {
  return readVarint(buf, pos, end, 5, 0x0f);
}

function readLong(buf: Buffer, pos: number, end: number): number {
  return readVarint(buf, pos, end, 10, 0x01);
}

function walk(node: Node, buf: Buffer, pos: number, end: number, depth: number): number {
  switch (node.kind) {
    case NULL:
      return pos;
    case BOOLEAN:
    case FLOAT:
    case DOUBLE:
    case FIXED:
      if (node.width > end - pos) throw new BoundsViolation(`${node.width} bytes needed, ${end - pos} remain`, pos);
      return pos + node.width;
    case INT:
      return readInt(buf, pos, end);
    case LONG:
      return readLong(buf, pos, end);
    case BYTES: {
      const at = pos;
      pos = readLong(buf, pos, end);
      const length = varint;
      if (length < 0) throw new BoundsViolation(`negative length ${length}`, at);
      if (length > end - pos) {
        throw new BoundsViolation(`length ${length} exceeds the ${end - pos} bytes that remain`, at);
      }
      if (length > maxBytesLength) {
        throw new BoundsViolation(`length ${length} exceeds the limit of ${maxBytesLength}`, at);
      }
      return pos + length;
    }
    case ENUM: {
      const at = pos;
      pos = readInt(buf, pos, end);
      if (varint < 0 || varint >= node.size) throw new BoundsViolation(`enum index ${varint} out of range`, at);
      return pos;
    }
    case UNION: {
      const at = pos;
      pos = readLong(buf, pos, end);
      const branch = node.children[varint];
      if (branch === undefined) throw new BoundsViolation(`union index ${varint} out of range`, at);
      return walk(branch, buf, pos, end, depth);
    }
    case RECORD: {
      if (depth > maxDepth) throw new BoundsViolation(`nesting deeper than ${maxDepth}`, pos);
      const fields = node.children;
      for (let i = 0; i < fields.length; i++) pos = walk(fields[i]!, buf, pos, end, depth + 1);
      return pos;
    }
    case ARRAY:
    case MAP:
      if (depth > maxDepth) throw new BoundsViolation(`nesting deeper than ${maxDepth}`, pos);
      return walkBlocks(node, buf, pos, end, depth + 1);
    default:
      throw new TypeError(`unknown node kind ${node.kind}`);
  }
}

function walkBlocks(node: Node, buf: Buffer, pos: number, end: number, depth: number): number {
  const item = node.child!;
  const isMap = node.kind === MAP;
  // A map entry is a key (at least its length byte) and a value.
  const itemMinBytes = isMap ? 1 + item.minBytes : item.minBytes;
  const skipWidth = isMap ? -1 : item.width;
  for (;;) {
    const at = pos;
    pos = readLong(buf, pos, end);
    let count = varint;
    if (count === 0) return pos;
    let blockSize = -1;
    if (count < 0) {
      // A negative count is followed by the block's size in bytes.
      count = -count;
      pos = readLong(buf, pos, end);
      blockSize = varint;
      if (blockSize < 0 || blockSize > end - pos) {
        throw new BoundsViolation(`block size ${blockSize} does not fit the ${end - pos} bytes that remain`, at);
      }
    }
    const blockStart = pos;
    if (count > itemsLeft) {
      throw new BoundsViolation(`block of ${count} items passes the limit of items per value`, at);
    }
    if (itemMinBytes > 0 && count > (end - pos) / itemMinBytes) {
      throw new BoundsViolation(
        `block of ${count} items needs at least ${count * itemMinBytes} bytes, ${end - pos} remain`,
        at,
      );
    }
    itemsLeft -= count;
    if (skipWidth >= 0) {
      pos += count * skipWidth;
    } else {
      for (let i = 0; i < count; i++) {
        if (isMap) pos = walk(KEY, buf, pos, end, depth);
        pos = walk(item, buf, pos, end, depth);
      }
    }
    if (blockSize >= 0 && pos - blockStart !== blockSize) {
      throw new BoundsViolation(`block size says ${blockSize} bytes, its items take ${pos - blockStart}`, at);
    }
  }
}

const KEY: Node = { kind: BYTES, size: 0, minBytes: 1, width: -1, child: null, children: [] };
