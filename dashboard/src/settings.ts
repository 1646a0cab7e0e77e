import { get } from './api';

export interface Settings {
  /** The Temporal web UI's workflow list, or null when the service was not told where it is. */
  temporal_workflows_url: string | null;
  /** Every node state, in the lifecycle's order (the node list's state filter). */
  states: string[];
}

let loaded: Promise<Settings> | undefined;

export function settings(): Promise<Settings> {
  loaded ??= get<Settings>('/api/v1/dashboard/settings').catch((err: unknown) => {
    loaded = undefined;
    throw err;
  });
  return loaded;
}
