import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isMillraceError } from '../../../engine/errors.js';
import { recordBufferSerde, type BufferedRecord } from '../../../engine/operators/joins.js';
import { Serdes, type Serde } from '../../../engine/serde/serde.js';
import {
  pruneVersions,
  versionAt,
  versionIndexAt,
  versionListSerde,
  withVersion,
  type Version,
  type VersionList,
} from '../../../engine/state/versioned.js';

const context = { topic: 'store:test', isKey: false };

/** Version lists as the store keeps them: strictly ascending times, values or tombstones. */
const versionLists: fc.Arbitrary<VersionList<string>> = fc
  .uniqueArray(fc.integer({ min: 0, max: 200 }), { maxLength: 12 })
  .chain((times) => fc.array(fc.option(fc.string(), { freq: 3 }), { minLength: times.length, maxLength: times.length }).map((values) => {
    const sortedTimes = [...times].sort((a, b) => a - b);
    return sortedTimes.map((validFrom, i) => ({ validFrom, value: values[i] ?? null }));
  }));

function linearAt<V>(versions: VersionList<V>, t: number): Version<V> | undefined {
  return versions.filter((v) => v.validFrom <= t).at(-1);
}

/** Decoding arbitrary bytes either succeeds or throws MILLRACE_DESERIALIZATION, nothing else. */
function decodesOrRefuses<T>(serde: Serde<T>, bytes: Buffer): void {
  try {
    serde.deserialize(bytes, context);
  } catch (err) {
    if (!isMillraceError(err, 'MILLRACE_DESERIALIZATION')) throw err;
  }
}

describe('version lists', () => {
  it('round-trip through their serde, and hostile bytes are refused with MILLRACE_DESERIALIZATION', () => {
    const serde = versionListSerde(Serdes.string());
    fc.assert(fc.property(versionLists, (versions) => {
      expect(serde.deserialize(serde.serialize(versions, context), context)).toEqual(versions);
    }), { numRuns: 300 });
    fc.assert(fc.property(versionLists, fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 255 }), (versions, at, byte) => {
      const bytes = Buffer.from(serde.serialize(versions, context));
      if (bytes.length > 0) bytes[at % bytes.length] = byte;
      decodesOrRefuses(serde, bytes);
      decodesOrRefuses(serde, bytes.subarray(0, at % (bytes.length + 1)));
    }), { numRuns: 500 });
    expect(() => serde.deserialize(Buffer.from([1, 0xff, 0xff, 0xff, 0xff]), context)).toThrow(expect.objectContaining({ code: 'MILLRACE_DESERIALIZATION' }));
    const unordered = serde.serialize([{ validFrom: 5, value: 'a' }, { validFrom: 9, value: 'b' }], context);
    unordered.writeDoubleBE(10, 5); // the first version now claims a later time than the second
    expect(() => serde.deserialize(unordered, context)).toThrow(expect.objectContaining({ code: 'MILLRACE_DESERIALIZATION' }));
  });

  it('find the version valid at a time by binary search, as a linear scan would', () => {
    fc.assert(fc.property(versionLists, fc.integer({ min: -5, max: 210 }), (versions, t) => {
      expect(versionAt(versions, t)).toEqual(linearAt(versions, t));
      expect(versionIndexAt(versions, t)).toBe(versions.indexOf(linearAt(versions, t)!));
    }), { numRuns: 500 });
  });

  it('take a new version in time order, replacing one with the same time', () => {
    const versions: VersionList<string> = [{ validFrom: 10, value: 'a' }, { validFrom: 20, value: 'b' }];
    expect(withVersion(versions, { validFrom: 15, value: 'x' })).toEqual([{ validFrom: 10, value: 'a' }, { validFrom: 15, value: 'x' }, { validFrom: 20, value: 'b' }]);
    expect(withVersion(versions, { validFrom: 20, value: null })).toEqual([{ validFrom: 10, value: 'a' }, { validFrom: 20, value: null }]);
    expect(withVersion(versions, { validFrom: 5, value: 'x' })[0]).toEqual({ validFrom: 5, value: 'x' });
    expect(withVersion([], { validFrom: 5, value: 'x' })).toEqual([{ validFrom: 5, value: 'x' }]);
  });

  it('pruned to a boundary, answer every lookup at or after it as before, keeping nothing older than the version valid then', () => {
    fc.assert(fc.property(versionLists, fc.integer({ min: -5, max: 210 }), (versions, boundary) => {
      const pruned = pruneVersions(versions, boundary);
      for (let t = boundary; t <= 210; t++) expect(linearAt(pruned, t)?.value ?? null).toEqual(linearAt(versions, t)?.value ?? null);
      expect(pruned.filter((v) => v.validFrom <= boundary).length).toBeLessThanOrEqual(1);
      expect(pruned.every((v) => v.validFrom > boundary || v.value !== null)).toBe(true);
    }), { numRuns: 500 });
    const versions: VersionList<string> = [{ validFrom: 10, value: 'a' }, { validFrom: 20, value: 'b' }, { validFrom: 30, value: 'c' }];
    expect(pruneVersions(versions, 25)).toEqual([{ validFrom: 20, value: 'b' }, { validFrom: 30, value: 'c' }]);
    expect(pruneVersions(versions, 5)).toBe(versions);
  });
});

describe('join buffers', () => {
  const buffers: fc.Arbitrary<ReadonlyArray<BufferedRecord<string>>> = fc
    .array(fc.record({ timestamp: fc.integer({ min: 0, max: 100 }), matched: fc.boolean(), value: fc.option(fc.string()) }), { maxLength: 10 })
    .map((records) => records.sort((a, b) => a.timestamp - b.timestamp).map((r, seq) => ({ ...r, seq })));

  it('round-trip through their serde, and hostile bytes are refused with MILLRACE_DESERIALIZATION', () => {
    const serde = recordBufferSerde(Serdes.string());
    fc.assert(fc.property(buffers, (records) => {
      expect(serde.deserialize(serde.serialize(records, context), context)).toEqual(records);
    }), { numRuns: 300 });
    fc.assert(fc.property(buffers, fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 255 }), (records, at, byte) => {
      const bytes = Buffer.from(serde.serialize(records, context));
      if (bytes.length > 0) bytes[at % bytes.length] = byte;
      decodesOrRefuses(serde, bytes);
      decodesOrRefuses(serde, bytes.subarray(0, at % (bytes.length + 1)));
    }), { numRuns: 500 });
  });
});
