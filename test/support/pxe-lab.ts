/**
 * A PXE lab per test run (see shared/testbeds/pxe-vm.md): a network namespace holding a bridge, dnsmasq
 * on that bridge, qemu VMs on taps in it, each behind a real BMC (ipmi_sim on loopback) whose power-on
 * starts the VM. The host reaches the bridge through a veth (`hostAddress`, where the service's machine
 * endpoints listen); a second, unbridged veth is the BMCs' side band to qemu's ipmi-bmc-extern.
 *
 * Isolation: each lab claims a /24 for the bridge and one for the side band from 10.200.0.0/13, by an
 * exclusive claim file (parallel jest workers and runs never share one) after checking that no address or
 * route on the host already uses them. An `unreachable` guard route per /24 keeps any of that traffic on
 * the machine if a veth goes away; the VMs get no default route and ip_forward stays as it is.
 *
 * Teardown kills everything the lab started (BMCs, qemu, dnsmasq, anything left in the namespace), then
 * removes the veths, the namespace, the guard routes and the temp dir. It runs from afterAll; when the test
 * process dies first (SIGINT, SIGTERM, SIGKILL, a crash), a watchdog process runs the same teardown within
 * about a second; a lab whose watchdog died too is cleaned up by the next lab started on this machine.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { log } from '../../src/log';
import { writeIpmiSimConfig } from './bmc';
import { freePort, nextLoopbackAddress } from './ports';

const execFileAsync = promisify(execFile);

export interface PxeMachine {
  name: string;
  mac: string;
  bmc: { address: string; port: number; username: string; password: string };
  /** qemu's serial console, appended to at every power-on. */
  serialLog: string;
  diskPath: string;
  readSerial(): Promise<string>;
  /** ipmitool against this machine's BMC (lanplus, cipher suite 3); resolves with stdout. */
  ipmitool(...command: string[]): Promise<string>;
  /** Whether this machine's qemu process is alive right now (the test's own eyes, not the BMC's). */
  vmRunning(): boolean;
}

export interface PxeLab {
  netns: string;
  /** The host's end of the bridge veth: where the service's machine endpoints listen. */
  hostAddress: string;
  /** dnsmasq's own address on the bridge. */
  dhcpServer: string;
  /** Fixed addresses free for hosts.d entries, 'A-B'. */
  pool: string;
  /** dnsmasq's dynamic range, 'A-B'. */
  dynamicRange: string;
  domain: string;
  /** dnsmasq's hosts.d, opts.d and dns.d live here (the service's PROVISIONING_DIR). */
  provisioningDir: string;
  /** The lab's temp dir (provisioningDir, machines, dnsmasq's config, log and lease file are under it). */
  dir: string;
  /** dnsmasq's dhcp-leasefile. */
  leaseFile: string;
  startDnsmasq(opts: { bootUrl: string }): Promise<void>;
  stopDnsmasq(): Promise<void>;
  /** dnsmasq's log so far (log-dhcp is on). */
  dnsmasqLog(): string;
  addMachine(opts: { name: string; mac: string; diskMiB?: number; memoryMiB?: number; shares?: { tag: string; path: string }[] }): Promise<PxeMachine>;
  teardown(): Promise<void>;
}

const DOMAIN = 'pxe.test';
const BRIDGE = 'pxebr0';
/** The IPv6 prefix dnsmasq advertises inside the namespace (it never reaches the host: IPv6 is off on its veth ends). */
const RA_PREFIX = 'fd13:213::';
const SLOTS = 1024; // /24s: 10.200.0.0/14 for bridges, 10.204.0.0/14 for side bands
const CLAIMS = path.join(os.tmpdir(), 'nl-pxe-labs');
const EXTRA_PATH = ['/usr/local/sbin', '/usr/sbin', '/sbin'];
/** qemu's virtio-net-pci loads efi-virtio.rom (BIOS and EFI iPXE in one); Debian's ipxe-qemu ships it. */
const IPXE_ROMS = ['/usr/lib/ipxe/qemu/efi-virtio.rom', '/usr/share/qemu/efi-virtio.rom'];

