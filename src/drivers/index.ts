import fs from 'node:fs';
import path from 'node:path';
import type { PowerDriver } from './types';

/** Drivers are the files `<name>.driver.ts` beside this one: adding a driver is adding a file. */
const FILE = /^([a-z][a-z0-9_]*)\.driver\.(ts|js)$/;

export const DRIVER_NAMES: readonly string[] = fs
  .readdirSync(__dirname)
  .map((f) => FILE.exec(f)?.[1])
  .filter((n): n is string => Boolean(n))
  .sort();

const loaded = new Map<string, PowerDriver>();

export function getDriver(name: string): PowerDriver | undefined {
  if (!DRIVER_NAMES.includes(name)) return undefined;
  if (!loaded.has(name)) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded.set(name, (require(path.join(__dirname, `${name}.driver`)) as { default: PowerDriver }).default);
  }
  return loaded.get(name);
}

type Problem = { field: string; problem: string };

const notAField = (driver: PowerDriver, key: string): Problem => ({
  field: `driver_info.${key}`,
  problem: `is not a field of the ${driver.name} driver (${driver.fields.map((f) => f.name).join(', ')})`,
});

/** Splits driver_info into what may be shown and what is write-only, and names every problem. */
export function checkDriverInfo(
  driver: PowerDriver,
  info: Record<string, unknown>,
  options: { partial?: boolean } = {},
): { visible: Record<string, unknown>; secrets: Record<string, string>; problems: Problem[] } {
  const visible: Record<string, unknown> = {};
  const secrets: Record<string, string> = {};
  const problems: Problem[] = [];
  for (const [key, value] of Object.entries(info)) {
    const field = driver.fields.find((f) => f.name === key);
    if (!field) {
      problems.push(notAField(driver, key));
      continue;
    }
    const problem = field.check?.(value);
    if (problem) problems.push({ field: `driver_info.${key}`, problem });
    else if (field.secret) secrets[key] = String(value);
    else visible[key] = value;
  }
  if (!options.partial) {
    for (const field of driver.fields) {
      if (field.required && !(field.name in info)) problems.push({ field: `driver_info.${field.name}`, problem: `is required by the ${driver.name} driver` });
    }
  }
  return { visible, secrets, problems };
}

/**
 * A change to driver_info: a value sets a field (checked as at enrollment), null removes one. A key that is
 * not a field is refused whatever its value, and a required field cannot be removed.
 */
export function checkDriverInfoChange(
  driver: PowerDriver,
  change: Record<string, unknown>,
): { visible: Record<string, unknown>; secrets: Record<string, string | null>; problems: Problem[] } {
  const given = Object.fromEntries(Object.entries(change).filter(([, v]) => v !== null));
  const { visible, secrets, problems } = checkDriverInfo(driver, given, { partial: true });
  const changedSecrets: Record<string, string | null> = { ...secrets };
  for (const [key, value] of Object.entries(change)) {
    if (value !== null) continue;
    const field = driver.fields.find((f) => f.name === key);
    if (!field) problems.push(notAField(driver, key));
    else if (field.required) problems.push({ field: `driver_info.${key}`, problem: `is required by the ${driver.name} driver and cannot be removed` });
    else if (field.secret) changedSecrets[key] = null;
    else visible[key] = null;
  }
  return { visible, secrets: changedSecrets, problems };
}
