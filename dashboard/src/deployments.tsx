import { useEffect, useRef } from 'preact/hooks';
import { api } from './api';
import type { AnnealAccepted, Change, NoderoleState } from './types';
import './deployments.css';

/** Noderole states in the order a noderole moves through them: counts are shown in this order. */
export const NODEROLE_STATES: readonly NoderoleState[] = ['proposed', 'todo', 'transition', 'active', 'error', 'blocked'];

/** While any noderole is in one of these, the annealer is at work and a page showing it keeps refreshing. */
const ANNEALING: readonly NoderoleState[] = ['todo', 'transition'];

/** How often a page showing noderoles in todo or transition reloads them. */
export const ANNEAL_POLL_MS = 2000;

export const annealing = (counts: Partial<Record<NoderoleState, number>>) => ANNEALING.some((s) => (counts[s] ?? 0) > 0);
export const isAnnealing = (state: NoderoleState) => ANNEALING.includes(state);

/**
 * A change that started or moved an anneal (a commit or a retry, from this page, nodectl or the API):
 * of the named deployment, or of any when no name is given. Polling then takes over while work is in flight.
 */
export function annealChanged(change: Change, deployment?: string): boolean {
  return change.tasks.some((t) => t.kind === 'anneal' && (deployment === undefined || t.details?.deployment === deployment));
}

/**
 * Calls `reload` every `everyMs` while `active`. The change stream says when an anneal task moves, not
 * each noderole's step, so a page showing noderoles in flight asks again until none is.
 */
export function usePollWhile(active: boolean, reload: () => void, everyMs = ANNEAL_POLL_MS): void {
  const current = useRef(reload);
  current.current = reload;
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => current.current(), everyMs);
    return () => clearInterval(timer);
  }, [active, everyMs]);
}

/** Puts a noderole in error back in todo, with the noderoles it blocks (POST /api/v1/noderoles/{id}/retry). */
export function retryNoderole(id: number): Promise<AnnealAccepted> {
  return api('POST', `/api/v1/noderoles/${id}/retry`);
}

/** A deployment's noderoles by state, each state coloured as its badge, states with none left out. */
export function NoderoleCounts({ counts }: { counts: Partial<Record<NoderoleState, number>> }) {
  const shown = NODEROLE_STATES.filter((s) => (counts[s] ?? 0) > 0);
  if (shown.length === 0) return <span class="muted">no noderoles</span>;
  return (
    <span class="noderole-counts" data-testid="noderole-counts">
      {shown.map((s) => (
        <span key={s} class={`badge state-${s}`} data-state={s} data-count={counts[s]} title={`${counts[s]} ${s}`}>
          {counts[s]} {s}
        </span>
      ))}
    </span>
  );
}
