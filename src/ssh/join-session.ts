import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import { JOIN_EXIT, type JoinAnswer, type JoinDocument } from '../agent/join-document';
import type { SshAddress } from './address';
import { algorithmsFor, hostKeyFingerprint, KEY_TYPE_PREFERENCE, keyTypeOfBlob, type KeyType } from './host-keys';

/** The steps of adding a node by address; a failure names the one it happened in. */
export const JOIN_STEPS = ['connect', 'host_key', 'auth', 'sudo', 'join', 'announce', 'initialize'] as const;
export type JoinStep = (typeof JOIN_STEPS)[number];

export class JoinStepFailed extends Error {
  constructor(
    readonly step: JoinStep,
    message: string,
    /** A machine-readable reason where the caller acts on it (host_key_mismatch, other_cluster). */
    readonly code?: string,
  ) {
    super(message);
  }
}

/** What the connecting side knows of the host's key before it connects. */
export type HostKeyExpectation =
  | { policy: 'pinned'; fingerprint: string; type: KeyType | null }
  /** tofu: the key recorded at the first contact, or null when this is the first contact. */
  | { policy: 'tofu'; known: { fingerprint: string; type: KeyType } | null };

export interface SeenHostKey {
  fingerprint: string;
  type: KeyType;
}

export interface JoinSessionOptions {
  address: SshAddress;
  user: string;
  privateKey: string;
  /** SSH_AUTH_SOCK: keys of an ssh-agent are offered too. */
  agentSocket?: string;
  hostKey: HostKeyExpectation;
  /**
   * Called with the key of a tofu first contact before authentication; resolves to the key recorded for
   * the address by then (another run may have recorded one first), which must be the one seen.
   */
  recordFirstKey(seen: SeenHostKey): Promise<SeenHostKey>;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  /** The join program, run through the user's shell: `nodeagent join` unless configured. */
  joinCommand: string;
  document: JoinDocument;
}

export interface JoinSessionResult {
  hostKey: SeenHostKey;
  answer: JoinAnswer;
}

const OUTPUT_LIMIT = 64 * 1024;

/**
 * One SSH connection to a new node (Ganeti's node-add): the host key is checked before authentication,
 * nothing runs unless it matches; a non-root user must have password-less sudo (checked with
 * `sudo -n true`, never a prompt); then one exec of the join program with the join document on stdin.
 */
export async function runJoinSession(options: JoinSessionOptions): Promise<JoinSessionResult> {
  const { client, hostKey } = await connectVerified(options);
  try {
    const sudo = options.user === 'root' ? '' : 'sudo -n ';
    if (sudo) {
      const check = await execute(client, 'sudo -n true', undefined, options.commandTimeoutMs);
      if (check.code !== 0) {
        const why = lastLines(check.stderr || check.stdout) || `exit code ${check.code}`;
        throw new JoinStepFailed('sudo', `${options.user} cannot run sudo without a password on ${options.address.key}: ${why}`);
      }
    }
    const ran = await execute(client, `${sudo}${options.joinCommand}`, JSON.stringify(options.document), options.commandTimeoutMs);
    return { hostKey, answer: joinAnswerOf(ran, options) };
  } finally {
    client.end();
  }
}

function joinAnswerOf(ran: Executed, options: JoinSessionOptions): JoinAnswer {
  const why = lastLines(ran.stderr || ran.stdout);
  if (ran.code === JOIN_EXIT.otherCluster) throw new JoinStepFailed('join', why || 'the node belongs to another cluster', 'other_cluster');
  if (ran.code === 127) throw new JoinStepFailed('join', `${options.joinCommand} was not found on ${options.address.key} (set DISCOVER_JOIN_COMMAND): ${why}`);
  if (ran.code !== 0) throw new JoinStepFailed('join', `${options.joinCommand} exited ${ran.code ?? `on signal ${ran.signal}`}: ${why}`);
  const line = ran.stdout.trim().split('\n').pop() ?? '';
  let answer: Partial<JoinAnswer>;
  try {
    answer = JSON.parse(line);
  } catch {
    throw new JoinStepFailed('join', `${options.joinCommand} printed no JSON answer: ${JSON.stringify(line.slice(0, 200))}`);
  }
  if ((answer.status !== 'joined' && answer.status !== 'already_member') || typeof answer.hostname !== 'string' || typeof answer.fingerprint !== 'string') {
    throw new JoinStepFailed('join', `${options.joinCommand} answered ${JSON.stringify(line.slice(0, 200))}, not {status, hostname, fingerprint}`);
  }
  return answer as JoinAnswer;
}

/**
 * Connects and authenticates, the host key checked in between. A pinned key of unknown type is looked
 * for one key type at a time (a handshake each, nothing authenticated), so a host with several keys is
 * not a false mismatch; a known type is the only one offered.
 */
async function connectVerified(options: JoinSessionOptions): Promise<{ client: Client; hostKey: SeenHostKey }> {
  const expected = options.hostKey;
  const pinnedType = expected.policy === 'pinned' ? expected.type : (expected.known?.type ?? null);
  const attempts: (KeyType | null)[] = expected.policy === 'pinned' && pinnedType === null ? [...KEY_TYPE_PREFERENCE] : [pinnedType];
  const seen: SeenHostKey[] = [];
  for (const type of attempts) {
    const outcome = await handshake(options, type, (key) => seen.push(key));
    if (outcome.kind === 'connected') return outcome;
    if (outcome.kind === 'no_such_key') continue;
    throw outcome.error;
  }
  const shown = seen.map((k) => `${k.type} ${k.fingerprint}`).join(', ');
  const want = expected.policy === 'pinned' ? expected.fingerprint : expected.known?.fingerprint;
  throw new JoinStepFailed(
    'host_key',
    seen.length > 0
      ? `host key mismatch at ${options.address.key}: expected ${want}, the host shows ${shown}; nothing was run`
      : `${options.address.key} offers no host key of the pinned type; nothing was run`,
    'host_key_mismatch',
  );
}

