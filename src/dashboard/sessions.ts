import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Request, Response } from 'express';

/** The dashboard's log-in cookie: a random session id, never the token. */
export const SESSION_COOKIE = 'nl_session';
/** A browser stays logged in this long after it logged in, then logs in again. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

const sha256 = (value: string) => createHash('sha256').update(value).digest();

interface Session {
  /** The digest of the token the session was opened with: a session outlives no change of token. */
  tokenDigest: Buffer;
  expiresAt: number;
}

/**
 * Open sessions, in this process's memory, by the digest of their id (a heap dump shows no usable id).
 * Shared by every app of the process: each accepts only the sessions opened with its own token. A
 * restart logs every browser out, and each API process of a scaled-out deployment has its own sessions.
 */
const sessions = new Map<string, Session>();

function prune(now: number): void {
  for (const [key, session] of sessions) if (session.expiresAt <= now) sessions.delete(key);
}

export function openSession(token: string): { id: string; expiresAt: Date } {
  const now = Date.now();
  prune(now);
  const id = randomBytes(32).toString('base64url');
  sessions.set(sha256(id).toString('hex'), { tokenDigest: sha256(token), expiresAt: now + SESSION_TTL_MS });
  return { id, expiresAt: new Date(now + SESSION_TTL_MS) };
}

export function closeSession(id: string): void {
  sessions.delete(sha256(id).toString('hex'));
}

/** Whether the id names a live session opened with this token (given as its SHA-256 digest). */
export function sessionValid(id: string, tokenDigest: Buffer): boolean {
  const key = sha256(id).toString('hex');
  const session = sessions.get(key);
  if (!session) return false;
  if (session.expiresAt <= Date.now()) {
    sessions.delete(key);
    return false;
  }
  return timingSafeEqual(session.tokenDigest, tokenDigest);
}

/** The session id the request's cookie carries, if any. */
export function sessionIdOf(req: Request): string | undefined {
  for (const part of (req.get('cookie') ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

/**
 * httpOnly: page scripts never read it; SameSite=Strict: no other site's page makes the browser send it;
 * Secure only over TLS, since the service speaks plain HTTP on loopback by default.
 */
export function setSessionCookie(req: Request, res: Response, id: string): void {
  const secure = req.secure ? '; Secure' : '';
  res.append('set-cookie', `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}${secure}`);
}

export function clearSessionCookie(req: Request, res: Response): void {
  const secure = req.secure ? '; Secure' : '';
  res.append('set-cookie', `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure}`);
}
