import fs from 'node:fs/promises';
import path from 'node:path';
import type { Identity } from '../identity/identity';
import { signRequest } from '../identity/request-signature';
import { SERVER_PATHS, type AnnounceRequest, type AnnounceResponse } from '../protocol';

/** The agent's side of the server API: signed requests, and the pinned server key. */
export class ServerLink {
  private pinned: string | undefined;

  constructor(
    private readonly serverUrl: string,
    private readonly identity: Identity,
    private readonly stateDir: string,
    explicitPin: string | undefined,
    private readonly timeoutMs = 10_000,
  ) {
    this.pinned = explicitPin;
  }

  private get pinFile(): string {
    return path.join(this.stateDir, 'server.fingerprint');
  }

  /** Loads the server key remembered from the first contact (salt-minion's cached master key). */
  async loadPin(): Promise<void> {
    if (this.pinned) return;
    this.pinned = (await fs.readFile(this.pinFile, 'utf8').catch(() => '')).trim() || undefined;
  }

  serverFingerprint(): string | undefined {
    return this.pinned;
  }

  private async post<T>(pathname: string, payload: unknown): Promise<{ status: number; body: T }> {
    const body = JSON.stringify(payload);
    const response = await fetch(new URL(pathname, this.serverUrl), {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', ...signRequest(this.identity.privateKey, 'POST', pathname, body) },
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { error: { message: text.slice(0, 200) } };
    }
    if (!response.ok) {
      const message = (parsed as { error?: { message?: string } }).error?.message ?? response.statusText;
      throw new Error(`${pathname} answered ${response.status}: ${message}`);
    }
    return { status: response.status, body: parsed as T };
  }

  async announce(request: AnnounceRequest): Promise<AnnounceResponse> {
    const { body } = await this.post<AnnounceResponse>(SERVER_PATHS.announce, request);
    if (!this.pinned) {
      this.pinned = body.server_fingerprint;
      await fs.writeFile(this.pinFile, `${this.pinned}\n`, { mode: 0o600 });
    } else if (body.server_fingerprint !== this.pinned) {
      throw new Error(`server key ${body.server_fingerprint} is not the pinned ${this.pinned}; refusing this server`);
    }
    return body;
  }

  async ready(hostname: string): Promise<void> {
    await this.post(SERVER_PATHS.ready, { hostname });
  }
}
