import { describe, expect, it } from 'vitest';
import { TimeWindows } from '../../engine/operators/windows.js';
import { Serdes } from '../../engine/serde/serde.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import { TopologyDraft, type StoreSpec, type Topology } from '../../engine/topology/topology.js';
import { thrownCode } from './helpers.js';

interface Click {
  readonly user: string;
  readonly bot: boolean;
}

/** clicks → filter → groupBy user → 1-minute windowed count → to; and a plain count per session without changelog. */
function clickTopology(): Topology {
  const b = new StreamsBuilder('clicks-app');
  const clicks = b.stream<string, Click>('clicks');
  clicks
    .filterNot('humans', (r) => r.value.bot)
    .groupBy('by-user', (r) => r.value.user)
    .windowedBy(TimeWindows.tumbling(60_000, { graceMs: 5_000 }))
    .count('per-minute')
    .toStream('per-minute-changes')
    .to('clicks-per-minute');
  clicks.groupByKey('by-session').count('per-session', { changelog: false });
  return b.build();
}

describe('describe()', () => {
  it('returns the graph as JSON: nodes, sub-topologies split at the repartition topic, stores and internal topics', () => {
    const window = { kind: 'tumbling', sizeMs: 60_000, graceMs: 5_000 };
    expect(clickTopology().describe()).toEqual({
      applicationId: 'clicks-app',
      allowedLatenessMs: 0,
      lateRecordsTopic: 'clicks-app-late-records',
      subtopologies: [
        {
          id: 0,
          sourceTopics: ['clicks'],
          sinkTopics: ['clicks-app-by-user-repartition'],
          nodes: [
            { name: 'source-clicks', kind: 'source', operator: 'source', topics: ['clicks'], stores: [], parents: [], children: ['humans', 'per-session'], keySerde: 'string', valueSerde: 'json' },
            { name: 'humans', kind: 'processor', operator: 'filterNot', stores: [], parents: ['source-clicks'], children: ['by-user'] },
            { name: 'by-user', kind: 'processor', operator: 'keyBy', stores: [], parents: ['humans'], children: ['by-user-repartition-sink'] },
            { name: 'by-user-repartition-sink', kind: 'sink', operator: 'sink', topic: 'clicks-app-by-user-repartition', stores: [], parents: ['by-user'], children: [], keySerde: 'auto-key', valueSerde: 'json' },
            { name: 'per-session', kind: 'processor', operator: 'count', stores: ['per-session'], parents: ['source-clicks'], children: [] },
          ],
        },
        {
          id: 1,
          sourceTopics: ['clicks-app-by-user-repartition'],
          sinkTopics: ['clicks-per-minute'],
          nodes: [
            { name: 'by-user-repartition-source', kind: 'source', operator: 'source', topics: ['clicks-app-by-user-repartition'], stores: [], parents: [], children: ['per-minute'], keySerde: 'auto-key', valueSerde: 'json' },
            { name: 'per-minute', kind: 'processor', operator: 'windowedCount', stores: ['per-minute'], parents: ['by-user-repartition-source'], children: ['per-minute-changes'], detail: { window } },
            { name: 'per-minute-changes', kind: 'processor', operator: 'toStream', stores: [], parents: ['per-minute'], children: ['to-clicks-per-minute'] },
            { name: 'to-clicks-per-minute', kind: 'sink', operator: 'sink', topic: 'clicks-per-minute', stores: [], parents: ['per-minute-changes'], children: [], keySerde: 'windowed(auto-key)', valueSerde: 'int64' },
          ],
        },
      ],
      stores: [
        { name: 'per-minute', kind: 'window', changelogTopic: 'clicks-app-per-minute-changelog', keySerde: 'window(auto-key)', valueSerde: 'int64', ttlMs: null, detail: { window } },
        { name: 'per-session', kind: 'key-value', changelogTopic: null, keySerde: 'string', valueSerde: 'int64', ttlMs: null },
      ],
      internalTopics: [
        { name: 'clicks-app-by-user-repartition', kind: 'repartition', partitions: null },
        { name: 'clicks-app-per-minute-changelog', kind: 'changelog', partitions: null },
      ],
      globalStores: [],
    });
  });

  it('is stable: the same code gives byte-identical JSON', () => {
    expect(JSON.stringify(clickTopology().describe())).toBe(JSON.stringify(clickTopology().describe()));
    const topology = clickTopology();
    expect(JSON.stringify(topology.describe())).toBe(JSON.stringify(topology.describe()));
  });

  it('describes branch, merge and process steps with their operator and details', () => {
    const b = new StreamsBuilder('app');
    const parts = b.stream<string, number>('in').branch('split', { low: (r) => r.value < 0 }, { defaultBranch: 'rest' });
    parts['low']!.merge('joined', parts['rest']!).process('custom', () => ({ process() {} }));
    const nodes = b.build().describe().subtopologies[0]!.nodes.map((n) => ({ name: n.name, operator: n.operator, parents: n.parents, detail: n.detail }));
    expect(nodes).toEqual([
      { name: 'source-in', operator: 'source', parents: [], detail: undefined },
      { name: 'split', operator: 'branch', parents: ['source-in'], detail: { branches: ['low'], defaultBranch: 'rest' } },
      { name: 'split-low', operator: 'branchOutput', parents: ['split'], detail: undefined },
      { name: 'split-rest', operator: 'branchOutput', parents: ['split'], detail: undefined },
      { name: 'joined', operator: 'merge', parents: ['split-low', 'split-rest'], detail: undefined },
      { name: 'custom', operator: 'process', parents: ['joined'], detail: undefined },
    ]);
  });

  it('keeps in one sub-topology the nodes that share a store, even when they read different topics', () => {
    const store: StoreSpec = { name: 'shared', kind: 'key-value', keySerde: Serdes.string(), valueSerde: Serdes.json(), changelog: true };
    const draft = new TopologyDraft('app')
      .addStore(store)
      .addSource('a', { topics: ['a'], keySerde: Serdes.string(), valueSerde: Serdes.json() })
      .addSource('b', { topics: ['b'], keySerde: Serdes.string(), valueSerde: Serdes.json() })
      .addSource('c', { topics: ['c'], keySerde: Serdes.string(), valueSerde: Serdes.json() })
      .addProcessor('pa', () => ({ process() {} }), { parents: ['a'], stores: ['shared'] })
      .addProcessor('pb', () => ({ process() {} }), { parents: ['b'], stores: ['shared'] })
      .addProcessor('pc', () => ({ process() {} }), { parents: ['c'] });
    expect(draft.build().describe().subtopologies.map((s) => [s.id, s.sourceTopics, s.nodes.map((n) => n.name)])).toEqual([
      [0, ['a', 'b'], ['a', 'b', 'pa', 'pb']],
      [1, ['c'], ['c', 'pc']],
    ]);
  });
});

