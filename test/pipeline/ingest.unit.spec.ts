/**
 * The ingest topology in a TopologyTestDriver: raw JSON transactions and labels in, validated Avro events out,
 * keyed by user / transaction id at their event time; every invalid event dead-lettered with the issues it has.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import type { EngineServices } from '../../engine/runtime/services.js';
import type { DeadLetter } from '../../engine/runtime/dead-letter.js';
import { avroSerde } from '../../engine/serde/avro-serde.js';
import { EmbeddedSchemaRegistry } from '../../engine/serde/embedded-registry.js';
import { TopologyTestDriver, type TestInputTopic } from '../../engine/testing/index.js';
import { Topics, type Feedback, type Transaction } from '../../topologies/pipeline/contract.js';
import { TrafficGenerator } from '../../topologies/pipeline/generator.js';
import ingest, { FEEDBACK_SUBJECT, TRANSACTIONS_SUBJECT } from '../../topologies/pipeline/ingest.js';
import { tempDir } from '../support/runtime.js';

const AT = '2026-03-01T10:20:30.456Z';
const AT_MS = Date.parse(AT);
/** The log timestamp the raw records are piped with: never the event time, so the test tells them apart. */
const LOG_MS = Date.parse('2026-03-05T00:00:00Z');

const transaction = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  id: 'tx-000000001',
  user: 'user-00042',
  merchant: 'merchant-00007',
  country: 'FR',
  amount: 42.5,
  currency: 'EUR',
  at: AT,
  ip: '203.0.113.7',
  card_present: true,
  ...overrides,
});

const label = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  transaction_id: 'tx-000000001',
  user: 'user-00042',
  fraud: false,
  at: '2026-03-01T10:25:00Z',
  ...overrides,
});

interface SchemaViolation extends DeadLetter {
  readonly issues: ReadonlyArray<{ readonly path: string; readonly message: string }>;
}

const paths = (letter: DeadLetter | undefined): string[] => ((letter as SchemaViolation | undefined)?.issues ?? []).map((i) => i.path);

