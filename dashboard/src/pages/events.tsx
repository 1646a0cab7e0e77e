import { get, query } from '../api';
import { Loading, NodeLink, Time } from '../components';
import { useLoad } from '../live';
import { href, navigate, type Route } from '../router';
import type { ClusterEvent } from '../types';

const LIMIT = 50;
const TYPES = ['discovered', 'disappeared', 'power_corrected', 'power_fault', 'power_fault_cleared'];

/** Cluster events, newest first (GET /api/v1/events), each naming the nodes it concerns. */
export function Events({ route }: { route: Route }) {
  const type = route.params.get('type') ?? undefined;
  const offset = Number(route.params.get('offset') ?? 0) || 0;
  const path = `/api/v1/events${query({ type, limit: LIMIT, offset })}`;
  const events = useLoad<ClusterEvent[]>(path, () => get(path), (c) => c.events > 0, 1000);
  return (
    <section>
      <h1>Events</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Type
          <select value={type ?? ''} onChange={(e) => navigate('/events', { type: e.currentTarget.value || undefined })}>
            <option value="">any</option>
            {TYPES.map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </label>
      </form>
      {!events.data ? (
        <Loading error={events.error} />
      ) : events.data.length === 0 ? (
        <p class="muted">No events.</p>
      ) : (
        <>
          <table class="list" data-testid="event-list">
            <thead>
              <tr>
                <th>When</th>
                <th>Type</th>
                <th>Nodes</th>
              </tr>
            </thead>
            <tbody>
              {events.data.map((e) => (
                <tr key={e.id}>
                  <td>
                    <Time at={e.at} />
                  </td>
                  <td>{e.type}</td>
                  <td>
                    {e.nodes.slice(0, 20).map((n, i) => (
                      <span key={n}>
                        {i > 0 ? ', ' : ''}
                        <NodeLink hostname={n} />
                      </span>
                    ))}
                    {e.nodes.length > 20 ? <span class="muted"> and {e.nodes.length - 20} more</span> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <div class="pager">
            <a class={offset === 0 ? 'disabled' : ''} href={href('/events', { type, offset: Math.max(0, offset - LIMIT) || undefined })}>
              ← Newer
            </a>
            <a class={events.data.length < LIMIT ? 'disabled' : ''} href={href('/events', { type, offset: offset + LIMIT })}>
              Older →
            </a>
          </div>
        </>
      )}
    </section>
  );
}
