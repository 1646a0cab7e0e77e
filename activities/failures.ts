import { ApplicationFailure } from '@temporalio/common';
import { DomainError } from '../src/domain/errors';

/**
 * A domain refusal leaves an activity as a non-retryable failure carrying the error's class name and
 * details, so the API rebuilds the same error (domainErrorFromName) and answers with its status.
 * Anything else is left as it is: an infrastructure error, for the retry policy to deal with.
 */
export function asFailure(err: unknown): unknown {
  if (err instanceof DomainError) {
    return ApplicationFailure.create({ message: err.message, type: err.name, nonRetryable: true, details: [err.details] });
  }
  return err;
}
