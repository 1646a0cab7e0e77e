import { createHash, createPublicKey, type KeyObject } from 'node:crypto';

/**
 * SHA-256 over the DER SubjectPublicKeyInfo, written like OpenSSH: `SHA256:` and unpadded base64.
 * The SPKI bytes are canonical for a key, so the fingerprint survives certificate renewal.
 */
export function fingerprintOf(publicKey: KeyObject | string): string {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  const der = key.export({ type: 'spki', format: 'der' });
  return `SHA256:${createHash('sha256').update(der).digest('base64').replace(/=+$/, '')}`;
}

export const FINGERPRINT_PATTERN = /^SHA256:[A-Za-z0-9+/]{43}$/;
