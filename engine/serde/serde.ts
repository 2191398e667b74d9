import { MillraceError, errorMessage } from '../errors.js';

/** Where a serde is being used: which topic, and whether for the key or the value. */
export interface SerdeContext {
  readonly topic: string;
  readonly isKey: boolean;
}

/**
 * Turns typed values into bytes and back. Bytes inside, types outside: logs and stores only ever hold bytes.
 * A `null` record key or value (a tombstone) never reaches a serde; the caller handles it.
 *
 * Bytes read from a log are hostile until decoded: `deserialize` must throw a `MillraceError`
 * (`MILLRACE_DESERIALIZATION`) for bytes it cannot decode, and must never allocate beyond what the bytes justify.
 */
export interface Serde<T> {
  /** Shown by `describe()`: `string`, `json`, `avro(transactions-value)`. */
  readonly name: string;
  serialize(value: T, context: SerdeContext): Buffer;
  deserialize(bytes: Buffer, context: SerdeContext): T;
  /**
   * Work to do before `deserialize` can run synchronously on these bytes (e.g. fetch an unknown schema id from a
   * remote registry). Returns `undefined` when nothing is needed, which is the hot path.
   */
  prepare?(bytes: Buffer, context: SerdeContext): Promise<void> | undefined;
}

export function deserializationError(context: SerdeContext, reason: string, cause?: unknown): MillraceError {
  return new MillraceError(
    'MILLRACE_DESERIALIZATION',
    `cannot deserialise the ${context.isKey ? 'key' : 'value'} of a record on ${context.topic}: ${reason}`,
    { cause, details: { topic: context.topic, part: context.isKey ? 'key' : 'value' } },
  );
}

function serializationError(context: SerdeContext, reason: string, cause?: unknown): MillraceError {
  return new MillraceError(
    'MILLRACE_SERIALIZATION',
    `cannot serialise the ${context.isKey ? 'key' : 'value'} for ${context.topic}: ${reason}`,
    { cause, details: { topic: context.topic, part: context.isKey ? 'key' : 'value' } },
  );
}

const decoder = new TextDecoder('utf-8', { fatal: true });

const stringSerde: Serde<string> = {
  name: 'string',
  serialize(value, context) {
    if (typeof value !== 'string') throw serializationError(context, `expected a string, got ${typeof value}`);
    return Buffer.from(value, 'utf8');
  },
  deserialize(bytes, context) {
    try {
      return decoder.decode(bytes);
    } catch (err) {
      throw deserializationError(context, 'not valid UTF-8', err);
    }
  },
};

/** A double, as Kafka's `DoubleSerializer` writes it: 8 bytes, big-endian. */
const float64Serde: Serde<number> = {
  name: 'float64',
  serialize(value, context) {
    if (typeof value !== 'number') throw serializationError(context, `expected a number, got ${typeof value}`);
    const buf = Buffer.allocUnsafe(8);
    buf.writeDoubleBE(value, 0);
    return buf;
  },
  deserialize(bytes, context) {
    if (bytes.length !== 8) throw deserializationError(context, `expected 8 bytes, got ${bytes.length}`);
    return bytes.readDoubleBE(0);
  },
};

/** A signed 64-bit integer, as Kafka's `LongSerializer` writes it; values must be safe integers. */
const int64Serde: Serde<number> = {
  name: 'int64',
  serialize(value, context) {
    if (!Number.isSafeInteger(value)) throw serializationError(context, `expected a safe integer, got ${value}`);
    const buf = Buffer.allocUnsafe(8);
    buf.writeBigInt64BE(BigInt(value), 0);
    return buf;
  },
  deserialize(bytes, context) {
    if (bytes.length !== 8) throw deserializationError(context, `expected 8 bytes, got ${bytes.length}`);
    const value = bytes.readBigInt64BE(0);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw deserializationError(context, `integer ${value} is outside the safe range`);
    }
    return Number(value);
  },
};

const bytesSerde: Serde<Buffer> = {
  name: 'bytes',
  serialize(value, context) {
    if (!Buffer.isBuffer(value)) throw serializationError(context, 'expected a Buffer');
    return value;
  },
  deserialize(bytes) {
    return bytes;
  },
};

function jsonSerde<T>(): Serde<T> {
  return {
    name: 'json',
    serialize(value, context) {
      let text: string | undefined;
      try {
        text = JSON.stringify(value);
      } catch (err) {
        throw serializationError(context, errorMessage(err), err);
      }
      if (text === undefined) throw serializationError(context, `${typeof value} has no JSON form`);
      return Buffer.from(text, 'utf8');
    },
    deserialize(bytes, context) {
      let text: string;
      try {
        text = decoder.decode(bytes);
      } catch (err) {
        throw deserializationError(context, 'not valid UTF-8', err);
      }
      try {
        return JSON.parse(text) as T;
      } catch (err) {
        throw deserializationError(context, `not valid JSON (${errorMessage(err)})`, err);
      }
    },
  };
}

/** The built-in serdes. Avro serdes come from a schema registry: see `avroSerde`. */
export const Serdes = {
  string: (): Serde<string> => stringSerde,
  json: <T = unknown>(): Serde<T> => jsonSerde<T>(),
  float64: (): Serde<number> => float64Serde,
  int64: (): Serde<number> => int64Serde,
  bytes: (): Serde<Buffer> => bytesSerde,
} as const;
