import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { utils } from 'ssh2';
import { parseSshAddress } from '../src/ssh/address';
import { newSshClientKey } from '../src/ssh/client-key';
import { algorithmsFor, parsePinnedHostKey } from '../src/ssh/host-keys';

describe('addresses as operators write them', () => {
  test.each([
    ['10.0.0.5', '10.0.0.5:22'],
    ['host.example:2222', 'host.example:2222'],
    ['Host.Example.', 'host.example:22'],
    ['[fd00::5]:2200', '[fd00::5]:2200'],
    ['fd00::5', '[fd00::5]:22'],
  ])('%s is %s', (text, key) => {
    expect(parseSshAddress(text)).toMatchObject({ key });
  });

  test.each([['bad host!'], [''], ['10.0.0.5:0'], ['10.0.0.5:65536'], ['10.0.0.5:ssh'], ['[not-v6]:22']])('%j is refused with a reason', (text) => {
    expect(parseSshAddress(text)).toHaveProperty('problem');
  });
});

describe('pinned host keys in every form an operator has at hand', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-keys-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('a .pub line, an ssh-keygen -l line, a typed and a bare fingerprint all give the same fingerprint', () => {
    const file = path.join(dir, 'host_ecdsa');
    execFileSync('ssh-keygen', ['-t', 'ecdsa', '-b', '256', '-N', '', '-q', '-f', file]);
    const listed = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`], { encoding: 'utf8' }).trim();
    const fingerprint = listed.split(' ')[1]!;

    expect(parsePinnedHostKey(fs.readFileSync(`${file}.pub`, 'utf8'))).toEqual({ fingerprint, type: 'ecdsa' });
    expect(parsePinnedHostKey(listed)).toEqual({ fingerprint, type: 'ecdsa' });
    expect(parsePinnedHostKey(`ecdsa-sha2-nistp256 ${fingerprint}`)).toEqual({ fingerprint, type: 'ecdsa' });
    expect(parsePinnedHostKey(fingerprint)).toEqual({ fingerprint, type: null });
  });

  test('only the pinned type is offered; an untyped pin offers every type in OpenSSH order', () => {
    expect(algorithmsFor('ed25519')).toEqual(['ssh-ed25519']);
    expect(algorithmsFor(null)[0]).toBe('ssh-ed25519');
    expect(algorithmsFor(null)).toContain('rsa-sha2-512');
  });

  test.each([['SHA256:short'], ['dsa SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'], ['ssh-ed25519 not-base64!'], ['whatever']])('%j is refused', (text) => {
    expect(parsePinnedHostKey(text)).toHaveProperty('problem');
  });
});

describe("the service's own SSH key", () => {
  test('every new key can be read back (ssh2 loses a leading zero byte of about one ed25519 key in 256)', () => {
    // 2,000 keys meet a bad one with near certainty (1 - (255/256)^2000 > 99.9 %) when nothing guards against it.
    const unreadable = Array.from({ length: 2000 }, () => newSshClientKey('test')).filter((key) => utils.parseKey(key) instanceof Error);
    expect(unreadable).toEqual([]);
  });
});
