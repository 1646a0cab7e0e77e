import { get, query } from '../api';
import { ErrorText, Loading, NodeLink, Time } from '../components';
import { useChanges, useLoad } from '../live';
import { NoderoleCounts } from '../deployments';
import { deploymentHref, href, navigate, taskHref, type Route } from '../router';
import type { NoderoleState, Progress, Task } from '../types';

const LIMIT = 50;
const STATUSES = ['queued', 'running', 'succeeded', 'failed'];

/** Tasks, newest first (GET /api/v1/tasks), reloaded when the stream reports a task changed. */
export function Tasks({ route }: { route: Route }) {
  const status = route.params.get('status') ?? undefined;
  const offset = Number(route.params.get('offset') ?? 0) || 0;
  const path = `/api/v1/tasks${query({ status, limit: LIMIT, offset })}`;
  const tasks = useLoad<Task[]>(path, () => get(path), (c) => c.tasks.length > 0, 1000);
  // Bulk tasks' progress comes with every change: the bars move without a reload.
  useChanges((change) => {
    if (!change) return;
    const fresh = new Map(change.tasks.map((t) => [t.id, t]));
    tasks.patch((list) => list.map((t) => ({ ...t, ...fresh.get(t.id) })));
  });
  return (
    <section>
      <h1>Tasks</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select value={status ?? ''} onChange={(e) => navigate('/tasks', { status: e.currentTarget.value || undefined })}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
      </form>
      {!tasks.data ? (
        <Loading error={tasks.error} />
      ) : (
        <>
          <table class="list" data-testid="task-list">
            <thead>
              <tr>
                <th>Task</th>
                <th>Kind</th>
                <th>Node</th>
                <th>Status</th>
                <th>Progress</th>
                <th>Created</th>
                <th>Finished</th>
                <th>Error</th>
              </tr>
            </thead>
            <tbody>
              {tasks.data.map((t) => (
                <tr key={t.id} data-task={t.id}>
                  <td class="mono">
                    <a href={taskHref(t.id)}>{t.id.slice(0, 8)}</a>
                  </td>
                  <td>{t.kind}</td>
                  <td>{t.hostname ? <NodeLink hostname={t.hostname} /> : <span class="muted">bulk</span>}</td>
                  <td>
                    <span class={`status status-${t.status}`}>{t.status}</span>
                  </td>
                  <td>{t.progress ? <ProgressBar progress={t.progress} /> : null}</td>
                  <td>
                    <Time at={t.created_at} />
                  </td>
                  <td>
                    <Time at={t.finished_at} />
                  </td>
                  <td class="clip" title={t.error ?? ''}>
                    {t.error ?? ''}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <div class="pager">
            <a class={offset === 0 ? 'disabled' : ''} href={href('/tasks', { status, offset: Math.max(0, offset - LIMIT) || undefined })}>
              ← Newer
            </a>
            <a class={tasks.data.length < LIMIT ? 'disabled' : ''} href={href('/tasks', { status, offset: offset + LIMIT })}>
              Older →
            </a>
          </div>
        </>
      )}
    </section>
  );
}

export function ProgressBar({ progress }: { progress: Progress }) {
  const total = Math.max(progress.total, 1);
  const part = (n: number) => `${(100 * n) / total}%`;
  const label = `${progress.succeeded + progress.failed}/${progress.total} done, ${progress.running} running, ${progress.waiting} waiting, ${progress.queued} queued, ${progress.failed} failed`;
  return (
    <div class="progress" title={label} aria-label={label} data-testid="progress">
      <div class="bar">
        <span class="ok" style={{ width: part(progress.succeeded) }} />
        <span class="fail" style={{ width: part(progress.failed) }} />
        <span class="run" style={{ width: part(progress.running + progress.waiting) }} />
      </div>
      <span class="progress-text">{label}</span>
    </div>
  );
}

/** One task: its status and, for a bulk task, each node's progress, live. */
export function TaskPage({ id }: { id: string }) {
  const path = `/api/v1/tasks/${encodeURIComponent(id)}`;
  const task = useLoad<Task>(path, () => get(path), (c) => c.tasks.some((t) => t.id === id));
  if (!task.data) return <Loading error={task.error} />;
  const t = task.data;
  return (
    <section data-task={t.id}>
      <h1>
        {t.kind} <span class={`status status-${t.status}`} data-testid="task-status">{t.status}</span>
      </h1>
      <p class="mono muted">task {t.id}</p>
      {t.hostname ? (
        <p>
          Node: <NodeLink hostname={t.hostname} />
        </p>
      ) : null}
      {t.decision ? <p>Decision: {t.decision}</p> : null}
      <ErrorText error={t.error} />
      {t.kind === 'anneal' ? <Anneal task={t} /> : t.progress ? <ProgressBar progress={t.progress} /> : null}
      {t.nodes ? (
        <table class="list" data-testid="task-nodes">
          <thead>
            <tr>
              <th>Node</th>
              <th>Status</th>
              <th>Started</th>
              <th>Finished</th>
              <th>Error</th>
            </tr>
          </thead>
          <tbody>
            {t.nodes.map((op) => (
              <tr key={op.id} data-hostname={op.hostname ?? op.address}>
                <td>{op.hostname ? <NodeLink hostname={op.hostname} /> : <span class="mono">{op.address}</span>}</td>
                <td>
                  <span class={`status status-${op.status}`}>{op.status}</span>
                  {op.step ? <span class="muted"> ({op.step})</span> : null}
                </td>
                <td>
                  <Time at={op.started_at} />
                </td>
                <td>
                  <Time at={op.finished_at} />
                </td>
                <td>{op.error ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {t.result ? (
        <>
          <h2>Result</h2>
          <pre class="json">{JSON.stringify(t.result, null, 2)}</pre>
        </>
      ) : null}
    </section>
  );
}

/** A commit's or a retry's task (kind anneal): its deployment, and its noderoles counted and listed by state. */
function Anneal({ task }: { task: Task }) {
  const deployment = typeof task.details?.deployment === 'string' ? task.details.deployment : undefined;
  // An anneal task's progress counts its noderoles by state, not operations by status.
  const counts = (task.progress ?? {}) as unknown as Partial<Record<NoderoleState, number>>;
  return (
    <>
      {deployment ? (
        <p>
          Deployment: <a href={deploymentHref(deployment)}>{deployment}</a>
        </p>
      ) : null}
      <p>
        <NoderoleCounts counts={counts} />
      </p>
      {task.noderoles ? (
        <table class="list" data-testid="task-noderoles">
          <thead>
            <tr>
              <th>Node</th>
              <th>Role</th>
              <th>State</th>
              <th>Error</th>
            </tr>
          </thead>
          <tbody>
            {task.noderoles.map((n) => (
              <tr key={n.id} data-noderole={n.id}>
                <td>
                  <NodeLink hostname={n.node} />
                </td>
                <td>{n.role}</td>
                <td>
                  <span class={`badge state-${n.state}`} data-state={n.state}>
                    {n.state}
                  </span>
                </td>
                <td>{n.error ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </>
  );
}
