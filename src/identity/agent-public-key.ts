import { createPublicKey, type KeyObject } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { fingerprintOf } from './fingerprint';

/** The one key type an agent has (loadOrCreateIdentity): EC on P-256. */
export const AGENT_KEY_CURVE = 'prime256v1';

export type ParsedAgentKey = { pem: string; fingerprint: string } | { problem: string };

/**
 * Good keys already parsed, by the exact text announced. Every heartbeat of an agent carries the same
 * key, and parsing and re-exporting it was a quarter of the API's CPU per heartbeat (a CPU profile of
 * the API under 1,000 agents). Only the outcome's two strings are kept (about 0.5 KB a key, against
 * about 4 KB with the parsed key object); least recently announced first out.
 */
const remembered = new LRUCache<string, { pem: string; fingerprint: string }>({ max: 100_000 });

// One block and nothing else around it but whitespace; base64 lines only inside (no PEM headers).
const PUBLIC_KEY_PEM = /^-----BEGIN PUBLIC KEY-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END PUBLIC KEY-----$/;

/**
 * Checks a key an agent announced. createPublicKey alone is not enough: it derives a public key from a
 * private one, reads the first of several blocks and ignores text around it, so the raw text could
 * carry anything into the database. Only the key re-exported from the parsed DER is ever kept.
 * Problems never quote the text: it may be a private key sent by mistake.
 */
export function parseAgentPublicKey(text: string): ParsedAgentKey {
  const known = remembered.get(text);
  if (known) return known;
  const parsed = parse(text);
  if ('pem' in parsed) remembered.set(text, parsed);
  return parsed;
}

function parse(text: string): ParsedAgentKey {
  if (/PRIVATE KEY-----/.test(text)) {
    return { problem: 'holds a private key; send only the public key (and treat this private key as exposed)' };
  }
  const match = PUBLIC_KEY_PEM.exec(text.trim());
  if (!match) return { problem: 'must be exactly one PEM block "-----BEGIN PUBLIC KEY-----" with nothing else around it' };
  const der = Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: der, format: 'der', type: 'spki' });
  } catch {
    return { problem: 'is not a valid SubjectPublicKeyInfo' };
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || curve !== AGENT_KEY_CURVE) {
    const got = key.asymmetricKeyType === 'ec' ? `EC on ${curve ?? 'an unnamed curve'}` : `${key.asymmetricKeyType ?? 'unknown'}`;
    return { problem: `must be an EC key on P-256 (${AGENT_KEY_CURVE}), the agent's key type; got ${got}` };
  }
  // Trailing bytes, a compressed point or another non-canonical encoding would not survive the round trip.
  if (!key.export({ type: 'spki', format: 'der' }).equals(der)) return { problem: 'is not a canonical DER SubjectPublicKeyInfo' };
  return { pem: key.export({ type: 'spki', format: 'pem' }).toString(), fingerprint: fingerprintOf(key) };
}
