import fs from 'node:fs/promises';
import os from 'node:os';

/** Facts read from the host the agent runs on (sandbox or not: reading changes nothing). */
export async function gatherFacts(): Promise<Record<string, unknown>> {
  const cpus = os.cpus();
  return {
    os: await readOsRelease(),
    kernel: { name: os.type(), release: os.release(), version: os.version(), arch: os.arch() },
    cpus: { count: cpus.length, model: cpus[0]?.model.trim() ?? 'unknown' },
    memory: { total_bytes: os.totalmem(), free_bytes: os.freemem() },
    disks: await readDisks(),
    network_interfaces: readInterfaces(),
    uptime_seconds: Math.round(os.uptime()),
    host_name: os.hostname(),
  };
}

async function readOsRelease(): Promise<Record<string, string>> {
  try {
    const text = await fs.readFile('/etc/os-release', 'utf8');
    const fields = Object.fromEntries(
      text
        .split('\n')
        .map((line) => /^([A-Z_]+)=("?)(.*)\2$/.exec(line.trim()))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1]!, m[3]!]),
    );
    return { id: fields.ID ?? 'unknown', name: fields.PRETTY_NAME ?? fields.NAME ?? 'unknown', version: fields.VERSION_ID ?? '' };
  } catch {
    return { id: os.platform(), name: os.platform(), version: '' };
  }
}

/** Whole block devices from sysfs; loop and RAM devices are not disks an operator cares about. */
async function readDisks(): Promise<{ name: string; size_bytes: number; rotational: boolean | null }[]> {
  let names: string[];
  try {
    names = await fs.readdir('/sys/block');
  } catch {
    return [];
  }
  const disks = await Promise.all(
    names
      .filter((name) => !/^(loop|ram|zram)/.test(name))
      .map(async (name) => {
        const sectors = Number(await fs.readFile(`/sys/block/${name}/size`, 'utf8').catch(() => '0'));
        const rotational = await fs.readFile(`/sys/block/${name}/queue/rotational`, 'utf8').catch(() => null);
        // sysfs counts 512-byte sectors whatever the device's own sector size.
        return { name, size_bytes: sectors * 512, rotational: rotational === null ? null : rotational.trim() === '1' };
      }),
  );
  return disks.filter((d) => d.size_bytes > 0);
}

function readInterfaces(): { name: string; mac: string; addresses: { address: string; family: string; cidr: string | null }[] }[] {
  return Object.entries(os.networkInterfaces()).map(([name, entries]) => ({
    name,
    mac: entries?.[0]?.mac ?? '',
    addresses: (entries ?? []).map((e) => ({ address: e.address, family: e.family, cidr: e.cidr })),
  }));
}
