/**
 * The embedded log's on-disk format: one LevelDB key space, binary keys that sort in offset order.
 *
 *   01 name                        topic metadata (JSON)
 *   02 tid p                       partition state: start, end, size, max timestamp, dirty count
 *   03 tid p offset                record
 *   04 tid p timestamp             time index: an entry whenever a record raises the partition's max timestamp
 *   05 len group tid p             consumer-group committed offset
 *   06 tid p key                   latest offset per key (compacted topics): drives compaction
 *   07 ...                         local state (stores), written atomically with transactions
 *   08                             topic id sequence
 *
 * `tid` is a u32 assigned at creation and never reused, so a deleted and re-created topic shares nothing.
 * Integers are big-endian so byte order is numeric order; offsets and timestamps use 8 bytes.
 */
import type { Headers } from '../log.js';

export const PREFIX_TOPIC = 0x01;
export const PREFIX_PARTITION = 0x02;
export const PREFIX_RECORD = 0x03;
export const PREFIX_TIME_INDEX = 0x04;
export const PREFIX_GROUP = 0x05;
export const PREFIX_KEY_INDEX = 0x06;
export const PREFIX_LOCAL = 0x07;
export const PREFIX_SEQUENCE = 0x08;

const TWO_32 = 0x1_0000_0000;

export function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32BE(Math.floor(value / TWO_32), at);
  buf.writeUInt32BE(value % TWO_32, at + 4);
}

export function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32BE(at) * TWO_32 + buf.readUInt32BE(at + 4);
}

export function topicKey(name: string): Buffer {
  return Buffer.concat([Buffer.of(PREFIX_TOPIC), Buffer.from(name, 'utf8')]);
}

export function partitionKey(tid: number, partition: number): Buffer {
  const key = Buffer.allocUnsafe(9);
  key[0] = PREFIX_PARTITION;
  key.writeUInt32BE(tid, 1);
  key.writeUInt32BE(partition, 5);
  return key;
}

export function recordKey(tid: number, partition: number, offset: number): Buffer {
  const key = Buffer.allocUnsafe(17);
  key[0] = PREFIX_RECORD;
  key.writeUInt32BE(tid, 1);
  key.writeUInt32BE(partition, 5);
  writeU64(key, offset, 9);
  return key;
}

export function offsetOfRecordKey(key: Buffer): number {
  return readU64(key, 9);
}

export function timeIndexKey(tid: number, partition: number, timestamp: number): Buffer {
  const key = Buffer.allocUnsafe(17);
  key[0] = PREFIX_TIME_INDEX;
  key.writeUInt32BE(tid, 1);
  key.writeUInt32BE(partition, 5);
  writeU64(key, timestamp, 9);
  return key;
}

export function groupKey(group: string, tid: number, partition: number): Buffer {
  const name = Buffer.from(group, 'utf8');
  const key = Buffer.allocUnsafe(3 + name.length + 8);
  key[0] = PREFIX_GROUP;
  key.writeUInt16BE(name.length, 1);
  name.copy(key, 3);
  key.writeUInt32BE(tid, 3 + name.length);
  key.writeUInt32BE(partition, 7 + name.length);
  return key;
}

export function parseGroupKey(key: Buffer): { group: string; tid: number; partition: number } {
  const length = key.readUInt16BE(1);
  return {
    group: key.toString('utf8', 3, 3 + length),
    tid: key.readUInt32BE(3 + length),
    partition: key.readUInt32BE(7 + length),
  };
}

export function keyIndexKey(tid: number, partition: number, recordKeyBytes: Buffer): Buffer {
  const key = Buffer.allocUnsafe(9 + recordKeyBytes.length);
  key[0] = PREFIX_KEY_INDEX;
  key.writeUInt32BE(tid, 1);
  key.writeUInt32BE(partition, 5);
  recordKeyBytes.copy(key, 9);
  return key;
}

/** The half-open key range [lo, hi) holding every key that starts with `prefix`. */
export function prefixRange(prefix: Buffer): { gte: Buffer; lt: Buffer } {
  const hi = Buffer.from(prefix);
  for (let i = hi.length - 1; i >= 0; i--) {
    if (hi[i] !== 0xff) {
      hi[i] = hi[i]! + 1;
      return { gte: prefix, lt: hi.subarray(0, i + 1) };
    }
  }
  throw new RangeError('prefix of only 0xff bytes has no upper bound');
}

export function partitionPrefix(kind: number, tid: number, partition: number): Buffer {
  const key = Buffer.allocUnsafe(9);
  key[0] = kind;
  key.writeUInt32BE(tid, 1);
  key.writeUInt32BE(partition, 5);
  return key;
}

export function topicPrefix(kind: number, tid: number): Buffer {
  const key = Buffer.allocUnsafe(5);
  key[0] = kind;
  key.writeUInt32BE(tid, 1);
  return key;
}

export function u64Value(value: number): Buffer {
  const buf = Buffer.allocUnsafe(8);
  writeU64(buf, value, 0);
  return buf;
}

// ---- partition state ----

