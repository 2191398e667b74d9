import { describe, expect, it } from 'vitest';
import { Serdes } from '../../../engine/serde/serde.js';
import { StreamsBuilder } from '../../../engine/topology/builder.js';
import type { Topology } from '../../../engine/topology/topology.js';
import { JoinWindows, globalTable, streamGlobalTableJoin, streamStreamJoin, streamTableJoin, table } from '../../../engine/topology/tables.js';

/** Impressions joined with clicks, priced by a versioned table, routed by a global table. */
function adsTopology(): Topology {
  const b = new StreamsBuilder('ads');
  const prices = table<string, number>(b, 'prices', { name: 'price-table', valueSerde: Serdes.json<number>(), versioned: { historyRetentionMs: 3_600_000 } });
  const routes = globalTable<string, string>(b, 'routes', { name: 'route-table', valueSerde: Serdes.string() });
  const impressions = b.stream<string, string>('impressions');
  const clicks = b.stream<string, string>('clicks');
  const clicked = streamStreamJoin(impressions, clicks, (i, c) => ({ i, c }), JoinWindows.of(0, 600_000, { graceMs: 60_000 }), { name: 'clicked', kind: 'left' });
  const priced = streamTableJoin(clicked, prices, (v, p) => ({ ...v, price: p }), { name: 'priced', left: true });
  streamGlobalTableJoin(priced, routes, (r) => r.key, (v, route) => ({ ...v, route }), { name: 'routed' }).to('billable');
  return b.build();
}

describe('describe() of joins', () => {
  it('puts a stream and the table it joins in one sub-topology, and gives each join node and store its detail', () => {
    const description = adsTopology().describe();
    const windows = { beforeMs: 0, afterMs: 600_000, graceMs: 60_000 };
    const versioned = { historyRetentionMs: 3_600_000 };
    expect(description.subtopologies.map((s) => s.sourceTopics)).toEqual([['prices', 'impressions', 'clicks']]);
    const nodes = description.subtopologies[0]!.nodes.filter((n) => n.kind === 'processor').map(({ name, operator, stores, parents, children, detail }) => ({ name, operator, stores, parents, children, detail }));
    expect(nodes).toEqual([
      { name: 'price-table', operator: 'table', stores: ['price-table'], parents: ['price-table-source'], children: [], detail: { topic: 'prices', versioned } },
      { name: 'clicked-left', operator: 'joinSide', stores: [], parents: ['source-impressions'], children: ['clicked'], detail: { side: 'left' } },
      { name: 'clicked-right', operator: 'joinSide', stores: [], parents: ['source-clicks'], children: ['clicked'], detail: { side: 'right' } },
      {
        name: 'clicked',
        operator: 'streamStreamJoin',
        stores: ['clicked-left-buffer', 'clicked-right-buffer'],
        parents: ['clicked-left', 'clicked-right'],
        children: ['priced'],
        detail: { join: 'left', windows, leftStore: 'clicked-left-buffer', rightStore: 'clicked-right-buffer' },
      },
      {
        name: 'priced',
        operator: 'streamTableJoin',
        stores: ['price-table'],
        parents: ['clicked'],
        children: ['routed'],
        detail: { join: 'left', table: 'price-table', lookup: 'as-of-record-time', versioned },
      },
      { name: 'routed', operator: 'streamGlobalTableJoin', stores: [], parents: ['priced'], children: ['to-billable'], detail: { join: 'inner', globalStore: 'route-table', topic: 'routes' } },
    ]);
    expect(description.stores).toEqual([
      { name: 'price-table', kind: 'key-value', changelogTopic: 'ads-price-table-changelog', keySerde: 'string', valueSerde: 'versioned(json)', ttlMs: null, detail: { topic: 'prices', versioned } },
      { name: 'clicked-left-buffer', kind: 'key-value', changelogTopic: 'ads-clicked-left-buffer-changelog', keySerde: 'string', valueSerde: 'join-buffer(json)', ttlMs: null, detail: { join: 'clicked', side: 'left', windows } },
      { name: 'clicked-right-buffer', kind: 'key-value', changelogTopic: 'ads-clicked-right-buffer-changelog', keySerde: 'string', valueSerde: 'join-buffer(json)', ttlMs: null, detail: { join: 'clicked', side: 'right', windows } },
    ]);
    expect(description.globalStores).toEqual([{ name: 'route-table', topic: 'routes', keySerde: 'string', valueSerde: 'string' }]);
  });

  it('says when a table is unversioned and its lookups take the latest value', () => {
    const b = new StreamsBuilder('plain');
    const rates = table<string, number>(b, 'rates', { name: 'rate-table', changelog: false });
    streamTableJoin(b.stream<string, number>('amounts'), rates, (a, r) => a * r, { name: 'converted' }).to('out');
    const description = b.build().describe();
    expect(description.stores).toEqual([{ name: 'rate-table', kind: 'key-value', changelogTopic: null, keySerde: 'string', valueSerde: 'json', ttlMs: null, detail: { topic: 'rates', versioned: null } }]);
    expect(description.subtopologies[0]!.nodes.find((n) => n.name === 'converted')!.detail).toEqual({ join: 'inner', table: 'rate-table', lookup: 'latest', versioned: null });
  });

  it('refuses names already taken and bad retention', () => {
    const b = new StreamsBuilder('dup');
    table(b, 'a', { name: 't' });
    expect(() => table(b, 'b', { name: 't' })).toThrow(expect.objectContaining({ code: 'MILLRACE_TOPOLOGY_INVALID' }));
    expect(() => table(b, 'c', { name: 'u', versioned: { historyRetentionMs: -1 } })).toThrow(RangeError);
  });
});
