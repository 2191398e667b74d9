import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { offset, type Log, type LogRecord } from '../../engine/log/log.js';
import { avroSerde, frameSchemaId } from '../../engine/serde/avro-serde.js';
import type { SchemaRegistry } from '../../engine/serde/registry.js';
import { Serdes } from '../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../engine/testing/topology-test-driver.js';
import { FEATURE_NAMES, Topics, type Feedback, type FeatureVector, type Reproducibility } from './contract.js';
import { featuresTopology } from './features.js';

export interface TrainingSetOptions {
  readonly log: Log;
  /** To decode Avro transactions and feedback; without one, values are read as JSON. */
  readonly registry?: SchemaRegistry;
  /** Only rows whose transaction happened in [from, to) of event time. */
  readonly fromEventTimeMs?: number;
  readonly toEventTimeMs?: number;
  /** Where to write the CSV: `transaction_id,at,<features…>,label`. */
  readonly outPath: string;
  /**
   * Rows set aside for evaluation, by a hash of the transaction id (so the same rows whatever the order or the run):
   * `percent` of them go to `path` instead of `outPath`, and come back in `TrainingSet.holdout`.
   */
  readonly holdout?: { readonly path: string; readonly percent: number };
  /** Read exactly these log ranges (a recorded job's), not the topics as they are now. */
  readonly ranges?: Reproducibility['offsets'];
}

export interface LabelledRows {
  /** FEATURE_NAMES order. */
  readonly rows: ReadonlyArray<readonly number[]>;
  readonly labels: readonly boolean[];
}

export interface TrainingSet {
  readonly path: string;
  readonly rows: number;
  readonly positives: number;
  /** The log ranges read: what reproduces this training set. */
  readonly offsets: Reproducibility['offsets'];
  /** The feature vectors of every transaction read, labelled or not (for tests and evaluation). */
  readonly vectors: readonly FeatureVector[];
  /** The rows set aside (empty without `holdout`). */
  readonly holdout: LabelledRows & { readonly positives: number };
}

/** Which hundredth of the transactions an id falls in: a stable split, independent of order and run. */
export function hundredthOf(transactionId: string): number {
  return createHash('sha256').update(transactionId).digest().readUInt32BE(0) % 100;
}

async function readRange(
  log: Log,
  topic: string,
  recorded?: ReadonlyArray<{ partition: number; from: number; to: number }>,
): Promise<{ records: LogRecord[]; ranges: Array<{ partition: number; from: number; to: number }> }> {
  const records: LogRecord[] = [];
  const ranges: Array<{ partition: number; from: number; to: number }> = [];
  const bounds = recorded?.map((r) => ({ partition: r.partition, start: r.from, end: r.to })) ?? (await log.partitionOffsets(topic));
  for (const { partition, start, end } of bounds) {
    ranges.push({ partition, from: start, to: end });
    let at = start;
    while (at < end) {
      const batch = await log.read(topic, partition, offset(at), { maxRecords: 5_000 });
      for (const r of batch.records) if (r.offset < end) records.push(r);
      if (batch.nextOffset <= at) break;
      at = batch.nextOffset;
    }
  }
  return { records, ranges };
}

/**
 * Exports a training set by replaying the log: the transactions of each partition go, in offset order, through the
 * same features topology that serves online features (in a TopologyTestDriver: memory only, nothing written to the
 * log), so every row holds the features as of its transaction's event time, computed from nothing later. Rows are
 * joined to their label from `feedback`; transactions without a label yet are left out.
 */
export async function exportTrainingSet(options: TrainingSetOptions): Promise<TrainingSet> {
  const { log, registry } = options;
  const transactions = await readRange(log, Topics.transactions, options.ranges?.[Topics.transactions]);
  const feedback = await readRange(log, Topics.feedback, options.ranges?.[Topics.feedback]);
  if (registry !== undefined) {
    // The replay decodes synchronously: fetch every writer schema first.
    const ids = new Set<number>();
    for (const r of [...transactions.records, ...feedback.records]) {
      const id = r.value === null ? undefined : frameSchemaId(r.value);
      if (id !== undefined) ids.add(id);
    }
    for (const id of ids) await registry.byId(id);
  }
  const labelSerde = registry === undefined ? Serdes.json<Feedback>() : avroSerde<Feedback>(registry, `${Topics.feedback}-value`);
  const labels = new Map<string, boolean>();
  for (const r of feedback.records) {
    if (r.value === null) continue;
    const label = labelSerde.deserialize(r.value, { topic: Topics.feedback, isKey: false });
    labels.set(label.transaction_id, label.fraud);
  }
  const vectors: FeatureVector[] = [];
  const byPartition = new Map<number, LogRecord[]>();
  for (const r of transactions.records) {
    const list = byPartition.get(r.partition) ?? [];
    list.push(r);
    byPartition.set(r.partition, list);
  }
  for (const records of byPartition.values()) {
    const driver = new TopologyTestDriver(featuresTopology(registry === undefined ? {} : { registry }).build());
    const input = driver.createInputTopic(Topics.transactions);
    for (const r of records.sort((a, b) => a.offset - b.offset)) input.pipeRawInput(r.key, r.value, r.timestamp, r.headers);
    for (const v of driver.createOutputTopic<string, FeatureVector>(Topics.features).readValuesToList()) if (v !== null) vectors.push(v);
    driver.close();
  }
  const header = ['transaction_id', 'at', ...FEATURE_NAMES, 'label'].join(',');
  const lines = [header];
  const heldLines = [header];
  const held = { rows: [] as number[][], labels: [] as boolean[], positives: 0 };
  let positives = 0;
  for (const v of vectors) {
    const label = labels.get(v.transaction_id);
    if (label === undefined) continue;
    const at = Date.parse(v.at);
    if (options.fromEventTimeMs !== undefined && at < options.fromEventTimeMs) continue;
    if (options.toEventTimeMs !== undefined && at >= options.toEventTimeMs) continue;
    const values = FEATURE_NAMES.map((f) => v.features[f]);
    const line = [csv(v.transaction_id), v.at, ...values.map(String), label ? '1' : '0'].join(',');
    if (options.holdout !== undefined && hundredthOf(v.transaction_id) < options.holdout.percent) {
      heldLines.push(line);
      held.rows.push(values);
      held.labels.push(label);
      if (label) held.positives++;
    } else {
      lines.push(line);
      if (label) positives++;
    }
  }
  await writeFile(options.outPath, `${lines.join('\n')}\n`);
  if (options.holdout !== undefined) await writeFile(options.holdout.path, `${heldLines.join('\n')}\n`);
  return {
    path: options.outPath,
    rows: lines.length - 1,
    positives,
    offsets: { [Topics.transactions]: transactions.ranges, [Topics.feedback]: feedback.ranges },
    vectors,
    holdout: held,
  };
}

function csv(text: string): string {
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
