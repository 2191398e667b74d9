import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildHttpServer } from '../../engine/http/server.js';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { Metrics } from '../../engine/metrics/metrics.js';
import { AUDIT_TOPIC } from '../../engine/runtime/audit.js';
import { REDRIVEN_FROM_HEADER } from '../../engine/runtime/redrive.js';
import type { TopologyRunner } from '../../engine/runtime/runner.js';
import { EmbeddedSchemaRegistry } from '../../engine/serde/embedded-registry.js';
import { Serdes } from '../../engine/serde/serde.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import { caughtUp, readTopic, startRunner, tempDir } from '../support/runtime.js';

interface Harness {
  log: EmbeddedLog;
  app: FastifyInstance;
  runner: TopologyRunner;
  close(): Promise<void>;
}

const open: Harness[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) await h.close();
});

/** A topology that reads JSON from `events` and writes it to `clean`: bytes that are not JSON are dead-lettered. */
async function harness(): Promise<Harness> {
  const dir = await tempDir('millrace-redrive-');
  const log = new EmbeddedLog({ path: dir.path });
  await log.open();
  await log.ensureTopic({ name: 'events', partitions: 2 });
  await log.ensureTopic({ name: 'clean', partitions: 2 });
  const builder = new StreamsBuilder('cleaner');
  builder.stream<string, unknown>('events', { name: 'events', valueSerde: Serdes.json() }).to('clean', { name: 'to-clean', valueSerde: Serdes.json() });
  const runner = startRunner(log, builder.build());
  await runner.start();
  const registry = new EmbeddedSchemaRegistry(log);
  await registry.open();
  const app = await buildHttpServer({ log, registry, metrics: new Metrics({ defaultMetrics: false }), schemasDir: 'schemas', topologies: () => [], status: async () => ({}) as never });
  const h = {
    log,
    app,
    runner,
    async close() {
      await app.close();
      await runner.stop();
      await log.close();
      await dir.remove();
    },
  };
  open.push(h);
  return h;
}

const post = (app: FastifyInstance, url: string, payload: unknown, actor?: string) =>
  app.inject({ method: 'POST', url, payload: payload as object, headers: actor === undefined ? {} : { 'x-millrace-actor': actor } });

