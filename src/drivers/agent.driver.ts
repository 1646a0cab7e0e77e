import { AGENT_PATHS } from '../protocol';
import { DriverError, type DriverContext, type DriverNode, type PowerDriver, type PowerState } from './types';

const isText = (v: unknown) => (typeof v === 'string' && v.length > 0 ? undefined : 'must be a non-empty string');

function agentOf(node: DriverNode) {
  if (!node.agent) throw new DriverError(`${node.hostname} has no agent yet: start the agent with --hostname ${node.hostname}`);
  return node.agent;
}

/** A node without a BMC: its agent answering means it is on, and a reboot is a soft reboot. */
async function ping(node: DriverNode, ctx: DriverContext): Promise<PowerState> {
  try {
    await ctx.agents.call(agentOf(node), 'GET', AGENT_PATHS.ping);
    return 'power on';
  } catch (err) {
    if (err instanceof DriverError) throw err;
    throw new DriverError(`agent of ${node.hostname} did not answer: ${(err as Error).message}`);
  }
}

const driver: PowerDriver = {
  name: 'agent',
  fields: [
    // The key the node's agent will present, compared as at accept time.
    { name: 'agent_fingerprint', required: true, check: (v) => (typeof v === 'string' && /^SHA256:[A-Za-z0-9+/]{43}$/.test(v) ? undefined : 'must look like SHA256:<43 base64 characters>') },
    { name: 'deploy_kernel', required: false, check: isText },
    { name: 'deploy_ramdisk', required: false, check: isText },
  ],
  validate: ping,
  getPowerState: ping,
  async setPowerState(node, target, ctx) {
    if (target === 'power off') throw new DriverError('the agent driver cannot power a node off; it has no BMC');
    await ping(node, ctx);
  },
  async reboot(node, ctx) {
    await ctx.agents.call(agentOf(node), 'POST', AGENT_PATHS.reboot);
  },
};

export default driver;
