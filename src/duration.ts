const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses "500ms", "30s", "10m", "1h" or a bare number of milliseconds. */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!match) throw new Error(`"${text}" is not a duration (use e.g. 500ms, 30s, 10m, 1h)`);
  const value = Number(match[1]) * UNITS_MS[match[2] ?? 'ms']!;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`"${text}" must be a positive duration`);
  return Math.round(value);
}