function findCommand(name: string): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(':').filter(Boolean), ...EXTRA_PATH]) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return null;
}

function command(name: string): string {
  const found = findCommand(name);
  if (!found) throw new Error(`${name} is not installed`);
  return found;
}

/** null when a lab can run here, else why not. */
export async function pxeLabAvailable(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'the PXE lab needs root (network namespaces, taps, port 67)';
  const missing = ['ip', 'dnsmasq', 'qemu-system-x86_64', 'ipmi_sim', 'ipmitool'].filter((c) => !findCommand(c));
  if (missing.length) return `missing commands: ${missing.join(', ')} (Debian: iproute2 dnsmasq-base qemu-system-x86 openipmi ipmitool)`;
  if (!IPXE_ROMS.some((rom) => fs.existsSync(rom))) return `no iPXE ROM for virtio-net (${IPXE_ROMS[0]}; Debian: ipxe-qemu)`;
  if (!fs.existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  try {
    await execFileAsync(command('ip'), ['netns', 'list']);
  } catch (err) {
    return `ip netns does not work here: ${(err as Error).message}`;
  }
  return null;
}

// ---------- claims: which /24s a lab owns, and the script that removes what it made ----------

/**
 * A lab's claim file is its teardown script: created exclusively (so two labs never take one slot), it
 * names the owner pid and holds every command that undoes the lab. The same script serves the lab's own
 * teardown, its watchdog (when the test process dies, however it dies) and the sweep of a dead run.
 */
interface Claim {
  slot: number;
  netns: string;
  hostLinks: string[];
  routes: string[];
  dir: string;
  /** ipmi_sim pids in the host namespace (everything else the lab runs lives in its namespace). */
  bmcPids: number[];
}

const claimPath = (slot: number) => path.join(CLAIMS, `slot-${slot}.sh`);
const bridgeNet = (slot: number) => `10.${200 + (slot >> 8)}.${slot & 255}`;
const sideNet = (slot: number) => `10.${204 + (slot >> 8)}.${slot & 255}`;
const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function teardownScript(c: Claim): string {
  const ip = shq(findCommand('ip') ?? 'ip');
  return [
    '#!/bin/sh',
    `# owner ${process.pid}: PXE lab ${c.netns} (test/support/pxe-lab.ts)`,
    'try() { "$@" 2>/dev/null || echo "failed: $*" >&2; }',
    // ipmi_sim runs on the host side; qemu and dnsmasq run in the namespace.
    ...c.bmcPids.map((pid) => `grep -q ipmi_sim /proc/${pid}/cmdline 2>/dev/null && kill -9 ${pid}`),
    `if [ -e /run/netns/${c.netns} ]; then for p in $(${ip} netns pids ${c.netns}); do kill -9 "$p" 2>/dev/null; done; fi`,
    // Deleting a host end destroys its peer at once; deleting the namespace alone does so later, async.
    ...c.hostLinks.map((link) => `[ -e /sys/class/net/${link} ] && try ${ip} link del ${link}`),
    `[ -e /run/netns/${c.netns} ] && try ${ip} netns del ${c.netns}`,
    // The guards go last: until now they kept these /24s from ever leaving by the default route.
    ...c.routes.map((r) => `${ip} route show type unreachable | grep -q '^unreachable ${r} metric 4242' && try ${ip} route del unreachable ${r} metric 4242`),
    `try rm -rf ${shq(c.dir)}`,
    `rm -f ${shq(claimPath(c.slot))}`,
    'exit 0',
    '',
  ].join('\n');
}

function writeClaim(c: Claim): void {
  const temp = `${claimPath(c.slot)}.${process.pid}.tmp`;
  fs.writeFileSync(temp, teardownScript(c), { mode: 0o700 });
  fs.renameSync(temp, claimPath(c.slot));
}

/** Runs a teardown script; what failed is logged, never thrown. */
function runTeardown(script: string): void {
  const result = spawnSync('sh', [script], { encoding: 'utf8', timeout: 30_000 });
  const problems = `${result.stderr ?? ''}${result.error ? result.error.message : ''}`.trim();
  if (problems) log.warn(`pxe-lab teardown (${script}): ${problems.replace(/\n/g, '; ')}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isQemu(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('qemu-system');
  } catch {
    return false;
  }
}

let swept = false;
/** Cleans up after runs whose teardown and watchdog both failed to run; their owner pid is gone. */
function sweepDeadLabs(): void {
  if (swept) return;
  swept = true;
  for (const file of fs.readdirSync(CLAIMS).filter((f) => /^slot-\d+\.sh$/.test(f))) {
    const script = path.join(CLAIMS, file);
    const owner = Number(/^# owner (\d+):/m.exec(fs.readFileSync(script, 'utf8'))?.[1]);
    if (!owner || alive(owner)) continue;
    log.warn(`pxe-lab: cleaning up a lab left by dead process ${owner} (${script})`);
    runTeardown(script);
  }
}

/**
 * A detached shell that runs the teardown script when this process ends without running it: its stdin
 * is a pipe from us, which closes however we die (SIGKILL included). jest's sandboxed `process` cannot
 * take signal or exit handlers, so this is what covers an interrupted run.
 */
function startWatchdog(script: string): () => void {
  const dog = spawn('sh', ['-c', 'cat >/dev/null; [ -f "$0" ] && exec sh "$0"', script], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  dog.on('error', (err) => log.warn(`pxe-lab: watchdog failed: ${err.message}`));
  dog.unref();
  (dog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return () => dog.stdin?.end();
}

async function claimSlot(netns: string, dir: string): Promise<Claim> {
  fs.mkdirSync(CLAIMS, { recursive: true, mode: 0o700 });
  sweepDeadLabs();
  const ip = command('ip');
  const inUse = async () =>
    [
      (await execFileAsync(ip, ['-o', 'addr'])).stdout,
      (await execFileAsync(ip, ['route', 'show', 'table', 'all'])).stdout,
      (await execFileAsync(ip, ['-o', 'link'])).stdout,
    ].join('\n');
  const start = (process.pid * 7919 + Math.floor(Math.random() * SLOTS)) % SLOTS;
  for (let k = 0; k < SLOTS; k++) {
    const slot = (start + k) % SLOTS;
    const taken = await inUse();
    const hostLinks = [`nlp${slot}`, `nlb${slot}`];
    if ([`${bridgeNet(slot)}.`, `${sideNet(slot)}.`].some((net) => taken.includes(net))) continue;
    if (hostLinks.some((l) => new RegExp(`: ${l}[@:]`).test(taken))) continue;
    const claim: Claim = { slot, netns, hostLinks, routes: [`${bridgeNet(slot)}.0/24`, `${sideNet(slot)}.0/24`], dir, bmcPids: [] };
    try {
      fs.writeFileSync(claimPath(slot), teardownScript(claim), { flag: 'wx', mode: 0o700 });
      return claim;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  throw new Error('no free /24 left in 10.200.0.0/13 for a PXE lab');
}

// ---------- small helpers ----------

async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>, failed?: () => string | null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = failed?.();
    if (why) throw new Error(`${what}: ${why}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One DNS query over UDP; true when the server answers at all (dnsmasq is up once it does). */
function dnsAnswers(server: string, name: string, timeoutMs = 500): Promise<boolean> {
  const id = Math.floor(Math.random() * 65536);
  const labels = name.split('.').flatMap((l) => [l.length, ...Buffer.from(l)]);
  const query = Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, 0, 1, 0, 1]);
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('error', () => done(false));
    socket.on('message', (m) => m.length >= 2 && m.readUInt16BE(0) === id && done(true));
    socket.send(query, 53, server);
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function stopChild(child: ChildProcess | undefined, graceMs = 3000): Promise<void> {
  if (!child?.pid) return;
  const gone = exited(child);
  try {
    process.kill(child.pid, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => child.pid && alive(child.pid) && child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
}

let labs = 0;

/** A fresh lab: namespace, bridge, veths, guard routes, temp dir. dnsmasq and machines come on request. */
export async function startPxeLab(opts: { name?: string } = {}): Promise<PxeLab> {
  const reason = await pxeLabAvailable();
  if (reason) throw new Error(`PXE lab unavailable: ${reason}`);
  const ip = command('ip');
  const tag = (opts.name ?? '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
  const netns = `nl-${tag ? `${tag}-` : ''}${process.pid}-${++labs}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-pxe-'));
  // dnsmasq drops root for an unprivileged user and re-reads hosts.d as that user, as a packaged one would:
  // what the service writes there must be world-readable (the default umask gives that).
  fs.chmodSync(dir, 0o755);
  const provisioningDir = path.join(dir, 'provisioning');
  for (const sub of ['hosts.d', 'opts.d', 'dns.d']) fs.mkdirSync(path.join(provisioningDir, sub), { recursive: true, mode: 0o755 });
  fs.mkdirSync(path.join(dir, 'machines'));

  let claim: Claim;
  try {
    claim = await claimSlot(netns, dir);
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const script = claimPath(claim.slot);
  const releaseWatchdog = startWatchdog(script);
  const net = bridgeNet(claim.slot);
  const side = sideNet(claim.slot);
  const [hostLink, sideLink] = claim.hostLinks as [string, string];
  const hostAddress = `${net}.1`;
  const sideHost = `${side}.1`;

  let dnsmasq: ChildProcess | undefined;
  const bmcs: ChildProcess[] = [];
  let tornDown = false;
  let machineCount = 0;
  const down = () => {
    if (tornDown) return;
    tornDown = true;
    for (const child of [...bmcs, dnsmasq]) if (child?.pid && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    runTeardown(script);
    releaseWatchdog();
  };

  const sh = async (...args: string[]) => {
    try {
      await execFileAsync(ip, args);
    } catch (err) {
      throw new Error(`ip ${args.join(' ')}: ${String((err as { stderr?: string }).stderr ?? (err as Error).message).trim()}`);
    }
  };
  const noIpv6 = (link: string) => {
    const knob = `/proc/sys/net/ipv6/conf/${link}/disable_ipv6`;
    if (fs.existsSync(knob)) fs.writeFileSync(knob, '1');
  };
  try {
    // Guards first: from here on nothing for these /24s can leave by the default route.
    for (const route of claim.routes) await sh('route', 'add', 'unreachable', route, 'metric', '4242');
    await sh('netns', 'add', netns);
    await sh('-n', netns, 'link', 'set', 'lo', 'up');
    await sh('-n', netns, 'link', 'add', BRIDGE, 'type', 'bridge');
    await sh('link', 'add', hostLink, 'type', 'veth', 'peer', 'name', 'to-host', 'netns', netns);
    await sh('-n', netns, 'link', 'set', 'to-host', 'master', BRIDGE, 'up');
    await sh('-n', netns, 'addr', 'add', `${net}.2/24`, 'dev', BRIDGE);
    // dnsmasq only advertises a prefix the interface has an address in: no address, no RA, and iPXE
    // then waits ~16 s for IPv6 autoconfiguration on every netboot.
    await sh('-n', netns, 'addr', 'add', `${RA_PREFIX}2/64`, 'dev', BRIDGE, 'nodad');
    await sh('-n', netns, 'link', 'set', BRIDGE, 'up');
    // The host end takes no router advertisements from the lab's dnsmasq.
    noIpv6(hostLink);
    await sh('addr', 'add', `${hostAddress}/24`, 'dev', hostLink);
    await sh('link', 'set', hostLink, 'up');
    await sh('link', 'add', sideLink, 'type', 'veth', 'peer', 'name', 'bmc-side', 'netns', netns);
    await sh('-n', netns, 'addr', 'add', `${side}.2/24`, 'dev', 'bmc-side');
    await sh('-n', netns, 'link', 'set', 'bmc-side', 'up');
    noIpv6(sideLink);
    await sh('addr', 'add', `${sideHost}/24`, 'dev', sideLink);
    await sh('link', 'set', sideLink, 'up');
  } catch (err) {
    down();
    throw err;
  }

  const dnsmasqOut = path.join(dir, 'dnsmasq.log');
  const leaseFile = path.join(dir, 'dnsmasq.leases');
  const lab: PxeLab = {
    netns,
    hostAddress,
    dhcpServer: `${net}.2`,
    pool: `${net}.10-${net}.99`,
    dynamicRange: `${net}.100-${net}.199`,
    domain: DOMAIN,
    provisioningDir,
    dir,
    leaseFile,

    async startDnsmasq({ bootUrl }) {
      if (dnsmasq && dnsmasq.exitCode === null && dnsmasq.signalCode === null) throw new Error('dnsmasq is already running in this lab');
      const leaseScript = path.join(provisioningDir, 'lease-event.sh');
      if (!fs.existsSync(leaseScript)) {
        // A stand-in until the service writes its own: one line per lease event.
        fs.writeFileSync(leaseScript, `#!/bin/sh\necho "$(date +%s%3N) $1 $2 $3 $4" >> '${path.join(provisioningDir, 'lease-events.log')}'\n`, { mode: 0o755 });
      }
      const conf = path.join(dir, 'dnsmasq.conf');
      fs.writeFileSync(
        conf,
        [
          `interface=${BRIDGE}`,
          'bind-interfaces',
          'no-resolv',
          'no-hosts',
          `domain=${DOMAIN}`,
          `local=/${DOMAIN}/`,
          'expand-hosts',
          `hostsdir=${path.join(provisioningDir, 'dns.d')}`,
          'dhcp-authoritative',
          `dhcp-range=${net}.100,${net}.199,255.255.255.0,1h`,
          'dhcp-option=option:router',
          `dhcp-hostsdir=${path.join(provisioningDir, 'hosts.d')}`,
          `dhcp-optsdir=${path.join(provisioningDir, 'opts.d')}`,
          'dhcp-match=set:ipxe,175',
          'dhcp-option=tag:ipxe,encap:175,176,1',
          // Without an RA, iPXE waits ~13 s on every netboot for IPv6 autoconfiguration.
          'enable-ra',
          `dhcp-range=${RA_PREFIX},ra-only,64`,
          `ra-param=${BRIDGE},60,0`,
          `dhcp-boot=tag:ipxe,${bootUrl}`,
          `dhcp-script=${leaseScript}`,
          `dhcp-leasefile=${leaseFile}`,
          // Without it every new dynamic lease waits 3 s on a ping that blocks all DHCP.
          'no-ping',
          'log-dhcp',
          '',
        ].join('\n'),
      );
      const out = fs.openSync(dnsmasqOut, 'a');
      const child = spawn(ip, ['netns', 'exec', netns, command('dnsmasq'), '--keep-in-foreground', `--conf-file=${conf}`, '--pid-file=', '--log-facility=-'], {
        stdio: ['ignore', out, out],
      });
      fs.closeSync(out);
      dnsmasq = child;
      let failure: string | null = null;
      child.once('exit', (code, signal) => (failure = `dnsmasq exited (${code ?? signal}): ${lab.dnsmasqLog().trim().split('\n').slice(-5).join(' | ')}`));
      child.once('error', (err) => (failure = `dnsmasq could not start: ${err.message}`));
      await waitUntil('dnsmasq to answer', 30_000, () => dnsAnswers(lab.dhcpServer, `lab.${DOMAIN}`), () => failure);
    },

    async stopDnsmasq() {
      await stopChild(dnsmasq);
      dnsmasq = undefined;
    },

    dnsmasqLog() {
      try {
        return fs.readFileSync(dnsmasqOut, 'utf8');
      } catch {
        return '';
      }
    },

    async addMachine({ name, mac, diskMiB = 64, memoryMiB = 256, shares = [] }) {
      if (tornDown) throw new Error('this lab is torn down');
      const index = machineCount++;
      const home = path.join(dir, 'machines', name.replace(/[^A-Za-z0-9_.-]/g, '_'));
      fs.mkdirSync(home);
      const diskPath = path.join(home, 'disk.img');
      fs.closeSync(fs.openSync(diskPath, 'w'));
      fs.truncateSync(diskPath, diskMiB * 1024 * 1024); // sparse
      const serialLog = path.join(home, 'serial.log');
      const pidFile = path.join(home, 'qemu.pid');
      const tap = `tap${index}`;
      await sh('-n', netns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
      await sh('-n', netns, 'link', 'set', tap, 'master', BRIDGE, 'up');

      const sidePort = await freePort(sideHost);
      const qemu = [
        command('qemu-system-x86_64'),
        ...['-machine', 'pc,accel=tcg', '-m', String(memoryMiB), '-nodefaults', '-nographic', '-vga', 'none'],
        ...['-pidfile', pidFile],
        ...['-chardev', `file,id=s0,path=${serialLog},append=on`, '-serial', 'chardev:s0'],
        ...['-drive', `file=${diskPath},if=virtio,format=raw`],
        ...['-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=n0,mac=${mac}`],
        ...['-boot', 'order=nc'],
        ...['-chardev', `socket,id=ipmi0,host=${sideHost},port=${sidePort},reconnect=10`],
        ...['-device', 'ipmi-bmc-extern,id=bmc0,chardev=ipmi0', '-device', 'isa-ipmi-kcs,bmc=bmc0'],
        ...shares.flatMap((s) => ['-virtfs', `local,path=${s.path},mount_tag=${s.tag},security_model=none,readonly=on`]),
      ];
      const startScript = path.join(home, 'start-vm.sh');
      // In the foreground, one exec chain: ipmi_sim takes the power state from this pid.
      fs.writeFileSync(
        startScript,
        `#!/bin/sh\nexec ${shq(ip)} netns exec ${shq(netns)} ${qemu.map(shq).join(' ')} >>${shq(path.join(home, 'qemu.log'))} 2>&1\n`,
        { mode: 0o755 },
      );

      const address = nextLoopbackAddress();
      const port = await freePort(address);
      const username = 'admin';
      const password = `pw-${Math.random().toString(36).slice(2, 10)}`;
      fs.mkdirSync(path.join(home, 'state'));
      writeIpmiSimConfig(home, {
        name,
        address,
        port,
        serial: { host: sideHost, port: sidePort },
        startcmd: startScript,
        username,
        password,
        powerOffWaitS: 10,
      });
      const bmcLog = fs.openSync(path.join(home, 'ipmi_sim.log'), 'a');
      const bmc = spawn(command('ipmi_sim'), ['-c', 'lan.conf', '-f', 'cmds.emu', '-s', path.join(home, 'state'), '-n'], {
        cwd: home,
        stdio: ['ignore', bmcLog, bmcLog],
        detached: true,
      });
      fs.closeSync(bmcLog);
      bmcs.push(bmc);
      if (bmc.pid) {
        claim.bmcPids.push(bmc.pid);
        writeClaim(claim);
      }
      const ipmitool = async (...cmd: string[]) =>
        (
          await execFileAsync(command('ipmitool'), ['-I', 'lanplus', '-H', address, '-p', String(port), '-U', username, '-E', '-C', '3', ...cmd], {
            env: { PATH: process.env.PATH, IPMI_PASSWORD: password },
            timeout: 60_000,
          })
        ).stdout;
      let bmcFailure: string | null = null;
      bmc.once('exit', (code, signal) => (bmcFailure = `ipmi_sim exited (${code ?? signal})`));
      await waitUntil(`the BMC of ${name} on ${address}:${port}`, 30_000, async () => /Chassis Power is/.test(await ipmitool('chassis', 'power', 'status')), () => bmcFailure);
      const machine: PxeMachine = {
        name,
        mac,
        bmc: { address, port, username, password },
        serialLog,
        diskPath,
        readSerial: async () => {
          try {
            return await fs.promises.readFile(serialLog, 'utf8');
          } catch {
            return '';
          }
        },
        ipmitool,
        vmRunning() {
          const pid = Number(fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8').trim() : NaN);
          return Boolean(pid) && isQemu(pid);
        },
      };
      return machine;
    },

    async teardown() {
      if (tornDown) return;
      // Let the BMCs and dnsmasq go first, then kill whatever is left.
      await Promise.all([...bmcs, dnsmasq].map((child) => stopChild(child, 2000).catch(() => undefined)));
      down();
    },
  };
  return lab;
}
