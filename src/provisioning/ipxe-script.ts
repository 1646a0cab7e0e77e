/**
 * The per-MAC iPXE script: the boot decision lives here, not in the BMC's boot device (which does not
 * reach a VM under ipmi_sim, and which MAAS does not trust either). Every script names its node and
 * generation, so a GET proves which generation a machine would boot.
 */
export interface InstallScript {
  hostname: string;
  generation: number;
  image: { name: string; sha256: string; size: number | null };
  baseUrl: string;
  token: string;
  serverFingerprint: string;
}

export function scriptHeader(hostname: string, generation: number, bootEnv: string): string {
  return `#!ipxe\n# node-lifecycle node=${hostname} generation=${generation} boot=${bootEnv}\n`;
}

/** What a fetched script says about itself: the header line above. */
export function parseScriptHeader(script: string): { hostname: string; generation: number; bootEnv: string } | null {
  const match = /^# node-lifecycle node=(\S+) generation=(\d+) boot=(\S+)$/m.exec(script);
  return match ? { hostname: match[1]!, generation: Number(match[2]), bootEnv: match[3]! } : null;
}

export function localScript(hostname: string, generation: number): string {
  // --no-describe: the OS must not see an iBFT for a disk it boots itself; `|| exit` moves on if there is none.
  return `${scriptHeader(hostname, generation, 'local')}sanboot --no-describe --drive 0x80 || exit\n`;
}

export function installScript(s: InstallScript): string {
  const images = `${s.baseUrl}/images/${s.image.name}`;
  const args = [
    'initrd=initrd',
    'console=ttyS0',
    `nl.callback=${s.baseUrl}/provisioning/v1/callback`,
    `nl.token=${s.token}`,
    `nl.image=${images}/disk`,
    `nl.sha256=${s.image.sha256}`,
    ...(s.image.size === null ? [] : [`nl.size=${s.image.size}`]),
    `nl.hostname=${s.hostname}`,
    `nl.server=${s.baseUrl}`,
    `nl.server_fp=${s.serverFingerprint}`,
  ];
  return `${scriptHeader(s.hostname, s.generation, `install:${s.image.name}`)}kernel ${images}/kernel ${args.join(' ')}\ninitrd --name initrd ${images}/initrd\nboot\n`;
}

/** dnsmasq's dhcp-boot value: iPXE expands ${mac:hexhyp} itself, per machine. */
export function bootUrlTemplate(baseUrl: string): string {
  return `${baseUrl}/boot/\${mac:hexhyp}.ipxe`;
}
export function bootUrlOf(baseUrl: string, mac: string): string {
  return `${baseUrl}/boot/${mac.toLowerCase().replace(/:/g, '-')}.ipxe`;
}
