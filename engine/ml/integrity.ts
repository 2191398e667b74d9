import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { errorMessage, isMillraceError } from '../errors.js';
import { modelError } from './model-runtime.js';

/** Largest model file read by default: 1 GiB (a model is read whole into memory to be verified and loaded). */
export const DEFAULT_MAX_MODEL_SIZE_BYTES = 1024 * 1024 * 1024;

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** SHA-256 of a file, hex, read in chunks (the event loop keeps turning between them). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Reads a model file once, hashing it as it is read, and returns its bytes if their SHA-256 is `expectedSha256`.
 * Load the model from the bytes returned — not from the path again — so that the bytes verified are the bytes
 * loaded: no time-of-check/time-of-use gap for a file replaced in between.
 *
 * Throws a model error of kind `integrity` (`details.reason: 'sha256-mismatch'`, with both hashes) when they differ,
 * `unavailable` when the file cannot be read, and `invalid` when it is larger than `maxSizeBytes`.
 */
export async function verifyModelFile(
  path: string,
  expectedSha256: string,
  options: { maxSizeBytes?: number } = {},
): Promise<Buffer> {
  const expected = expectedSha256.toLowerCase();
  if (!SHA256_HEX.test(expected)) {
    throw modelError('integrity', `${path}: the expected SHA-256 ${JSON.stringify(expectedSha256)} is not 64 hex digits`, {
      details: { path, expectedSha256 },
    });
  }
  const maxSizeBytes = options.maxSizeBytes ?? DEFAULT_MAX_MODEL_SIZE_BYTES;
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > maxSizeBytes) {
        throw modelError('invalid', `${path} is larger than ${maxSizeBytes} bytes (maxModelSizeBytes)`, { details: { path, maxSizeBytes } });
      }
      hash.update(buf);
      chunks.push(buf);
    }
  } catch (err) {
    if (!isMillraceError(err) && err instanceof Error && 'code' in err && typeof err.code === 'string') {
      throw modelError('unavailable', `cannot read model file ${path}: ${errorMessage(err)}`, {
        cause: err,
        retriable: false,
        details: { path, errno: err.code },
      });
    }
    throw err;
  }
  const actual = hash.digest('hex');
  if (actual !== expected) {
    throw modelError('integrity', `${path} has SHA-256 ${actual}, but ${expected} was expected: refusing to load it`, {
      details: { path, expectedSha256: expected, actualSha256: actual },
    });
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}
