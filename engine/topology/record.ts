import type { Headers } from '../log/log.js';

export type { Headers };

/** An immutable record flowing through a topology: typed key and value, event time and headers. */
export interface StreamRecord<K, V> {
  readonly key: K;
  readonly value: V;
  /** Event time in ms since the epoch. */
  readonly timestamp: number;
  readonly headers: Headers;
}

export interface KeyValue<K, V> {
  readonly key: K;
  readonly value: V;
}

/** A time window [start, end). */
export interface TimeWindow {
  readonly start: number;
  readonly end: number;
}

/** The key of a windowed aggregate: the grouping key and its window. */
export interface Windowed<K> {
  readonly key: K;
  readonly window: TimeWindow;
}

/** Where the record being processed came from. */
export interface RecordMetadata {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

export const EMPTY_HEADERS: Headers = Object.freeze({});
