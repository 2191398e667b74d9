import { MillraceError } from '../errors.js';
import { TOPIC_NAME_PATTERN } from '../log/log.js';
import type { Serde } from '../serde/serde.js';
import type { ProcessorSupplier } from './processor.js';
import type { StreamRecord } from './record.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- the graph holds nodes of every key and value type */
type AnySerde = Serde<any>;

export const NAME_PATTERN = /^[a-zA-Z0-9._-]{1,200}$/;

export interface SourceNodeSpec {
  readonly kind: 'source';
  readonly name: string;
  readonly topics: readonly string[];
  readonly keySerde: AnySerde;
  readonly valueSerde: AnySerde;
  /** Reads an internal topic (repartition) of this application. */
  readonly internal: boolean;
  /** Event time of a record, from its contents; by default the log record's timestamp. */
  readonly timestampExtractor?: (record: StreamRecord<any, any>) => number;
}

export interface ProcessorNodeSpec {
  readonly kind: 'processor';
  readonly name: string;
  /** What the DSL built it from (`map`, `count`, …) or `process` for the Processor API. */
  readonly operator: string;
  readonly parents: readonly string[];
  readonly supplier: ProcessorSupplier<any, any, any, any>;
  readonly stores: readonly string[];
  /** Extra facts for `describe()`, e.g. a window spec. */
  readonly detail?: Readonly<Record<string, unknown>>;
}

export interface SinkNodeSpec {
  readonly kind: 'sink';
  readonly name: string;
  readonly topic: string;
  readonly parents: readonly string[];
  readonly keySerde: AnySerde;
  readonly valueSerde: AnySerde;
  readonly internal: boolean;
}

export type NodeSpec = SourceNodeSpec | ProcessorNodeSpec | SinkNodeSpec;

export interface StoreSpec {
  readonly name: string;
  readonly kind: 'key-value' | 'window';
  readonly keySerde: AnySerde;
  readonly valueSerde: AnySerde;
  /** Changes are also written to `<app>-<store>-changelog` (compacted), from which the store can be restored. */
  readonly changelog: boolean;
  /** Entries not written for this long in event time read as absent and are swept. */
  readonly ttlMs?: number;
  readonly detail?: Readonly<Record<string, unknown>>;
}

/**
 * A store every task sees in full, read-only: fed from all partitions of `topic` (a compacted topic, typically)
 * by the runtime, outside any task. For lookups such as a model routing table.
 */
export interface GlobalStoreSpec {
  readonly name: string;
  readonly topic: string;
  readonly keySerde: AnySerde;
  readonly valueSerde: AnySerde;
}

export interface InternalTopicSpec {
  readonly name: string;
  readonly kind: 'repartition' | 'changelog';
  /** Fixed partition count; otherwise derived (repartition: the most of its upstream sources; changelog: the task count). */
  readonly partitions?: number;
}

export interface Subtopology {
  readonly id: number;
  /** Node names in the order they were added (parents before children). */
  readonly nodes: readonly string[];
  readonly sourceTopics: readonly string[];
  readonly sinkTopics: readonly string[];
  readonly stores: readonly string[];
}

