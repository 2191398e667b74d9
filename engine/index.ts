/**
 * Millrace's public API. Modules under `internals` are not part of it; everything exported here is.
 */
export { ErrorCodes, MillraceError, isMillraceError, problemFor, problemFromError } from './errors.js';
export type { ErrorCode, Problem } from './errors.js';

export { EmbeddedLog, type EmbeddedLogOptions } from './log/embedded/embedded-log.js';
export { offset } from './log/log.js';
export type {
  AppendRecord,
  AppendResult,
  CleanupPolicy,
  Headers,
  Log,
  LogCapabilities,
  LogRecord,
  LogTransaction,
  Offset,
  PartitionOffsets,
  ReadBatch,
  ReadOptions,
  TopicInfo,
  TopicPartitionOffset,
  TopicSpec,
} from './log/log.js';
export { Partitioner, partitionForKey } from './log/partitioner.js';

export { Serdes, type Serde, type SerdeContext } from './serde/serde.js';
export { avroSerde } from './serde/avro-serde.js';
export { EmbeddedSchemaRegistry } from './serde/embedded-registry.js';
export { keySubject, valueSubject, type RegisteredSchema, type SchemaRegistry } from './serde/registry.js';

export { StreamsBuilder, KStream, KGroupedStream, KTable, windowedSerde } from './topology/builder.js';
export {
  TimeWindowedKStream,
  SessionWindowedKStream,
  type EmitMode,
  type SessionAggregateOptions,
  type SessionStoreOptions,
  type SessionValue,
  type WindowedStoreOptions,
} from './topology/windowed.js';
export { Topology, TopologyDraft, type GlobalStoreSpec, type StoreSpec, type TopologyDescription, type TopologyOptions } from './topology/topology.js';
export type { Cancellable, Processor, ProcessorContext, ProcessorSupplier, PunctuationType } from './topology/processor.js';
export type { KeyValue, RecordMetadata, StreamRecord, TimeWindow, Windowed } from './topology/record.js';
export {
  HoppingWindows,
  SessionWindows,
  SlidingWindows,
  TimeWindows,
  TumblingWindows,
  type FixedWindows,
  type GraceOptions,
  type TimeWindowSpec,
  type WindowKind,
  type WindowSpec,
} from './operators/windows.js';
export type { Merger } from './operators/aggregate.js';
export { JoinWindows, type JoinKind } from './operators/joins.js';
export {
  GlobalKTable,
  globalTable,
  streamGlobalTableJoin,
  streamStreamJoin,
  streamTableJoin,
  table,
  type GlobalTableOptions,
  type StreamJoiner,
  type TableJoiner,
  type TableOptions,
} from './topology/tables.js';
export type { JoinOptions } from './topology/builder.js';
export type { KeyValueStore, ReadOnlyKeyValueStore, KeyValueEntry } from './state/key-value-store.js';

export type { DeadLetter, ErrorPolicy } from './runtime/dead-letter.js';
export type { TopologyContext } from './runtime/modules.js';
export { Engine } from './runtime/engine.js';
export { loadConfig, parseConfig, type MillraceConfig } from './config.js';
export { TopologyTestDriver, TestInputTopic, TestOutputTopic } from './testing/topology-test-driver.js';
export { defineProjection, type ProjectionContext, type ProjectionDefinition, type ProjectionEvent } from './projections/projection.js';
export type { JsonValue, ProjectionStore } from './projections/store.js';
export { ProjectionTestDriver } from './testing/projection-test-driver.js';
