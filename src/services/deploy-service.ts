import type { Knex } from 'knex';
import { getNode } from '../db/nodes-repo';
import { Conflict, NotFound } from '../domain/errors';
import { findImage } from '../images/image-service';
import type { NodeWorkflows } from '../temporal/node-workflows';
import type { CommandResult } from '../../workflows/definitions';
import type { OperationService } from './operation-service';

/** OS install verbs: deploy and rebuild queue per node like other operations; abort stops a running install. */
export class DeployService {
  constructor(
    private readonly knex: Knex,
    private readonly operations: OperationService,
    private readonly workflows: NodeWorkflows,
    /** False when the service has no provisioning network: installs are refused, naming the setting. */
    private readonly provisioningConfigured: boolean,
  ) {}

  /** Validates the whole request (image, every node's state, BMC and MAC) and queues it, or refuses it all. */
  async install(kind: 'deploy' | 'rebuild', hostnames: string[], image: string): Promise<string> {
    if (!this.provisioningConfigured) {
      throw new Conflict(`${kind} needs a provisioning network, and none is configured: set PROVISIONING_URL and the PROVISIONING_* settings (README, OS install)`);
    }
    if (!(await findImage(this.knex, image))) throw new NotFound(`no image ${image} (register it with POST /api/v1/images)`, { field: 'image', image });
    return this.operations.submit(kind, hostnames, {}, image);
  }

  async abort(hostname: string): Promise<CommandResult> {
    if (!(await getNode(this.knex, hostname))) throw new NotFound(`no node ${hostname}`, { hostname });
    return this.workflows.abortInstall(hostname);
  }
}
