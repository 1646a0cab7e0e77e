import { getMany } from '../api';
import { Loading, StateBadge, Time } from '../components';
import { annealChanged, annealing, NoderoleCounts, usePollWhile } from '../deployments';
import { useLoad } from '../live';
import { deploymentHref } from '../router';
import type { Deployment } from '../types';

/** Deployments are few (a tree an operator draws by hand): the page reads this many, page by page. */
const MAX_DEPLOYMENTS = 5000;

interface Row {
  deployment: Deployment;
  depth: number;
  /** Its parent is not among the deployments read (past MAX_DEPLOYMENTS): shown at the top level. */
  detached: boolean;
}

/** The deployments in tree order, from `system` down, each child after its parent, siblings by name. */
export function treeRows(deployments: Deployment[]): Row[] {
  const names = new Set(deployments.map((d) => d.name));
  const children = new Map<string | null, Deployment[]>();
  for (const d of deployments) {
    const parent = d.parent !== null && names.has(d.parent) ? d.parent : null;
    children.set(parent, [...(children.get(parent) ?? []), d]);
  }
  const rows: Row[] = [];
  const walk = (parent: string | null, depth: number) => {
    // The list comes sorted by name; system, the root, first among the roots.
    const level = [...(children.get(parent) ?? [])].sort((a, b) => Number(b.parent === null) - Number(a.parent === null) || a.name.localeCompare(b.name));
    for (const d of level) {
      rows.push({ deployment: d, depth, detached: parent === null && d.parent !== null });
      walk(d.name, depth + 1);
    }
  };
  walk(null, 0);
  return rows;
}

/** Every deployment as a tree (GET /api/v1/deployments, paged), with its state, nodes and noderoles by state. */
export function Deployments() {
  const list = useLoad('deployments', () => getMany<Deployment>('/api/v1/deployments', MAX_DEPLOYMENTS), (c) => annealChanged(c), 1000);
  usePollWhile(list.data?.rows.some((d) => annealing(d.noderole_counts)) ?? false, list.reload);
  if (!list.data) return <Loading error={list.error} />;
  const rows = treeRows(list.data.rows);
  return (
    <section class="deployments">
      <h1>Deployments</h1>
      <p class="muted">
        A node belongs to one deployment; a noderole runs one role on one node of it. Commit a deployment (nodectl or the API) and its noderoles go from todo
        through transition to active or error.
      </p>
      <table class="list tree" data-testid="deployment-tree">
        <thead>
          <tr>
            <th>Deployment</th>
            <th>State</th>
            <th class="num">Nodes</th>
            <th>Noderoles</th>
            <th>Committed</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(({ deployment: d, depth, detached }) => (
            <tr key={d.name} data-deployment={d.name} data-depth={depth}>
              <td class="name">
                <span class="indent" style={{ width: `${depth * 1.25}rem` }}>
                  {depth > 0 ? '└' : ''}
                </span>
                <a href={deploymentHref(d.name)}>{d.name}</a>
                {detached ? <span class="muted"> (in {d.parent})</span> : null}
                {d.description ? <div class="muted">{d.description}</div> : null}
              </td>
              <td>
                <StateBadge state={d.state} />
              </td>
              <td class="num">{d.nodes}</td>
              <td>
                <NoderoleCounts counts={d.noderole_counts} />
              </td>
              <td>
                <Time at={d.committed_at} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data.more ? (
        <p class="muted">
          The first {list.data.rows.length} of {list.data.total} deployments; the rest through nodectl or GET /api/v1/deployments.
        </p>
      ) : null}
    </section>
  );
}
