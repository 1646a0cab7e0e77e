import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../src/config';
import { withStateDiagram } from '../src/domain/state-diagram';
import { allowedVerbs, ENTRY_STATES, NODE_STATES, nextState, PREVIOUS, STABLE_STATES, TARGET_OF, TRANSITIONS } from '../src/domain/states';

test('every state is reachable from an entry state and every state has a way out or is stable', () => {
  const reached = new Set<string>(Object.keys(ENTRY_STATES));
  for (let grew = true; grew; ) {
    grew = false;
    for (const t of TRANSITIONS) {
      if (t.to !== PREVIOUS && reached.has(t.from) && !reached.has(t.to)) {
        reached.add(t.to);
        grew = true;
      }
    }
  }
  expect([...reached].sort()).toEqual([...NODE_STATES].sort());
  for (const state of NODE_STATES) {
    if (!STABLE_STATES.includes(state)) expect(TRANSITIONS.some((t) => t.from === state)).toBe(true);
  }
});

test('each transient state heads for a stable state it reaches through transient states only', () => {
  // deploying reaches active through initializing: the installed OS is initialized like an accepted node.
  for (const [state, target] of Object.entries(TARGET_OF)) {
    expect(STABLE_STATES).toContain(target);
    const reached = new Set<string>([state]);
    for (let grew = true; grew; ) {
      grew = false;
      for (const t of TRANSITIONS) {
        if (reached.has(t.from) && !STABLE_STATES.includes(t.from) && typeof t.to === 'string' && !reached.has(t.to)) {
          reached.add(t.to);
          grew = true;
        }
      }
    }
    expect(reached).toContain(target);
  }
});

test('the table answers what the API tells a refused caller', () => {
  expect(nextState('unmanaged', 'accept')).toBe('initializing');
  expect(nextState('active', 'reinitialize')).toBeUndefined();
  expect(allowedVerbs('failed')).toEqual(['reinitialize']);
  expect(allowedVerbs('active')).toEqual(['commission', 'decommission', 'maintenance', 'rebuild']);
  expect(allowedVerbs('maintenance')).toEqual(['commission', 'decommission']);
  expect(nextState('commissioning', 'commission_failed', 'maintenance')).toBe('maintenance');
  expect(nextState('commissioning', 'commission_failed', 'active')).toBe('active');
});

test('no (from, event) pair appears twice', () => {
  const keys = TRANSITIONS.map((t) => `${t.from}/${t.event}`);
  expect(new Set(keys).size).toBe(keys.length);
});

test('the README state diagram is the one generated from the table (run `npm run docs:states`)', () => {
  const readme = fs.readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
  expect(withStateDiagram(readme)).toBe(readme);
});
