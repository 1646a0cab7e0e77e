import { z } from 'zod';
import { ValidationFailed } from '../domain/errors';
import { FINGERPRINT_PATTERN } from '../identity/fingerprint';

/** RFC 1123 host names: what a node's workflow id and every URL are built from. */
export const hostnameSchema = z
  .string()
  .max(253)
  .regex(/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/, 'must be a valid host name (RFC 1123)')
  .meta({ id: 'Hostname', description: 'An RFC 1123 host name: the node\'s name and its workflow id.', example: 'node1.example' });

export const fingerprintSchema = z
  .string()
  .regex(FINGERPRINT_PATTERN, 'must look like SHA256:<43 base64 characters>')
  .meta({ id: 'Fingerprint', description: "The SHA-256 fingerprint of an agent's public key, as `nodeagent fingerprint` prints it." });

/** Parses input with a schema; every problem is reported with the field it concerns. */
export function parse<S extends z.ZodType>(schema: S, input: unknown, where = 'body'): z.infer<S> {
  if (input === undefined && where === 'body') {
    throw new ValidationFailed([{ field: 'body', problem: 'is required (a JSON object with content-type application/json)' }]);
  }
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new ValidationFailed(
    result.error.issues.map((issue) => ({
      field: issue.path.length > 0 ? issue.path.join('.') : where,
      problem: issue.code === 'unrecognized_keys' ? `has unknown ${where === 'query' ? 'parameter' : 'field'}(s) ${issue.keys.join(', ')}` : issue.message,
    })),
  );
}

/**
 * A query parameter that takes one value. Given twice it is refused by name: picking one of the values,
 * or reading both as one, would answer a question the client did not ask.
 */
export function oneValue<S extends z.ZodType>(schema: S) {
  return z.preprocess((value, ctx) => {
    if (!Array.isArray(value)) return value;
    ctx.addIssue({ code: 'custom', message: 'is given more than once; give it once' });
    return z.NEVER;
  }, schema);
}

/** A query parameter naming several values: `?nodes=a&nodes=b` and `?nodes=a,b` mean the same. */
export const listParam = z
  .union([z.string(), z.array(z.string())])
  .transform((value) => [value].flat().flatMap((v) => v.split(',')).filter(Boolean));

/** Query schemas are strict: an unknown parameter (a typo, `nodes[]`) would otherwise drop a filter unsaid. */
export const paginationSchema = z.strictObject({
  limit: oneValue(z.coerce.number().int().min(1).max(1000)).default(100).meta({ description: 'At most this many entries (default 100).' }),
  offset: oneValue(z.coerce.number().int().min(0)).default(0).meta({ description: 'Entries to skip (default 0).' }),
});

/** For endpoints that take no query: a parameter given anyway is refused rather than ignored. */
export const noQuery = z.strictObject({});
