import { Serdes } from '../../engine/serde/serde.js';
import { StreamsBuilder } from '../../engine/topology/builder.js';
import { Topics, type ModelRegistryEvent, type ModelRouting, type ModelVersionRef } from './contract.js';

/** What the registry knows of one model, folded from its events. */
export interface RegistryState {
  readonly model: string;
  readonly versions: Readonly<Record<string, ModelVersionRef & { readonly status: VersionStatus; readonly metrics: Readonly<Record<string, number>> }>>;
  readonly stable: string | null;
  /** Earlier stable versions, newest last: where a refused or rolled-back stable version falls back to. */
  readonly previousStable: readonly string[];
  readonly canary: { readonly version: string; readonly percent: number } | null;
}

export type VersionStatus = 'registered' | 'canary' | 'stable' | 'retired' | 'rolled-back' | 'refused';

export function emptyRegistry(model: string): RegistryState {
  return { model, versions: {}, stable: null, previousStable: [], canary: null };
}

function withStatus(state: RegistryState, version: string, status: VersionStatus): RegistryState['versions'] {
  const entry = state.versions[version];
  return entry === undefined ? state.versions : { ...state.versions, [version]: { ...entry, status } };
}

/** A decision on a version: its promotion, or its rollback. */
export type RegistryDecision = 'promote' | 'rollback';

/**
 * Versions the controller's own decisions still apply to. It may decide on a version before it has read an
 * operator's decision on it (they race on `model-registry`): what the operator decided first stands.
 */
const UNDECIDED: ReadonlySet<VersionStatus> = new Set(['registered', 'canary']);

const usable = (status: VersionStatus | undefined): boolean => status !== undefined && status !== 'refused' && status !== 'rolled-back';

/** The earlier stable version that serves again when the stable one goes: the newest one still usable, or null. */
export function fallbackOf(state: RegistryState, versions: RegistryState['versions'] = state.versions): string | null {
  return [...state.previousStable].reverse().find((v) => v !== state.stable && usable(versions[v]?.status)) ?? null;
}

/**
 * Why an operator's decision cannot apply to this state, or null when it does. A promotion takes any known version
 * but a refused one (a canary, a registered version, or an earlier stable one: a rollback to it), other than the
 * stable version itself; a rollback takes the canary, or the stable version when an earlier usable one can serve.
 */
export function operatorRefusal(state: RegistryState, decision: RegistryDecision, version: string): string | null {
  const entry = state.versions[version];
  if (entry === undefined) return `${state.model} has no version ${version}`;
  if (decision === 'promote') {
    if (entry.status === 'refused') return `${state.model} ${version} was refused: it cannot be served`;
    if (state.stable === version) return `${state.model} ${version} is the stable version already`;
    return null;
  }
  if (state.canary?.version === version) return null;
  if (state.stable === version) {
    return fallbackOf(state) === null ? `${state.model} ${version} is the stable version and no earlier usable stable version could serve instead` : null;
  }
  return `${state.model} ${version} is neither the canary nor the stable version (it is ${entry.status})`;
}

function applies(state: RegistryState, event: Extract<ModelRegistryEvent, { type: 'ModelPromoted' | 'ModelRolledBack' }>): boolean {
  const status = state.versions[event.version]?.status;
  if (status === undefined) return false;
  if (event.decided_by === 'operator') return operatorRefusal(state, event.type === 'ModelPromoted' ? 'promote' : 'rollback', event.version) === null;
  return UNDECIDED.has(status);
}

/**
 * The model registry as a fold over its events: the one place that decides what a registered, promoted, rolled
 * back or refused version means for routing. Pure, so a replay of `model-registry` rebuilds the same state. An
 * event that does not apply (an unknown version, a decision come too late) returns the state itself, unchanged.
 */
