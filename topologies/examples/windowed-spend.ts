import { TimeWindows } from '../../engine/operators/windows.js';
import type { TopologyContext } from '../../engine/runtime/modules.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';

export interface Payment {
  readonly id: string;
  readonly user: string;
  readonly amount: number;
  /** When it happened (ISO 8601): the event time. */
  readonly at: string;
}

export interface WindowSpend {
  readonly user: string;
  readonly start: string;
  readonly end: string;
  readonly count: number;
  readonly sum: number;
}

/**
 * Each user's spend in hopping one-minute windows every 30 s of event time (the payment's `at`), emitted once per
 * window when it closes. Records later than the watermark (stream time − allowedLatenessMs) plus the 10 s grace go
 * to `windowed-spend-late-records`.
 *
 * Options: `input` (default "payments"), `output` (default "spend-windows"), `allowedLatenessMs` (default 5000),
 * `idleCloseMs` (default none: windows close by event time only).
 */
export default function windowedSpend({ options }: TopologyContext) {
  const input = typeof options['input'] === 'string' ? options['input'] : 'payments';
  const output = typeof options['output'] === 'string' ? options['output'] : 'spend-windows';
  const allowedLatenessMs = typeof options['allowedLatenessMs'] === 'number' ? options['allowedLatenessMs'] : 5_000;
  const idleCloseMs = typeof options['idleCloseMs'] === 'number' ? options['idleCloseMs'] : undefined;
  const builder = new StreamsBuilder('windowed-spend', { allowedLatenessMs });
  builder
    .stream<string, Payment>(input, { name: 'payments', timestampExtractor: (r) => Date.parse(r.value.at) })
    .groupByKey('by-user')
    .windowedBy(TimeWindows.hopping(60_000, 30_000, { graceMs: 10_000 }))
    .aggregate('spend', () => ({ count: 0, sum: 0 }), (total, payment) => ({ count: total.count + 1, sum: total.sum + payment.amount }), {
      emit: 'final',
      ...(idleCloseMs === undefined ? {} : { idleCloseMs }),
    })
    .toStream('closed-windows')
    .map<string, WindowSpend>('flatten', (r) => ({
      key: r.key.key,
      value: {
        user: r.key.key,
        start: new Date(r.key.window.start).toISOString(),
        end: new Date(r.key.window.end).toISOString(),
        count: r.value.count,
        sum: Math.round(r.value.sum * 100) / 100,
      },
    }))
    .to(output, { name: 'to-output' });
  return builder;
}
