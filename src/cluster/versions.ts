import os from 'node:os';
import path from 'node:path';

/**
 * The Temporal versions of the cluster engine: the ones the dev server's CLI (v1.5.1) embeds, so both
 * engines behave alike. scripts/cluster.sh builds these and docker-compose.yml runs them;
 * test/compose.test.ts fails when either drifts from this file.
 */
export const TEMPORAL_SERVER_VERSION = 'v1.29.1';
export const TEMPORAL_UI_SERVER_VERSION = 'v2.42.1';

/** Where scripts/cluster.sh caches its builds: per user, outside the clone, shared by every clone. */
export function clusterBinaryDefaults(env: Record<string, string | undefined> = process.env) {
  const cache = path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'node-lifecycle');
  return {
    server: path.join(cache, `temporal-server-${TEMPORAL_SERVER_VERSION}`, 'server'),
    sqlTool: path.join(cache, `temporal-sql-tool-${TEMPORAL_SERVER_VERSION}`, 'sql'),
    uiServer: path.join(cache, `temporal-ui-server-${TEMPORAL_UI_SERVER_VERSION}`, 'server'),
  };
}
