import { Serdes } from '../../engine/serde/serde.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import { TimeWindows } from '../../engine/operators/windows.js';

export interface Transaction {
  readonly user: string;
  readonly amount: number;
}

/** Spend per user per minute of event time; records up to 5 s late still count (the README's example). */
const b = new StreamsBuilder('spend');
b.stream<string, Transaction>('transactions')
  .filter('positive', (r) => r.value.amount > 0)
  .groupBy('by-user', (r) => r.value.user)
  .windowedBy(TimeWindows.tumbling(60_000, { graceMs: 5_000 }))
  .aggregate('spend-per-minute', () => 0, (sum, tx) => sum + tx.amount, { valueSerde: Serdes.float64() })
  .toStream('changes')
  .to('spend-per-minute');
export default b;
