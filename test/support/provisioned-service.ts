import { bootUrlTemplate } from '../../src/provisioning/ipxe-script';
import { startTestService, type TestService } from './harness';
import { freePort } from './ports';
import { pxeLabAvailable, startPxeLab, type PxeLab } from './pxe-lab';

export interface ProvisionedService {
  lab: PxeLab;
  ts: TestService;
  /** PROVISIONING_URL: where the lab's machines reach the service. */
  url: string;
  /** The PROVISIONING_* settings, for a worker process of the same deployment. */
  provisioningEnv: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * A PXE lab of its own (namespace, bridge, dnsmasq) and a test service whose provisioning network it is.
 * `provisioningDir` lets the provisioner write somewhere dnsmasq does not read (a slow writer).
 */
export async function startProvisionedService(
  label: string,
  env: Record<string, string> = {},
  options: { role?: 'api'; provisioningDir?: (lab: PxeLab) => string } = {},
): Promise<ProvisionedService> {
  const missing = await pxeLabAvailable();
  if (missing) throw new Error(`the PXE lab cannot run here: ${missing}`);
  const lab = await startPxeLab({ name: label });
  try {
    const url = `http://${lab.hostAddress}:${await freePort(lab.hostAddress)}`;
    const provisioningEnv = {
      PROVISIONING_URL: url,
      PROVISIONING_DIR: options.provisioningDir?.(lab) ?? lab.provisioningDir,
      PROVISIONING_DHCP_SERVER: lab.dhcpServer,
      PROVISIONING_POOL: lab.pool,
    };
    // The agents of these nodes run no services: their first contact is the announce.
    const ts = await startTestService({ ...provisioningEnv, NODE_SERVICES: '', ...env }, { role: options.role });
    await lab.startDnsmasq({ bootUrl: bootUrlTemplate(url) });
    return {
      lab,
      ts,
      url,
      provisioningEnv,
      async stop() {
        await ts.stop();
        await lab.teardown();
      },
    };
  } catch (err) {
    await lab.teardown();
    throw err;
  }
}
