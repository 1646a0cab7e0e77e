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

let next = 1;
/** Each simulated node gets its own loopback address: 127.<jest worker>.<n>.<m>. */
export function nextLoopbackAddress(): string {
  const worker = Number(process.env.JEST_WORKER_ID ?? '1') + 10;
  const n = next++;
  return `127.${worker}.${Math.floor(n / 250)}.${(n % 250) + 1}`;
}
