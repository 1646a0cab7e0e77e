/**
 * What no text in this service may hold: PostgreSQL's text and jsonb cannot store U+0000, and a UTF-16
 * surrogate without its pair is not Unicode at all (jsonb refuses its `\ud800` escape; a text column
 * would silently get U+FFFD). Requests carrying either are refused (src/api/text-safety.ts); what nodes
 * report (facts, hook output) is scrubbed instead (scrubUnstorable), since it is output to keep, not a
 * request to refuse.
 */
export const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** The same, matching every occurrence (for replace). */
export const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, 'g');

/** Every unstorable character of every string value and key in `value` replaced by U+FFFD. */
export function scrubUnstorable<T>(value: T): T {
  const scrub = (text: string) => text.replace(UNSTORABLE_ALL, '\uFFFD');
  const walk = (current: unknown): unknown => {
    if (typeof current === 'string') return scrub(current);
    if (Array.isArray(current)) return current.map(walk);
    if (current !== null && typeof current === 'object') {
      return Object.fromEntries(Object.entries(current).map(([key, inner]) => [scrub(key), walk(inner)]));
    }
    return current;
  };
  return walk(value) as T;
}
