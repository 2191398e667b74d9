import { expect } from 'vitest';
import { isMillraceError, type ErrorCode } from '../../engine/errors.js';

/** Runs `fn`, which must throw a `MillraceError`; returns its code (tests assert codes, never messages). */
export function thrownCode(fn: () => unknown): ErrorCode {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'expected a MillraceError to be thrown').toBeDefined();
  if (!isMillraceError(thrown)) throw new Error(`expected a MillraceError, got ${String(thrown)}`);
  return thrown.code;
}

export function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

/** An int64 as the `int64` serde writes it (8 bytes, big-endian). */
export function int64Bytes(value: number): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeBigInt64BE(BigInt(value), 0);
  return buf;
}
