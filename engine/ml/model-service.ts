import { createHash } from 'node:crypto';
import { MillraceError, isMillraceError } from '../errors.js';
import { offset, type Log } from '../log/log.js';
import { appendAudited, type AuditPosition, type AuditedRouting, type ModelAuditEvent } from '../runtime/audit.js';
import { FEATURE_NAMES, Topics, type ModelRegistryEvent } from '../../topologies/pipeline/contract.js';
import {
  applyRegistryEvent,
  emptyRegistry,
  operatorRefusal,
  type RegistryDecision,
  type RegistryState,
  type VersionStatus,
} from '../../topologies/pipeline/registry.js';
import type { LoadedModel, ModelRuntime } from './model-runtime.js';

/**
 * The HTTP face of the model registry (DESIGN §6): `GET /models`, `POST /v1/models/:name:predict`, and an
 * operator's promotion or rollback of a version.
 *
 * The registry's state is a fold of the `model-registry` topic (the same fold the registry topology runs), kept up
 * to date by reading what was appended since the last request. Online prediction serves the model's stable
 * version, loaded through the engine's inference runtime (SHA-256 verified, off the event loop).
 *
 * An operator's decision takes two steps, as dead-letter actions do: a dry run answers the routing before and after
 * and a token naming exactly that plan; the decision with the token appends the registry event and an audit event
 * to `_audit` in one transaction, and is refused when the plan is no longer the one the token names.
 */

export interface ModelVersionView {
  readonly version: string;
  readonly stage: VersionStatus;
  /** Percent of traffic it serves now. */
  readonly trafficPercent: number;
  readonly sha256: string;
  readonly artifactUri: string;
  readonly metrics: Readonly<Record<string, number>>;
  /** The last promotion or rollback of this version that took effect; absent when there was none. */
  readonly lastDecision?: LastDecision;
}

export interface LastDecision {
  readonly action: RegistryDecision;
  readonly decidedBy: 'operator' | 'controller';
  readonly at: string;
  readonly reason?: string;
  /** The significance test behind a controller's promotion. */
  readonly evidence?: string;
}

export interface ModelView {
  readonly name: string;
  readonly stable: string | null;
  readonly canary: { readonly version: string; readonly percent: number } | null;
  readonly versions: readonly ModelVersionView[];
}

export interface Prediction {
  readonly class: 0 | 1;
  readonly probability: number;
}

/** Most instances in one predict request. */
export const MAX_PREDICT_INSTANCES = 100;

export interface ModelDecisionOptions {
  readonly version: string;
  /** Kept in the registry event and the audit event. */
  readonly reason?: string;
  /** Who decides, as the audit event records it. */
  readonly actor?: string;
  /** The token of a dry run, to carry that plan out; without it nothing changes. */
  readonly token?: string;
  /** When the decision is taken (default: now). */
  readonly nowMs?: number;
}

/** What a decision would do: the routing before and after, and the token that carries it out. */
export interface ModelDecisionPlan {
  readonly action: RegistryDecision;
  readonly model: string;
  readonly version: string;
  readonly from: AuditedRouting;
  readonly to: AuditedRouting;
  readonly token: string;
}

export interface ModelDecisionResult {
  readonly action: RegistryDecision;
  readonly model: string;
  readonly version: string;
  /** Where the audit event was written. */
  readonly audit: AuditPosition;
}

export class ModelService {
  readonly #log: Log;
  readonly #runtime: () => ModelRuntime;
  readonly #threshold: number;
  readonly #states = new Map<string, RegistryState>();
  readonly #next = new Map<number, number>();
  readonly #loaded = new Map<string, Promise<LoadedModel>>();
  /** Model → version → its last promotion or rollback that took effect. */
  readonly #decisions = new Map<string, Map<string, LastDecision>>();
  /** The decision being carried out per model: one at a time, so two confirmations of one plan take it once. */
  readonly #deciding = new Map<string, Promise<unknown>>();
  #refreshing: Promise<void> | undefined;

  constructor(options: { log: Log; runtime: () => ModelRuntime; threshold?: number }) {
    this.#log = options.log;
    this.#runtime = options.runtime;
    this.#threshold = options.threshold ?? 0.5;
  }

