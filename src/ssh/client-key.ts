import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { utils } from 'ssh2';
import { readOrCreateSecretFile } from '../secret-file';
import { hostKeyFingerprint } from './host-keys';

/** The service's own SSH identity: the key it logs in to new nodes with. */
export interface SshClientKey {
  privateKey: string;
  /** One authorized_keys line. */
  publicKey: string;
  fingerprint: string;
}

/**
 * Reads DATA_DIR/ssh/id_ed25519, or makes it on first start (mode 0600, OpenSSH format). Every process
 * of a deployment sharing DATA_DIR ends with the same key (readOrCreateSecretFile lets one writer win).
 */
export async function loadOrCreateSshClientKey(dataDir: string, comment: string): Promise<SshClientKey> {
  const dir = path.join(dataDir, 'ssh');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const privateKey = await readOrCreateSecretFile(path.join(dir, 'id_ed25519'), () => newSshClientKey(comment));
  const parsed = utils.parseKey(privateKey);
  if (parsed instanceof Error) throw new Error(`${path.join(dir, 'id_ed25519')} is not an SSH private key: ${parsed.message}`);
  const blob = parsed.getPublicSSH();
  return { privateKey, publicKey: `${parsed.type} ${blob.toString('base64')} ${comment}`, fingerprint: hostKeyFingerprint(blob) };
}

/**
 * A new ed25519 key in OpenSSH format. ssh2's generator strips leading zero bytes from the public key
 * (mscdex/ssh2#1390, #1513), so about one key in 256 cannot be read back; such a key is made again.
 */
export function newSshClientKey(comment: string): string {
  for (;;) {
    const key = utils.generateKeyPairSync('ed25519', { comment }).private;
    if (!(utils.parseKey(key) instanceof Error)) return key;
  }
}
