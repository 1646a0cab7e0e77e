/**
 * Asks the DHCP server what it would offer a machine, before anything powers that machine on.
 *
 * How: the probe acts as a DHCP relay agent (RFC 1542). It sends a DHCPDISCOVER carrying the node's MAC
 * in `chaddr`, with `giaddr` = the relay address (this host's address on the provisioning network),
 * unicast to the server's port 67, and listens on relayAddress:67, where a server sends its answer to a
 * relayed request. With `ipxe` the DISCOVER carries option 175, as iPXE's does, so a server configured
 * with `dhcp-match=set:ipxe,175` offers the iPXE boot file (in the `file` field or in option 67).
 *
 * Why a relayed DISCOVER and nothing else:
 * - A DISCOVER creates no lease: the server only commits an address on a REQUEST. dnsmasq runs no
 *   `dhcp-script` and writes no lease file for it (checked against dnsmasq 2.90 by the lab test).
 * - The OFFER goes unicast to the relay, not broadcast on the machine's segment, so a machine that is
 *   already running with the same MAC never sees it.
 * - No interface, namespace or MAC is borrowed on the host; all it needs is to bind UDP port 67 on the
 *   relay address (root or CAP_NET_BIND_SERVICE). Probes on one address take turns: in this process
 *   by a queue, across processes by retrying the bind while another holds the port.
 * The trade-off: the server sees the request as relayed, so it picks the subnet from `giaddr` instead of
 * from the interface the machine is on. Give a relay address in the machines' subnet and the answer is
 * the one a machine on that segment gets.
 *
 * What it proves against dnsmasq (2.90, tested in test/dhcp-probe.test.ts): a hosts.d file written by
 * rename is seen by the very next probe (dnsmasq handles inotify before DHCP in each turn of its loop); an
 * `ignore` entry gets no offer (null here); an entry whose address another entry already holds is dropped
 * by dnsmasq ("duplicate dhcp-host IP address") and its MAC is offered a dynamic address instead, which
 * a caller comparing the offer with the address it wrote will catch.
 *
 * No npm library: the only candidate, `dhcp` (one maintainer, depends on `minimist: *`), is a server and
 * a broadcasting client bound to port 68 with no relay mode; the wire format needed here is small.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';

export interface DhcpProbeOptions {
  /** The DHCP server's address. */
  server: string;
  /** This host's address on the machines' network; the server answers to it (as `giaddr`). */
  relayAddress: string;
  /** The machine's MAC, aa:bb:cc:dd:ee:ff (or with '-'). */
  mac: string;
  timeoutMs: number;
  /** Present option 175 as iPXE does, so the server offers the iPXE boot file. */
  ipxe?: boolean;
}

export interface DhcpOffer {
  /** The address offered (`yiaddr`). */
  address: string;
  /** Option 67 when present, else the `file` field; null when neither holds a name. */
  bootFile: string | null;
  /** Option 54. */
  serverId: string | null;
}

const BOOTREQUEST = 1;
const BOOTREPLY = 2;
const DHCPDISCOVER = 1;
const DHCPOFFER = 2;
const MAGIC = 0x63825363;
const SERVER_PORT = 67;
const OPT = { pad: 0, msgType: 53, serverId: 54, paramList: 55, maxSize: 57, overload: 52, bootFile: 67, ipxeEncap: 175, end: 255 } as const;
/** What iPXE asks for, trimmed to what a boot decision depends on. */
const PARAMETERS = [1, 3, 6, 12, 15, 28, 43, 54, 60, 66, 67, 175];

