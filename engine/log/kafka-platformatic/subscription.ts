import { performance } from 'node:perf_hooks';
import { Consumer, type ClusterMetadata, type ConsumerGroupJoinPayload, type ExtendedGroupProtocolSubscription, type GroupPartitionsAssignments } from '@platformatic/kafka';
import { MillraceError, errorMessage } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { Offset, ReadBatch, ReadOptions, SubscribeOptions, Subscription } from '../log.js';
import { deferred, keyOf, notOwned, withTimeout, type RebalanceEvent } from '../kafka/subscription.js';
import { TASK_ASSIGNOR_NAME, assignTasks, decodeClaim, encodeClaim, tasksOf } from '../kafka/task-assignor.js';
import { guardConnections } from './cluster.js';
import { describe } from './errors.js';

const PROTOCOL_VERSION = 1;

export interface PlatformaticSubscriptionOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly subscribe: SubscribeOptions;
  /** Random-access `read_committed` reads of the log: a member reads its partitions through them. */
  readonly read: (topic: string, partition: number, from: Offset, options: ReadOptions) => Promise<ReadBatch>;
  readonly sessionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly rebalanceTimeoutMs: number;
  readonly joinTimeoutMs: number;
  readonly connectionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly retries: number;
  readonly logger?: Logger;
  readonly onRebalance?: (event: RebalanceEvent) => void;
  readonly onClose: () => void;
}

/**
 * Membership in a Kafka consumer group, task by task, on @platformatic/kafka's classic group protocol (eager
 * rebalancing). The client takes a custom assigner (`partitionAssigner`); it runs the same task-aware sticky
 * assignment as the kafkajs log (`assignTasks`), under the same protocol name, so that members of either client can
 * share a group. Each member's claim (the tasks it owns, oldest first) goes in its join metadata: the protocol's
 * `metadata` is read at every (re)join, so it is a getter over the current claim.
 *
 * The client's group member only keeps membership (join, sync, heartbeats, rejoining on a rebalance); it never
 * fetches. A task reads its partitions with the log's random-access `read_committed` reads, which check first that
 * this member owns the task and that its `onAssignment` has returned. Offsets are never committed here: tasks commit
 * them in their transactions.
 */
export class PlatformaticSubscription implements Subscription {
  readonly #options: PlatformaticSubscriptionOptions;
  readonly #group: string;
  readonly #taskOf = new Map<string, string>();
  readonly #waiters = new Set<() => void>();
  #consumer: Consumer | undefined;
  #latestOrder: string[] = [];
  #latest = new Set<string>();
  readonly #pending = new Set<string>();
  #owned: readonly string[] = [];
  #handover: Promise<void> = Promise.resolve();
  readonly #firstHandover = deferred<void>();
  #firstDone = false;
  #rebalanceStartedAt: number | undefined;
  #joinStartedAt = performance.now();
  #memberId = '';
  #closed = false;
  #failure: unknown;
  lastRebalancePauseMs: number | undefined;
  rebalances = 0;