  async list(): Promise<ModelView[]> {
    await this.#refresh();
    return [...this.#states.values()].sort((a, b) => a.model.localeCompare(b.model)).map((state) => view(state, this.#decisions.get(state.model)));
  }

  /**
   * An operator's promotion or rollback of a version. Without a token, a dry run: the plan, changing nothing. With
   * the token of a dry run, the decision (`decided_by: 'operator'`) is appended to `model-registry` and its audit
   * event to `_audit` in one transaction; `MILLRACE_MODEL_DECISION_STALE` when the plan changed since.
   */
  async decide(name: string, action: RegistryDecision, options: ModelDecisionOptions): Promise<ModelDecisionPlan | ModelDecisionResult> {
    const { token } = options;
    if (token === undefined) {
      await this.#refresh();
      return this.#plan(name, action, options.version);
    }
    const before = this.#deciding.get(name) ?? Promise.resolve();
    const run = before.catch(() => undefined).then(() => this.#carryOut(name, action, { ...options, token }));
    this.#deciding.set(name, run);
    try {
      return await run;
    } finally {
      if (this.#deciding.get(name) === run) this.#deciding.delete(name);
    }
  }

  #plan(name: string, action: RegistryDecision, version: string): ModelDecisionPlan {
    const state = this.#states.get(name);
    if (state === undefined) throw new MillraceError('MILLRACE_HTTP_NOT_FOUND', `no model named ${JSON.stringify(name)} is registered`);
    const entry = state.versions[version];
    if (entry === undefined) throw new MillraceError('MILLRACE_HTTP_NOT_FOUND', `model ${name} has no version ${JSON.stringify(version)}`);
    const refusal = operatorRefusal(state, action, version);
    if (refusal !== null) {
      throw new MillraceError('MILLRACE_MODEL_DECISION_INVALID', refusal, { details: { model: name, version, stage: entry.status } });
    }
    const from = routingView(state);
    // What the registry will serve is what its fold makes of the event: the plan cannot promise anything else.
    const to = routingView(applyRegistryEvent(state, decisionEvent(name, action, version, '')));
    const token = createHash('sha256')
      .update(JSON.stringify({ action, model: name, version, stage: entry.status, from, to }))
      .digest('hex')
      .slice(0, 24);
    return { action, model: name, version, from, to, token };
  }

  async #carryOut(name: string, action: RegistryDecision, options: ModelDecisionOptions & { token: string }): Promise<ModelDecisionResult> {
    // A refresh begun before the last decision was committed may not hold it: read again once it is over.
    await this.#refreshing?.catch(() => undefined);
    await this.#refresh();
    let plan: ModelDecisionPlan;
    try {
      plan = this.#plan(name, action, options.version);
    } catch (err) {
      if (!isMillraceError(err, 'MILLRACE_MODEL_DECISION_INVALID')) throw err;
      throw stale(`the model changed since the dry run: ${err.message}`, err);
    }
    if (plan.token !== options.token) throw stale('the model changed since the dry run (or the token is not from one): run the dry run again and confirm what it shows');
    const at = new Date(options.nowMs ?? Date.now()).toISOString();
    const event = decisionEvent(name, action, options.version, at, options.reason);
    const audit: ModelAuditEvent = {
      type: event.type,
      at,
      actor: options.actor ?? 'unknown',
      model: name,
      version: options.version,
      from: plan.from,
      to: plan.to,
      ...(options.reason === undefined ? {} : { reason: options.reason }),
    };
    const position = await appendAudited(this.#log, {
      transactionalId: `millrace-models-${name}`,
      records: [{ topic: Topics.modelRegistry, key: Buffer.from(name), value: Buffer.from(JSON.stringify(event)) }],
      key: name,
      event: audit,
    });
    return { action, model: name, version: options.version, audit: position };
  }

