import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ensureAgentBundle } from '../../src/dev/agent-bundle';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');

/** The build scripts and everything they put into the images: the cache key. */
const INPUTS = ['provisioning/build-installer.sh', 'provisioning/lib', 'provisioning/installer', 'test/support/pxe'];

/** What a PXE test needs, all absolute paths. The VM gets hostUsr and agentBundleDir over virtio-9p. */
export interface PxeArtifacts {
  /** Debian's kernel, for the installer and (inside the image) the installed OS. */
  kernel: string;
  /** The installer initramfs (provisioning/installer/init). */
  installerInitrd: string;
  /** The installer that says `installing` and reboots without installing, for PXE-loop tests. */
  loopInitrd: string;
  /** The test OS image the installer writes (MBR + FAT16 + syslinux; runs the node agent). */
  osImage: string;
  osImageSha256: string;
  osImageSize: number;
  /** dist/nodeagent.cjs; share agentBundleDir as `nodeagent`. */
  agentBundle: string;
  agentBundleDir: string;
  /** Shared as `hostusr`: the host's node and its libraries. */
  hostUsr: '/usr';
}

interface Manifest {
  osImageSha256: string;
  osImageSize: number;
}

async function listFiles(relative: string): Promise<string[]> {
  const full = path.join(ROOT, relative);
  if (!(await fs.stat(full)).isDirectory()) return [relative];
  const entries = await fs.readdir(full, { withFileTypes: true });
  const nested = await Promise.all(entries.map((e) => listFiles(path.join(relative, e.name))));
  return nested.flat().sort();
}

async function inputsHash(): Promise<string> {
  const hash = createHash('sha256');
  for (const file of (await Promise.all(INPUTS.map(listFiles))).flat()) {
    hash.update(`${file}\0`).update(await fs.readFile(path.join(ROOT, file))).update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('error', reject)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')));
  });
}

async function readManifest(dir: string): Promise<Manifest | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

async function runScript(script: string, outDir: string): Promise<void> {
  try {
    await run('bash', [path.join(ROOT, script), outDir], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const { stderr } = err as { stderr?: string };
    throw new Error(`${script} failed: ${stderr?.trim() || (err as Error).message}`);
  }
}

/**
 * Builds into a temp folder next to the final one and renames it into place: a second builder (another
 * jest worker) that loses the race throws its copy away and uses the winner's.
 */
async function build(dir: string): Promise<Manifest> {
  const temp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await fs.mkdir(temp, { recursive: true });
  try {
    await runScript('provisioning/build-installer.sh', temp);
    await runScript('test/support/pxe/build-os-image.sh', temp);
    const osImage = path.join(temp, 'os.img');
    const manifest: Manifest = { osImageSha256: await sha256File(osImage), osImageSize: (await fs.stat(osImage)).size };
    await fs.writeFile(path.join(temp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    await fs.rename(temp, dir).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
    });
    return (await readManifest(dir)) ?? manifest;
  } finally {
    await fs.rm(temp, { recursive: true, force: true });
  }
}

let pending: Promise<PxeArtifacts> | undefined;

/**
 * The kernel, the installer initramfs (and its loop variant), the test OS image and the agent bundle,
 * built once into ~/.cache/node-lifecycle/pxe-<hash of the build inputs> and reused after. Needs the
 * Debian packages listed in test/support/pxe/build-os-image.sh and provisioning/build-installer.sh.
 */
export function ensurePxeArtifacts(): Promise<PxeArtifacts> {
  pending ??= (async () => {
    const cache = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'node-lifecycle');
    const dir = path.join(cache, `pxe-${await inputsHash()}`);
    const [manifest, agentBundle] = await Promise.all([
      readManifest(dir).then((found) => found ?? build(dir)),
      ensureAgentBundle(),
    ]);
    return {
      kernel: path.join(dir, 'vmlinuz'),
      installerInitrd: path.join(dir, 'installer.cpio.gz'),
      loopInitrd: path.join(dir, 'installer-loop.cpio.gz'),
      osImage: path.join(dir, 'os.img'),
      osImageSha256: manifest.osImageSha256,
      osImageSize: manifest.osImageSize,
      agentBundle,
      agentBundleDir: path.dirname(agentBundle),
      hostUsr: '/usr' as const,
    };
  })().catch((err: unknown) => {
    pending = undefined;
    throw err;
  });
  return pending;
}
