import { createHash, sign, verify, type KeyObject } from 'node:crypto';

/**
 * Agent-to-server requests are signed with the agent's identity key, so the server can tell that an
 * announcement or a ready message comes from the holder of the key it shows (or has accepted).
 */
export const SIGNATURE_HEADERS = {
  timestamp: 'x-node-timestamp',
  signature: 'x-node-signature',
} as const;

/** How far a signed request's clock may be from ours; bounds replay of a captured request. */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

function canonical(method: string, pathWithQuery: string, timestamp: string, body: string): string {
  const bodyHash = createHash('sha256').update(body).digest('hex');
  return `${method.toUpperCase()}\n${pathWithQuery}\n${timestamp}\n${bodyHash}`;
}

export function signRequest(
  privateKey: KeyObject,
  method: string,
  pathWithQuery: string,
  body: string,
  now = Date.now(),
): Record<string, string> {
  const timestamp = String(now);
  const signature = sign('sha256', Buffer.from(canonical(method, pathWithQuery, timestamp, body)), privateKey);
  return { [SIGNATURE_HEADERS.timestamp]: timestamp, [SIGNATURE_HEADERS.signature]: signature.toString('base64') };
}

/** Returns why the signature is not acceptable, or undefined when it is. */
export function signatureProblem(
  publicKey: KeyObject | string,
  method: string,
  pathWithQuery: string,
  body: string,
  timestamp: string | undefined,
  signature: string | undefined,
  now = Date.now(),
): string | undefined {
  if (!timestamp || !signature) return `missing ${SIGNATURE_HEADERS.timestamp} or ${SIGNATURE_HEADERS.signature} header`;
  const at = Number(timestamp);
  if (!Number.isFinite(at) || Math.abs(now - at) > MAX_CLOCK_SKEW_MS) return 'request timestamp is too far from the server clock';
  try {
    const ok = verify('sha256', Buffer.from(canonical(method, pathWithQuery, timestamp, body)), publicKey, Buffer.from(signature, 'base64'));
    return ok ? undefined : 'signature does not verify against the node key';
  } catch {
    return 'signature is malformed';
  }
}