/** `describe()`: the graph as JSON, for the console and for "did my topology change?" checks. */
export interface TopologyDescription {
  readonly applicationId: string;
  readonly allowedLatenessMs: number;
  /** Present when set (above 0): see `TopologyOptions.maxTaskIdleMs`. */
  readonly maxTaskIdleMs?: number;
  readonly lateRecordsTopic: string;
  readonly subtopologies: ReadonlyArray<{
    readonly id: number;
    readonly sourceTopics: readonly string[];
    readonly sinkTopics: readonly string[];
    readonly nodes: ReadonlyArray<{
      readonly name: string;
      readonly kind: NodeSpec['kind'];
      readonly operator: string;
      readonly topics?: readonly string[];
      readonly topic?: string;
      readonly stores: readonly string[];
      readonly parents: readonly string[];
      readonly children: readonly string[];
      readonly keySerde?: string;
      readonly valueSerde?: string;
      readonly timestampExtractor?: boolean;
      readonly detail?: Readonly<Record<string, unknown>>;
    }>;
  }>;
  readonly stores: ReadonlyArray<{
    readonly name: string;
    readonly kind: StoreSpec['kind'];
    readonly changelogTopic: string | null;
    readonly keySerde: string;
    readonly valueSerde: string;
    readonly ttlMs: number | null;
    readonly detail?: Readonly<Record<string, unknown>>;
  }>;
  readonly internalTopics: ReadonlyArray<{ readonly name: string; readonly kind: InternalTopicSpec['kind']; readonly partitions: number | null }>;
  readonly globalStores: ReadonlyArray<{ readonly name: string; readonly topic: string; readonly keySerde: string; readonly valueSerde: string }>;
}

function invalid(message: string): MillraceError {
  return new MillraceError('MILLRACE_TOPOLOGY_INVALID', message);
}

/**
 * A validated, immutable processing graph. Built by `StreamsBuilder` (the DSL) or `TopologyDraft` (the Processor
 * API). It splits into sub-topologies at topic boundaries; each runs as one task per input partition.
 */
export interface TopologyOptions {
  /**
   * How far behind stream time event time may lag before records count as late: the watermark is stream time
   * minus this. Added to every window's grace.
   */
  readonly allowedLatenessMs?: number;
  /**
   * How long a task with several inputs waits for one that has run dry, while another has records, before it goes
   * on without it (Kafka Streams' `max.task.idle.ms`). Records are taken in timestamp order across inputs only
   * while each has some in hand: an input whose upstream is slower (a join of a derived topic with a raw one, while
   * a backlog drains) otherwise falls behind, the other input runs stream time ahead, and its records come late.
   * The wait ends as soon as records arrive; once it has run out, the task goes on until the input has records
   * again. 0 (the default): no wait.
   */
  readonly maxTaskIdleMs?: number;
}

export class Topology {
  readonly applicationId: string;
  readonly allowedLatenessMs: number;
  readonly maxTaskIdleMs: number;
  readonly nodes: ReadonlyMap<string, NodeSpec>;
  readonly children: ReadonlyMap<string, readonly string[]>;
  readonly stores: ReadonlyMap<string, StoreSpec>;
  readonly internalTopics: ReadonlyMap<string, InternalTopicSpec>;
  readonly globalStores: ReadonlyMap<string, GlobalStoreSpec>;
  readonly subtopologies: readonly Subtopology[];

