import { generateKeyPairSync } from 'node:crypto';
import { AGENT_KEY_CURVE } from './agent-public-key';

/**
 * A public key of the agents' type whose private half is dropped as soon as it is made: no one can sign
 * for it. A request checked against it is refused exactly as a wrong signature is, so a refusal for a
 * host with no key reads like any other refusal and tells nobody which host names exist.
 */
export const UNHELD_PUBLIC_KEY: string = generateKeyPairSync('ec', { namedCurve: AGENT_KEY_CURVE })
  .publicKey.export({ type: 'spki', format: 'pem' })
  .toString();
