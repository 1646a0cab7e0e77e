import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/config';

/** npm test exports TEMPORAL_CLI_PATH through scripts/bootstrap.sh; a bare `jest` finds the project copy. */
export function temporalCliPath(): string {
  const candidates = [process.env.TEMPORAL_CLI_PATH, path.join(PROJECT_ROOT, '.tools', 'temporal-v1.5.1', 'temporal')];
  const found = candidates.find((c): c is string => Boolean(c) && fs.existsSync(c!));
  if (!found) throw new Error('no Temporal CLI: run the tests with `npm test`, which builds it');
  return found;
}