  constructor(
    applicationId: string,
    nodes: readonly NodeSpec[],
    stores: readonly StoreSpec[],
    internalTopics: readonly InternalTopicSpec[],
    options: TopologyOptions = {},
    globalStores: readonly GlobalStoreSpec[] = [],
  ) {
    if (!NAME_PATTERN.test(applicationId)) throw invalid(`application id ${JSON.stringify(applicationId)} must match ${NAME_PATTERN}`);
    this.applicationId = applicationId;
    const lateness = options.allowedLatenessMs ?? 0;
    if (!Number.isSafeInteger(lateness) || lateness < 0) throw invalid(`allowedLatenessMs must be a non-negative integer, got ${lateness}`);
    this.allowedLatenessMs = lateness;
    const idle = options.maxTaskIdleMs ?? 0;
    if (!Number.isSafeInteger(idle) || idle < 0) throw invalid(`maxTaskIdleMs must be a non-negative integer, got ${idle}`);
    this.maxTaskIdleMs = idle;
    const byName = new Map<string, NodeSpec>();
    const children = new Map<string, string[]>();
    for (const node of nodes) {
      if (!NAME_PATTERN.test(node.name)) throw invalid(`node name ${JSON.stringify(node.name)} must match ${NAME_PATTERN}`);
      if (byName.has(node.name)) throw invalid(`two nodes are named ${node.name}: every node needs its own name`);
      byName.set(node.name, node);
      children.set(node.name, []);
    }
    const storeMap = new Map<string, StoreSpec>();
    for (const store of stores) {
      if (!NAME_PATTERN.test(store.name)) throw invalid(`store name ${JSON.stringify(store.name)} must match ${NAME_PATTERN}`);
      if (storeMap.has(store.name)) throw invalid(`two stores are named ${store.name}`);
      storeMap.set(store.name, store);
    }
    for (const node of nodes) {
      if (node.kind === 'source') {
        if (node.topics.length === 0) throw invalid(`source ${node.name} reads no topic`);
        for (const topic of node.topics) {
          if (!TOPIC_NAME_PATTERN.test(topic)) throw invalid(`source ${node.name}: invalid topic name ${JSON.stringify(topic)}`);
        }
        continue;
      }
      if (node.parents.length === 0) throw invalid(`${node.kind} ${node.name} has no parent`);
      for (const parent of node.parents) {
        const parentNode = byName.get(parent);
        if (parentNode === undefined) throw invalid(`${node.name} names an unknown parent ${parent}`);
        if (parentNode.kind === 'sink') throw invalid(`${node.name} cannot follow sink ${parent}`);
        children.get(parent)!.push(node.name);
      }
      if (node.kind === 'processor') {
        for (const store of node.stores) {
          if (!storeMap.has(store)) throw invalid(`processor ${node.name} uses an unknown store ${store}`);
        }
      } else if (!TOPIC_NAME_PATTERN.test(node.topic)) {
        throw invalid(`sink ${node.name}: invalid topic name ${JSON.stringify(node.topic)}`);
      }
    }
    this.nodes = byName;
    this.children = children;
    this.stores = storeMap;
    this.internalTopics = new Map(internalTopics.map((t) => [t.name, t]));
    const globals = new Map<string, GlobalStoreSpec>();
    for (const global of globalStores) {
      if (!NAME_PATTERN.test(global.name)) throw invalid(`global store name ${JSON.stringify(global.name)} must match ${NAME_PATTERN}`);
      if (globals.has(global.name) || storeMap.has(global.name)) throw invalid(`two stores are named ${global.name}`);
      if (!TOPIC_NAME_PATTERN.test(global.topic)) throw invalid(`global store ${global.name}: invalid topic name ${JSON.stringify(global.topic)}`);
      globals.set(global.name, global);
    }
    this.globalStores = globals;
    this.subtopologies = this.#split(nodes);
    for (const global of globals.values()) {
      if (this.subtopologyReading(global.topic) !== undefined) {
        throw invalid(`topic ${global.topic} feeds global store ${global.name} and is also read by a stream: read it one way only`);
      }
    }
  }

