import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, nextLoopbackAddress } from './ports';

const run = promisify(execFile);

export interface Bmc {
  address: string;
  port: number;
  username: string;
  password: string;
  /** driver_info for the ipmi driver. */
  driverInfo(): Record<string, string>;
  /** What the BMC itself says, read with ipmitool directly (the test's own eyes). */
  power(): Promise<'power on' | 'power off'>;
  /** Changes power behind the service's back, as a person at the console would. */
  setPowerBehindTheBack(target: 'on' | 'off'): Promise<void>;
  /** The BMC goes away (its server keeps running: power is not the BMC's to lose here). */
  stop(): Promise<void>;
  /** The same BMC answers again on the same address and port. */
  start(): Promise<void>;
}

/**
 * ipmi_sim's lan.conf and cmds.emu in `dir` (see shared/testbeds/ipmi_sim.md): one LAN channel on
 * address:port, one admin user, power as the life of `startcmd`'s process, and the serial port where
 * a VM's BMC interface (qemu's ipmi-bmc-extern) connects.
 */
export function writeIpmiSimConfig(
  dir: string,
  c: { name: string; address: string; port: number; serial: { host: string; port: number }; startcmd: string; username: string; password: string; powerOffWaitS?: number },
): void {
  const powerOff = c.powerOffWaitS === undefined ? '' : `  poweroff_wait ${c.powerOffWaitS}\n  kill_wait 5\n`;
  fs.writeFileSync(
    path.join(dir, 'lan.conf'),
    `name "${c.name.replace(/"/g, '')}"
set_working_mc 0x20
  startlan 1
    addr ${c.address} ${c.port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  serial 15 ${c.serial.host} ${c.serial.port} codec VM
  startcmd "${c.startcmd}"
  startnow false
${powerOff}  user 2 true  "${c.username}"   "${c.password}" admin    10       none md2 md5 straight
`,
  );
  fs.writeFileSync(
    path.join(dir, 'cmds.emu'),
    'mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nsel_enable 0x20 1000 0x0a\nmc_enable 0x20\n',
  );
}

/** A real BMC: OpenIPMI's ipmi_sim on its own loopback address (see shared/testbeds/ipmi_sim.md). */
export async function startBmc(credentials = { username: 'admin', password: `pw-${Math.random().toString(36).slice(2, 10)}` }): Promise<Bmc> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-bmc-'));
  const address = nextLoopbackAddress();
  const port = await freePort(address);
  fs.mkdirSync(path.join(dir, 'state'));
  writeIpmiSimConfig(dir, {
    name: 'bmc',
    address,
    port,
    serial: { host: 'localhost', port: await freePort() },
    startcmd: 'sleep 86400',
    username: credentials.username,
    password: credentials.password,
  });
  let child: ChildProcess;
  const launch = () => {
    child = spawn('ipmi_sim', ['-c', 'lan.conf', '-f', 'cmds.emu', '-s', path.join(dir, 'state'), '-n'], { cwd: dir, stdio: 'ignore', detached: true });
  };
  launch();
  const ipmitool = (...command: string[]) =>
    run('ipmitool', ['-I', 'lanplus', '-H', address, '-p', String(port), '-U', credentials.username, '-E', '-C', '3', ...command], {
      env: { PATH: process.env.PATH, IPMI_PASSWORD: credentials.password },
    });
  const bmc: Bmc = {
    address,
    port,
    ...credentials,
    driverInfo: () => ({ ipmi_address: address, ipmi_port: String(port), ipmi_username: credentials.username, ipmi_password: credentials.password }),
    async power() {
      const { stdout } = await ipmitool('chassis', 'power', 'status');
      return stdout.includes('is on') ? 'power on' : 'power off';
    },
    async setPowerBehindTheBack(target) {
      await ipmitool('chassis', 'power', target);
    },
    async stop() {
      // The "power" of the simulated server is ipmi_sim's startcmd child: stop the whole group. A kill
      // is only sent: wait for the exit, or whoever binds the BMC's port next may find it still taken.
      const running = child;
      if (running.exitCode !== null || running.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
      try {
        process.kill(-running.pid!, 'SIGKILL');
      } catch {
        return; // already gone
      }
      await exited;
    },
    async start() {
      launch();
      await answering();
    },
  };
  const answering = async () => {
    // ipmi_sim answers once its LAN channel is up.
    for (let i = 0; i < 50; i++) {
      try {
        await bmc.power();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await bmc.stop();
    throw new Error('ipmi_sim did not start (is the openipmi package installed?)');
  };
  await answering();
  return bmc;
}
