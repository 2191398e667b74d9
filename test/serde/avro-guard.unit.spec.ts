import avro from 'avsc';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isMillraceError } from '../../engine/errors.js';
import { DEFAULT_AVRO_LIMITS, avroLimits, checkAvroBounds, type AvroLimits } from '../../engine/serde/avro-guard.js';
import { parseAvroSchema } from '../../engine/serde/logical-types.js';

/** A zigzag varint, as Avro writes int and long. */
function long(n: number): number[] {
  let z = n >= 0 ? n * 2 : -n * 2 - 1;
  const out: number[] = [];
  while (z >= 0x80) {
    out.push((z % 0x80) | 0x80);
    z = Math.floor(z / 0x80);
  }
  out.push(z);
  return out;
}

const bytes = (...parts: (number | number[])[]): Buffer => Buffer.from(parts.flat());
const repeat = (times: number, part: number[]): number[] => Array.from({ length: times }, () => part).flat();

function refusal(type: avro.Type, buf: Buffer, limits?: AvroLimits): string {
  try {
    checkAvroBounds(type, buf, 0, limits);
  } catch (err) {
    if (isMillraceError(err, 'MILLRACE_DESERIALIZATION')) return err.message;
    throw err;
  }
  throw new Error('expected the bounds check to refuse the bytes');
}

const withArray = (items: avro.Schema) =>
  avro.Type.forSchema({ type: 'record', name: 'R', fields: [{ name: 's', type: 'string' }, { name: 'a', type: { type: 'array', items } }] });

interface TreeValue {
  label: string;
  next: TreeValue | null;
  children: TreeValue[];
}

const treeValues = fc.letrec<{ tree: TreeValue }>((tie) => ({
  tree: fc.record({
    label: fc.string({ maxLength: 4 }),
    next: fc.oneof({ maxDepth: 4, depthIdentifier: 'tree' }, fc.constant(null), tie('tree')),
    children: fc.oneof(
      { maxDepth: 4, depthIdentifier: 'tree' },
      fc.constant<TreeValue[]>([]),
      fc.array(tie('tree'), { maxLength: 3 }),
    ),
  }),
})).tree;

const tree = avro.Type.forSchema({
  type: 'record',
  name: 'Tree',
  fields: [
    { name: 'label', type: 'string' },
    { name: 'next', type: ['null', 'Tree'], default: null },
    { name: 'children', type: { type: 'array', items: 'Tree' }, default: [] },
  ],
});

const everything = avro.Type.forSchema({
  type: 'record',
  name: 'Everything',
  fields: [
    { name: 'n', type: 'null' },
    { name: 'b', type: 'boolean' },
    { name: 'i', type: 'int' },
    { name: 'l', type: 'long' },
    { name: 'f', type: 'float' },
    { name: 'd', type: 'double' },
    { name: 'by', type: 'bytes' },
    { name: 's', type: 'string' },
    { name: 'fx', type: { type: 'fixed', name: 'F4', size: 4 } },
    { name: 'e', type: { type: 'enum', name: 'E', symbols: ['A', 'B', 'C'] } },
    { name: 'arr', type: { type: 'array', items: ['null', 'int', 'string'] } },
    { name: 'm', type: { type: 'map', values: { type: 'array', items: 'double' } } },
    { name: 'u', type: ['null', { type: 'record', name: 'Inner', fields: [{ name: 'x', type: 'long' }] }] },
    { name: 'w', type: ['int', 'double'] },
    { name: 'ts', type: { type: 'long', logicalType: 'timestamp-millis' } },
  ],
});

