export { freePort } from '../../src/dev/free-port';

let next = 1;
/** Each simulated node gets its own loopback address: 127.<jest worker>.<n>.<m>. */
export function nextLoopbackAddress(): string {
  const worker = Number(process.env.JEST_WORKER_ID ?? '1') + 10;
  const n = next++;
  return `127.${worker}.${Math.floor(n / 250)}.${(n % 250) + 1}`;
}
