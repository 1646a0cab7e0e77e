import { useState } from 'preact/hooks';
import { get, getPage, query } from '../api';
import { ConfirmButton, ErrorText, Loading, NodeLink, StateBadge, Time } from '../components';
import { annealChanged, annealing, isAnnealing, NODEROLE_STATES, NoderoleCounts, retryNoderole, usePollWhile } from '../deployments';
import { useLoad } from '../live';
import { deploymentHref, href, navigate, taskHref, type Route } from '../router';
import type { AnnealAccepted, DeploymentDetail, DeploymentTree, Noderole } from '../types';

/** Noderoles a page (`?limit=` in the page's URL sets another, up to the API's 1000). */
const LIMIT = 50;
/**
 * GET /deployments/{name} carries up to 1000 noderoles inline, which this page does not show (its table
 * is paged): a deployment with more than this many is re-read less often while the table is polled.
 */
const INLINE_POLL_LIMIT = 100;
const SLOW_POLL_MS = 10_000;

/**
 * One deployment: its path from system, state and counts, child deployments, roles with this
 * deployment's attributes, and its noderoles (GET /api/v1/noderoles?deployment=, paged by cursor),
 * refreshed every 2 s while any is in todo or transition.
 */
export function DeploymentPage({ name, route }: { name: string; route: Route }) {
  const state = route.params.get('state') ?? undefined;
  const limit = Math.min(1000, Math.max(1, Math.trunc(Number(route.params.get('limit'))) || LIMIT));
  const detailPath = `/api/v1/deployments/${encodeURIComponent(name)}`;
  const detail = useLoad<DeploymentDetail>(detailPath, () => get(detailPath), (c) => annealChanged(c, name), 1000);

  // Cursor paging: the cursor of every page up to this one, so Previous can go back; a new filter starts over.
  const listing = `${state ?? ''}/${limit}`;
  const [paging, setPaging] = useState<{ listing: string; cursors: (string | undefined)[] }>({ listing, cursors: [undefined] });
  const cursors = paging.listing === listing ? paging.cursors : [undefined];
  const setCursors = (update: (c: (string | undefined)[]) => (string | undefined)[]) => setPaging({ listing, cursors: update(cursors) });
  const cursor = cursors[cursors.length - 1];
  const pagePath = `/api/v1/noderoles${query({ deployment: name, state, limit, cursor })}`;
  const offset = (cursors.length - 1) * limit;
  // A page remembers where it was read from: until the next one arrives, the old one shows its own place.
  const page = useLoad(pagePath, async () => ({ ...(await getPage<Noderole>(pagePath)), path: pagePath, offset }), (c) => annealChanged(c, name), 1000);

  const inFlight = (detail.data ? annealing(detail.data.noderole_counts) : false) || (page.data?.rows.some((n) => isAnnealing(n.state)) ?? false);
  usePollWhile(inFlight, page.reload);
  usePollWhile(inFlight, detail.reload, (detail.data?.noderoles.length ?? 0) > INLINE_POLL_LIMIT ? SLOW_POLL_MS : undefined);

  const [retried, setRetried] = useState<{ noderole: Noderole; accepted: AnnealAccepted } | undefined>();

  if (!detail.data) return <Loading error={detail.error} />;
  const d = detail.data;
  return (
    <section class="deployment deployments" data-deployment={d.name}>
      <nav class="breadcrumb" aria-label="deployment path" data-testid="deployment-path">
        <a href={href('/deployments')}>Deployments</a>
        {d.path.map((p, i) => (
          <span key={p}>
            <span class="sep">›</span>
            {i === d.path.length - 1 ? <strong>{p}</strong> : <a href={deploymentHref(p)}>{p}</a>}
          </span>
        ))}
      </nav>
      <h1>
        {d.name} <StateBadge state={d.state} />
      </h1>
      {detail.error ? <ErrorText error={`not refreshed: ${detail.error}`} /> : null}
      {d.description ? <p>{d.description}</p> : null}

      <dl class="fields">
        <dt>Parent</dt>
        <dd>{d.parent ? <a href={deploymentHref(d.parent)}>{d.parent}</a> : <span class="muted">none (the root)</span>}</dd>
        <dt>Nodes</dt>
        <dd data-testid="deployment-nodes">{d.nodes}</dd>
        <dt>Noderoles</dt>
        <dd>
          <NoderoleCounts counts={d.noderole_counts} />
          {inFlight ? <span class="muted"> (annealing: refreshed every 2 s)</span> : null}
        </dd>
        <dt>Committed</dt>
        <dd>
          <Time at={d.committed_at} />
        </dd>
      </dl>

      {d.tree.children.length > 0 ? (
        <>
          <h2>Child deployments</h2>
          <Subtree trees={d.tree.children} />
        </>
      ) : null}

      <h2>Roles</h2>
      {d.roles.length === 0 ? (
        <p class="muted">No role in this deployment yet (nodectl or POST /api/v1/deployments/{d.name}/bind adds one).</p>
      ) : (
        <table class="list" data-testid="deployment-roles">
          <thead>
            <tr>
              <th>Role</th>
              <th>This deployment's attributes (over the role's defaults)</th>
            </tr>
          </thead>
          <tbody>
            {d.roles.map((r) => (
              <tr key={r.role} data-role={r.role}>
                <td>{r.role}</td>
                <td>
                  {Object.keys(r.attributes).length === 0 ? <span class="muted">none</span> : <pre class="attributes mono">{JSON.stringify(r.attributes, null, 1)}</pre>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <h2>Noderoles</h2>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          State
          <select name="state" value={state ?? ''} onChange={(e) => navigate(`/deployments/${encodeURIComponent(name)}`, { state: e.currentTarget.value || undefined, limit: route.params.get('limit') ?? undefined })}>
            <option value="">any</option>
            {NODEROLE_STATES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
      </form>
      {retried ? (
        <p class="notice">
          {retried.noderole.role} on {retried.noderole.node} retried ({retried.accepted.noderoles} noderole{retried.accepted.noderoles === 1 ? '' : 's'} back in todo):{' '}
          <a href={taskHref(retried.accepted.task_id)}>task {retried.accepted.task_id.slice(0, 8)}</a>
        </p>
      ) : null}
      {!page.data ? (
        <Loading error={page.error} />
      ) : (
        <>
          {page.error ? <ErrorText error={`not refreshed: ${page.error}`} /> : null}
          <NoderoleTable
            noderoles={page.data.rows}
            retried={(noderole, accepted) => {
              setRetried({ noderole, accepted });
              page.reload();
              detail.reload();
            }}
          />
          <div class="pager" data-testid="noderole-pager">
            <button type="button" disabled={cursors.length === 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
              ← Previous
            </button>
            <span>{page.data.total === 0 ? 'none' : `${page.data.offset + 1}–${page.data.offset + page.data.rows.length} of ${page.data.total}`}</span>
            <button type="button" disabled={page.data.next === null || page.data.path !== pagePath} onClick={() => setCursors((c) => [...c, page.data!.next!])}>
              Next →
            </button>
          </div>
        </>
      )}
    </section>
  );
}

function Subtree({ trees }: { trees: DeploymentTree[] }) {
  return (
    <ul class="subtree" data-testid="deployment-subtree">
      {trees.map((t) => (
        <li key={t.name} data-deployment={t.name}>
          <span>
            <a href={deploymentHref(t.name)}>{t.name}</a> <StateBadge state={t.state} />
            <span class="muted">
              {t.nodes} node{t.nodes === 1 ? '' : 's'}
            </span>
          </span>
          {t.children.length > 0 ? <Subtree trees={t.children} /> : null}
        </li>
      ))}
    </ul>
  );
}

function NoderoleTable({ noderoles, retried }: { noderoles: Noderole[]; retried: (noderole: Noderole, accepted: AnnealAccepted) => void }) {
  if (noderoles.length === 0) return <p class="muted">No noderoles.</p>;
  return (
    <table class="list" data-testid="noderoles">
      <thead>
        <tr>
          <th>Node</th>
          <th>Role</th>
          <th>State</th>
          <th>Error</th>
          <th class="num">Runs</th>
          <th class="num">Exit code</th>
          <th>Finished</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {noderoles.map((n) => {
          const exit = n.result?.exit_code;
          return (
            <tr key={n.id} data-noderole={n.id} data-node={n.node} data-role={n.role}>
              <td>
                <NodeLink hostname={n.node} />
              </td>
              <td>
                {n.role}
                {n.requires.length > 0 ? <div class="muted">after {n.requires.join(', ')}</div> : null}
              </td>
              <td>
                <StateBadge state={n.state} />
              </td>
              <td class="clip" title={n.error ?? ''} data-testid="noderole-error">
                {n.error ?? ''}
              </td>
              <td class="num">{n.runs}</td>
              <td class={`num ${typeof exit === 'number' && exit !== 0 ? 'exit-bad' : ''}`} data-testid="exit-code">
                {typeof exit === 'number' ? exit : <span class="muted">–</span>}
              </td>
              <td>
                <Time at={n.finished_at} />
              </td>
              <td>
                {n.state === 'error' ? (
                  <ConfirmButton label="Retry…" confirmLabel="Retry" title={`Retry ${n.role} on ${n.node}`} run={() => retryNoderole(n.id)} done={(r) => retried(n, r as AnnealAccepted)}>
                    <p>
                      Puts <strong>{n.role}</strong> on <strong>{n.node}</strong> back in todo, with the noderoles its error blocks; the deployment's annealer runs
                      it again.
                    </p>
                    {n.error ? (
                      <>
                        {/* The list carries no output (GET /noderoles/{id} has it); the error ends with its last lines. */}
                        <p class="muted">Its last run said:</p>
                        <pre class="json">{n.error}</pre>
                      </>
                    ) : null}
                  </ConfirmButton>
                ) : null}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
