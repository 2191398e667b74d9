/**
 * What both Kafka logs (`KafkaLog` on kafkajs, `PlatformaticKafkaLog`) check and derive the same way, whatever the
 * client: topic specs, the topic configs Kafka answers with, offsets.
 */
import { MillraceError } from '../../errors.js';
import { DEFAULT_DELETE_RETENTION_MS, TOPIC_NAME_PATTERN, type CleanupPolicy, type TopicInfo, type TopicSpec } from '../log.js';

export function checkOffset(at: number, what = 'offset'): void {
  if (!Number.isSafeInteger(at) || at < 0) throw new MillraceError('MILLRACE_OFFSET_INVALID', `${what} must be a non-negative integer, got ${at}`);
}

export function isValidTopicName(name: string): boolean {
  return typeof name === 'string' && TOPIC_NAME_PATTERN.test(name) && name !== '.' && name !== '..';
}

export interface ValidSpec {
  readonly name: string;
  readonly partitions: number;
  readonly cleanupPolicy: CleanupPolicy;
  readonly retentionMs: number | null;
  readonly retentionBytes: number | null;
  readonly deleteRetentionMs: number;
}

export function validateSpec(spec: TopicSpec): ValidSpec {
  if (!isValidTopicName(spec.name)) {
    throw new MillraceError('MILLRACE_TOPIC_NAME_INVALID', `topic name ${JSON.stringify(spec.name)} is invalid: use 1 to 249 of a-z A-Z 0-9 . _ -`);
  }
  if (!Number.isInteger(spec.partitions) || spec.partitions < 1 || spec.partitions > 10_000) {
    throw new MillraceError('MILLRACE_TOPIC_CONFIG_INVALID', `partitions must be an integer from 1 to 10000, got ${spec.partitions}`);
  }
  const cleanupPolicy = spec.cleanupPolicy ?? 'delete';
  if (!['delete', 'compact', 'compact,delete'].includes(cleanupPolicy)) {
    throw new MillraceError('MILLRACE_TOPIC_CONFIG_INVALID', 'cleanupPolicy must be delete, compact or compact,delete');
  }
  for (const [name, value] of [
    ['retentionMs', spec.retentionMs],
    ['retentionBytes', spec.retentionBytes],
    ['deleteRetentionMs', spec.deleteRetentionMs],
  ] as const) {
    if (value !== undefined && value !== null && (!Number.isSafeInteger(value) || value < 0)) {
      throw new MillraceError('MILLRACE_TOPIC_CONFIG_INVALID', `${name} must be a non-negative integer or null, got ${value}`);
    }
  }
  return {
    name: spec.name,
    partitions: spec.partitions,
    cleanupPolicy,
    retentionMs: spec.retentionMs ?? null,
    retentionBytes: spec.retentionBytes ?? null,
    deleteRetentionMs: spec.deleteRetentionMs ?? DEFAULT_DELETE_RETENTION_MS,
  };
}

export function topicInfo(spec: ValidSpec): TopicInfo {
  return Object.freeze({
    ...spec,
    internal: spec.name.startsWith('_') || spec.name.endsWith('-changelog') || spec.name.endsWith('-repartition'),
  });
}

export function normalisePolicy(value: string | undefined): CleanupPolicy {
  const parts = new Set((value ?? 'delete').split(',').map((p) => p.trim()));
  if (parts.has('compact') && parts.has('delete')) return 'compact,delete';
  return parts.has('compact') ? 'compact' : 'delete';
}

/** Kafka writes "no limit" as -1. */
export function nullableLimit(value: string | undefined): number | null {
  if (value === undefined) return null;
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 ? n : null;
}
