import { useEffect, useState } from 'preact/hooks';
import { get, query } from '../api';
import { BULK_KINDS, bulk } from '../actions';
import { ConfirmButton, Loading, NodeLink, Pager, StateBadge, Time } from '../components';
import { useChanges, useLoad } from '../live';
import { navigate, type Route } from '../router';
import { settings } from '../settings';
import type { Accepted, NodeSummary } from '../types';

const LIMIT = 50;

interface Page {
  total: number;
  nodes: NodeSummary[];
}

/** Every node, filtered and paged by the server (GET /api/v1/dashboard/nodes), patched live. */
export function Nodes({ route }: { route: Route }) {
  const filter = {
    state: route.params.get('state') ?? undefined,
    reachable: route.params.get('reachable') ?? undefined,
    power_fault: route.params.get('power_fault') ?? undefined,
    q: route.params.get('q') ?? undefined,
  };
  const offset = Number(route.params.get('offset') ?? 0) || 0;
  const path = `/api/v1/dashboard/nodes${query({ ...filter, limit: LIMIT, offset })}`;
  const page = useLoad<Page>(path, () => get(path), (c) => c.nodes.length > 0 || c.more_nodes || c.gone.length > 0, 2000);
  // Rows on this page change at once; the page itself (membership, order, total) reloads at most every 2 s.
  useChanges((change) => {
    if (!change || change.nodes.length === 0) return;
    const fresh = new Map(change.nodes.map((n) => [n.hostname, n]));
    page.patch((p) => ({ ...p, nodes: p.nodes.map((n) => fresh.get(n.hostname) ?? n) }));
  });
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [states, setStates] = useState<string[]>([]);
  const [text, setText] = useState(filter.q ?? '');

  useEffect(() => {
    settings().then((s) => setStates(s.states), () => undefined);
  }, []);
  // Typing searches after a pause, not on every key.
  useEffect(() => {
    if (text === (filter.q ?? '')) return;
    const timer = setTimeout(() => setFilter({ q: text || undefined }), 300);
    return () => clearTimeout(timer);
  }, [text]);

  const setFilter = (change: Record<string, string | undefined>) => {
    // A new filter is a new list: what was selected in the old one is not carried over unseen.
    setSelected(new Set());
    navigate('/nodes', { ...filter, ...change, offset: undefined });
  };
  const toggle = (hostname: string) =>
    setSelected((s) => {
      const next = new Set(s);
      if (next.has(hostname)) next.delete(hostname);
      else next.add(hostname);
      return next;
    });
  const names = [...selected].sort();

  return (
    <section>
      <h1>Nodes</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          State
          <select name="state" value={filter.state ?? ''} onChange={(e) => setFilter({ state: e.currentTarget.value || undefined })}>
            <option value="">any</option>
            {states.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Reachable
          <select name="reachable" value={filter.reachable ?? ''} onChange={(e) => setFilter({ reachable: e.currentTarget.value || undefined })}>
            <option value="">any</option>
            <option value="true">yes</option>
            <option value="false">no</option>
          </select>
        </label>
        <label>
          Power fault
          <select name="power_fault" value={filter.power_fault ?? ''} onChange={(e) => setFilter({ power_fault: e.currentTarget.value || undefined })}>
            <option value="">any</option>
            <option value="true">yes</option>
            <option value="false">no</option>
          </select>
        </label>
        <label class="grow">
          Search
          <input name="q" type="search" placeholder="host name, address or fingerprint" value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </label>
      </form>

      <div class="bulk-bar">
        <span>{names.length} selected</span>
        {BULK_KINDS.map((kind) => (
          <ConfirmButton
            key={kind}
            label={`${kind[0]!.toUpperCase()}${kind.slice(1)}…`}
            confirmLabel={`${kind[0]!.toUpperCase()}${kind.slice(1)} ${names.length} node${names.length === 1 ? '' : 's'}`}
            title={`${kind} ${names.length} node${names.length === 1 ? '' : 's'}`}
            disabled={names.length === 0}
            run={() => bulk(kind, names)}
            done={(r) => navigate(`/tasks/${(r as Accepted).task_id}`)}
          >
            <p>
              One {kind} request for these nodes: the service checks all of them first and starts nothing if any of them may not be given it.
            </p>
            <ul class="names">
              {names.map((n) => (
                <li key={n}>{n}</li>
              ))}
            </ul>
          </ConfirmButton>
        ))}
      </div>

      {!page.data ? (
        <Loading error={page.error} />
      ) : (
        <>
          <table class="list" data-testid="node-list">
            <thead>
              <tr>
                <th>
                  <input
                    type="checkbox"
                    aria-label="select all on this page"
                    checked={page.data.nodes.length > 0 && page.data.nodes.every((n) => selected.has(n.hostname))}
                    onChange={(e) => {
                      const on = e.currentTarget.checked;
                      setSelected((s) => {
                        const next = new Set(s);
                        for (const n of page.data!.nodes) {
                          if (on) next.add(n.hostname);
                          else next.delete(n.hostname);
                        }
                        return next;
                      });
                    }}
                  />
                </th>
                <th>Host</th>
                <th>State</th>
                <th>Reachable</th>
                <th>Power</th>
                <th>Address</th>
                <th>Last seen</th>
                <th>Last error</th>
              </tr>
            </thead>
            <tbody>
              {page.data.nodes.map((n) => (
                <tr key={n.hostname} data-hostname={n.hostname}>
                  <td>
                    <input type="checkbox" aria-label={`select ${n.hostname}`} checked={selected.has(n.hostname)} onChange={() => toggle(n.hostname)} />
                  </td>
                  <td>
                    <NodeLink hostname={n.hostname} />
                  </td>
                  <td>
                    <StateBadge state={n.state} target={n.target_state} />
                  </td>
                  <td>{n.reachable ? 'yes' : <span class="bad">no</span>}</td>
                  <td>
                    {n.power_state ?? <span class="muted">–</span>}
                    {n.power_fault ? <span class="bad"> fault</span> : null}
                  </td>
                  <td class="mono">{n.address ?? ''}</td>
                  <td>
                    <Time at={n.last_seen_at} />
                  </td>
                  <td class="clip" title={n.last_error ?? ''}>
                    {n.last_error ?? ''}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager offset={offset} limit={LIMIT} total={page.data.total} go={(o) => navigate('/nodes', { ...filter, offset: o || undefined })} />
        </>
      )}
    </section>
  );
}