  async predict(name: string, body: unknown): Promise<{ model: string; version: string; predictions: Prediction[] }> {
    const rows = instancesOf(body);
    await this.#refresh();
    const state = this.#states.get(name);
    if (state === undefined) throw new MillraceError('MILLRACE_HTTP_NOT_FOUND', `no model named ${JSON.stringify(name)} is registered`);
    const version = state.stable === null ? undefined : state.versions[state.stable];
    if (version === undefined) throw new MillraceError('MILLRACE_MODEL_UNAVAILABLE', `model ${name} has no stable version yet`);
    const model = await this.#load(name, version.version, version.artifact_uri, version.sha256);
    const input = new Float32Array(rows.length * FEATURE_NAMES.length);
    rows.forEach((row, i) => input.set(row, i * FEATURE_NAMES.length));
    const probabilities = await model.predict(input, rows.length);
    return {
      model: name,
      version: version.version,
      predictions: Array.from(probabilities, (p) => ({ class: p >= this.#threshold ? 1 : 0, probability: p })),
    };
  }

  #load(name: string, version: string, path: string, sha256: string): Promise<LoadedModel> {
    const key = `${name}@${version}:${sha256}`;
    let loading = this.#loaded.get(key);
    if (loading === undefined) {
      loading = this.#runtime().load({ name, version, path, sha256, inputWidth: FEATURE_NAMES.length });
      // A refusal (a tampered file) is not cached: the next request tries again.
      loading.catch(() => this.#loaded.delete(key));
      this.#loaded.set(key, loading);
    }
    return loading;
  }

  #refresh(): Promise<void> {
    this.#refreshing ??= this.#readNew().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #readNew(): Promise<void> {
    let partitions;
    try {
      partitions = await this.#log.partitionOffsets(Topics.modelRegistry);
    } catch (err) {
      if (err instanceof MillraceError && err.code === 'MILLRACE_TOPIC_UNKNOWN') return;
      throw err;
    }
    for (const { partition, start, end } of partitions) {
      let at = Math.max(start, this.#next.get(partition) ?? 0);
      while (at < end) {
        const batch = await this.#log.read(Topics.modelRegistry, partition, offset(at), { maxRecords: 1_000 });
        for (const record of batch.records) {
          if (record.value === null) continue;
          let event: ModelRegistryEvent;
          try {
            event = JSON.parse(record.value.toString('utf8')) as ModelRegistryEvent;
          } catch {
            continue; // Not a registry event: the registry topology dead-letters it; here it is skipped.
          }
          if (typeof event?.model !== 'string' || typeof event.type !== 'string') continue;
          const before = this.#states.get(event.model) ?? emptyRegistry(event.model);
          const after = applyRegistryEvent(before, event);
          this.#states.set(event.model, after);
          if ((event.type === 'ModelPromoted' || event.type === 'ModelRolledBack') && after !== before) this.#noteDecision(event);
        }
        if (batch.nextOffset <= at) break;
        at = batch.nextOffset;
      }
      this.#next.set(partition, at);
    }
  }

  #noteDecision(event: Extract<ModelRegistryEvent, { type: 'ModelPromoted' | 'ModelRolledBack' }>): void {
    let versions = this.#decisions.get(event.model);
    if (versions === undefined) this.#decisions.set(event.model, (versions = new Map()));
    versions.set(event.version, {
      action: event.type === 'ModelPromoted' ? 'promote' : 'rollback',
      decidedBy: event.decided_by === 'operator' ? 'operator' : 'controller',
      at: event.at,
      ...(typeof event.reason === 'string' ? { reason: event.reason } : {}),
      ...(event.type === 'ModelPromoted' && typeof event.evidence === 'string' ? { evidence: event.evidence } : {}),
    });
  }
}

function stale(message: string, cause?: unknown): MillraceError {
  return new MillraceError('MILLRACE_MODEL_DECISION_STALE', message, cause === undefined ? {} : { cause });
}

/** An operator's decision as a registry event. A rollback needs a reason: one is given when the operator gave none. */
function decisionEvent(
  model: string,
  action: RegistryDecision,
  version: string,
  at: string,
  reason?: string,
): Extract<ModelRegistryEvent, { type: 'ModelPromoted' | 'ModelRolledBack' }> {
  return action === 'promote'
    ? { type: 'ModelPromoted', model, version, at, decided_by: 'operator', ...(reason === undefined ? {} : { reason }) }
    : { type: 'ModelRolledBack', model, version, reason: reason ?? 'rolled back by an operator', at, decided_by: 'operator' };
}

function routingView(state: RegistryState): AuditedRouting {
  return { stable: state.stable, canary: state.canary === null ? null : { version: state.canary.version, percent: state.canary.percent } };
}

function view(state: RegistryState, decisions: ReadonlyMap<string, LastDecision> | undefined): ModelView {
  const canaryPercent = state.canary?.percent ?? 0;
  return {
    name: state.model,
    stable: state.stable,
    canary: state.canary,
    versions: Object.values(state.versions).map((v) => ({
      version: v.version,
      stage: v.status,
      trafficPercent: v.version === state.canary?.version ? canaryPercent : v.version === state.stable ? 100 - canaryPercent : 0,
      sha256: v.sha256,
      artifactUri: v.artifact_uri,
      metrics: v.metrics,
      ...(decisions?.has(v.version) === true ? { lastDecision: decisions.get(v.version)! } : {}),
    })),
  };
}

/** `{"instances":[…]}`: each an object with every feature by name, or an array of the features in order. */
export function instancesOf(body: unknown): number[][] {
  const invalid = (message: string, pointer: string): MillraceError =>
    new MillraceError('MILLRACE_HTTP_VALIDATION', message, { details: { issues: [{ path: pointer, message }] } });
  if (typeof body !== 'object' || body === null || !Array.isArray((body as { instances?: unknown }).instances)) {
    throw invalid('the body must be {"instances": [...]}', '/instances');
  }
  const instances = (body as { instances: unknown[] }).instances;
  if (instances.length === 0) throw invalid('instances must hold at least one instance', '/instances');
  if (instances.length > MAX_PREDICT_INSTANCES) throw invalid(`at most ${MAX_PREDICT_INSTANCES} instances per request, got ${instances.length}`, '/instances');
  return instances.map((instance, i) => {
    const values: unknown[] = Array.isArray(instance)
      ? instance
      : typeof instance === 'object' && instance !== null
        ? FEATURE_NAMES.map((name) => (instance as Record<string, unknown>)[name])
        : [];
    if (!Array.isArray(instance) && (typeof instance !== 'object' || instance === null)) {
      throw invalid(`instance ${i} must be an object of features (${FEATURE_NAMES.join(', ')}) or an array of ${FEATURE_NAMES.length} numbers`, `/instances/${i}`);
    }
    if (values.length !== FEATURE_NAMES.length) throw invalid(`instance ${i} has ${values.length} features, the model reads ${FEATURE_NAMES.length}`, `/instances/${i}`);
    return values.map((value, j) => {
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        const where = Array.isArray(instance) ? `/instances/${i}/${j}` : `/instances/${i}/${FEATURE_NAMES[j]}`;
        throw invalid(`${where.slice(1)} must be a finite number, got ${JSON.stringify(value) ?? 'nothing'}`, where);
      }
      return value;
    });
  });
}
