import type { Knex } from 'knex';
import { deleteEnrolledNode, driverNode, enrollNode, updateNodeInfo } from '../db/enrollment-repo';
import { getNode, type NodeRecord } from '../db/nodes-repo';
import { BadRequest, Conflict, NotFound, ValidationFailed } from '../domain/errors';
import type { WorkflowProvisionVerb } from '../domain/states';
import { checkDriverInfo, checkDriverInfoChange, getDriver } from '../drivers';
import type { PowerTarget } from '../drivers/types';
import type { SecretBox } from '../secrets/secret-box';
import type { AgentClient } from '../agent-client';
import type { NodeWorkflows } from '../temporal/node-workflows';
import type { CommandResult } from '../../workflows/definitions';

export interface EnrollRequest {
  name: string;
  driver: string;
  driver_info: Record<string, unknown>;
  instance_info?: Record<string, unknown>;
  ports?: { address: string }[];
}

/** Ironic's enrollment and provision verbs: create, change, delete, manage, adopt, power. */
export class EnrollmentService {
  constructor(
    private readonly knex: Knex,
    private readonly workflows: NodeWorkflows,
    private readonly agents: AgentClient,
    private readonly secrets: SecretBox,
    /** Tells the provisioning network's writer that MACs changed (on_node_change); best effort, it also reconciles on its own. */
    private readonly inventoryChanged: () => Promise<void> = async () => undefined,
  ) {}

  private announceChange(): void {
    this.inventoryChanged().catch(() => undefined);
  }

  async enroll(request: EnrollRequest): Promise<NodeRecord> {
    const driver = getDriver(request.driver)!;
    const { visible, secrets, problems } = checkDriverInfo(driver, request.driver_info);
    if (problems.length > 0) throw new ValidationFailed(problems);
    const ports = (request.ports ?? []).map((p) => p.address.toLowerCase());
    const node = await enrollNode(this.knex, this.secrets, {
      name: request.name,
      driver: driver.name,
      driverInfo: visible,
      secrets,
      instanceInfo: request.instance_info ?? {},
      ports,
      agentFingerprint: typeof visible.agent_fingerprint === 'string' ? visible.agent_fingerprint : undefined,
    });
    if (ports.length > 0) this.announceChange();
    return node;
  }

  async update(name: string, change: { driver_info?: Record<string, unknown>; instance_info?: Record<string, unknown>; ports?: { address: string }[] }): Promise<NodeRecord> {
    const node = await this.require(name);
    const driver = node.driver ? getDriver(node.driver) : undefined;
    if (!driver) throw new Conflict(`${name} was not enrolled with a driver; nothing to change`);
    const { visible, secrets, problems } = checkDriverInfoChange(driver, change.driver_info ?? {});
    if (problems.length > 0) throw new ValidationFailed(problems);
    const ports = change.ports?.map((p) => p.address.toLowerCase());
    const updated = await updateNodeInfo(this.knex, this.secrets, name, { driverInfo: visible, secrets, instanceInfo: change.instance_info, ports });
    if (ports) this.announceChange();
    return updated;
  }

  async delete(name: string): Promise<void> {
    await deleteEnrolledNode(this.knex, name);
    this.announceChange();
    await this.workflows.end(name, 'node deleted');
  }

  async stateOf(name: string): Promise<string | undefined> {
    return (await getNode(this.knex, name))?.state;
  }

  async provision(name: string, verb: WorkflowProvisionVerb): Promise<CommandResult> {
    const node = await this.require(name);
    // The state rule is the workflow's (its update validator reads the table).
    return this.workflows.provision(name, node.state, verb);
  }

  async readPower(name: string) {
    const { driver: driverName, node, record } = await driverNode(this.knex, this.secrets, name);
    const driver = getDriver(driverName)!;
    const known = { enforced_power_state: record.enforcedPowerState, power_fault: record.powerFault, driver: driverName };
    try {
      return { power_state: await driver.getPowerState(node, { agents: this.agents }), source: 'bmc', ...known };
    } catch (err) {
      // The BMC did not answer: say so, with the last state the service knew.
      return { power_state: record.powerState, source: 'last known', error: (err as Error).message, ...known };
    }
  }

  async changePower(name: string, target: PowerTarget): Promise<CommandResult> {
    const node = await this.require(name);
    if (!node.driver) throw new BadRequest(`${name} has no power driver`);
    return this.workflows.power(name, node.state, target);
  }

  private async require(name: string): Promise<NodeRecord> {
    const node = await getNode(this.knex, name);
    if (!node) throw new NotFound(`no node ${name}`, { hostname: name });
    return node;
  }
}