describe('checkAvroBounds', () => {
  it('accepts every valid encoding (random values of a schema using every type)', () => {
    fc.assert(
      fc.property(treeValues, (t) => {
        const value: unknown = everything.random();
        checkAvroBounds(everything, everything.toBuffer(value), 0);
        checkAvroBounds(tree, tree.toBuffer(t), 0);
      }),
      { numRuns: 300 },
    );
  });

  it('accepts a value that starts after a header', () => {
    const body = tree.toBuffer({ label: 'root', next: { label: 'n', next: null, children: [] }, children: [] });
    checkAvroBounds(tree, Buffer.concat([Buffer.from([0, 0, 0, 0, 7]), body]), 5);
  });

  it('refuses the six-byte record whose array claims 2×10^8 items (which aborts the process in avsc)', () => {
    const poison = bytes(0, long(200_000_000));
    expect(poison.length).toBe(6);
    expect(refusal(withArray('int'), poison)).toMatch(/block of 200000000 items/);
    // Items of null take no bytes: the item limit refuses them.
    expect(refusal(withArray('null'), poison)).toMatch(/limit of items/);
  });

  it('shows why: avsc alone turns six bytes into as many items as the count says', () => {
    const type = withArray('null');
    const value = type.fromBuffer(bytes(0, long(200_000), 0)) as { a: unknown[] };
    expect(value.a.length).toBe(200_000);
    expect(refusal(type, bytes(0, long(200_000), 0), avroLimits({ maxCollectionItems: 100_000 }))).toMatch(
      /limit of items/,
    );
  });

  it('counts items across all arrays and maps of the value', () => {
    const type = avro.Type.forSchema({
      type: 'record',
      name: 'Two',
      fields: [
        { name: 'a', type: { type: 'array', items: 'null' } },
        { name: 'b', type: { type: 'array', items: 'null' } },
      ],
    });
    const limits = avroLimits({ maxCollectionItems: 10 });
    checkAvroBounds(type, bytes(long(5), 0, long(5), 0), 0, limits);
    expect(refusal(type, bytes(long(6), 0, long(5), 0), limits)).toMatch(/limit of items/);
    // Split into blocks, still counted.
    expect(refusal(type, bytes(long(4), long(4), 0, long(4), 0), limits)).toMatch(/limit of items/);
  });

  it('refuses string and bytes lengths beyond the bytes present or the limit', () => {
    const string = avro.Type.forSchema('string');
    expect(refusal(string, bytes(long(2 ** 40), 0x61))).toMatch(/exceeds the 1 bytes that remain/);
    expect(refusal(string, bytes(long(-1)))).toMatch(/negative length/);
    const abc = bytes(long(3), 0x61, 0x62, 0x63);
    checkAvroBounds(string, abc, 0);
    expect(refusal(string, abc, avroLimits({ maxBytesLength: 2 }))).toMatch(/limit of 2/);
    expect(refusal(avro.Type.forSchema('bytes'), bytes(long(9), 1, 2))).toMatch(/exceeds/);
  });

  it('refuses malformed varints', () => {
    const longType = avro.Type.forSchema('long');
    expect(refusal(longType, bytes(0x80, 0x80))).toMatch(/truncated varint/);
    expect(refusal(longType, bytes(repeat(10, [0xff]), 0x01))).toMatch(/longer than 10 bytes/);
    expect(refusal(longType, bytes(repeat(9, [0xff]), 0x02))).toMatch(/overflows 64 bits/);
    checkAvroBounds(longType, bytes(repeat(9, [0xff]), 0x01), 0);
    const intType = avro.Type.forSchema('int');
    expect(refusal(intType, bytes(0xff, 0xff, 0xff, 0xff, 0x1f))).toMatch(/overflows 32 bits/);
    expect(refusal(intType, bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0x01))).toMatch(/longer than 5 bytes/);
    checkAvroBounds(intType, bytes(0xff, 0xff, 0xff, 0xff, 0x0f), 0);
  });

  it('refuses union and enum indices out of range', () => {
    const union = avro.Type.forSchema(['null', 'string']);
    expect(refusal(union, bytes(long(2)))).toMatch(/union index 2/);
    expect(refusal(union, bytes(long(-1)))).toMatch(/union index -1/);
    const e = avro.Type.forSchema({ type: 'enum', name: 'E', symbols: ['A', 'B'] });
    checkAvroBounds(e, bytes(long(1)), 0);
    expect(refusal(e, bytes(long(2)))).toMatch(/enum index 2/);
    expect(refusal(e, bytes(long(-1)))).toMatch(/enum index -1/);
  });

  it('refuses fixed, float and double values beyond the bytes present', () => {
    expect(refusal(avro.Type.forSchema({ type: 'fixed', name: 'F', size: 16 }), bytes(1, 2, 3))).toMatch(/16 bytes needed/);
    expect(refusal(avro.Type.forSchema('double'), bytes(1, 2, 3))).toMatch(/8 bytes needed/);
    expect(refusal(avro.Type.forSchema('float'), bytes(1))).toMatch(/4 bytes needed/);
    expect(refusal(avro.Type.forSchema('boolean'), bytes())).toMatch(/1 bytes needed/);
  });

  it('refuses trailing bytes', () => {
    expect(refusal(avro.Type.forSchema('int'), bytes(2, 0))).toMatch(/1 bytes trail the value/);
  });

  it('checks blocks written with a byte size (negative counts)', () => {
    const type = avro.Type.forSchema({ type: 'array', items: 'string' });
    // Two strings "a" and "bc" in one block of 5 bytes.
    checkAvroBounds(type, bytes(long(-2), long(5), long(1), 0x61, long(2), 0x62, 0x63, 0), 0);
    expect(refusal(type, bytes(long(-2), long(6), long(1), 0x61, long(2), 0x62, 0x63, 0, 0))).toMatch(/block size says 6/);
    expect(refusal(type, bytes(long(-2), long(500), 0))).toMatch(/does not fit/);
    expect(refusal(type, bytes(long(-200_000_000), long(1), 0))).toMatch(/block of 200000000 items/);
  });

  it('refuses map entries beyond the bytes present (each needs at least a key length)', () => {
    const type = avro.Type.forSchema({ type: 'map', values: 'null' });
    checkAvroBounds(type, bytes(long(2), long(1), 0x61, long(1), 0x62, 0), 0);
    expect(refusal(type, bytes(long(5), long(1), 0x61, 0))).toMatch(/block of 5 items needs at least 5 bytes, 3 remain/);
  });

  it('refuses nesting deeper than the limit (recursive schemas)', () => {
    // label "", next: branch 1 (Tree) … , innermost next: null, then each level's empty children array.
    const nested = (depth: number) => bytes(repeat(depth, [0, ...long(1)]), 0, 0, 0, repeat(depth, [0]));
    const ok = nested(100);
    checkAvroBounds(tree, ok, 0);
    expect(tree.fromBuffer(ok)).toBeTruthy();
    expect(refusal(tree, nested(300))).toMatch(/nesting deeper than 256/);
    expect(refusal(tree, nested(10), avroLimits({ maxDepth: 5 }))).toMatch(/nesting deeper than 5/);
    // Without the limit, deep enough data overflows avsc's stack.
    expect(() => tree.fromBuffer(nested(100_000))).toThrow(RangeError);
    expect(refusal(tree, nested(100_000))).toMatch(/nesting/);
  });

  it('checks logical types by their underlying type', () => {
    const type = parseAvroSchema({
      type: 'record',
      name: 'L',
      fields: [
        { name: 'at', type: { type: 'string', logicalType: 'iso-datetime' } },
        { name: 'n', type: { type: 'double', minimum: 0 } },
      ],
    });
    const good = type.toBuffer({ at: '2026-01-02T03:04:05Z', n: 1 });
    checkAvroBounds(type, good, 0);
    expect(refusal(type, bytes(long(1000), 0x32))).toMatch(/exceeds/);
    expect(refusal(type, good.subarray(0, good.length - 1))).toMatch(/8 bytes needed/);
  });

  it('refuses every truncation of a valid encoding, and never throws anything else on mutations', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1_000 }), fc.integer({ min: 0, max: 255 }), (at, byte) => {
        const buf = everything.toBuffer(everything.random());
        const cut = at % buf.length;
        expect(() => checkAvroBounds(everything, buf.subarray(0, cut), 0)).toThrow(/cannot deserialise/);
        const mutated = Buffer.from(buf);
        mutated[cut] = byte;
        try {
          checkAvroBounds(everything, mutated, 0);
        } catch (err) {
          expect(isMillraceError(err, 'MILLRACE_DESERIALIZATION')).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('uses the serde context in its errors when given one', () => {
    try {
      checkAvroBounds(avro.Type.forSchema('int'), bytes(0x80), 0, DEFAULT_AVRO_LIMITS, { topic: 'payments', isKey: false });
      expect.unreachable();
    } catch (err) {
      expect(isMillraceError(err, 'MILLRACE_DESERIALIZATION')).toBe(true);
      expect((err as Error).message).toMatch(/value of a record on payments: truncated varint \(at byte 0\)/);
    }
  });

  it('validates limits', () => {
    expect(avroLimits()).toEqual(DEFAULT_AVRO_LIMITS);
    expect(() => avroLimits({ maxDepth: 0 })).toThrow(expect.objectContaining({ code: 'MILLRACE_CONFIG_INVALID' }));
    expect(() => avroLimits({ maxCollectionItems: -1 })).toThrow(expect.objectContaining({ code: 'MILLRACE_CONFIG_INVALID' }));
    expect(() => avroLimits({ maxBytesLength: Number.NaN })).toThrow(expect.objectContaining({ code: 'MILLRACE_CONFIG_INVALID' }));
  });
});
