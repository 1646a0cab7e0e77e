import { createHash, createHmac } from 'node:crypto';

/**
 * The installer's one-time token, bound to one install and one generation of its boot environment. It
 * is derived (HMAC under the secrets key), so the script can carry it without the database storing it;
 * the database keeps only its hash, which is how a callback finds its install.
 */
export function installToken(secretsKey: Buffer, taskId: string, generation: number): string {
  return createHmac('sha256', secretsKey).update(`install-token:${taskId}:${generation}`).digest('base64url');
}

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
