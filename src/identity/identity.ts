import { createPrivateKey, createPublicKey, generateKeyPairSync, webcrypto, type KeyObject } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { readOrCreateSecretFile } from '../secret-file';
import { fingerprintOf } from './fingerprint';

/** A long-lived key pair (the agent's or the server's) and a fresh self-signed certificate for it. */
export interface Identity {
  privateKey: KeyObject;
  privateKeyPem: string;
  publicKeyPem: string;
  fingerprint: string;
  certificatePem: string;
}

const KEY_FILE = 'identity.key';

/** Reads the key in `dir`, or creates it (mode 0600) on first use. The key never leaves that file. */
export async function loadOrCreateIdentity(dir: string, commonName: string): Promise<Identity> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const privateKeyPem = await readOrCreateSecretFile(path.join(dir, KEY_FILE), () =>
    generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  );
  const privateKey = createPrivateKey(privateKeyPem);
  const publicKey = createPublicKey(privateKey);
  return {
    privateKey,
    privateKeyPem,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    fingerprint: fingerprintOf(publicKey),
    certificatePem: await selfSignedCertificate(privateKey, publicKey, commonName),
  };
}

/** Peers pin the key, not the certificate, so a certificate made anew at every start is enough. */
async function selfSignedCertificate(privateKey: KeyObject, publicKey: KeyObject, commonName: string): Promise<string> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' };
  const subtle = webcrypto.subtle;
  const keys = {
    privateKey: await subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), algorithm, false, ['sign']),
    publicKey: await subtle.importKey('spki', publicKey.export({ type: 'spki', format: 'der' }), algorithm, true, ['verify']),
  };
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: `CN=${commonName.replace(/[,=+<>#;"\\]/g, '_')}`,
      notBefore: new Date(now - 3_600_000),
      notAfter: new Date(now + 10 * 365 * 86_400_000),
      keys: keys as unknown as x509.X509CertificateCreateSelfSignedParams['keys'],
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    },
    webcrypto as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[1],
  );
  return cert.toString('pem');
}
