import { AsyncLocalStorage } from 'node:async_hooks';
import { createRequire } from 'node:module';
import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * The service's one logger: pino, JSON lines (human-readable through pino-pretty when stdout is a
 * terminal). LOG_LEVEL=debug|info|warn|error|silent (default info), read on every line as before, so a
 * test can raise it around one request. Not for workflow code: the workflow sandbox cannot load pino
 * (workflows use Temporal's workflow logger, which the runtime forwards here; see src/metrics/temporal-runtime.ts).
 */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFields = Record<string, unknown>;

/**
 * Secrets never written, wherever a caller puts them: the operator token and session cookie, agent
 * request signatures, BMC passwords in driver_info and the sealed driver_secrets. By path, so a line
 * that carries a request's headers or a node's record is still logged, minus these.
 */
export const REDACTED_PATHS = [
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  'headers["x-node-signature"]',
  '*.headers.authorization',
  '*.headers.cookie',
  '*.headers["set-cookie"]',
  '*.headers["x-node-signature"]',
  'authorization',
  'cookie',
  'token',
  'apiToken',
  'signature',
  'driver_info.password',
  'driver_info.ipmi_password',
  '*.driver_info.password',
  '*.driver_info.ipmi_password',
  'driver_secrets',
  '*.driver_secrets',
];

/** What every line logged in the current async scope carries: a request id, a workflow id, a hostname. */
const context = new AsyncLocalStorage<LogFields>();

/** Runs fn with fields added to every line it logs, through any await (an API request, an activity). */
export function withLogContext<T>(fields: LogFields, fn: () => T): T {
  return context.run({ ...context.getStore(), ...fields }, fn);
}

export function logContext(): LogFields {
  return context.getStore() ?? {};
}

function levelOf(value: string | undefined): LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value ?? '') ? (value as LogLevel) : 'info';
}

/**
 * Writes through console, as the logger always did: warnings and errors to stderr, the rest to stdout.
 * Tests that watch console for a line (or for a secret that must not be there) keep seeing every line.
 */
function consoleDestination(format: (line: string) => string): DestinationStream {
  const stream = {
    [Symbol.for('pino.metadata')]: true,
    lastLevel: 0,
    write(line: string) {
      const text = format(line).replace(/\n$/, '');
      if (stream.lastLevel >= pino.levels.values.warn!) console.error(text);
      else console.log(text);
    },
  };
  return stream;
}

/** pino-pretty is a development dependency: without it (or in the agent bundle) the lines stay JSON. */
function prettyFormat(): ((line: string) => string) | undefined {
  try {
    const { prettyFactory } = createRequire(__filename)('pino-pretty') as typeof import('pino-pretty');
    return prettyFactory({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid' });
  } catch {
    return undefined;
  }
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; by default console (pretty on a terminal). Tests inject a stream to read the JSON. */
  destination?: DestinationStream;
  pretty?: boolean;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const pretty = options.destination ? undefined : (options.pretty ?? process.stdout.isTTY) ? prettyFormat() : undefined;
  return pino(
    {
      level: options.level ?? levelOf(process.env.LOG_LEVEL),
      // `hostname` is the node a line is about (the API's word for it), not this machine's name.
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      mixin: () => context.getStore() ?? {},
    },
    options.destination ?? consoleDestination(pretty ?? ((line) => line)),
  );
}

let root = createLogger();
/** The root follows LOG_LEVEL unless a test put a logger of its own in place. */
let followsEnv = true;
let envLevel = process.env.LOG_LEVEL;

function current(): Logger {
  if (followsEnv && process.env.LOG_LEVEL !== envLevel) {
    envLevel = process.env.LOG_LEVEL;
    root.level = levelOf(envLevel);
  }
  return root;
}

/** Replaces the process's logger (tests: capture lines from a real service); returns the undo. */
export function replaceLogger(logger: Logger): () => void {
  const [previous, previousFollows] = [root, followsEnv];
  root = logger;
  followsEnv = false;
  return () => {
    root = previous;
    followsEnv = previousFollows;
  };
}

export interface Log {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger whose lines all carry these fields (a node's hostname, an agent call's path). */
  child(fields: LogFields): Log;
}

function facade(bindings: LogFields | undefined): Log {
  const at =
    (level: Exclude<LogLevel, 'silent'>) =>
    (message: string, fields?: LogFields): void => {
      const logger = current();
      if (!logger.isLevelEnabled(level)) return;
      if (bindings || fields) logger[level]({ ...bindings, ...fields }, message);
      else logger[level](message);
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (fields) => facade({ ...bindings, ...fields }),
  };
}

/** `log.info(message, fields?)`: the message first, as every caller writes it; fields become JSON keys. */
export const log: Log = facade(undefined);
