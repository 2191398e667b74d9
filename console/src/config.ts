import { useEffect, useState } from 'preact/hooks';
import { getJson } from './api.js';

/** What the engine says about how the console may be used (`millrace up --console-read-only`). */
export interface ConsoleConfig {
  readonly readOnly: boolean;
}

let loaded: ConsoleConfig | undefined;
let loading: Promise<ConsoleConfig> | undefined;

function load(): Promise<ConsoleConfig> {
  // Until the engine says otherwise the console is read-only: an action must never flash up and be clickable.
  loading ??= getJson<ConsoleConfig>('/console/config.json').then(
    (config) => (loaded = config),
    () => {
      loading = undefined;
      return { readOnly: true };
    },
  );
  return loading;
}

/** True while the configuration is unknown, and in read-only mode: every action is hidden then. */
export function useReadOnly(): boolean {
  const [config, setConfig] = useState<ConsoleConfig | undefined>(loaded);
  useEffect(() => {
    if (loaded !== undefined) return;
    let live = true;
    const attempt = (): void => {
      void load().then((c) => {
        if (!live) return;
        if (loaded === undefined) setTimeout(attempt, 2_000);
        else setConfig(c);
      });
    };
    attempt();
    return () => {
      live = false;
    };
  }, []);
  return config?.readOnly ?? true;
}
