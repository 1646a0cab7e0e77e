import { isUtf8 } from 'node:buffer';
import type { RequestHandler } from 'express';
import { ValidationFailed } from '../domain/errors';
import { UNSTORABLE, UNSTORABLE_ALL } from '../storable-text';

type Problem = { field: string; problem: string };


/** A huge body full of NULs gets a bounded answer. */
const MAX_REPORTED = 50;

const escape = (char: string) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** Keys are named with the offending characters escaped, so the answer itself is printable text. */
const printable = (key: string) => key.replace(UNSTORABLE_ALL, escape);

function unstorable(text: string): string | undefined {
  const found = UNSTORABLE.exec(text)?.[0];
  if (found === undefined) return undefined;
  return found === '\u0000'
    ? 'contains U+0000 (NUL), which no stored text may hold'
    : `contains a lone surrogate (${escape(found)}), which is not valid Unicode`;
}

/**
 * Deeper JSON is refused: PostgreSQL parses jsonb recursively and fails past its stack limit, and no
 * request of this API needs more than a few levels.
 */
const MAX_DEPTH = 100;

/** A field path as a chain to its parent: a wide or deep body costs one small object per value, not a copied array. */
type Path = { parent: Path; segment: string; depth: number } | undefined;

function fieldName(path: Path, root: string): string {
  const segments: string[] = [];
  for (let at = path; at; at = at.parent) segments.push(at.segment);
  return segments.length > 0 ? segments.reverse().join('.') : root;
}

/**
 * Every string value and object key in `value` that cannot be stored, by field path (`extra_vars.foo`,
 * `nodes.3`); `root` names the value itself. The first `limit` are named, the rest only counted.
 * Iterative: a deeply nested body must not overflow the stack.
 */
export function unstorableText(value: unknown, root: string, limit = MAX_REPORTED): { problems: Problem[]; unnamed: number } {
  const problems: Problem[] = [];
  let unnamed = 0;
  const report = (path: Path, problem: string) => {
    if (problems.length < limit) problems.push({ field: fieldName(path, root), problem });
    else unnamed++;
  };
  const pending: { value: unknown; path: Path; key?: string }[] = [{ value, path: undefined }];
  const child = (parent: Path, segment: string): Path => ({ parent, segment, depth: (parent?.depth ?? 0) + 1 });
  while (pending.length > 0) {
    const { value: current, path, key } = pending.pop()!;
    const keyProblem = key === undefined ? undefined : unstorable(key);
    if (keyProblem) report(path, `is a key that ${keyProblem}`);
    if (typeof current === 'string') {
      const problem = unstorable(current);
      if (problem) report(path, problem);
    } else if (current !== null && typeof current === 'object') {
      if ((path?.depth ?? 0) >= MAX_DEPTH) {
        report(path, `is nested more than ${MAX_DEPTH} levels deep`);
      } else if (Array.isArray(current)) {
        for (let i = current.length - 1; i >= 0; i--) pending.push({ value: current[i], path: child(path, String(i)) });
      } else {
        const entries = Object.entries(current);
        for (let i = entries.length - 1; i >= 0; i--) {
          const [name, inner] = entries[i]!;
          pending.push({ value: inner, path: child(path, printable(name)), key: name });
        }
      }
    }
  }
  return { problems, unnamed };
}

function decoded(encoded: string, plusIsSpace: boolean): string | undefined {
  try {
    return decodeURIComponent(plusIsSpace ? encoded.replace(/\+/g, ' ') : encoded);
  } catch {
    return undefined;
  }
}

const NOT_UTF8 = 'is not valid percent-encoded UTF-8';

/** Path segments reach route params (host names, task ids): a NUL or bad encoding there is named `path`. */
function pathProblems(path: string): Problem[] {
  return path.split('/').flatMap((segment) => {
    const text = decoded(segment, false);
    const problem = text === undefined ? NOT_UTF8 : unstorable(text);
    return problem ? [{ field: 'path', problem: `segment "${segment}" ${problem}` }] : [];
  });
}

/** Express's query parser (node:querystring) keeps only the first this many parameters, dropping the rest unsaid. */
const MAX_QUERY_PARAMETERS = 1000;

/** Express's query parser turns bytes that are not UTF-8 into U+FFFD without a word: look at them first. */
function rawQueryProblems(url: string): Problem[] {
  const start = url.indexOf('?');
  if (start < 0) return [];
  const pairs = url.slice(start + 1).split('&');
  if (pairs.length > MAX_QUERY_PARAMETERS) {
    return [{ field: 'query', problem: `has ${pairs.length} parameters, more than ${MAX_QUERY_PARAMETERS}; give a list as one comma-separated value` }];
  }
  return pairs.flatMap((pair) => {
    const at = pair.indexOf('=');
    const [key, value] = at < 0 ? [pair, ''] : [pair.slice(0, at), pair.slice(at + 1)];
    const name = decoded(key, true);
    if (name !== undefined && decoded(value, true) !== undefined) return [];
    return [{ field: name === undefined ? 'query' : printable(name), problem: name === undefined ? `parameter name "${key}" ${NOT_UTF8}` : NOT_UTF8 }];
  });
}

/** Runs after the body parser: refuses the request, naming every offending field, before any route sees it. */
export const refuseUnstorableText: RequestHandler = (req, _res, next) => {
  const query = unstorableText(req.query, 'query');
  const body = unstorableText(req.body, 'body');
  const problems = [...pathProblems(req.path), ...rawQueryProblems(req.originalUrl), ...query.problems, ...body.problems];
  const unnamed = query.unnamed + body.unnamed;
  if (unnamed > 0) problems.push({ field: 'request', problem: `has ${unnamed} more fields like these` });
  if (problems.length === 0) next();
  else next(new ValidationFailed(problems));
};

/** For express.json's `verify`: bytes that are not UTF-8 would be decoded to U+FFFD and stored as such. */
export function assertUtf8Body(body: Buffer, encoding: string): void {
  if (/^utf-?8$/i.test(encoding) && !isUtf8(body)) {
    throw new ValidationFailed([{ field: 'body', problem: 'is not valid UTF-8' }]);
  }
}
