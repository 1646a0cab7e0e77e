import { get } from '../api';
import { Loading } from '../components';
import { useChanges, useLoad } from '../live';
import { href } from '../router';
import type { Summary } from '../types';

/** The fleet at a glance: counts by state and the things that want attention, kept live by the stream. */
export function Overview() {
  const summary = useLoad<Summary>('summary', () => get('/api/v1/dashboard/summary'), () => false);
  // Every stream message carries the summary: no request per change.
  useChanges((change) => change && summary.patch(() => change.summary));
  const live = summary.data;
  if (!live) return <Loading error={summary.error} />;
  const states = Object.entries(live.by_state).sort(([a], [b]) => a.localeCompare(b));
  return (
    <section>
      <h1>Fleet</h1>
      <div class="cards">
        <Card label="nodes" value={live.total} link={href('/nodes')} />
        <Card label="reachable" value={live.reachable} link={href('/nodes', { reachable: 'true' })} />
        <Card label="unreachable" value={live.unreachable} link={href('/nodes', { reachable: 'false' })} warn={live.unreachable > 0} />
        <Card label="power faults" value={live.power_faults} link={href('/nodes', { power_fault: 'true' })} warn={live.power_faults > 0} />
        <Card label="keys waiting for accept" value={live.pending_claims} link={href('/unmanaged')} warn={live.pending_claims > 0} />
        <Card label="tasks in flight" value={live.tasks_in_flight} link={href('/tasks')} />
      </div>
      <h2>By state</h2>
      {states.length === 0 ? (
        <p class="muted">No nodes yet. Start an agent (see the README's walk-through); it appears under Unmanaged.</p>
      ) : (
        <table class="counts" data-testid="state-counts">
          <tbody>
            {states.map(([state, count]) => (
              <tr key={state} data-state={state}>
                <td>
                  <a href={href('/nodes', { state })}>{state}</a>
                </td>
                <td class="num">{count}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Card({ label, value, link, warn }: { label: string; value: number; link: string; warn?: boolean }) {
  return (
    <a class={`card ${warn ? 'warn' : ''}`} href={link} data-card={label}>
      <span class="card-value">{value}</span>
      <span class="card-label">{label}</span>
    </a>
  );
}