  /** Connected components of nodes, joined also by shared stores: each becomes a sub-topology. */
  #split(nodes: readonly NodeSpec[]): Subtopology[] {
    const parent = new Map<string, string>();
    const find = (x: string): string => {
      let root = x;
      while (parent.get(root) !== root) root = parent.get(root)!;
      parent.set(x, root);
      return root;
    };
    const union = (a: string, b: string): void => {
      parent.set(find(a), find(b));
    };
    for (const node of nodes) parent.set(node.name, node.name);
    const storeOwner = new Map<string, string>();
    for (const node of nodes) {
      if (node.kind !== 'source') for (const p of node.parents) union(node.name, p);
      if (node.kind === 'processor') {
        for (const store of node.stores) {
          const owner = storeOwner.get(store);
          if (owner === undefined) storeOwner.set(store, node.name);
          else union(node.name, owner);
        }
      }
    }
    const groups = new Map<string, NodeSpec[]>();
    for (const node of nodes) {
      const root = find(node.name);
      groups.set(root, [...(groups.get(root) ?? []), node]);
    }
    const result: Subtopology[] = [];
    for (const group of groups.values()) {
      const sources = group.filter((n): n is SourceNodeSpec => n.kind === 'source');
      if (sources.length === 0) throw invalid(`nodes ${group.map((n) => n.name).join(', ')} are not connected to any source`);
      const sourceTopics = sources.flatMap((s) => s.topics);
      if (new Set(sourceTopics).size !== sourceTopics.length) {
        throw invalid(`a topic is read by two sources in one sub-topology: ${sourceTopics.join(', ')}`);
      }
      const stores = new Set<string>();
      for (const node of group) if (node.kind === 'processor') for (const s of node.stores) stores.add(s);
      result.push({
        id: result.length,
        nodes: group.map((n) => n.name),
        sourceTopics,
        sinkTopics: [...new Set(group.filter((n): n is SinkNodeSpec => n.kind === 'sink').map((n) => n.topic))],
        stores: [...stores],
      });
    }
    const readers = new Map<string, number>();
    for (const sub of result) {
      for (const topic of sub.sourceTopics) {
        const other = readers.get(topic);
        if (other !== undefined) throw invalid(`topic ${topic} is read by two sub-topologies (${other} and ${sub.id}); merge the streams instead`);
        readers.set(topic, sub.id);
      }
    }
    return result;
  }

  changelogTopic(storeName: string): string {
    return `${this.applicationId}-${storeName}-changelog`;
  }

  /** Where records that arrive after their window closed go, with the reason: `<app>-late-records`. */
  get lateRecordsTopic(): string {
    return `${this.applicationId}-late-records`;
  }

  /** The sub-topology that reads a topic, if any. */
  subtopologyReading(topic: string): Subtopology | undefined {
    return this.subtopologies.find((s) => s.sourceTopics.includes(topic));
  }

  /** Topics the application reads that are not its own internal topics. */
  get externalSourceTopics(): string[] {
    return this.subtopologies.flatMap((s) => s.sourceTopics).filter((t) => !this.internalTopics.has(t));
  }

  get externalSinkTopics(): string[] {
    return [...new Set(this.subtopologies.flatMap((s) => s.sinkTopics))].filter((t) => !this.internalTopics.has(t));
  }

  describe(): TopologyDescription {
    return {
      applicationId: this.applicationId,
      allowedLatenessMs: this.allowedLatenessMs,
      ...(this.maxTaskIdleMs > 0 ? { maxTaskIdleMs: this.maxTaskIdleMs } : {}),
      lateRecordsTopic: this.lateRecordsTopic,
      subtopologies: this.subtopologies.map((sub) => ({
        id: sub.id,
        sourceTopics: sub.sourceTopics,
        sinkTopics: sub.sinkTopics,
        nodes: sub.nodes.map((name) => {
          const node = this.nodes.get(name)!;
          const base = {
            name,
            kind: node.kind,
            children: this.children.get(name) ?? [],
          };
          switch (node.kind) {
            case 'source':
              return {
                ...base,
                operator: 'source',
                topics: node.topics,
                stores: [],
                parents: [],
                keySerde: node.keySerde.name,
                valueSerde: node.valueSerde.name,
                ...(node.timestampExtractor === undefined ? {} : { timestampExtractor: true }),
              };
            case 'sink':
              return { ...base, operator: 'sink', topic: node.topic, stores: [], parents: node.parents, keySerde: node.keySerde.name, valueSerde: node.valueSerde.name };
            case 'processor':
              return { ...base, operator: node.operator, stores: node.stores, parents: node.parents, ...(node.detail === undefined ? {} : { detail: node.detail }) };
          }
        }),
      })),
      stores: [...this.stores.values()].map((s) => ({
        name: s.name,
        kind: s.kind,
        changelogTopic: s.changelog ? this.changelogTopic(s.name) : null,
        keySerde: s.keySerde.name,
        valueSerde: s.valueSerde.name,
        ttlMs: s.ttlMs ?? null,
        ...(s.detail === undefined ? {} : { detail: s.detail }),
      })),
      internalTopics: [
        ...[...this.internalTopics.values()].map((t) => ({ name: t.name, kind: t.kind, partitions: t.partitions ?? null })),
        ...[...this.stores.values()].filter((s) => s.changelog).map((s) => ({
          name: this.changelogTopic(s.name),
          kind: 'changelog' as const,
          partitions: null,
        })),
      ],
      globalStores: [...this.globalStores.values()].map((g) => ({
        name: g.name,
        topic: g.topic,
        keySerde: g.keySerde.name,
        valueSerde: g.valueSerde.name,
      })),
    };
  }
}