  constructor(options: PlatformaticSubscriptionOptions) {
    this.#options = options;
    this.#group = options.subscribe.group;
    const topics = new Set(options.subscribe.topics);
    for (const [task, partitions] of options.subscribe.taskGroups.tasks) {
      for (const { topic, partition } of partitions) {
        if (!topics.has(topic)) throw new TypeError(`task ${task} reads ${topic}, which the subscription does not name`);
        const key = keyOf(topic, partition);
        if (this.#taskOf.has(key)) throw new TypeError(`${topic}/${partition} belongs to tasks ${this.#taskOf.get(key)} and ${task}`);
        this.#taskOf.set(key, task);
      }
    }
  }

  get memberId(): string {
    return this.#memberId;
  }

  /** Joins the group and returns once the first assignment is handed out. */
  async start(): Promise<void> {
    const { subscribe } = this.#options;
    const consumer = new Consumer({
      clientId: this.#options.clientId,
      bootstrapBrokers: [...this.#options.brokers],
      groupId: subscribe.group,
      connectTimeout: this.#options.connectionTimeoutMs,
      // JoinGroup waits at the coordinator until every member rejoined (up to the rebalance timeout): no request of
      // this member may time out before that.
      timeout: Math.max(this.#options.requestTimeoutMs, this.#options.rebalanceTimeoutMs + 5_000),
      retries: this.#options.retries,
      retryDelay: retryDelay,
      sessionTimeout: this.#options.sessionTimeoutMs,
      heartbeatInterval: this.#options.heartbeatIntervalMs,
      rebalanceTimeout: this.#options.rebalanceTimeoutMs,
    });
    this.#consumer = consumer;
    guardConnections(consumer.connections);
    consumer.on('consumer:group:join', (payload) => this.#onJoin(payload));
    consumer.on('consumer:group:rebalance', () => {
      this.#rebalanceStartedAt ??= performance.now();
    });
    consumer.on('consumer:heartbeat:error', (payload) => {
      this.#options.logger?.warn({ group: this.#group, err: payload.error }, 'group heartbeat failed');
    });
    // Emitted when rejoining after a rebalance failed for good: the member is out of the group.
    consumer.on('error', (err: unknown) => this.#fail(err));
    const claim = this;
    const protocol = {
      name: TASK_ASSIGNOR_NAME,
      version: PROTOCOL_VERSION,
      get metadata(): Buffer {
        return encodeClaim(claim.#latestOrder);
      },
    };
    try {
      for (const topic of subscribe.topics) consumer.topics.track(topic);
      this.#joinStartedAt = performance.now();
      await withTimeout(
        (async () => {
          await consumer.joinGroup({
            sessionTimeout: this.#options.sessionTimeoutMs,
            heartbeatInterval: this.#options.heartbeatIntervalMs,
            rebalanceTimeout: this.#options.rebalanceTimeoutMs,
            protocols: [protocol],
            partitionAssigner: (_current, members, _topics, metadata) => this.#assign(members, metadata),
          });
          await this.#firstHandover.promise;
        })(),
        this.#options.joinTimeoutMs,
        () =>
          new MillraceError('MILLRACE_LOG_UNAVAILABLE', `group ${this.#group} gave this member no assignment within ${this.#options.joinTimeoutMs} ms`, {
            retriable: true,
          }),
      );
    } catch (err) {
      this.#closed = true;
      await consumer.close().catch(() => undefined);
      this.#options.onClose();
      if (err instanceof MillraceError) throw err;
      throw new MillraceError('MILLRACE_LOG_UNAVAILABLE', `could not join group ${this.#group}: ${describe(err)}`, { cause: err, retriable: true });
    }
  }

  owned(): readonly string[] {
    return this.#closed ? [] : this.#owned;
  }

  async read(topic: string, partition: number, from: Offset, options: ReadOptions = {}): Promise<ReadBatch> {
    this.#checkUsable();
    if (!Number.isSafeInteger(from) || from < 0) throw new MillraceError('MILLRACE_OFFSET_INVALID', `offset must be a non-negative integer, got ${from}`);
    const task = this.#taskOf.get(keyOf(topic, partition));
    if (task === undefined) throw notOwned(this.#group, topic, partition);
    const deadline = performance.now() + (options.maxWaitMs ?? 0);
    for (;;) {
      this.#checkUsable();
      const assigned = this.#latest.has(task);
      if (!assigned && !this.#owned.includes(task)) throw notOwned(this.#group, topic, partition);
      const remaining = deadline - performance.now();
      if (assigned && !this.#pending.has(task)) {
        return this.#options.read(topic, partition, from, { ...options, maxWaitMs: Math.max(0, remaining) });
      }
      if (remaining <= 0 || options.signal?.aborted === true) {
        // Not handed out yet (its onAssignment runs), or on its way out: nothing to read for now.
        return { records: [], nextOffset: from, highWatermark: from, logStartOffset: 0 as Offset };
      }
      await this.#wait(remaining, options.signal);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wakeAll();
    this.#firstHandover.reject(new MillraceError('MILLRACE_LOG_CLOSED', `the subscription of group ${this.#group} was closed`));
    try {
      // Leaves the group (LeaveGroup), so that the others rebalance at once rather than after the session timeout.
      await this.#consumer?.close();
    } finally {
      this.#options.onClose();
    }
  }

  // ---------------------------------------------------------------- assignment

  /** The leader's assignment: whole tasks, sticky, from every member's claim. */
  #assign(members: Map<string, ExtendedGroupProtocolSubscription>, _metadata: ClusterMetadata): GroupPartitionsAssignments[] {
    const claims = [...members.values()].map((m) => ({
      memberId: m.memberId,
      owned: decodeClaim(typeof m.metadata === 'string' ? Buffer.from(m.metadata) : m.metadata),
    }));
    const taskGroups = this.#options.subscribe.taskGroups;
    const assignment = assignTasks([...taskGroups.tasks.keys()], claims);
    return [...members.keys()].map((memberId) => {
      const byTopic = new Map<string, { topic: string; partitions: number[] }>();
      for (const task of assignment.get(memberId) ?? []) {
        for (const { topic, partition } of taskGroups.tasks.get(task) ?? []) {
          let entry = byTopic.get(topic);
          if (entry === undefined) byTopic.set(topic, (entry = { topic, partitions: [] }));
          entry.partitions.push(partition);
        }
      }
      for (const entry of byTopic.values()) entry.partitions.sort((a, b) => a - b);
      return { memberId, assignments: byTopic };
    });
  }

  #onJoin(payload: ConsumerGroupJoinPayload): void {
    if (this.#closed) return;
    const now = performance.now();
    const startedAt = this.#rebalanceStartedAt ?? (this.#firstDone ? now : this.#joinStartedAt);
    this.#rebalanceStartedAt = undefined;
    this.#memberId = payload.memberId;
    const assignment: Record<string, number[]> = {};
    for (const { topic, partitions } of payload.assignments ?? []) assignment[topic] = [...(assignment[topic] ?? []), ...partitions];
    const tasks = tasksOf(this.#options.subscribe.taskGroups, assignment);
    const next = new Set(tasks);
    const before = this.#latest;
    this.#latestOrder = [...this.#latestOrder.filter((t) => next.has(t)), ...tasks.filter((t) => !before.has(t))];
    this.#latest = next;
    for (const task of [...this.#pending]) if (!next.has(task)) this.#pending.delete(task);
    const gained = tasks.filter((t) => !before.has(t));
    for (const task of gained) this.#pending.add(task);
    this.#wakeAll();
    const handover = this.#handover.then(() => this.#handOver(tasks, gained, startedAt, payload.isLeader === true));
    this.#handover = handover.catch(() => undefined);
  }

  async #handOver(tasks: readonly string[], gainedAtJoin: readonly string[], startedAt: number, leader: boolean): Promise<void> {
    if (this.#closed) return;
    const previous = this.#owned;
    const gained = tasks.filter((t) => !previous.includes(t));
    const lost = previous.filter((t) => !tasks.includes(t));
    let failure: unknown;
    try {
      await this.#options.subscribe.onAssignment(tasks, previous);
    } catch (err) {
      failure = err;
      this.#options.logger?.error({ group: this.#group, err }, 'onAssignment failed');
    }
    this.#owned = Object.freeze([...tasks]);
    for (const task of gainedAtJoin) if (this.#latest.has(task)) this.#pending.delete(task);
    const pauseMs = Math.max(0, performance.now() - startedAt);
    this.lastRebalancePauseMs = pauseMs;
    this.rebalances++;
    this.#wakeAll();
    const event: RebalanceEvent = { group: this.#group, memberId: this.#memberId, leader, owned: this.#owned, gained, lost, pauseMs };
    this.#options.logger?.info({ group: this.#group, member: this.#memberId, leader, owned: tasks.length, gained, lost, pauseMs: Math.round(pauseMs) }, 'group rebalanced');
    try {
      this.#options.onRebalance?.(event);
    } catch (err) {
      this.#options.logger?.warn({ group: this.#group, err }, 'onRebalance listener failed');
    }
    if (!this.#firstDone) {
      this.#firstDone = true;
      if (failure === undefined) this.#firstHandover.resolve();
      else this.#firstHandover.reject(failure);
    }
  }

  #fail(err: unknown): void {
    if (this.#closed || this.#failure !== undefined) return;
    this.#failure = err;
    this.#options.logger?.error({ group: this.#group, err }, 'group member stopped');
    this.#firstHandover.reject(err);
    this.#wakeAll();
  }

  // ---------------------------------------------------------------- waiting

  #wait(timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    if (timeoutMs <= 0 || signal?.aborted === true || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener('abort', done, { once: true });
      this.#waiters.add(done);
    });
  }

  #wakeAll(): void {
    for (const done of [...this.#waiters]) done();
  }

  #checkUsable(): void {
    if (this.#closed) throw new MillraceError('MILLRACE_LOG_CLOSED', `the subscription of group ${this.#group} is closed`);
    if (this.#failure !== undefined) {
      throw new MillraceError('MILLRACE_LOG_CLOSED', `the subscription of group ${this.#group} stopped: ${errorMessage(this.#failure)}`, { cause: this.#failure });
    }
  }
}

/** Backoff between retries of the client's group requests. */
export function retryDelay(_client: unknown, _operationId: string, attempt: number): number {
  return Math.min(100 * 2 ** Math.max(0, attempt - 1), 2_000);
}
