import type { ClusterConfig } from '../config';

/** JSON strings are YAML double-quoted scalars: every value goes through this, so none can break the file. */
const q = (value: string | number) => JSON.stringify(String(value));

/**
 * The Temporal server's configuration, from the environment. One process runs all four services; a
 * second host runs the same with its own addresses and finds this one through cluster_membership.
 */
export function renderServerConfig(cluster: ClusterConfig): string {
  const server = new URL(cluster.databaseUrl);
  const store = (database: string, maxConns: number) => `
      sql:
        pluginName: "postgres12"
        databaseName: ${q(database)}
        connectAddr: ${q(`${server.hostname}:${server.port || '5432'}`)}
        connectProtocol: "tcp"
        user: ${q(decodeURIComponent(server.username) || 'postgres')}
        password: ${q(decodeURIComponent(server.password))}
        maxConns: ${maxConns}
        maxIdleConns: ${maxConns}
        maxConnLifetime: "1h"`;
  const service = (name: keyof ClusterConfig['ports']) => `
  ${name}:
    rpc:
      grpcPort: ${cluster.ports[name]}
      membershipPort: ${cluster.membershipPorts[name]}
      bindOnIP: ${q(cluster.bindIp)}`;
  return `# Written by node-lifecycle at every start from its environment (see README, cluster engine); edits are lost.
log:
  stdout: true
  level: "warn"

persistence:
  # Fixed when the cluster is created: every host must use the same number.
  numHistoryShards: ${cluster.historyShards}
  defaultStore: "default"
  visibilityStore: "visibility"
  datastores:
    default:${store(cluster.database, cluster.maxConns)}
    visibility:${store(cluster.visibilityDatabase, Math.max(2, Math.ceil(cluster.maxConns / 2)))}

global:
  membership:
    maxJoinDuration: "30s"
    broadcastAddress: ${q(cluster.broadcastAddress)}

services:${service('frontend')}${service('history')}${service('matching')}${service('worker')}

clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: "active"
  currentClusterName: "active"
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: "frontend"
      rpcAddress: ${q(`${cluster.broadcastAddress}:${cluster.ports.frontend}`)}

dcRedirectionPolicy:
  policy: "noop"
`;
}

/** The standalone web UI, talking to this host's frontend. */
export function renderUiConfig(options: { frontend: string; host: string; port: number; namespace: string }): string {
  return `# Written by node-lifecycle at every start; edits are lost.
temporalGrpcAddress: ${q(options.frontend)}
host: ${q(options.host)}
port: ${options.port}
enableUi: true
defaultNamespace: ${q(options.namespace)}
`;
}
