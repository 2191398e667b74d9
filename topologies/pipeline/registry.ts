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

/**
 * The model registry as a fold over its events: the one place that decides what a registered, promoted, rolled
 * back or refused version means for routing. Pure, so a replay of `model-registry` rebuilds the same state.
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
      if (state.versions[event.version] === undefined) return state;
      const previousCanary = state.canary?.version;
      let versions = withStatus(state, event.version, 'canary');
      if (previousCanary !== undefined && previousCanary !== event.version) versions = withStatus({ ...state, versions }, previousCanary, 'rolled-back');
      return { ...state, versions, canary: { version: event.version, percent: event.percent } };
    }
    case 'ModelPromoted': {
      if (state.versions[event.version] === undefined) return state;
      let versions = withStatus(state, event.version, 'stable');
      if (state.stable !== null && state.stable !== event.version) versions = withStatus({ ...state, versions }, state.stable, 'retired');
      return {
        ...state,
        versions,
        stable: event.version,
        previousStable: state.stable === null || state.stable === event.version ? state.previousStable : [...state.previousStable, state.stable],
        canary: state.canary?.version === event.version ? null : state.canary,
      };
    }
    case 'ModelRolledBack':
    case 'ModelRefused': {
      const status: VersionStatus = event.type === 'ModelRefused' ? 'refused' : 'rolled-back';
      const versions = withStatus(state, event.version, status);
      if (state.canary?.version === event.version) return { ...state, versions, canary: null };
      if (state.stable === event.version) {
        // The stable version itself goes: the last earlier stable one that is still usable serves again.
        const fallback = [...state.previousStable].reverse().find((v) => !['refused', 'rolled-back'].includes(versions[v]?.status ?? 'refused')) ?? null;
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
