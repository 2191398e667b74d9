/** The README's examples, run: documentation that compiles and does what it says. */
import { describe, expect, it } from 'vitest';
import { Serdes } from '../../engine/serde/serde.js';
import { TopologyTestDriver } from '../../engine/testing/index.js';
import dedupe from '../../topologies/examples/dedupe.js';
import enrich from '../../topologies/examples/enrich-payments.js';
import spend from '../../topologies/examples/spend-per-minute.js';
import { windowedSerde } from '../../engine/topology/builder.js';

const at = (iso: string): number => Date.parse(iso);

describe('README examples', () => {
  it('spend-per-minute sums each user\'s spend per minute of event time and sends late records to the late-records topic', () => {
    const driver = new TopologyTestDriver(spend.build());
    const input = driver.createInputTopic('transactions');
    const output = driver.createOutputTopic('spend-per-minute', { keySerde: windowedSerde(Serdes.string()), valueSerde: Serdes.float64() });
    input.pipeInput('t1', { user: 'ada', amount: 12 }, at('2026-01-01T00:00:10Z'));
    input.pipeInput('t2', { user: 'bob', amount: 3 }, at('2026-01-01T00:00:20Z'));
    input.pipeInput('t3', { user: 'ada', amount: 7 }, at('2026-01-01T00:00:50Z'));
    input.pipeInput('t4', { user: 'ada', amount: -1 }, at('2026-01-01T00:00:51Z'));
    input.pipeInput('t5', { user: 'ada', amount: 5 }, at('2026-01-01T00:01:30Z'));
    input.pipeInput('t6', { user: 'ada', amount: 1 }, at('2026-01-01T00:00:58Z')); // late: minute 0 closed at 01:05
    const minute0 = { start: at('2026-01-01T00:00:00Z'), end: at('2026-01-01T00:01:00Z') };
    const minute1 = { start: at('2026-01-01T00:01:00Z'), end: at('2026-01-01T00:02:00Z') };
    expect(output.readKeyValuesToList()).toEqual([
      { key: { key: 'ada', window: minute0 }, value: 12 },
      { key: { key: 'bob', window: minute0 }, value: 3 },
      { key: { key: 'ada', window: minute0 }, value: 19 },
      { key: { key: 'ada', window: minute1 }, value: 5 },
    ]);
    expect(driver.deadLetters('transactions')).toEqual([]);
    // Windowing happens after the repartition by user, so the late record's coordinates are on that topic.
    const late = driver.lateRecords();
    expect(late.map((d) => [d.code, d.node, d.source.timestamp])).toEqual([
      ['MILLRACE_LATE_RECORD', 'spend-per-minute', '2026-01-01T00:00:58.000Z'],
    ]);
  });

  it('dedupe forwards the first record of each key only', () => {
    const driver = new TopologyTestDriver(dedupe.build());
    const input = driver.createInputTopic('raw-events');
    const output = driver.createOutputTopic('unique-events');
    input.pipeInput('a', { n: 1 });
    input.pipeInput('b', { n: 2 });
    input.pipeInput('a', { n: 3 });
    expect(output.readKeyValuesToList()).toEqual([
      { key: 'a', value: { n: 1 } },
      { key: 'b', value: { n: 2 } },
    ]);
  });

  it('enrich-payments joins a versioned table as of event time, a global table, and a stream within a window', () => {
    const driver = new TopologyTestDriver(enrich.build());
    const profiles = driver.createInputTopic('user-profiles');
    const merchants = driver.createInputTopic('merchants');
    const clicks = driver.createInputTopic('clicks');
    const payments = driver.createInputTopic('payments');
    const out = driver.createOutputTopic('enriched-payments');
    merchants.pipeInput('m1', { country: 'NL' });
    profiles.pipeInput('ada', { tier: 'basic' }, 1_000);
    profiles.pipeInput('ada', { tier: 'gold' }, 50_000);
    clicks.pipeInput('ada', { page: '/checkout' }, 9_000);
    // Processed after the upgrade, but it happened at 10 s: it joins the profile valid then.
    payments.pipeInput('ada', { id: 'p1', user: 'ada', amount: 5, merchant: 'm1' }, 10_000);
    payments.pipeInput('ada', { id: 'p2', user: 'ada', amount: 7, merchant: 'm1' }, 60_000);
    payments.pipeInput('ada', { id: 'p3', user: 'ada', amount: 9, merchant: 'm1' }, 130_000); // closes p2's window
    expect(out.readValuesToList()).toEqual([
      { id: 'p1', user: 'ada', amount: 5, merchant: 'm1', tier: 'basic', country: 'NL', page: '/checkout' },
      { id: 'p2', user: 'ada', amount: 7, merchant: 'm1', tier: 'gold', country: 'NL', page: null },
    ]);
  });
});

describe('README projection example', () => {
  it('balances keeps a balance per account and removes an account back at zero; a bad payment is refused', async () => {
    const { ProjectionTestDriver } = await import('../../engine/testing/index.js');
    const balances = (await import('../../projections/examples/balances.js')).default;
    const driver = new ProjectionTestDriver(balances);
    await driver.pipe({ topic: 'payments', key: 'ada', value: { account: 'ada', amount: 30 } });
    await driver.pipe({ topic: 'payments', key: 'bob', value: { account: 'bob', amount: 5 } });
    await driver.pipe({ topic: 'payments', key: 'ada', value: { account: 'ada', amount: -10 } });
    await driver.pipe({ topic: 'payments', key: 'bob', value: { account: 'bob', amount: -5 } });
    await driver.pipe({ topic: 'payments', key: 'eve', value: Buffer.from('not json') });
    expect(driver.entries()).toEqual([['ada', { balance: 20, payments: 2 }]]);
    expect(driver.deadLetters.map((d) => d.input.key)).toEqual(['eve']);
  });
});
