/** Domain errors carry the HTTP status they map to, so routes never decide it case by case. */
export class DomainError extends Error {
  readonly status: number = 500;
  readonly code: string = 'internal_error';
  constructor(
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class BadRequest extends DomainError {
  override readonly status = 400;
  override readonly code = 'bad_request';
}

/** A body or query that parsed but failed validation; `fields` names every offending field. */
export class ValidationFailed extends DomainError {
  override readonly status = 400;
  override readonly code = 'validation_failed';
  constructor(readonly fields: { field: string; problem: string }[]) {
    super(`invalid request: ${fields.map((f) => `${f.field} ${f.problem}`).join('; ')}`, { fields });
  }
}

export class Unauthorized extends DomainError {
  override readonly status = 401;
  override readonly code = 'unauthorized';
}

/** A cookie-authenticated request that changes state without proof that the dashboard's own page sent it. */
export class CsrfRefused extends DomainError {
  override readonly status = 403;
  override readonly code = 'csrf_refused';
}

export class NotFound extends DomainError {
  override readonly status = 404;
  override readonly code = 'not_found';
}

export class Conflict extends DomainError {
  override readonly status = 409;
  override readonly code: string = 'conflict';
}

/** The verb is not allowed from the node's current state (Ironic's InvalidState). */
export class InvalidState extends Conflict {
  override readonly code = 'invalid_state';
}

export class FingerprintMismatch extends DomainError {
  override readonly status = 422;
  override readonly code = 'fingerprint_mismatch';
}

export class Unavailable extends DomainError {
  override readonly status: number = 503;
  override readonly code: string = 'unavailable';
}

/** A command that reached the node after the API had stopped waiting and told its client so: never applied. */
export class RequestExpired extends Unavailable {
  override readonly code = 'request_expired';
}

export interface BulkOffender {
  node: string;
  problem: string;
  state?: string;
  allowed?: string[];
}

/** A bulk request refused as a whole: 404 when a node is unknown, else 409; every offender named. */
export class BulkRefused extends DomainError {
  override readonly status: number;
  override readonly code = 'request_refused';
  constructor(kind: string, readonly offenders: BulkOffender[]) {
    super(`${kind} refused, nothing started: ${offenders.map((o) => `${o.node} ${o.problem}`).join('; ')}`, { offenders });
    this.status = offenders.some((o) => o.problem === 'unknown node') ? 404 : 409;
  }
}

/** Every domain error by class name: a failure that crossed a Temporal boundary is rebuilt from its type. */
const BY_NAME: Record<string, new (message: string, details?: Record<string, unknown>) => DomainError> = {
  BadRequest,
  Unauthorized,
  NotFound,
  Conflict,
  InvalidState,
  FingerprintMismatch,
  Unavailable,
  RequestExpired,
};

/**
 * Rebuilds a domain error that crossed a Temporal boundary as a failure carrying its class name. Errors
 * whose constructor takes structured input (ValidationFailed, BulkRefused) never cross: they are thrown
 * by the API before anything reaches a workflow.
 */
export function domainErrorFromName(name: string | undefined | null, message: string, details: Record<string, unknown>): DomainError | undefined {
  const Type = name ? BY_NAME[name] : undefined;
  return Type ? new Type(message, details) : undefined;
}
