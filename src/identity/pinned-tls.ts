import tls from 'node:tls';
import { fingerprintOf } from './fingerprint';

/** Fingerprint of the key behind the peer certificate of a TLS socket, if there is one. */
export function peerFingerprint(socket: tls.TLSSocket): string | undefined {
  const cert = socket.getPeerX509Certificate();
  return cert ? fingerprintOf(cert.publicKey) : undefined;
}

export class PinnedKeyMismatch extends Error {
  constructor(expected: string, actual: string | undefined) {
    super(`peer key ${actual ?? '(none)'} does not match the pinned ${expected}`);
  }
}

/**
 * Opens a TLS connection and resolves only once the peer's key matches `fingerprint`; no application
 * byte is written before that. The certificates are self-signed, so CA validation is replaced by the pin.
 */
export function connectPinned(options: {
  host: string;
  port: number;
  fingerprint: string;
  cert: string;
  key: string;
  timeoutMs: number;
}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: options.host,
      port: options.port,
      cert: options.cert,
      key: options.key,
      rejectUnauthorized: false,
      servername: undefined,
    });
    const timer = setTimeout(() => socket.destroy(new Error(`TLS connect to ${options.host}:${options.port} timed out`)), options.timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const actual = peerFingerprint(socket);
      if (actual !== options.fingerprint) {
        socket.destroy();
        reject(new PinnedKeyMismatch(options.fingerprint, actual));
        return;
      }
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
