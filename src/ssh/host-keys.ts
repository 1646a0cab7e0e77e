import { createHash } from 'node:crypto';

/**
 * SSH host keys as operators write them and as the wire carries them. A key type maps to the host key
 * algorithms that present it, so a connection can offer only the pinned key's own algorithms: a host
 * with several key types then shows the pinned one, not whichever it prefers.
 */
export const KEY_TYPES = {
  ed25519: ['ssh-ed25519'],
  ecdsa: ['ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521'],
  rsa: ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
} as const;
export type KeyType = keyof typeof KEY_TYPES;
export const KEY_TYPE_NAMES = Object.keys(KEY_TYPES) as KeyType[];

/** OpenSSH's order of preference, which a bare fingerprint is tried in. */
export const KEY_TYPE_PREFERENCE: readonly KeyType[] = ['ed25519', 'ecdsa', 'rsa'];

export const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

/** A pinned host key: its fingerprint, and its type when the operator said it. */
export interface PinnedHostKey {
  fingerprint: string;
  type: KeyType | null;
}

/** `SHA256:` and the unpadded base64 of the key blob's digest, as `ssh-keygen -l` prints it. */
export function hostKeyFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type of a wire-format key blob (its first field is the algorithm name). */
export function keyTypeOfBlob(blob: Buffer): KeyType | null {
  if (blob.length < 4) return null;
  const length = blob.readUInt32BE(0);
  return keyTypeOfName(blob.subarray(4, 4 + length).toString('latin1'));
}

function keyTypeOfName(name: string): KeyType | null {
  const lower = name.toLowerCase();
  if (lower === 'ed25519' || lower === 'ssh-ed25519') return 'ed25519';
  if (lower === 'ecdsa' || lower.startsWith('ecdsa-sha2-')) return 'ecdsa';
  if (lower === 'rsa' || lower === 'ssh-rsa' || lower.startsWith('rsa-sha2-')) return 'rsa';
  return null;
}

/**
 * Reads a pinned key in any of the forms an operator has at hand:
 * - `SHA256:...` (the type is then found by trying OpenSSH's order);
 * - `ssh-ed25519 SHA256:...` or `ED25519 SHA256:...`;
 * - a line of `ssh-keygen -lf`: `256 SHA256:... root@host (ED25519)`;
 * - a public key line, as in a .pub file or known_hosts: `ssh-ed25519 AAAA... [comment]`.
 */
export function parsePinnedHostKey(text: string): PinnedHostKey | { problem: string } {
  const words = text.trim().split(/\s+/);
  const fingerprint = words.find((w) => w.startsWith('SHA256:'));
  if (fingerprint) {
    if (!FINGERPRINT.test(fingerprint)) return { problem: `has ${JSON.stringify(fingerprint)}, not SHA256: and 43 base64 characters` };
    const named = words.filter((w) => w !== fingerprint).map((w) => keyTypeOfName(w.replace(/^\((.*)\)$/, '$1'))).find(Boolean);
    const unknown = words.length === 2 && !named && !/^\d+$/.test(words[0]!) ? words[0] : undefined;
    if (unknown) return { problem: `names the key type ${JSON.stringify(unknown)}; known: ${KEY_TYPE_NAMES.join(', ')}` };
    return { fingerprint, type: named ?? null };
  }
  const [name, base64] = words;
  const type = name ? keyTypeOfName(name) : null;
  if (type && base64 && /^[A-Za-z0-9+/]+={0,2}$/.test(base64)) {
    const blob = Buffer.from(base64, 'base64');
    if (keyTypeOfBlob(blob) === type) return { fingerprint: hostKeyFingerprint(blob), type };
  }
  return { problem: 'is neither a SHA256: fingerprint (optionally with its key type) nor an SSH public key line' };
}

/** The host key algorithms to offer for a key type; all of them, in OpenSSH's order, for null. */
export function algorithmsFor(type: KeyType | null): string[] {
  return (type ? [type] : KEY_TYPE_PREFERENCE).flatMap((t) => [...KEY_TYPES[t]]);
}