describe('ingest', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let log: EmbeddedLog;
  let registry: EmbeddedSchemaRegistry;
  let driver: TopologyTestDriver;
  let transactionsIn: TestInputTopic<string | null, unknown>;
  let feedbackIn: TestInputTopic<string | null, unknown>;

  beforeEach(async () => {
    dir = await tempDir('millrace-ingest-');
    log = new EmbeddedLog({ path: join(dir.path, 'log') });
    await log.open();
    registry = new EmbeddedSchemaRegistry(log);
    await registry.open();
    // Ingest reads only options and the registry: the services are never touched.
    const builder = await ingest({ options: {}, registry, services: {} as EngineServices });
    driver = new TopologyTestDriver(builder.build());
    transactionsIn = driver.createInputTopic<string | null, unknown>(Topics.transactionsRaw);
    feedbackIn = driver.createInputTopic<string | null, unknown>(Topics.feedbackRaw);
  });

  afterEach(async () => {
    driver?.close();
    await log?.close();
    await dir?.remove();
  });

  const transactionsOut = () =>
    driver.createOutputTopic<string, Transaction & { channel?: string | null }>(Topics.transactions, { valueSerde: avroSerde(registry, TRANSACTIONS_SUBJECT) });
  const feedbackOut = () => driver.createOutputTopic<string, Feedback>(Topics.feedback, { valueSerde: avroSerde(registry, FEEDBACK_SUBJECT) });
  const transactionLetters = () => driver.deadLetters(Topics.transactionsRaw);
  const feedbackLetters = () => driver.deadLetters(Topics.feedbackRaw);

  describe('a valid transaction', () => {
    it.each([
      ['IPv4', '203.0.113.7'],
      ['IPv6', '2001:db8::8a2e:370:7334'],
      ['IPv6 loopback', '::1'],
    ])('from an %s address goes to transactions, keyed by user, at its event time', (_, ip) => {
      // given
      const event = transaction({ ip });
      // when: sent with another key, at another log time
      transactionsIn.pipeInput('whatever', event, LOG_MS);
      // then
      const out = transactionsOut().readRecordsToList();
      expect(out).toHaveLength(1);
      expect(out[0]!.key).toBe('user-00042');
      expect(out[0]!.timestamp).toBe(AT_MS);
      // Written as it came: the Avro record reads back as the event (v2 adds an absent channel).
      expect(out[0]!.value).toEqual({ ...event, channel: null });
      expect(transactionLetters()).toEqual([]);
    });

    it('at the amount bounds 0 and 1 000 000, with a zone offset, is accepted', () => {
      transactionsIn.pipeInput(null, transaction({ id: 'a', amount: 0 }), LOG_MS);
      transactionsIn.pipeInput(null, transaction({ id: 'b', amount: 1_000_000, at: '2026-03-01T12:20:30.456+02:00' }), LOG_MS);
      const out = transactionsOut().readRecordsToList();
      expect(out.map((r) => r.value!.id)).toEqual(['a', 'b']);
      // +02:00 is the same instant as AT.
      expect(out.map((r) => r.timestamp)).toEqual([AT_MS, AT_MS]);
      expect(transactionLetters()).toEqual([]);
    });

    it('carrying the v2 channel is accepted and keeps it', () => {
      transactionsIn.pipeInput(null, transaction({ channel: 'ecommerce' }), LOG_MS);
      expect(transactionsOut().readValuesToList()).toEqual([{ ...transaction(), channel: 'ecommerce' }]);
    });
  });

  describe('a valid label', () => {
    it('goes to feedback, keyed by transaction id, at its event time', () => {
      // given
      const event = label({ fraud: true });
      // when
      feedbackIn.pipeInput('user-00042', event, LOG_MS);
      // then
      const out = feedbackOut().readRecordsToList();
      expect(out.map((r) => [r.key, r.value, r.timestamp])).toEqual([['tx-000000001', event, Date.parse('2026-03-01T10:25:00Z')]]);
      expect(feedbackLetters()).toEqual([]);
      // Labels never leak into transactions, nor the reverse.
      expect(transactionsOut().isEmpty()).toBe(true);
    });
  });

  describe('an invalid transaction', () => {
    const cases: ReadonlyArray<[string, Record<string, unknown>, string[]]> = [
      ['an IP address that is not one', transaction({ ip: '300.1.1.1' }), ['/ip']],
      ['an IP address that is a host name', transaction({ ip: 'example.com' }), ['/ip']],
      ['a timestamp that is not ISO 8601', transaction({ at: '2026-03-01 10:20:30' }), ['/at']],
      ['a timestamp without a zone', transaction({ at: '2026-03-01T10:20:30' }), ['/at']],
      ['a timestamp in ms', transaction({ at: AT_MS }), ['/at']],
      ['a timestamp before 1970', transaction({ at: '1969-12-31T23:59:59Z' }), ['/at']],
      ['a negative amount', transaction({ amount: -0.01 }), ['/amount']],
      ['an amount above 1 000 000', transaction({ amount: 1_000_000.01 }), ['/amount']],
      ['an amount that is a string', transaction({ amount: '42.50' }), ['/amount']],
      ['a missing user', (({ user: _, ...rest }) => rest)(transaction()), ['/user']],
      ['a missing amount', (({ amount: _, ...rest }) => rest)(transaction()), ['/amount']],
      ['an empty user', transaction({ user: '  ' }), ['/user']],
      ['an unknown field', transaction({ risk: 0.3 }), ['/risk']],
      ['a lower-case country', transaction({ country: 'fr' }), ['/country']],
      ['a three-letter country', transaction({ country: 'FRA' }), ['/country']],
      ['a lower-case currency', transaction({ currency: 'eur' }), ['/currency']],
      ['a two-letter currency', transaction({ currency: 'EU' }), ['/currency']],
      ['card_present as a string', transaction({ card_present: 'yes' }), ['/card_present']],
    ];

    it.each(cases)('with %s goes to transactions-raw.dlq as MILLRACE_SCHEMA_VIOLATION naming the field', (_, event, fields) => {
      // when
      transactionsIn.pipeInput('k', event, LOG_MS);
      // then
      expect(transactionsOut().isEmpty()).toBe(true);
      const letters = transactionLetters();
      expect(letters).toHaveLength(1);
      expect(letters[0]).toMatchObject({
        code: 'MILLRACE_SCHEMA_VIOLATION',
        status: 422,
        node: 'validate-transaction',
        subject: TRANSACTIONS_SUBJECT,
        source: { topic: Topics.transactionsRaw, offset: 0 },
      });
      expect(paths(letters[0])).toEqual(fields);
      // The original bytes are kept, so nothing is lost.
      expect(JSON.parse(Buffer.from(letters[0]!.original.value!, 'base64').toString('utf8'))).toEqual(event);
    });

    it('names every issue it has, in the order of the schema fields', () => {
      transactionsIn.pipeInput('k', transaction({ extra: 1, ip: 'nope', country: 'fr', amount: -1, at: 'yesterday' }), LOG_MS);
      expect(paths(transactionLetters()[0])).toEqual(['/country', '/amount', '/at', '/ip', '/extra']);
    });

    it('whose `at` is unusable keeps the log timestamp on its dead letter', () => {
      transactionsIn.pipeInput('k', transaction({ at: 'soon' }), LOG_MS);
      const record = driver.createOutputTopic(`${Topics.transactionsRaw}.dlq`).readRecord();
      expect(record.timestamp).toBe(LOG_MS);
      expect(record.headers['millrace.dlq.code']).toEqual(Buffer.from('MILLRACE_SCHEMA_VIOLATION'));
    });

    it.each([
      ['null', null],
      ['an array', [transaction()]],
      ['a string', 'tx-1'],
      ['a number', 42],
      ['an empty object', {}],
    ])('that is %s (not a transaction object) goes to the DLQ as MILLRACE_SCHEMA_VIOLATION', (_, value) => {
      transactionsIn.pipeRawInput(Buffer.from('k'), Buffer.from(JSON.stringify(value)), LOG_MS);
      expect(transactionsOut().isEmpty()).toBe(true);
      const letters = transactionLetters();
      expect(letters.map((l) => l.code)).toEqual(['MILLRACE_SCHEMA_VIOLATION']);
      expect(paths(letters[0]).length).toBeGreaterThan(0);
    });

    it.each([
      ['truncated JSON', '{"id": "tx-1"'],
      ['not JSON at all', 'id=tx-1&user=u'],
      ['invalid UTF-8', Buffer.from([0xff, 0xfe, 0x7b])],
    ])('that is %s goes to the DLQ as MILLRACE_DESERIALIZATION from the source, with its bytes', (_, raw) => {
      const bytes = Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
      transactionsIn.pipeRawInput(Buffer.from('k'), bytes, LOG_MS);
      expect(transactionsOut().isEmpty()).toBe(true);
      const letters = transactionLetters();
      expect(letters.map((l) => [l.code, l.node])).toEqual([['MILLRACE_DESERIALIZATION', 'transactions-raw']]);
      expect(Buffer.from(letters[0]!.original.value!, 'base64')).toEqual(bytes);
    });

    it('does not stop the stream: the next valid transaction goes through', () => {
      transactionsIn.pipeInput('k', transaction({ id: 'bad', ip: '1.2.3' }), LOG_MS);
      transactionsIn.pipeRawInput(Buffer.from('k'), Buffer.from('{'), LOG_MS);
      transactionsIn.pipeInput('k', transaction({ id: 'good' }), LOG_MS);
      expect(transactionsOut().readValuesToList().map((v) => v!.id)).toEqual(['good']);
      expect(transactionLetters().map((l) => l.source.offset)).toEqual([0, 1]);
    });
  });

  describe('an invalid label', () => {
    it.each([
      ['a missing transaction id', (({ transaction_id: _, ...rest }) => rest)(label()), ['/transaction_id']],
      ['an empty transaction id', label({ transaction_id: '' }), ['/transaction_id']],
      ['fraud as a number', label({ fraud: 1 }), ['/fraud']],
      ['a non-ISO timestamp', label({ at: '01/03/2026' }), ['/at']],
      ['an unknown field', label({ score: 0.9 }), ['/score']],
    ] as ReadonlyArray<[string, Record<string, unknown>, string[]]>)('with %s goes to feedback-raw.dlq naming the field', (_, event, fields) => {
      feedbackIn.pipeInput('k', event, LOG_MS);
      expect(feedbackOut().isEmpty()).toBe(true);
      const letters = feedbackLetters();
      expect(letters.map((l) => [l.code, l.node])).toEqual([['MILLRACE_SCHEMA_VIOLATION', 'validate-feedback']]);
      expect(letters[0]).toMatchObject({ subject: FEEDBACK_SUBJECT });
      expect(paths(letters[0])).toEqual(fields);
    });

    it('that is not JSON goes to feedback-raw.dlq as MILLRACE_DESERIALIZATION', () => {
      feedbackIn.pipeRawInput(null, Buffer.from('fraud!'), LOG_MS);
      expect(feedbackLetters().map((l) => l.code)).toEqual(['MILLRACE_DESERIALIZATION']);
    });

    it('that is a transaction (the wrong topic) is refused, not converted', () => {
      feedbackIn.pipeInput('k', transaction(), LOG_MS);
      expect(feedbackOut().isEmpty()).toBe(true);
      expect(feedbackLetters().map((l) => l.code)).toEqual(['MILLRACE_SCHEMA_VIOLATION']);
    });
  });

  describe('generated traffic', () => {
    it('is valid throughout, before and after the drift: every event goes out, none to the DLQ', () => {
      // given: 10 minutes of traffic at 20/s, drifting after 4, with labels; IPv6 users included
      const start = Date.parse('2026-02-01T00:00:00Z');
      const generator = new TrafficGenerator({
        seed: 11,
        users: 500,
        ratePerSecond: 20,
        driftAtMs: 4 * 60_000,
        startTimeMs: start,
        labelDelayMs: [60_000, 120_000],
      });
      const events = generator.takeUntil(start + 10 * 60_000);
      const generatedTransactions = events.filter((e) => e.topic === Topics.transactionsRaw);
      const generatedLabels = events.filter((e) => e.topic === Topics.feedbackRaw);
      expect(generatedTransactions.length).toBeGreaterThan(5_000);
      expect(generatedLabels.length).toBeGreaterThan(1_000);
      expect(generatedTransactions.some((e) => e.value.ip.includes(':'))).toBe(true);
      expect(generator.drifted).toBe(true);
      // when
      for (const event of events) {
        const input = event.topic === Topics.transactionsRaw ? transactionsIn : feedbackIn;
        input.pipeInput(event.key, event.value, event.emitMs);
      }
      // then
      expect(transactionLetters()).toEqual([]);
      expect(feedbackLetters()).toEqual([]);
      const outTransactions = transactionsOut().readRecordsToList();
      expect(outTransactions).toHaveLength(generatedTransactions.length);
      outTransactions.forEach((record, i) => {
        const sent = generatedTransactions[i]!;
        expect(record.key).toBe(sent.value.user);
        expect(record.timestamp).toBe(sent.atMs);
        expect(record.value).toEqual({ ...sent.value, channel: null });
      });
      const outLabels = feedbackOut().readRecordsToList();
      expect(outLabels.map((r) => [r.key, r.timestamp])).toEqual(generatedLabels.map((e) => [e.value.transaction_id, e.atMs]));
    });
  });

  describe('nothing is lost', () => {
    it('every raw event comes out once, on its topic or its DLQ', () => {
      // given: valid and invalid events of every kind, mixed
      const start = Date.parse('2026-02-01T00:00:00Z');
      const generated = new TrafficGenerator({ seed: 3, users: 100, ratePerSecond: 5, driftAtMs: null, startTimeMs: start, labelDelayMs: [0, 30_000] }).takeUntil(
        start + 5 * 60_000,
      );
      const corrupt: ReadonlyArray<(value: Record<string, unknown>) => Buffer> = [
        (v) => Buffer.from(JSON.stringify({ ...v, at: 'not a time' })),
        (v) => Buffer.from(JSON.stringify({ ...v, unexpected: true })),
        (v) => Buffer.from(JSON.stringify(v).slice(0, -1)),
        () => Buffer.from('null'),
        (v) => Buffer.from(JSON.stringify({ ...v, ip: '999.0.0.1', amount: -5, country: 'xx', currency: 'euro' })),
      ];
      const sent = { transactions: 0, feedback: 0 };
      generated.forEach((event, i) => {
        const raw = event.value as unknown as Record<string, unknown>;
        const bytes = i % 7 === 3 ? corrupt[i % corrupt.length]!(raw) : Buffer.from(JSON.stringify(raw));
        const input = event.topic === Topics.transactionsRaw ? transactionsIn : feedbackIn;
        input.pipeRawInput(Buffer.from(event.key), bytes, event.emitMs);
        sent[event.topic === Topics.transactionsRaw ? 'transactions' : 'feedback']++;
      });
      // when
      const out = { transactions: transactionsOut().readRecordsToList().length, feedback: feedbackOut().readRecordsToList().length };
      const dlq = { transactions: transactionLetters().length, feedback: feedbackLetters().length };
      // then
      expect(dlq.transactions + dlq.feedback).toBeGreaterThan(0);
      expect(out.transactions + dlq.transactions).toBe(sent.transactions);
      expect(out.feedback + dlq.feedback).toBe(sent.feedback);
      // Each dead letter points at a distinct input offset.
      const offsets = transactionLetters().map((l) => l.source.offset);
      expect(new Set(offsets).size).toBe(offsets.length);
    });
  });

  describe('options', () => {
    it('names the application after applicationId', async () => {
      const builder = await ingest({ options: { applicationId: 'fraud-ingest' }, registry, services: {} as EngineServices });
      expect(builder.build().applicationId).toBe('fraud-ingest');
    });

    it.each([
      ['applicationId', ''],
      ['applicationId', 7],
      ['schemasDir', false],
    ])('refuses %s = %j with MILLRACE_CONFIG_INVALID', async (name, value) => {
      await expect(ingest({ options: { [name]: value }, registry, services: {} as EngineServices })).rejects.toMatchObject({ code: 'MILLRACE_CONFIG_INVALID' });
    });

    it('refuses a schemasDir without the schemas with MILLRACE_SCHEMA_UNKNOWN', async () => {
      await expect(ingest({ options: { schemasDir: dir.path }, registry, services: {} as EngineServices })).rejects.toMatchObject({ code: 'MILLRACE_SCHEMA_UNKNOWN' });
    });

    it('registers each schema folder once, however often it loads', async () => {
      await ingest({ options: {}, registry, services: {} as EngineServices });
      expect((await registry.versions(TRANSACTIONS_SUBJECT)).map((v) => v.version)).toEqual([1, 2]);
      expect((await registry.versions(FEEDBACK_SUBJECT)).map((v) => v.version)).toEqual([1]);
    });
  });
});