describe('dead-letter actions', () => {
  it('redrives a range in two steps: the dry run shows the plan, the token carries it out once, with one audit event', async () => {
    const { log, app, runner } = await harness();
    await log.append([
      { topic: 'events', partition: 1, key: Buffer.from('a'), value: Buffer.from('{"ok":1}') },
      { topic: 'events', partition: 1, key: Buffer.from('b'), value: Buffer.from('{"broken'), headers: { trace: Buffer.from('t-1') } },
      { topic: 'events', partition: 1, key: Buffer.from('c'), value: Buffer.from('not json') },
    ]);
    await caughtUp(runner);
    const listed = (await app.inject({ method: 'GET', url: '/dead-letters' })).json();
    expect(listed.deadLetterTopics).toEqual([{ topic: 'events.dlq', partitions: expect.any(Array), records: 2 }]);
    const dlqPartition = (listed.deadLetterTopics[0].partitions as Array<{ partition: number; end: number }>).find((p) => p.end > 0)!.partition;

    const dry = await post(app, '/dead-letters/events.dlq/redrive', { partition: dlqPartition, from: 0, to: 1 });
    expect(dry.statusCode).toBe(200);
    const plan = dry.json();
    expect(plan).toMatchObject({ dryRun: true, action: 'redrive', count: 2, token: expect.any(String) });
    expect(plan.items).toEqual([
      { offset: 0, target: { topic: 'events', partition: 1 }, code: 'MILLRACE_DESERIALIZATION', detail: expect.any(String), handled: false },
      { offset: 1, target: { topic: 'events', partition: 1 }, code: 'MILLRACE_DESERIALIZATION', detail: expect.any(String), handled: false },
    ]);
    expect((await readTopic(log, 'events')).length).toBe(3); // a dry run changes nothing

    const stale = await post(app, '/dead-letters/events.dlq/redrive', { partition: dlqPartition, from: 0, to: 1, dryRun: false, token: 'not-the-token' });
    expect(stale.statusCode).toBe(409);
    expect(stale.json()).toMatchObject({ code: 'MILLRACE_REDRIVE_STALE' });
    const unconfirmed = await post(app, '/dead-letters/events.dlq/redrive', { partition: dlqPartition, from: 0, to: 1, dryRun: false });
    expect(unconfirmed.json()).toMatchObject({ code: 'MILLRACE_REDRIVE_INVALID' });

    // Two confirmations of one plan at once: it is carried out once.
    const [done, again] = await Promise.all([
      post(app, '/dead-letters/events.dlq/redrive', { partition: dlqPartition, from: 0, to: 1, dryRun: false, token: plan.token }, 'ada'),
      post(app, '/dead-letters/events.dlq/redrive', { partition: dlqPartition, from: 0, to: 1, dryRun: false, token: plan.token }, 'ada'),
    ]);
    expect([done.statusCode, again.statusCode].sort()).toEqual([200, 409]);
    const result = (done.statusCode === 200 ? done : again).json();
    expect(result).toMatchObject({ dryRun: false, action: 'redrive', count: 2, audit: { topic: AUDIT_TOPIC, partition: 0, offset: 0 } });

    const events = (await readTopic(log, 'events')).filter((r) => r.partition === 1).sort((a, b) => a.offset - b.offset);
    expect(events.map((r) => r.value!.toString())).toEqual(['{"ok":1}', '{"broken', 'not json', '{"broken', 'not json']);
    expect(events[3]!.key!.toString()).toBe('b');
    expect(events[3]!.headers['trace']!.toString()).toBe('t-1');
    expect(events[3]!.headers[REDRIVEN_FROM_HEADER]!.toString()).toBe(`events.dlq/${dlqPartition}/0`);
    const audit = await readTopic(log, AUDIT_TOPIC);
    expect(audit).toHaveLength(1);
    expect(JSON.parse(audit[0]!.value!.toString())).toMatchObject({ type: 'DeadLettersRedriven', actor: 'ada', topic: 'events.dlq', offsets: [0, 1] });
    expect((await app.inject({ method: 'GET', url: '/audit' })).json().events).toEqual([expect.objectContaining({ type: 'DeadLettersRedriven', audit: { topic: '_audit', partition: 0, offset: 0 } })]);

    // Redriven: handled from now on (the redriven records fail again and become new dead letters, 2 and 3).
    await caughtUp(runner);
    const after = (await post(app, '/dead-letters/events.dlq/redrive', { partition: dlqPartition, from: 0, to: 3 })).json();
    expect(after.items.map((i: { offset: number; handled: boolean }) => [i.offset, i.handled])).toEqual([[0, true], [1, true], [2, false], [3, false]]);
    expect(after.count).toBe(2);
  });

  it('skips a dead letter with a reason: an audit event, nothing sent', async () => {
    const { log, app, runner } = await harness();
    await log.append([{ topic: 'events', partition: 0, key: Buffer.from('x'), value: Buffer.from('{') }]);
    await caughtUp(runner);
    const dlqPartition = (await log.partitionOffsets('events.dlq')).find((p) => p.end > 0)!.partition;
    const plan = (await post(app, '/dead-letters/events.dlq/skip', { partition: dlqPartition, from: 0, to: 0 })).json();
    const done = await post(app, '/dead-letters/events.dlq/skip', { partition: dlqPartition, from: 0, to: 0, dryRun: false, token: plan.token, reason: 'known bad producer' });
    expect(done.json()).toMatchObject({ action: 'skip', count: 1 });
    expect((await readTopic(log, 'events')).length).toBe(1);
    expect(JSON.parse((await readTopic(log, AUDIT_TOPIC))[0]!.value!.toString())).toMatchObject({ type: 'DeadLettersSkipped', offsets: [0], reason: 'known bad producer' });
  });

  it('refuses what is not a dead-letter range', async () => {
    const { app } = await harness();
    expect((await post(app, '/dead-letters/events/redrive', { from: 0, to: 0 })).json()).toMatchObject({ code: 'MILLRACE_REDRIVE_INVALID' });
    expect((await post(app, '/dead-letters/events.dlq/redrive', { from: 5, to: 1 })).json()).toMatchObject({ code: 'MILLRACE_REDRIVE_INVALID' });
    expect((await post(app, '/dead-letters/events.dlq/redrive', { from: 0, to: 5_000 })).json()).toMatchObject({ code: 'MILLRACE_REDRIVE_INVALID' });
    expect((await post(app, '/dead-letters/events.dlq/redrive', { from: 'a' })).statusCode).toBe(422);
    expect((await post(app, '/dead-letters/nothing.dlq/redrive', { from: 0, to: 0 })).json()).toMatchObject({ code: 'MILLRACE_TOPIC_UNKNOWN' });
  });
});
