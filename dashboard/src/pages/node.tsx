import { useEffect, useState } from 'preact/hooks';
import { get, query } from '../api';
import { accept, NODE_VERBS, power, POWER_TARGETS } from '../actions';
import { ConfirmButton, ErrorText, Json, Loading, StateBadge, Time } from '../components';
import { useLoad } from '../live';
import { taskHref } from '../router';
import { settings } from '../settings';
import type { Accepted, Claim, NodeDetail } from '../types';

/** One node: state and target, its actions, power, last error, queued operations, timeline and facts. */
export function NodePage({ hostname }: { hostname: string }) {
  const path = `/api/v1/nodes/${encodeURIComponent(hostname)}`;
  const node = useLoad<NodeDetail>(
    path,
    () => get(path),
    // Its own row or timeline, or a bulk task (whose operations may be this node's queue).
    (c) => c.nodes.some((n) => n.hostname === hostname) || c.gone.includes(hostname) || c.tasks.some((t) => t.hostname === hostname || t.hostname === null),
    1000,
  );
  const [started, setStarted] = useState<{ verb: string; task: string } | undefined>();
  const [workflows, setWorkflows] = useState<string | null>(null);
  useEffect(() => {
    settings().then((s) => setWorkflows(s.temporal_workflows_url), () => undefined);
  }, []);

  if (!node.data) return <Loading error={node.error} />;
  const n = node.data;
  const workflowId = `node:${n.hostname}`;
  const done = (verb: string) => (result: unknown) => setStarted({ verb, task: (result as Accepted).task_id });
  const verbs = n.allowed_actions.filter((v) => v in NODE_VERBS);
  const other = n.allowed_actions.filter((v) => !(v in NODE_VERBS) && v !== 'accept');

  return (
    <section class="node" data-hostname={n.hostname}>
      <h1>
        {n.hostname} <StateBadge state={n.state} target={n.target_state} />
      </h1>
      {node.error ? <ErrorText error={`not refreshed: ${node.error}`} /> : null}

      <div class="actions" data-testid="node-actions">
        {n.state === 'unmanaged' ? <AcceptClaims hostname={n.hostname} /> : null}
        {verbs.map((verb) => {
          const v = NODE_VERBS[verb]!;
          return (
            <ConfirmButton key={verb} label={`${v.label}…`} confirmLabel={v.label} title={`${v.label} ${n.hostname}`} run={() => v.run(n.hostname)} done={done(verb)}>
              <p>
                {v.label} <strong>{n.hostname}</strong> (now {n.state}): {v.explain}.
              </p>
            </ConfirmButton>
          );
        })}
        {other.map((verb) => (
          <span key={verb} class="muted" title="needs an image: nodectl deploy or PUT …/states/provision">
            {verb} (with an image, through nodectl or the API)
          </span>
        ))}
        {n.allowed_actions.length === 0 && n.state !== 'unmanaged' ? <span class="muted">No action is allowed while the node is {n.state}.</span> : null}
      </div>
      {started ? (
        <p class="notice">
          {started.verb} started: <a href={taskHref(started.task)}>task {started.task.slice(0, 8)}</a>
        </p>
      ) : null}

      {n.last_error ? (
        <div class="last-error" data-testid="last-error">
          <h2>Last error</h2>
          <pre>{n.last_error}</pre>
        </div>
      ) : null}

      <div class="columns">
        <dl class="fields">
          <dt>State</dt>
          <dd data-testid="node-state">{n.state}</dd>
          <dt>Target</dt>
          <dd>{n.target_state ?? '–'}</dd>
          <dt>Fingerprint</dt>
          <dd class="mono">{n.fingerprint ?? '–'}</dd>
          <dt>Address</dt>
          <dd class="mono">{n.address ?? '–'}</dd>
          <dt>Reachable</dt>
          <dd>{n.reachable ? 'yes' : <span class="bad">no</span>}</dd>
          <dt>Last seen</dt>
          <dd>
            <Time at={n.last_seen_at} />
          </dd>
          <dt>Monitoring</dt>
          <dd>{n.monitoring_silenced ? 'silenced' : 'on'}</dd>
          <dt>Accepted</dt>
          <dd>
            <Time at={n.accepted_at} />
          </dd>
          <dt>Workflow</dt>
          <dd>
            {workflows ? (
              <a href={`${workflows}/${encodeURIComponent(workflowId)}`} target="_blank" rel="noreferrer" data-testid="workflow-link">
                {workflowId} in the Temporal UI
              </a>
            ) : (
              <span class="mono" data-testid="workflow-link" title="the service was not given the Temporal UI's address">
                {workflowId}
              </span>
            )}
          </dd>
        </dl>
        <PowerPanel node={n} done={done('power')} />
      </div>

      {n.initialization ? (
        <>
          <h2>Initialization</h2>
          <Json value={n.initialization} />
        </>
      ) : null}
      {n.deploy ? (
        <>
          <h2>Install</h2>
          <Json value={n.deploy} />
        </>
      ) : null}

      <h2>Queued operations</h2>
      {n.operations.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <table class="list" data-testid="operations">
          <thead>
            <tr>
              <th>Kind</th>
              <th>Status</th>
              <th>Task</th>
              <th>Queued</th>
              <th>Started</th>
              <th>Error</th>
            </tr>
          </thead>
          <tbody>
            {n.operations.map((op) => (
              <tr key={op.id}>
                <td>{op.kind}</td>
                <td>{op.status}</td>
                <td>
                  <a href={taskHref(op.task_id)}>{op.task_id.slice(0, 8)}</a>
                </td>
                <td>
                  <Time at={op.created_at} />
                </td>
                <td>
                  <Time at={op.started_at} />
                </td>
                <td>{op.error ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <h2>Timeline</h2>
      <ol class="timeline" data-testid="timeline">
        {[...n.events].reverse().map((e) => (
          <li key={e.id}>
            <Time at={e.at} /> <strong>{e.event ?? e.type}</strong>
            {e.from_state || e.to_state ? (
              <span>
                {' '}
                {e.from_state ?? '∅'} → {e.to_state ?? '∅'}
              </span>
            ) : null}
            {e.cause ? <span class="muted"> — {e.cause}</span> : null}
            {e.task_id ? (
              <>
                {' '}
                <a href={taskHref(e.task_id)}>task</a>
              </>
            ) : null}
          </li>
        ))}
        {n.reachability_events.map((e) => (
          <li key={`${e.type}-${e.at}`} class="muted">
            <Time at={e.at} /> {e.type}
          </li>
        ))}
      </ol>

      <h2>Facts</h2>
      {n.facts ? (
        <>
          <p class="muted">
            gathered <Time at={n.facts_at} />
          </p>
          <Json value={n.facts} />
        </>
      ) : (
        <p class="muted">Not gathered yet.</p>
      )}
    </section>
  );
}

function PowerPanel({ node, done }: { node: NodeDetail; done: (result: unknown) => void }) {
  const [reading, setReading] = useState<{ power_state?: string | null; source?: string; error?: string } | undefined>();
  const [error, setError] = useState<string | undefined>();
  return (
    <div class="power" data-testid="power">
      <h2>Power</h2>
      <dl class="fields">
        <dt>Recorded</dt>
        <dd>{node.power_state ?? '–'}</dd>
        <dt>Enforced</dt>
        <dd>{node.enforced_power_state ?? '–'}</dd>
        <dt>Fault</dt>
        <dd>{node.power_fault ? <span class="bad">yes</span> : 'no'}</dd>
        <dt>Driver</dt>
        <dd>{node.driver ?? 'none'}</dd>
      </dl>
      {node.driver ? (
        <div class="actions">
          <button
            type="button"
            onClick={() => {
              setError(undefined);
              get<typeof reading>(`/api/v1/nodes/${encodeURIComponent(node.hostname)}/states/power`).then(setReading, (e: Error) => setError(e.message));
            }}
          >
            Read from the BMC
          </button>
          {POWER_TARGETS.map((target) => (
            <ConfirmButton key={target} label={`${target}…`} confirmLabel={target} title={`${target}: ${node.hostname}`} danger={target !== 'power on'} run={() => power(node.hostname, target)} done={done}>
              <p>
                Sets <strong>{node.hostname}</strong> to <strong>{target}</strong> through its {node.driver} driver; the service then enforces it.
              </p>
            </ConfirmButton>
          ))}
          {reading ? (
            <p>
              BMC says: <strong>{reading.power_state ?? 'unknown'}</strong> ({reading.source}){reading.error ? `: ${reading.error}` : ''}
            </p>
          ) : null}
          <ErrorText error={error} />
        </div>
      ) : (
        <p class="muted">No power driver: the node was accepted through its agent.</p>
      )}
    </div>
  );
}

/** The keys claiming an unmanaged host: accepting one asks the operator to compare its fingerprint. */
function AcceptClaims({ hostname }: { hostname: string }) {
  const claims = useLoad<Claim[]>(`claims:${hostname}`, async () => get<Claim[]>(`/api/v1/unmanaged_nodes${query({ hostname })}`), (c) =>
    c.nodes.some((n) => n.hostname === hostname),
  );
  if (!claims.data) return <Loading error={claims.error} />;
  return (
    <>
      {claims.data.map((claim) => (
        <AcceptButton key={claim.fingerprint} claim={claim} />
      ))}
    </>
  );
}

export function AcceptButton({ claim, done }: { claim: Claim; done?: () => void }) {
  return (
    <ConfirmButton label={claims(claim)} confirmLabel="Accept" title={`Accept ${claim.hostname}`} run={() => accept(claim.hostname, claim.fingerprint)} done={done}>
      <p>
        Compare this fingerprint with the one the node itself prints (<code>nodeagent fingerprint --state-dir …</code> on the node). Accept only if they are the
        same.
      </p>
      <p class="fingerprint" data-testid="confirm-fingerprint">
        {claim.fingerprint}
      </p>
      <p class="muted">
        announced from {claim.address}
        {claim.conflict ? `; ${claim.claims} keys claim this host name: the others are rejected` : ''}
      </p>
    </ConfirmButton>
  );
}

const claims = (claim: Claim) => (claim.conflict ? `Accept key ${claim.fingerprint.slice(7, 15)}…` : 'Accept…');