/**
 * The Processor API's way to build a topology: add sources, processors (each with its stores) and sinks by name.
 *
 *   const draft = new TopologyDraft('fraud-app');
 *   draft.addSource('in', { topics: ['tx'] });
 *   draft.addStore({ name: 'seen', ... });
 *   draft.addProcessor('dedupe', () => new Dedupe(), { parents: ['in'], stores: ['seen'] });
 *   draft.addSink('out', 'tx-clean', { parents: ['dedupe'] });
 *   const topology = draft.build();
 */
export class TopologyDraft {
  readonly applicationId: string;
  readonly #nodes: NodeSpec[] = [];
  readonly #stores: StoreSpec[] = [];
  readonly #internalTopics: InternalTopicSpec[] = [];
  readonly #globalStores: GlobalStoreSpec[] = [];
  readonly #options: TopologyOptions;

  constructor(applicationId: string, options: TopologyOptions = {}) {
    this.applicationId = applicationId;
    this.#options = options;
  }

  addSource(
    name: string,
    options: {
      topics: readonly string[];
      keySerde: AnySerde;
      valueSerde: AnySerde;
      internal?: boolean;
      timestampExtractor?: (record: StreamRecord<any, any>) => number;
    },
  ): this {
    this.#nodes.push({
      kind: 'source',
      name,
      topics: options.topics,
      keySerde: options.keySerde,
      valueSerde: options.valueSerde,
      internal: options.internal ?? false,
      ...(options.timestampExtractor === undefined ? {} : { timestampExtractor: options.timestampExtractor }),
    });
    return this;
  }

  addProcessor(
    name: string,
    supplier: ProcessorSupplier<any, any, any, any>,
    options: { parents: readonly string[]; stores?: readonly string[]; operator?: string; detail?: Record<string, unknown> },
  ): this {
    this.#nodes.push({
      kind: 'processor',
      name,
      operator: options.operator ?? 'process',
      parents: options.parents,
      supplier,
      stores: options.stores ?? [],
      ...(options.detail === undefined ? {} : { detail: options.detail }),
    });
    return this;
  }

  addSink(name: string, topic: string, options: { parents: readonly string[]; keySerde: AnySerde; valueSerde: AnySerde; internal?: boolean }): this {
    this.#nodes.push({ kind: 'sink', name, topic, parents: options.parents, keySerde: options.keySerde, valueSerde: options.valueSerde, internal: options.internal ?? false });
    return this;
  }

  addStore(spec: StoreSpec): this {
    this.#stores.push(spec);
    return this;
  }

  addGlobalStore(spec: GlobalStoreSpec): this {
    this.#globalStores.push(spec);
    return this;
  }

  addInternalTopic(spec: InternalTopicSpec): this {
    this.#internalTopics.push(spec);
    return this;
  }

  /** Names of the nodes added so far (the DSL checks for clashes as it goes). */
  hasNode(name: string): boolean {
    return this.#nodes.some((n) => n.name === name);
  }

  build(): Topology {
    return new Topology(this.applicationId, this.#nodes, this.#stores, this.#internalTopics, this.#options, this.#globalStores);
  }
}