describe('building an invalid topology fails with MILLRACE_TOPOLOGY_INVALID', () => {
  const json = { keySerde: Serdes.string(), valueSerde: Serdes.json() };

  it('when the DSL reuses a node name, at the step that reuses it', () => {
    const b = new StreamsBuilder('app');
    const s = b.stream<string, number>('in').mapValues('step', (v) => v);
    expect(thrownCode(() => s.filter('step', () => true))).toBe('MILLRACE_TOPOLOGY_INVALID');
    expect(thrownCode(() => s.groupByKey('g').count('step'))).toBe('MILLRACE_TOPOLOGY_INVALID');
    expect(thrownCode(() => s.to('x', { name: 'step' }))).toBe('MILLRACE_TOPOLOGY_INVALID');
    expect(thrownCode(() => b.stream('other', { name: 'source-in' }))).toBe('MILLRACE_TOPOLOGY_INVALID');
  });

  it('when the DSL names a repartition after an existing node', () => {
    const b = new StreamsBuilder('app');
    const s = b.stream<string, number>('in').mapValues('k-repartition-sink', (v) => v);
    expect(thrownCode(() => s.keyBy('k', (r) => r.value))).toBe('MILLRACE_TOPOLOGY_INVALID');
  });

  it('when the draft has two nodes of one name', () => {
    const draft = new TopologyDraft('app')
      .addSource('in', { topics: ['in'], ...json })
      .addProcessor('p', () => ({ process() {} }), { parents: ['in'] })
      .addSink('p', 'out', { parents: ['in'], ...json });
    expect(thrownCode(() => draft.build())).toBe('MILLRACE_TOPOLOGY_INVALID');
  });

  it('when a node names an unknown parent', () => {
    const draft = new TopologyDraft('app')
      .addSource('in', { topics: ['in'], ...json })
      .addProcessor('p', () => ({ process() {} }), { parents: ['nope'] });
    expect(thrownCode(() => draft.build())).toBe('MILLRACE_TOPOLOGY_INVALID');
  });

  it('when a node follows a sink or has no parent', () => {
    const afterSink = new TopologyDraft('app')
      .addSource('in', { topics: ['in'], ...json })
      .addSink('out', 'out', { parents: ['in'], ...json })
      .addProcessor('p', () => ({ process() {} }), { parents: ['out'] });
    expect(thrownCode(() => afterSink.build())).toBe('MILLRACE_TOPOLOGY_INVALID');
    const orphan = new TopologyDraft('app').addSource('in', { topics: ['in'], ...json }).addProcessor('p', () => ({ process() {} }), { parents: [] });
    expect(thrownCode(() => orphan.build())).toBe('MILLRACE_TOPOLOGY_INVALID');
  });

  it('when a processor uses an unknown store, in the draft or in the DSL', () => {
    const draft = new TopologyDraft('app')
      .addSource('in', { topics: ['in'], ...json })
      .addProcessor('p', () => ({ process() {} }), { parents: ['in'], stores: ['missing'] });
    expect(thrownCode(() => draft.build())).toBe('MILLRACE_TOPOLOGY_INVALID');
    const b = new StreamsBuilder('app');
    b.stream('in').process('p', () => ({ process() {} }), { stores: ['missing'] });
    expect(thrownCode(() => b.build())).toBe('MILLRACE_TOPOLOGY_INVALID');
  });

  it('when two stores share a name', () => {
    const store: StoreSpec = { name: 's', kind: 'key-value', ...json, changelog: true };
    const b = new StreamsBuilder('app');
    b.addStore(store).addStore(store);
    b.stream('in').to('out');
    expect(thrownCode(() => b.build())).toBe('MILLRACE_TOPOLOGY_INVALID');
  });

  it('when an application id, node name or topic name is not a valid name', () => {
    const invalidApp = new StreamsBuilder('my app');
    invalidApp.stream('in').to('out');
    expect(thrownCode(() => invalidApp.build())).toBe('MILLRACE_TOPOLOGY_INVALID');
    const invalidNode = new StreamsBuilder('app');
    invalidNode.stream('in').mapValues('has space', (v) => v);
    expect(thrownCode(() => invalidNode.build())).toBe('MILLRACE_TOPOLOGY_INVALID');
    const invalidTopic = new StreamsBuilder('app');
    invalidTopic.stream('in').to('bad/topic');
    expect(thrownCode(() => invalidTopic.build())).toBe('MILLRACE_TOPOLOGY_INVALID');
  });

  it('when two sub-topologies read one topic', () => {
    const draft = new TopologyDraft('app')
      .addSource('first', { topics: ['in'], ...json })
      .addSource('second', { topics: ['in'], ...json });
    expect(thrownCode(() => draft.build())).toBe('MILLRACE_TOPOLOGY_INVALID');
  });
});