function macBytes(mac: string): Buffer {
  const parts = mac.trim().toLowerCase().split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-f]{2}$/.test(p))) throw new Error(`not a MAC address: ${mac}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

function ipBytes(ip: string): Buffer {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || !parts.every((p) => Number.isInteger(p) && p >= 0 && p <= 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return Buffer.from(parts);
}

const ipText = (b: Buffer, at = 0) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;

/** A relayed DHCPDISCOVER (BOOTP header, magic cookie, options), padded to BOOTP's 300 bytes. */
export function encodeDiscover({ xid, mac, relayAddress, ipxe }: { xid: number; mac: string; relayAddress: string; ipxe: boolean }): Buffer {
  const head = Buffer.alloc(240);
  head[0] = BOOTREQUEST;
  head[1] = 1; // Ethernet
  head[2] = 6;
  head[3] = 1; // hops: one relay
  head.writeUInt32BE(xid >>> 0, 4);
  ipBytes(relayAddress).copy(head, 24); // giaddr
  macBytes(mac).copy(head, 28); // chaddr
  head.writeUInt32BE(MAGIC, 236);
  const options = [
    [OPT.msgType, 1, DHCPDISCOVER],
    [OPT.maxSize, 2, 0x05, 0xdc], // 1500
    [OPT.paramList, PARAMETERS.length, ...PARAMETERS],
    // iPXE's encapsulated options: 19 = HTTP support, 1 = priority. Only the presence of 175 is matched.
    ...(ipxe ? [[OPT.ipxeEncap, 6, 19, 1, 1, 1, 1, 0]] : []),
    [OPT.end],
  ].flat();
  const packet = Buffer.concat([head, Buffer.from(options)]);
  return packet.length >= 300 ? packet : Buffer.concat([packet, Buffer.alloc(300 - packet.length)]);
}

export interface DhcpReply {
  op: number;
  xid: number;
  chaddr: Buffer;
  yiaddr: string;
  file: string;
  options: Map<number, Buffer>;
}

/** Reads options from one area; later instances of an option are appended (RFC 3396). */
function readOptions(area: Buffer, into: Map<number, Buffer>): void {
  let i = 0;
  while (i < area.length) {
    const code = area[i]!;
    if (code === OPT.pad) {
      i++;
      continue;
    }
    if (code === OPT.end) return;
    const len = area[i + 1];
    if (len === undefined || i + 2 + len > area.length) throw new Error('truncated DHCP option');
    const value = area.subarray(i + 2, i + 2 + len);
    const seen = into.get(code);
    into.set(code, seen ? Buffer.concat([seen, value]) : Buffer.from(value));
    i += 2 + len;
  }
}

const cString = (b: Buffer) => {
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('latin1');
};

/** Decodes a BOOTP/DHCP message; null for anything that is not one. Honours option overload (52). */
export function decodeReply(packet: Buffer): DhcpReply | null {
  if (packet.length < 240 || packet.readUInt32BE(236) !== MAGIC) return null;
  const options = new Map<number, Buffer>();
  try {
    readOptions(packet.subarray(240), options);
    const overload = options.get(OPT.overload)?.[0] ?? 0;
    if (overload & 1) readOptions(packet.subarray(108, 236), options);
    if (overload & 2) readOptions(packet.subarray(44, 108), options);
    return {
      op: packet[0]!,
      xid: packet.readUInt32BE(4),
      chaddr: packet.subarray(28, 34),
      yiaddr: ipText(packet, 16),
      file: overload & 1 ? '' : cString(packet.subarray(108, 236)),
      options,
    };
  } catch {
    return null;
  }
}

/** One probe at a time per relay address: each needs that address's port 67 for itself. */
const queues = new Map<string, Promise<unknown>>();

function serialised<T>(key: string, job: () => Promise<T>): Promise<T> {
  const before = queues.get(key) ?? Promise.resolve();
  const mine = before.then(job, job);
  const tail = mine.catch(() => undefined);
  queues.set(key, tail);
  void tail.then(() => {
    if (queues.get(key) === tail) queues.delete(key);
  });
  return mine;
}

/**
 * What the DHCP server offers `mac` right now, or null when it offers nothing within timeoutMs (an
 * `ignore` entry, no matching range, or no server). Never requests, so never leases. Throws when port 67
 * on relayAddress cannot be bound (not root, or another relay or server holds it for all of timeoutMs).
 */
export function probeDhcp(opts: DhcpProbeOptions): Promise<DhcpOffer | null> {
  const chaddr = macBytes(opts.mac);
  ipBytes(opts.server);
  return serialised(opts.relayAddress, () => probeOnce(opts, chaddr));
}

/** How long to wait between tries while another process (a second worker, a test) holds port 67 there. */
const BUSY_RETRY_MS = 50;

async function probeOnce(opts: DhcpProbeOptions, chaddr: Buffer): Promise<DhcpOffer | null> {
  const until = Date.now() + opts.timeoutMs;
  for (;;) {
    try {
      return await exchange(opts, chaddr, until);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE' && Date.now() + BUSY_RETRY_MS < until) {
        await new Promise((r) => setTimeout(r, BUSY_RETRY_MS));
        continue;
      }
      const why =
        code === 'EACCES'
          ? 'binding port 67 needs root or CAP_NET_BIND_SERVICE'
          : code === 'EADDRINUSE'
            ? `another DHCP server, relay or probe held port 67 there for all of ${opts.timeoutMs} ms`
            : code === 'EADDRNOTAVAIL'
              ? 'that address is not on this host'
              : (err as Error).message;
      throw new Error(`DHCP probe cannot listen on ${opts.relayAddress}:${SERVER_PORT}: ${why}`);
    }
  }
}

/** One DISCOVER/OFFER exchange on a fresh socket; rejects with the socket's error (bind failures). */
function exchange({ server, relayAddress, mac, ipxe = false }: DhcpProbeOptions, chaddr: Buffer, until: number): Promise<DhcpOffer | null> {
  const xid = randomBytes(4).readUInt32BE(0);
  const discover = encodeDiscover({ xid, mac, relayAddress, ipxe });
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type: 'udp4' });
    let resend: NodeJS.Timeout | undefined;
    let deadline: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (error: Error | null, offer: DhcpOffer | null) => {
      if (settled) return;
      settled = true;
      clearInterval(resend);
      clearTimeout(deadline);
      socket.close();
      if (error) reject(error);
      else resolve(offer);
    };
    const send = () => socket.send(discover, SERVER_PORT, server, () => undefined);
    socket.on('error', (err) => finish(err, null));
    socket.on('message', (packet) => {
      const reply = decodeReply(packet);
      if (!reply || reply.op !== BOOTREPLY || reply.xid !== xid || !reply.chaddr.equals(chaddr)) return;
      if (reply.options.get(OPT.msgType)?.[0] !== DHCPOFFER) return;
      const bootOption = reply.options.get(OPT.bootFile);
      const bootFile = bootOption ? cString(bootOption) : reply.file;
      const serverId = reply.options.get(OPT.serverId);
      finish(null, { address: reply.yiaddr, bootFile: bootFile || null, serverId: serverId?.length === 4 ? ipText(serverId) : null });
    });
    socket.bind({ address: relayAddress, port: SERVER_PORT, exclusive: true }, () => {
      const left = Math.max(0, until - Date.now());
      deadline = setTimeout(() => finish(null, null), left);
      // A lost datagram must not read as "nothing offered": repeat the same DISCOVER (same xid) a few times.
      resend = setInterval(send, Math.max(250, Math.min(1000, Math.floor(left / 3))));
      send();
    });
  });
}
