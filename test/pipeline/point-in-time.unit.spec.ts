/**
 * A training set exported by replaying the log holds, in every row, features computed only from events at or before
 * the row's timestamp, even when events arrive out of order (later events first, earlier ones late).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { FEATURE_NAMES, Topics, type Feedback, type Transaction } from '../../topologies/pipeline/contract.js';
import { computeFeatures, type HistoryEntry } from '../../topologies/pipeline/feature-definitions.js';
import { exportTrainingSet } from '../../topologies/pipeline/training-set.js';
import { tempDir } from '../support/runtime.js';

const T0 = Date.parse('2026-03-01T00:00:00Z');

interface Generated {
  readonly tx: Transaction;
  readonly fraud: boolean;
}

const transactions = fc
  .array(
    fc.record({
      user: fc.constantFrom('ada', 'bob', 'cy'),
      // Event times over two days, in any arrival order: later events often arrive before earlier ones.
      atMs: fc.integer({ min: 0, max: 2 * 86_400_000 }),
      amount: fc.double({ min: 0.5, max: 5_000, noNaN: true }).map((a) => Math.round(a * 100) / 100),
      country: fc.constantFrom('NL', 'FR', 'DE', 'US'),
      fraud: fc.boolean(),
    }),
    { minLength: 1, maxLength: 120 },
  )
  .map((rows) =>
    rows.map(
      (r, i): Generated => ({
        tx: {
          id: `tx-${i}`,
          user: r.user,
          merchant: 'm1',
          country: r.country,
          amount: r.amount,
          currency: 'EUR',
          at: new Date(T0 + r.atMs).toISOString(),
          ip: '203.0.113.9',
          card_present: true,
        },
        fraud: r.fraud,
      }),
    ),
  );

describe('training sets are point-in-time correct', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let log: EmbeddedLog;
  beforeEach(async () => {
    dir = await tempDir('millrace-pit-');
    log = new EmbeddedLog({ path: join(dir.path, 'log') });
    await log.open();
  });
  afterEach(async () => {
    await log.close();
    await dir.remove();
  });

  it('never uses an event later than the row, whatever the arrival order', async () => {
    await fc.assert(
      fc.asyncProperty(transactions, async (generated) => {
        const suffix = Math.random().toString(36).slice(2, 8);
        // Fresh topics per run: the export reads the pipeline's topic names.
        for (const name of [Topics.transactions, Topics.feedback]) {
          await log.deleteTopic(name).catch(() => undefined);
          await log.createTopic({ name, partitions: 2 });
        }
        await log.append(generated.map(({ tx }) => ({ topic: Topics.transactions, key: Buffer.from(tx.user), value: Buffer.from(JSON.stringify(tx)), timestamp: Date.parse(tx.at) })));
        await log.append(generated.map(({ tx, fraud }) => {
          const label: Feedback = { transaction_id: tx.id, user: tx.user, fraud, at: tx.at };
          return { topic: Topics.feedback, key: Buffer.from(tx.id), value: Buffer.from(JSON.stringify(label)) };
        }));
        const set = await exportTrainingSet({ log, outPath: join(dir.path, `train-${suffix}.csv`) });
        expect(set.rows).toBe(generated.length);

        // The brute-force reference: for each transaction, the same user's transactions read before it (arrival
        // order within its partition) whose event time is not later than its own.
        const lines = (await readFile(set.path, 'utf8')).trim().split('\n');
        expect(lines[0]).toBe(['transaction_id', 'at', ...FEATURE_NAMES, 'label'].join(','));
        const arrival = new Map(generated.map((g, i) => [g.tx.id, i]));
        for (const line of lines.slice(1)) {
          const cells = line.split(',');
          const id = cells[0]!;
          const row = generated[arrival.get(id)!]!;
          const t = Date.parse(row.tx.at);
          const history: HistoryEntry[] = generated
            .filter((g, i) => i < arrival.get(id)! && g.tx.user === row.tx.user && Date.parse(g.tx.at) <= t)
            .map((g) => ({ at: Date.parse(g.tx.at), amount: g.tx.amount, country: g.tx.country }))
            .filter((h) => t - h.at < 86_400_000);
          const expected = computeFeatures(history, t, row.tx.amount, row.tx.country);
          const actual = Object.fromEntries(FEATURE_NAMES.map((name, k) => [name, Number(cells[2 + k])]));
          expect(actual, id).toEqual(expected);
          expect(cells[cells.length - 1]).toBe(row.fraud ? '1' : '0');
          // And directly: nothing from the future. Counts never exceed the events at or before t.
          const atOrBefore = generated.filter((g) => g.tx.user === row.tx.user && Date.parse(g.tx.at) <= t && t - Date.parse(g.tx.at) < 600_000).length;
          expect(actual['count_10m']!).toBeLessThanOrEqual(atOrBefore);
        }
      }),
      { numRuns: 100 },
    );
  });
});
