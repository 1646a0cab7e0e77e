import { z } from 'zod';
import { ValidationFailed } from '../domain/errors';
import { FINGERPRINT_PATTERN } from '../identity/fingerprint';

/** RFC 1123 host names: what a node's workflow id and every URL are built from. */
export const hostnameSchema = z
  .string()
  .max(253)
  .regex(/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/, 'must be a valid host name (RFC 1123)');

export const fingerprintSchema = z.string().regex(FINGERPRINT_PATTERN, 'must look like SHA256:<43 base64 characters>');

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
      problem: issue.code === 'unrecognized_keys' ? `has unknown field(s) ${issue.keys.join(', ')}` : issue.message,
    })),
  );
}

export const paginationSchema = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});
