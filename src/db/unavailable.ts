/**
 * Whether an error means the database could not be reached or did not answer in time, as opposed to a
 * query it refused. Such errors answer 503 (try again), never 500.
 */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
/** SQLSTATE: 57P01-57P03 shutting down or starting up, 57014 statement timeout, 53300 too many connections. */
const SERVER_CODES = new Set(['57P01', '57P02', '57P03', '57014', '53300']);
// node-pg's own wordings for a connect or read deadline and a dropped connection.
const MESSAGES = /Connection terminated|Query read timeout|timeout expired|timeout exceeded when trying to connect|Client has encountered a connection error|connection is closed/i;

export function isDatabaseUnavailable(err: unknown): boolean {
  // Duck-typed: errors made by Node's own modules are not `instanceof Error` in another realm (jest's vm).
  if (typeof err !== 'object' || err === null) return false;
  const { name, code, message, cause } = err as { name?: unknown; code?: unknown; message?: unknown; cause?: unknown };
  if (name === 'KnexTimeoutError') return true;
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || SERVER_CODES.has(code) || code.startsWith('08'))) return true;
  if (typeof message === 'string' && MESSAGES.test(message)) return true;
  return cause !== undefined && cause !== err && isDatabaseUnavailable(cause);
}
