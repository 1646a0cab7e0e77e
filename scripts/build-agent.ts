// `npm run build:agent`: writes dist/nodeagent.cjs, the node agent as one file for plain `node`.
import { buildAgentBundle } from '../src/dev/agent-bundle';

buildAgentBundle().then(
  (file) => console.log(`wrote ${file}`),
  (err: unknown) => {
    console.error(`build:agent: ${(err as Error).message}`);
    process.exitCode = 1;
  },
);
