import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { DEFAULT_HISTORY_SHARDS, loadConfig, PROJECT_ROOT } from '../src/config';
import { TEMPORAL_SERVER_VERSION, TEMPORAL_UI_SERVER_VERSION } from '../src/cluster/versions';

// docker-compose.yml cannot run here: these checks keep it describing what `npm run cluster` runs.
interface Service {
  image?: string;
  environment?: Record<string, string>;
  command?: string | string[];
}
const compose = parse(fs.readFileSync(path.join(PROJECT_ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> };
const read = (file: string) => fs.readFileSync(path.join(PROJECT_ROOT, file), 'utf8');
const bare = (version: string) => version.replace(/^v/, '');
const tag = (image: string) => compose.services[image]?.image?.split(':')[1];

/** Every variable src/config.ts reads, as its source names them. */
function configVariables(): Set<string> {
  const source = read('src/config.ts');
  const names = new Set<string>();
  for (const m of source.matchAll(/env\.([A-Z][A-Z0-9_]*)|env, '([A-Z][A-Z0-9_]*)'|\{ ([A-Z][A-Z0-9_]*): /g)) names.add((m[1] ?? m[2] ?? m[3])!);
  return names;
}

describe('docker-compose.yml follows the cluster engine', () => {
  test('the bootstrap builds the versions src/cluster/versions.ts names', () => {
    const script = read('scripts/cluster.sh');

    expect(script).toContain(`TEMPORAL_SERVER_VERSION="${TEMPORAL_SERVER_VERSION}"`);
    expect(script).toContain(`TEMPORAL_UI_SERVER_VERSION="${TEMPORAL_UI_SERVER_VERSION}"`);
  });

  test('the Temporal images are the versions the bootstrap builds', () => {
    expect(tag('temporal')).toBe(bare(TEMPORAL_SERVER_VERSION));
    expect(compose.services.temporal?.image).toMatch(/^temporalio\/server:/);
    expect(tag('temporal-schema')).toBe(bare(TEMPORAL_SERVER_VERSION));
    expect(tag('temporal-namespace')).toBe(bare(TEMPORAL_SERVER_VERSION));
    expect(tag('temporal-ui')).toBe(bare(TEMPORAL_UI_SERVER_VERSION));
  });

  test('the server has the shard count, database names and connection limit of the cluster engine defaults', () => {
    const cluster = loadConfig({ ENGINE: 'cluster' }).cluster!;
    const env = compose.services.temporal!.environment!;

    expect(Number(env.NUM_HISTORY_SHARDS)).toBe(DEFAULT_HISTORY_SHARDS);
    expect(cluster.historyShards).toBe(DEFAULT_HISTORY_SHARDS);
    expect(env.DBNAME).toBe(cluster.database);
    expect(env.VISIBILITY_DBNAME).toBe(cluster.visibilityDatabase);
    expect(Number(env.SQL_MAX_CONNS)).toBe(cluster.maxConns);
    expect(env.DB).toBe('postgres12');
  });

  test('the schema job runs the schemas src/cluster/schema.ts applies, on the same databases', () => {
    const schemaSource = read('src/cluster/schema.ts');
    const job = [compose.services['temporal-schema']!.command].flat().join('\n');
    const cluster = loadConfig({ ENGINE: 'cluster' }).cluster!;

    for (const schema of schemaSource.matchAll(/'postgresql\/v12\/(\w+)'/g)) expect(job).toContain(schema[1]);
    expect(job).toContain(`${cluster.database}:temporal`);
    expect(job).toContain(`${cluster.visibilityDatabase}:visibility`);
    expect(job).toContain('setup-schema -v 0.0');
  });

  test('the API and the worker are configured only with variables the service reads', () => {
    const known = configVariables();

    for (const name of ['api', 'worker']) {
      const env = compose.services[name]!.environment!;
      expect(Object.keys(env).filter((key) => !known.has(key))).toEqual([]);
      expect(env.TEMPORAL_ADDRESS).toBe(`temporal:${loadConfig({}).temporalPort}`);
    }
  });
});
