import net from 'node:net';

/** A port the kernel just handed out on loopback; for servers that cannot be told to listen on 0. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function isFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, host, () => probe.close(() => resolve(true)));
  });
}

/** `count` consecutive free loopback ports from [min, max]: the cluster engine takes its ports in blocks. */
export async function freePortBlock(count: number, min: number, max: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = min + Math.floor(Math.random() * (max - min - count));
    const free = await Promise.all(Array.from({ length: count }, (_, i) => isFree(base + i)));
    if (free.every(Boolean)) return base;
  }
  throw new Error(`no ${count} consecutive free ports in ${min}-${max}`);
}
