import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../../engine/log/embedded/embedded-log.js';
import { SessionWindows, SlidingWindows, TimeWindows } from '../../../engine/operators/windows.js';
import { Serdes } from '../../../engine/serde/serde.js';
import { LevelBackend } from '../../../engine/state/backend.js';
import { StreamsBuilder, type KTable } from '../../../engine/topology/builder.js';
import type { Windowed } from '../../../engine/topology/record.js';
import { caughtUp, readTopic, startRunner, tempDir } from '../../support/runtime.js';

const KINDS = ['tumbling', 'sliding', 'session'] as const;

/** The same events counted in final mode in three kinds of windows, each written to `finals-<kind>` as `key@start-end`. */
function finalCounts() {
  const b = new StreamsBuilder('wr');
  const grouped = b.stream<string, unknown>('events').groupByKey('by-key');
  const tables: Record<(typeof KINDS)[number], KTable<Windowed<string>, number>> = {
    tumbling: grouped.windowedBy(TimeWindows.tumbling(1_000)).count('tumbling', { emit: 'final' }),
    sliding: grouped.windowedBy(SlidingWindows.of(1_000, { graceMs: 1_000 })).count('sliding', { emit: 'final' }),
    session: grouped.windowedBy(SessionWindows.withGap(1_000)).count('session', { emit: 'final' }),
  };
  for (const kind of KINDS) {
    tables[kind]
      .toStream(`${kind}-changes`)
      .map(`${kind}-flat`, (r) => ({ key: `${r.key.key}@${r.key.window.start}-${r.key.window.end}`, value: r.value }))
      .to(`finals-${kind}`, { valueSerde: Serdes.json<number>() });
  }
  return b.build();
}

const event = (key: string, timestamp: number) => ({ topic: 'events', partition: 0, key: Buffer.from(key), value: Buffer.from('{}'), timestamp });

describe('final-mode windows across a restart', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let log: EmbeddedLog;
  beforeEach(async () => {
    dir = await tempDir();
    log = new EmbeddedLog({ path: dir.path });
    await log.open();
    await log.createTopic({ name: 'events', partitions: 1 });
    for (const kind of KINDS) await log.createTopic({ name: `finals-${kind}`, partitions: 1 });
  });
  afterEach(async () => {
    await log.close();
    await dir.remove();
  });

  async function finals(kind: string): Promise<Array<[string, number]>> {
    return (await readTopic(log, `finals-${kind}`)).map((r) => [r.key!.toString(), JSON.parse(r.value!.toString()) as number]);
  }

  /** Opens windows in a first run, stops with them open, restarts (the index is rebuilt from LevelDB) and closes them. */
  async function openStopRestartClose(betweenRuns: () => Promise<void> = async () => {}): Promise<void> {
    const first = startRunner(log, finalCounts());
    await first.start();
    await log.append([event('k', 10_000), event('j', 10_200), event('k', 10_500)]);
    await caughtUp(first);
    await first.stop();
    for (const kind of KINDS) expect(await finals(kind)).toEqual([]);
    await betweenRuns();
    const second = startRunner(log, finalCounts());
    await second.start();
    await log.append([event('x', 20_000)]);
    await caughtUp(second);
    await second.stop();
  }

  const expected = {
    tumbling: [['j@10000-11000', 1], ['k@10000-11000', 2]],
    // closes at t + 1 + grace: k@10000, j@10200, k@10500
    sliding: [['k@9000-10001', 1], ['j@9200-10201', 1], ['k@9500-10501', 2]],
    // closes at last + 1 + gap: j at 11201, k at 11501
    session: [['j@10200-10201', 1], ['k@10000-10501', 2]],
  };

  it('close the windows opened before the restart, each once', async () => {
    await openStopRestartClose();
    for (const kind of KINDS) expect(await finals(kind), kind).toEqual(expected[kind]);
    expect(await readTopic(log, 'wr-late-records')).toEqual([]);
  });

  it('close them too when the stores were restored from their changelogs', async () => {
    await openStopRestartClose(async () => {
      for (const kind of KINDS) {
        await new LevelBackend(log.db, `wr/${kind}`, 0).clear();
        await new LevelBackend(log.db, `wr/${kind}~checkpoint`, 0).clear();
      }
    });
    for (const kind of KINDS) expect(await finals(kind), kind).toEqual(expected[kind]);
  });
});