export function applyRegistryEvent(state: RegistryState, event: ModelRegistryEvent): RegistryState {
  switch (event.type) {
    case 'ModelRegistered':
      return {
        ...state,
        versions: {
          ...state.versions,
          [event.version]: {
            version: event.version,
            artifact_uri: event.artifact_uri,
            sha256: event.sha256,
            reference_uri: event.reference_uri,
            metrics: event.metrics,
            status: 'registered',
          },
        },
      };
    case 'CanaryStarted': {
      const status = state.versions[event.version]?.status;
      if (status === undefined || !UNDECIDED.has(status)) return state;
      const previousCanary = state.canary?.version;
      let versions = withStatus(state, event.version, 'canary');
      if (previousCanary !== undefined && previousCanary !== event.version) versions = withStatus({ ...state, versions }, previousCanary, 'rolled-back');
      return { ...state, versions, canary: { version: event.version, percent: event.percent } };
    }
    case 'ModelPromoted': {
      if (!applies(state, event)) return state;
      let versions = withStatus(state, event.version, 'stable');
      if (state.stable !== null && state.stable !== event.version) versions = withStatus({ ...state, versions }, state.stable, 'retired');
      // A canary of another version was being judged against the stable version it no longer runs beside: it
      // ends, rolled back (the controller ends its stage the same way when it reads an operator's promotion).
      if (state.canary !== null && state.canary.version !== event.version) versions = withStatus({ ...state, versions }, state.canary.version, 'rolled-back');
      const retired = state.stable === null || state.stable === event.version ? [] : [state.stable];
      return {
        ...state,
        versions,
        stable: event.version,
        // An earlier stable version promoted again leaves the list: it is the stable one now.
        previousStable: [...state.previousStable.filter((v) => v !== event.version), ...retired],
        canary: null,
      };
    }
    case 'ModelRolledBack':
    case 'ModelRefused': {
      if (event.type === 'ModelRolledBack' && !applies(state, event)) return state;
      const status: VersionStatus = event.type === 'ModelRefused' ? 'refused' : 'rolled-back';
      const versions = withStatus(state, event.version, status);
      if (state.canary?.version === event.version) return { ...state, versions, canary: null };
      if (state.stable === event.version) {
        // The stable version itself goes: the last earlier stable one that is still usable serves again.
        const fallback = fallbackOf(state, versions);
        return {
          ...state,
          versions: fallback === null ? versions : withStatus({ ...state, versions }, fallback, 'stable'),
          stable: fallback,
          previousStable: state.previousStable.filter((v) => v !== fallback),
        };
      }
      return { ...state, versions };
    }
  }
}

/** The routing table a registry state serves. */
export function routingOf(state: RegistryState): ModelRouting {
  const ref = (version: string | null): ModelVersionRef | null => {
    const entry = version === null ? undefined : state.versions[version];
    return entry === undefined ? null : { version: entry.version, artifact_uri: entry.artifact_uri, sha256: entry.sha256, reference_uri: entry.reference_uri };
  };
  const canary = state.canary === null ? null : ref(state.canary.version);
  return {
    model: state.model,
    stable: ref(state.stable),
    canary: canary === null || state.canary === null ? null : { ...canary, percent: state.canary.percent },
  };
}

/**
 * The registry projection: `model-registry` events folded per model into the routing table on the compacted topic
 * `model-routing`, which every scoring task reads as a global table.
 */
export function registryTopology(options: { applicationId?: string } = {}): StreamsBuilder {
  const builder = new StreamsBuilder(options.applicationId ?? 'model-registry');
  builder
    .stream<string, ModelRegistryEvent>(Topics.modelRegistry, { name: 'registry-events' })
    .groupByKey('by-model')
    .aggregate('registry', () => null as RegistryState | null, (state, event) => applyRegistryEvent(state ?? emptyRegistry(event.model), event), {
      valueSerde: Serdes.json<RegistryState | null>(),
    })
    .toStream('registry-changes')
    .mapValues('routing', (state) => routingOf(state!))
    .to(Topics.modelRouting, { name: 'to-routing', valueSerde: Serdes.json<ModelRouting>() });
  return builder;
}

export default function registry(): StreamsBuilder {
  return registryTopology();
}
