import type { Knex } from 'knex';
import { installProblem, type InstallFacts } from '../db/operations-repo';

/**
 * Why an os-install noderole cannot run on its node: its `image` attribute names no registered image,
 * or the node lacks a BMC or a boot port. One check for the commit (up front, every offender named) and
 * for the annealer (again when it hands the install out, as the commit's look may be stale).
 */
export function osInstallProblems(image: unknown, node: InstallFacts, registered: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  if (typeof image !== 'string' || !image) problems.push('os-install has no `image` attribute (the name of a registered image)');
  else if (!registered.has(image)) problems.push(`os-install names image ${image}, which is not registered (POST /api/v1/images)`);
  const unfit = installProblem(node);
  if (unfit) problems.push(unfit);
  return problems;
}

export async function registeredImages(knex: Knex): Promise<Set<string>> {
  return new Set((await knex('images').select('name')).map((r) => r.name as string));
}
