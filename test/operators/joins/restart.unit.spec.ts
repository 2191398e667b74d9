import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../../engine/log/embedded/embedded-log.js';
import { Serdes } from '../../../engine/serde/serde.js';
import { StreamsBuilder } from '../../../engine/topology/builder.js';
import { JoinWindows, streamStreamJoin, streamTableJoin, table } from '../../../engine/topology/tables.js';
import type { Topology } from '../../../engine/topology/topology.js';
import { caughtUp, readTopic, startRunner, tempDir } from '../../support/runtime.js';

/** Impressions (left) joined with clicks (right) within 10 ms either way; unclicked impressions are forwarded too. */
function clickThrough(): Topology {
  const b = new StreamsBuilder('ctr');
  const impressions = b.stream<string, string>('impressions', { valueSerde: Serdes.string() });
  const clicks = b.stream<string, string>('clicks', { valueSerde: Serdes.string() });
  streamStreamJoin(impressions, clicks, (i, c) => `${i}|${c ?? '-'}`, JoinWindows.of(10, 10), { name: 'clicked', kind: 'left' })
    .to('out', { valueSerde: Serdes.string() });
  return b.build();
}

/** Orders priced as of their time by a versioned price table. */
function pricing(): Topology {
  const b = new StreamsBuilder('pricing');
  const prices = table<string, string>(b, 'prices', { name: 'price-table', valueSerde: Serdes.string(), versioned: { historyRetentionMs: 1_000 } });
  streamTableJoin(b.stream<string, string>('orders', { valueSerde: Serdes.string() }), prices, (o, p) => `${o}@${p}`, { name: 'priced' })
    .to('out', { valueSerde: Serdes.string() });
  return b.build();
}

const record = (topic: string, key: string, value: string, timestamp: number) => ({ topic, key: Buffer.from(key), value: Buffer.from(value), timestamp });

describe('joins in the runtime, across restarts', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let log: EmbeddedLog;
  beforeEach(async () => {
    dir = await tempDir();
    log = new EmbeddedLog({ path: dir.path });
    await log.open();
    for (const name of ['impressions', 'clicks', 'prices', 'orders', 'out']) await log.createTopic({ name, partitions: 2 });
  });
  afterEach(async () => {
    await log.close();
    await dir.remove();
  });

  async function output(): Promise<Array<[string, string, number]>> {
    return (await readTopic(log, 'out'))
      .map((r) => [r.key!.toString(), r.value!.toString(), r.timestamp] as [string, string, number])
      .sort((a, b) => a[2] - b[2] || a[1].localeCompare(b[1]));
  }

  async function run(topology: () => Topology, records: ReturnType<typeof record>[]): Promise<void> {
    const runner = startRunner(log, topology());
    await runner.start();
    if (records.length > 0) await log.append(records);
    await caughtUp(runner);
    await runner.stop();
  }

  it('a left join forwards unmatched left records buffered before a stop once, when their windows close after the restart', async () => {
    // given: i1 is clicked, i2 and i3 are not yet; their windows are open when the runner stops
    await run(clickThrough, [
      record('impressions', 'u1', 'i1', 1_000),
      record('impressions', 'u2', 'i2', 1_005),
      record('impressions', 'u3', 'i3', 1_006),
      record('clicks', 'u1', 'c1', 1_003),
    ]);
    expect(await output()).toEqual([['u1', 'i1|c1', 1_003]]);
    // when: after a restart, a late click for i3 and records that move each key's task past the windows arrive
    await run(clickThrough, [
      record('clicks', 'u3', 'c3', 1_010),
      record('clicks', 'u1', 'later', 2_000),
      record('clicks', 'u2', 'later', 2_000),
      record('clicks', 'u3', 'later', 2_000),
    ]);
    // then: i2 is forwarded unmatched, once; i1 and i3 matched, so they are not
    expect(await output()).toEqual([
      ['u1', 'i1|c1', 1_003],
      ['u2', 'i2|-', 1_005],
      ['u3', 'i3|c3', 1_010],
    ]);
    // and a third run, with buffers restored again, forwards nothing twice
    await run(clickThrough, [record('clicks', 'u2', 'again', 3_001), record('impressions', 'u2', 'i4', 3_001)]);
    await run(clickThrough, [record('clicks', 'u2', 'end', 4_000)]);
    expect(await output()).toEqual([
      ['u1', 'i1|c1', 1_003],
      ['u2', 'i2|-', 1_005],
      ['u3', 'i3|c3', 1_010],
      ['u2', 'i4|again', 3_001],
    ]);
    expect(await readTopic(log, 'ctr-late-records')).toEqual([]);
  });

  it('a versioned table keeps its history across a restart, so a late order joins the price valid at its time', async () => {
    await run(pricing, [record('prices', 'p', 'v100', 100), record('prices', 'p', 'v200', 200), record('orders', 'p', 'o250', 250)]);
    await run(pricing, [record('prices', 'p', 'v300', 300), record('orders', 'p', 'o150', 150), record('orders', 'p', 'o99', 99)]);
    expect(await output()).toEqual([
      ['p', 'o150@v100', 150],
      ['p', 'o250@v200', 250],
    ]);
  });
});
