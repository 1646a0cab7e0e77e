/** Minimal leveled logger; LOG_LEVEL=debug|info|warn|error|silent (default info). */
const LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
type Level = (typeof LEVELS)[number];

function threshold(): number {
  const wanted = (process.env.LOG_LEVEL ?? 'info') as Level;
  const index = LEVELS.indexOf(wanted);
  return index === -1 ? 1 : index;
}

function emit(level: Level, message: string): void {
  if (LEVELS.indexOf(level) < threshold()) return;
  const line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${message}`;
  if (level === 'error' || level === 'warn') console.error(line);
  else console.log(line);
}

export const log = {
  debug: (m: string) => emit('debug', m),
  info: (m: string) => emit('info', m),
  warn: (m: string) => emit('warn', m),
  error: (m: string) => emit('error', m),
};
