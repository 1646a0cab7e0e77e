import { RECORDER_SCRIPT } from './anneal-recorder';
import { waitForTask } from './fleet';
import type { TestService } from './harness';
import type { HttpResponse } from './http-client';

/** Fails with what came back when a set-up request is not answered as expected. */
export function must(res: HttpResponse, status: number, what: string): any {
  if (res.status !== status) throw new Error(`${what}: expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** The roles, deployments and noderoles API as a test drives it; `ts` is read at call time (set in beforeAll). */
export function annealApi(ts: () => TestService) {
  const api = () => ts().api;
  const self = {
    /** A script role running the recorder (test/support/anneal-recorder.ts). */
    role: async (name: string, options: { requires?: string[]; attributes?: Record<string, unknown> } = {}) =>
      must(await api().post('/api/v1/roles', { name, script: RECORDER_SCRIPT, ...options }), 201, `create role ${name}`),

    deployment: async (name: string, parent?: string) =>
      must(await api().post('/api/v1/deployments', { name, ...(parent ? { parent } : {}) }), 201, `create deployment ${name}`),

    bind: async (deployment: string, role: string, nodes: string[], attributes?: Record<string, unknown>) =>
      must(
        await api().post(`/api/v1/deployments/${deployment}/bind`, { role, nodes, ...(attributes ? { attributes } : {}) }),
        200,
        `bind ${role} to ${nodes.join(',')} in ${deployment}`,
      ),

    /** Commits and returns the anneal task's id. */
    commit: async (deployment: string): Promise<string> => must(await api().post(`/api/v1/deployments/${deployment}/commit`), 202, `commit ${deployment}`).task_id,

    propose: async (deployment: string) => must(await api().post(`/api/v1/deployments/${deployment}/propose`), 200, `propose ${deployment}`),

    /** Waits for a task to succeed or fail, and returns it. */
    settle: async (taskId: string, timeoutMs = 180_000) => (await waitForTask(ts(), taskId, timeoutMs)).body,

    noderoles: async (filters: Record<string, string>): Promise<any[]> =>
      must(await api().get(`/api/v1/noderoles?${new URLSearchParams({ ...filters, limit: '1000' })}`), 200, `list noderoles ${JSON.stringify(filters)}`),

    noderole: async (deployment: string, role: string, node: string) => {
      const found = await self.noderoles({ deployment, role, node });
      if (found.length !== 1) throw new Error(`expected one noderole ${role} on ${node} in ${deployment}, found ${JSON.stringify(found)}`);
      return found[0];
    },

    /** `role@node` -> state, for every noderole of a deployment. */
    states: async (deployment: string): Promise<Record<string, string>> =>
      Object.fromEntries((await self.noderoles({ deployment })).map((n) => [`${n.role}@${n.node}`, n.state])),
  };
  return self;
}

/** The `role@node` -> state map a test expects: every role on every node in one state. */
export function allIn(state: string, roles: string[], nodes: string[]): Record<string, string> {
  return Object.fromEntries(roles.flatMap((role) => nodes.map((node) => [`${role}@${node}`, state])));
}
