import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { Unavailable } from '../domain/errors';

/** Where a sealed value belongs: it opens only there, so a copy moved to another node or field is refused. */
export interface SecretPlace {
  node: string;
  field: string;
}

export const SECRETS_KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 'v1';
// Exact lengths: base64 of 12 bytes is 16 characters, of 16 bytes 24. A password from before encryption
// would have to be shaped exactly like this to be mistaken for a sealed value.
const SEALED = /^v1:([A-Za-z0-9+/]{16}):([A-Za-z0-9+/]{22}==):([A-Za-z0-9+/]*={0,2})$/;

/** The text form of a secrets key (SECRETS_KEY, DATA_DIR/secrets.key): base64 of 32 random bytes. */
export function decodeSecretsKey(text: string): Buffer {
  const key = /^[A-Za-z0-9+/]+={0,2}$/.test(text) ? Buffer.from(text, 'base64') : undefined;
  if (key?.length !== SECRETS_KEY_BYTES) {
    throw new Error(`must be base64 of ${SECRETS_KEY_BYTES} random bytes (make one with: openssl rand -base64 ${SECRETS_KEY_BYTES})`);
  }
  return key;
}

/**
 * A stored secret that does not open with this process's key: the key differs from the one that sealed
 * it, or the value was copied from another node or field (AES-GCM cannot tell which). Neither is the
 * caller's fault nor something a retry on this process mends, so it is a 503 naming the node.
 */
export class SecretsKeyMismatch extends Unavailable {
  override readonly code = 'secrets_key_mismatch';
  constructor(place: SecretPlace) {
    super(
      `the ${place.field} of node ${place.node} does not decrypt: the secrets key of this process (SECRETS_KEY or DATA_DIR/secrets.key) ` +
        `does not match the key it was written with, or the value was copied from another node`,
      { hostname: place.node, field: place.field },
    );
  }
}

/**
 * AES-256-GCM from node:crypto, one random IV per value, the node and field as additional authenticated
 * data. The text form `v1:<iv>:<tag>:<ciphertext>` (base64) names its version, so a later format can
 * be told apart from this one.
 */
export class SecretBox {
  private readonly key: KeyObject;

  constructor(key: Buffer) {
    if (key.length !== SECRETS_KEY_BYTES) throw new Error(`a secrets key is ${SECRETS_KEY_BYTES} bytes, not ${key.length}`);
    this.key = createSecretKey(key);
  }

  static isSealed(value: string): boolean {
    return SEALED.test(value);
  }

  seal(plaintext: string, place: SecretPlace): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(additionalData(place));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, iv.toString('base64'), cipher.getAuthTag().toString('base64'), ciphertext.toString('base64')].join(':');
  }

  /** Throws SecretsKeyMismatch when the value was sealed with another key, for another place, or altered. */
  open(sealed: string, place: SecretPlace): string {
    const parts = SEALED.exec(sealed);
    if (!parts) throw new SecretsKeyMismatch(place);
    const [, iv, tag, ciphertext] = parts as unknown as [string, string, string, string];
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64'), { authTagLength: TAG_BYTES });
    decipher.setAAD(additionalData(place));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    try {
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretsKeyMismatch(place);
    }
  }

  /** Every field of one node's secrets, sealed for that node. */
  sealAll(node: string, secrets: Record<string, string>): Record<string, string> {
    return Object.fromEntries(Object.entries(secrets).map(([field, value]) => [field, this.seal(value, { node, field })]));
  }

  /**
   * Every field opened. A value not in the sealed form was written before encryption (or by a process
   * of an older version during an upgrade): it is used as it is, and sealed at the next start-up.
   */
  openAll(node: string, stored: Record<string, string>): Record<string, string> {
    return Object.fromEntries(
      Object.entries(stored).map(([field, value]) => [field, SecretBox.isSealed(value) ? this.open(value, { node, field }) : value]),
    );
  }
}

/** JSON, not a joined string: no node name can be made to collide with another node and field. */
function additionalData(place: SecretPlace): Buffer {
  return Buffer.from(JSON.stringify(['node-lifecycle/driver_secrets', place.node, place.field]), 'utf8');
}