export interface PartitionStateRecord {
  start: number;
  end: number;
  sizeBytes: number;
  /** Largest timestamp appended so far, -1 when none: the time index only grows past it. */
  maxTimestamp: number;
  /** Records appended since the last compaction pass. */
  dirty: number;
}

export function encodePartitionState(state: PartitionStateRecord): Buffer {
  const buf = Buffer.allocUnsafe(40);
  writeU64(buf, state.start, 0);
  writeU64(buf, state.end, 8);
  writeU64(buf, state.sizeBytes, 16);
  buf.writeDoubleBE(state.maxTimestamp, 24);
  writeU64(buf, state.dirty, 32);
  return buf;
}

export function decodePartitionState(buf: Buffer): PartitionStateRecord {
  return {
    start: readU64(buf, 0),
    end: readU64(buf, 8),
    sizeBytes: readU64(buf, 16),
    maxTimestamp: buf.readDoubleBE(24),
    dirty: readU64(buf, 32),
  };
}

// ---- records ----
// [timestamp f64][flags u8][key len u32][key][value len u32][value][header count u16]([name len u16][name][len u32][value])*

const FLAG_KEY = 1;
const FLAG_VALUE = 2;

export function encodeRecord(timestamp: number, key: Buffer | null, value: Buffer | null, headers: Headers): Buffer {
  const names = Object.keys(headers);
  let size = 8 + 1 + 4 + (key?.length ?? 0) + 4 + (value?.length ?? 0) + 2;
  const encodedNames: Buffer[] = [];
  for (const name of names) {
    const encoded = Buffer.from(name, 'utf8');
    encodedNames.push(encoded);
    size += 2 + encoded.length + 4 + headers[name]!.length;
  }
  const buf = Buffer.allocUnsafe(size);
  buf.writeDoubleBE(timestamp, 0);
  buf[8] = (key === null ? 0 : FLAG_KEY) | (value === null ? 0 : FLAG_VALUE);
  let at = 9;
  buf.writeUInt32BE(key?.length ?? 0, at);
  at += 4;
  if (key !== null) at += key.copy(buf, at);
  buf.writeUInt32BE(value?.length ?? 0, at);
  at += 4;
  if (value !== null) at += value.copy(buf, at);
  buf.writeUInt16BE(names.length, at);
  at += 2;
  for (let i = 0; i < names.length; i++) {
    const name = encodedNames[i]!;
    const headerValue = headers[names[i]!]!;
    buf.writeUInt16BE(name.length, at);
    at += 2;
    at += name.copy(buf, at);
    buf.writeUInt32BE(headerValue.length, at);
    at += 4;
    at += headerValue.copy(buf, at);
  }
  return buf;
}

export interface DecodedRecord {
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Headers;
}

const NO_HEADERS: Headers = Object.freeze({});

/** Decodes a record this log wrote. Slices share the stored buffer: no copies. */
export function decodeRecord(buf: Buffer): DecodedRecord {
  const timestamp = buf.readDoubleBE(0);
  const flags = buf[8]!;
  let at = 9;
  const keyLength = buf.readUInt32BE(at);
  at += 4;
  const key = flags & FLAG_KEY ? buf.subarray(at, at + keyLength) : null;
  at += keyLength;
  const valueLength = buf.readUInt32BE(at);
  at += 4;
  const value = flags & FLAG_VALUE ? buf.subarray(at, at + valueLength) : null;
  at += valueLength;
  const count = buf.readUInt16BE(at);
  at += 2;
  if (count === 0) return { timestamp, key, value, headers: NO_HEADERS };
  const headers: Record<string, Buffer> = {};
  for (let i = 0; i < count; i++) {
    const nameLength = buf.readUInt16BE(at);
    at += 2;
    const name = buf.toString('utf8', at, at + nameLength);
    at += nameLength;
    const length = buf.readUInt32BE(at);
    at += 4;
    headers[name] = buf.subarray(at, at + length);
    at += length;
  }
  return { timestamp, key, value, headers };
}

/** Only the timestamp and key, for compaction and time scans. */
export function peekRecord(buf: Buffer): { timestamp: number; key: Buffer | null; isTombstone: boolean } {
  const flags = buf[8]!;
  const keyLength = buf.readUInt32BE(9);
  return {
    timestamp: buf.readDoubleBE(0),
    key: flags & FLAG_KEY ? buf.subarray(13, 13 + keyLength) : null,
    isTombstone: (flags & FLAG_VALUE) === 0,
  };
}

// ---- key index (compacted topics) ----

export function encodeKeyIndex(offset: number, timestamp: number, tombstone: boolean): Buffer {
  const buf = Buffer.allocUnsafe(17);
  writeU64(buf, offset, 0);
  buf.writeDoubleBE(timestamp, 8);
  buf[16] = tombstone ? 1 : 0;
  return buf;
}

export function decodeKeyIndex(buf: Buffer): { offset: number; timestamp: number; tombstone: boolean } {
  return { offset: readU64(buf, 0), timestamp: buf.readDoubleBE(8), tombstone: buf[16] === 1 };
}