type Handshake =
  | { kind: 'connected'; client: Client; hostKey: SeenHostKey }
  | { kind: 'no_such_key' }
  | { kind: 'failed'; error: JoinStepFailed };

function handshake(options: JoinSessionOptions, type: KeyType | null, onSeen: (key: SeenHostKey) => void): Promise<Handshake> {
  const expected = options.hostKey;
  const client = new Client();
  let accepted: SeenHostKey | undefined;
  let refused: JoinStepFailed | undefined;
  let wrongKey = false;
  return new Promise<Handshake>((resolve) => {
    const settle = (outcome: Handshake) => {
      client.removeAllListeners();
      client.on('error', () => undefined);
      if (outcome.kind !== 'connected') client.end();
      resolve(outcome);
    };
    const config: ConnectConfig = {
      host: options.address.host,
      port: options.address.port,
      username: options.user,
      privateKey: options.privateKey,
      agent: options.agentSocket,
      readyTimeout: options.connectTimeoutMs,
      tryKeyboard: false,
      algorithms: { serverHostKey: algorithmsFor(type) as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] },
      hostVerifier: (blob: Buffer, verify: (valid: boolean) => void) => {
        const keyType = keyTypeOfBlob(blob);
        const key: SeenHostKey | undefined = keyType ? { fingerprint: hostKeyFingerprint(blob), type: keyType } : undefined;
        if (key) onSeen(key);
        if (!key) {
          refused = new JoinStepFailed('host_key', `${options.address.key} showed a host key of an unknown type; nothing was run`, 'host_key_mismatch');
          return verify(false);
        }
        if (expected.policy === 'pinned' || expected.known) {
          const want = expected.policy === 'pinned' ? expected.fingerprint : expected.known!.fingerprint;
          if (key.fingerprint !== want) {
            wrongKey = true;
            if (expected.policy === 'tofu') {
              refused = new JoinStepFailed(
                'host_key',
                `host key mismatch at ${options.address.key}: recorded ${expected.known!.type} ${want} at the first contact, the host now shows ${key.type} ${key.fingerprint}; nothing was run (DELETE /api/v1/ssh/known_hosts/${options.address.key} if the host was reinstalled)`,
                'host_key_mismatch',
              );
            }
            return verify(false);
          }
          accepted = key;
          return verify(true);
        }
        // tofu, first contact: the key is recorded before anything is sent that a host could abuse.
        options.recordFirstKey(key).then(
          (recorded) => {
            if (recorded.fingerprint === key.fingerprint) {
              accepted = key;
              verify(true);
            } else {
              refused = new JoinStepFailed(
                'host_key',
                `host key mismatch at ${options.address.key}: ${recorded.type} ${recorded.fingerprint} was recorded meanwhile, the host shows ${key.type} ${key.fingerprint}; nothing was run`,
                'host_key_mismatch',
              );
              verify(false);
            }
          },
          (err: unknown) => {
            refused = new JoinStepFailed('host_key', `could not record the host key of ${options.address.key}: ${(err as Error).message}`);
            verify(false);
          },
        );
      },
    };
    client.once('ready', () => settle({ kind: 'connected', client, hostKey: accepted! }));
    client.once('error', (err: Error & { level?: string }) => {
      if (refused) return settle({ kind: 'failed', error: refused });
      // A pinned key of unknown type: this type was not it (or the host has none); try the next one.
      if (wrongKey || /no matching host key format/.test(err.message)) return settle({ kind: 'no_such_key' });
      if (err.level === 'client-authentication') {
        return settle({
          kind: 'failed',
          error: new JoinStepFailed('auth', `${options.user}@${options.address.key} refused the service's key${options.agentSocket ? ' and the ssh-agent keys' : ''} (add GET /api/v1/ssh/public_key to its authorized_keys)`),
        });
      }
      const what = err.level === 'client-timeout' ? `no SSH handshake within ${options.connectTimeoutMs} ms` : err.message;
      settle({ kind: 'failed', error: new JoinStepFailed('connect', `cannot connect to ${options.address.key}: ${what}`) });
    });
    client.connect(config);
  });
}

interface Executed {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** One exec on the connection, with the input on stdin and a deadline; output kept up to a bound. */
function execute(client: Client, command: string, input: string | undefined, timeoutMs: number): Promise<Executed> {
  return new Promise<Executed>((resolve, reject) => {
    client.exec(command, (err: Error | undefined, stream: ClientChannel) => {
      if (err) return reject(new JoinStepFailed('join', `could not run ${command}: ${err.message}`));
      let stdout = '';
      let stderr = '';
      const keep = (into: string, chunk: Buffer) => (into.length < OUTPUT_LIMIT ? into + chunk.toString('utf8') : into);
      const timer = setTimeout(() => {
        stream.close();
        reject(new JoinStepFailed('join', `${command} did not finish within ${timeoutMs} ms`));
      }, timeoutMs);
      stream.on('data', (chunk: Buffer) => (stdout = keep(stdout, chunk)));
      stream.stderr.on('data', (chunk: Buffer) => (stderr = keep(stderr, chunk)));
      stream.on('close', (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        resolve({ code: code ?? null, signal: signal ?? null, stdout, stderr });
      });
      stream.end(input ?? '');
    });
  });
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ').slice(0, 500);
}
