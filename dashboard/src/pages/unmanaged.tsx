import { useState } from 'preact/hooks';
import { getMany } from '../api';
import { accept } from '../actions';
import { ConfirmButton, Loading, NodeLink, Time } from '../components';
import { useLoad } from '../live';
import type { Claim } from '../types';
import { AcceptButton } from './node';

const keyOf = (c: Claim) => `${c.hostname} ${c.fingerprint}`;
/** Claims shown at first, and added by each "show more": the list is paged by the server. */
const STEP = 100;

/** Keys waiting for the operator: accept one after comparing its fingerprint, or several at once. */
export function Unmanaged() {
  const [want, setWant] = useState(STEP);
  const page = useLoad(`unmanaged:${want}`, () => getMany<Claim>('/api/v1/unmanaged_nodes', want), (c) => c.nodes.length > 0 || c.more_nodes || c.gone.length > 0, 1000);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  if (!page.data) return <Loading error={page.error} />;
  const claims = page.data.rows;
  const chosen = claims.filter((c) => selected.has(keyOf(c)));
  const twice = chosen.filter((c, i) => chosen.findIndex((o) => o.hostname === c.hostname) !== i).map((c) => c.hostname);
  const toggle = (key: string) =>
    setSelected((s) => {
      const next = new Set(s);
      if (next.has(key)) next.delete(key);
      else next.add(key);
      return next;
    });

  return (
    <section>
      <h1>Unmanaged</h1>
      <p class="muted">
        Agents that announced themselves and wait to be accepted. Before accepting, compare each fingerprint with the one the node's own agent prints
        (<code>nodeagent fingerprint --state-dir …</code>).
      </p>
      <div class="bulk-bar">
        <span>{chosen.length} selected</span>
        <ConfirmButton
          label="Accept selected…"
          confirmLabel={`Accept ${chosen.length}`}
          title={`Accept ${chosen.length} node${chosen.length === 1 ? '' : 's'}`}
          disabled={chosen.length === 0 || twice.length > 0}
          run={() => acceptAll(chosen)}
          done={() => setSelected(new Set())}
        >
          <p>Compare every fingerprint with the one its node prints. Each is accepted on its own; a refused one is named here.</p>
          <table class="list">
            <tbody>
              {chosen.map((c) => (
                <tr key={keyOf(c)}>
                  <td>{c.hostname}</td>
                  <td class="mono fingerprint">{c.fingerprint}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </ConfirmButton>
        {twice.length > 0 ? <span class="bad">Choose one key per host: {[...new Set(twice)].join(', ')}</span> : null}
      </div>
      {claims.length === 0 ? (
        <p class="muted">No agent is waiting.</p>
      ) : (
        <table class="list" data-testid="unmanaged-list">
          <thead>
            <tr>
              <th />
              <th>Host</th>
              <th>Fingerprint</th>
              <th>Address</th>
              <th>First announced</th>
              <th>Last seen</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {claims.map((c) => (
              <tr key={keyOf(c)} data-hostname={c.hostname} class={c.conflict ? 'conflict' : ''}>
                <td>
                  <input type="checkbox" aria-label={`select ${c.hostname} ${c.fingerprint}`} checked={selected.has(keyOf(c))} onChange={() => toggle(keyOf(c))} />
                </td>
                <td>
                  <NodeLink hostname={c.hostname} />
                  {c.conflict ? <span class="bad"> {c.claims} keys claim it</span> : null}
                </td>
                <td class="mono fingerprint">{c.fingerprint}</td>
                <td class="mono">{c.address}</td>
                <td>
                  <Time at={c.announced_at} />
                </td>
                <td>
                  <Time at={c.last_seen_at} />
                </td>
                <td>
                  <AcceptButton claim={c} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {page.data.more ? (
        <p class="muted">
          {claims.length} of {page.data.total} shown.{' '}
          <button type="button" onClick={() => setWant((n) => n + STEP)}>
            Show {STEP} more
          </button>
        </p>
      ) : null}
    </section>
  );
}

/** One accept per node, in turn; throws naming the refused ones (the others stay accepted). */
async function acceptAll(chosen: Claim[]): Promise<void> {
  const refused: string[] = [];
  for (const c of chosen) {
    try {
      await accept(c.hostname, c.fingerprint);
    } catch (err) {
      refused.push(`${c.hostname}: ${(err as Error).message}`);
    }
  }
  if (refused.length > 0) throw new Error(`${chosen.length - refused.length} of ${chosen.length} accepted; refused: ${refused.join('; ')}`);
}
