import { parseArgs } from 'node:util';
import { parseDuration } from '../duration';
import { loadOrCreateIdentity } from '../identity/identity';
import { startAgent, type AgentOptions } from './agent';
import { join, JoinRefused, readAgentConfig } from './join';
import { JOIN_EXIT } from './join-document';

const USAGE = `usage:
  nodeagent --server URL --hostname NAME --listen HOST:PORT --state-dir DIR [--sandbox DIR]
            [--advertise HOST] [--server-fingerprint SHA256:...] [--announce-interval 10s] [--reboot-duration 5s]
            [--hooks-dir DIR]
  nodeagent fingerprint --state-dir DIR
  nodeagent join < DOCUMENT.json      (what the server runs over SSH; prints one JSON line)
  nodeagent run --config FILE         (the agent as join configured it)`;

function fail(message: string): never {
  console.error(`nodeagent: ${message}\n${USAGE}`);
  process.exit(2);
}

function parseListen(value: string): { host: string; port: number } {
  const match = /^(.*):(\d+)$/.exec(value);
  const port = Number(match?.[2]);
  if (!match || !match[1] || port > 65535) fail(`--listen must be HOST:PORT, got ${JSON.stringify(value)}`);
  return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port };
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      server: { type: 'string' },
      hostname: { type: 'string' },
      listen: { type: 'string' },
      'state-dir': { type: 'string' },
      sandbox: { type: 'string' },
      advertise: { type: 'string' },
      'server-fingerprint': { type: 'string' },
      'announce-interval': { type: 'string' },
      'reboot-duration': { type: 'string' },
      'hooks-dir': { type: 'string' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (positionals[0] === 'join') return runJoin();
  if (positionals[0] === 'run') {
    const file = values.config ?? fail('run needs --config FILE');
    const config = await readAgentConfig(file);
    const listenAt = parseListen(config.listen);
    return serve({
      serverUrl: config.server_url,
      hostname: config.hostname,
      listenHost: listenAt.host,
      listenPort: listenAt.port,
      advertiseHost: config.advertise,
      stateDir: config.state_dir,
      sandbox: config.sandbox,
      serverFingerprint: config.server_fingerprint,
    });
  }
  const stateDir = values['state-dir'] ?? fail('--state-dir is required');
  if (positionals[0] === 'fingerprint') {
    const identity = await loadOrCreateIdentity(stateDir, 'nodeagent');
    console.log(identity.fingerprint);
    return;
  }
  if (positionals.length > 0) fail(`unknown command ${positionals[0]}`);
  const server = values.server ?? fail('--server is required');
  if (!/^https?:\/\//.test(server)) fail('--server must be an http(s) URL');
  const hostname = values.hostname ?? fail('--hostname is required');
  const listenAt = parseListen(values.listen ?? fail('--listen is required'));
  const durations = (flag: 'announce-interval' | 'reboot-duration') => {
    const text = values[flag];
    if (text === undefined) return undefined;
    try {
      return parseDuration(text);
    } catch (err) {
      return fail(`--${flag}: ${(err as Error).message}`);
    }
  };
  await serve({
    serverUrl: server,
    hostname,
    listenHost: listenAt.host,
    listenPort: listenAt.port,
    advertiseHost: values.advertise,
    stateDir,
    sandbox: values.sandbox,
    serverFingerprint: values['server-fingerprint'],
    announceIntervalMs: durations('announce-interval'),
    rebootDurationMs: durations('reboot-duration'),
    hooksDir: values['hooks-dir'],
  });
}

async function serve(options: AgentOptions): Promise<void> {
  const agent = await startAgent(options);
  console.log(`nodeagent ${options.hostname}: serving ${agent.address}, fingerprint ${agent.fingerprint}`);
  const shutdown = () => {
    void agent.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

/** `nodeagent join`: the document on stdin, one JSON line out; the exit code tells a refusal from a failure. */
async function runJoin(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  try {
    console.log(JSON.stringify(await join(Buffer.concat(chunks).toString('utf8'))));
  } catch (err) {
    console.error(`nodeagent join: ${(err as Error).message}`);
    process.exit(err instanceof JoinRefused ? err.exitCode : JOIN_EXIT.failed);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(`nodeagent: ${(err as Error).message}`);
  process.exit(1);
});
