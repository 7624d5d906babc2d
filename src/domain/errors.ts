/**
 * Error classes with stable string codes. The API maps codes to HTTP statuses in one place
 * (src/api/errors.ts); everything else throws these or lets `coerceError` wrap the unknown.
 */

export type ErrorCode =
  | 'bad_request'
  | 'invalid_json'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'unknown_task_type'
  | 'task_not_found'
  | 'not_found'
  | 'endpoint_not_found'
  | 'selector_matched_nothing'
  | 'selector_matched_too_many'
  | 'unknown_dependency'
  | 'dependency_cycle'
  | 'endpoint_online'
  | 'identifier_conflict'
  | 'schedule_exists'
  | 'task_not_final'
  | 'round_not_latest'
  | 'nothing_to_retry'
  | 'unauthorized'
  | 'database_unavailable'
  | 'broker_unavailable'
  | 'config_invalid'
  | 'invalid_message'
  | 'handler_invalid'
  | 'internal';

export class TaskerError extends Error {
  readonly code: ErrorCode;
  /** extra machine-readable detail for the client, e.g. the offending field */
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details;
  }
}

export class ValidationError extends TaskerError {
  constructor(message: string, field?: string) {
    super('bad_request', message, field === undefined ? {} : { details: { field } });
  }
}

export class NotFoundError extends TaskerError {
  constructor(
    code: 'unknown_task_type' | 'task_not_found' | 'endpoint_not_found' | 'not_found',
    message: string,
  ) {
    super(code, message);
  }
}

export type ConflictCode =
  | 'identifier_conflict'
  | 'schedule_exists'
  | 'task_not_final'
  | 'round_not_latest'
  | 'nothing_to_retry'
  | 'endpoint_online';

/** The request does not fit the task's state (409). */
export class ConflictError extends TaskerError {
  constructor(message: string, code: ConflictCode = 'identifier_conflict') {
    super(code, message);
  }
}

export class UnavailableError extends TaskerError {
  constructor(
    code: 'database_unavailable' | 'broker_unavailable',
    message: string,
    cause?: unknown,
  ) {
    super(code, message, { cause });
  }
}

export class ConfigError extends TaskerError {
  readonly key: string;
  constructor(key: string, message: string) {
    super('config_invalid', `config ${key}: ${message}`, { details: { key } });
    this.key = key;
  }
}

export class MessageError extends TaskerError {
  constructor(message: string) {
    super('invalid_message', message);
  }
}

/** Turn anything thrown into an Error, keeping the original as `cause`. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === 'string') return new Error(thrown);
  let text: string;
  try {
    text = JSON.stringify(thrown) ?? String(thrown);
  } catch {
    text = String(thrown);
  }
  return new Error(`non-error thrown: ${text}`, { cause: thrown });
}
