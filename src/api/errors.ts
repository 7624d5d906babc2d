/**
 * The one place error codes become HTTP statuses. Clients always get JSON
 * `{error: {code, message, request_id}}`, never a stack trace; unexpected errors are logged in
 * full, with the request's id.
 */
import type { ErrorRequestHandler, Request, RequestHandler } from 'express';
import { NotFoundError, TaskerError, coerceError, type ErrorCode } from '../domain';
import type { Logger } from '../log';
import { requestIdOfResponse, requestLog } from './request-id';

const HTTP_STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  invalid_json: 400,
  unsupported_media_type: 415,
  payload_too_large: 413,
  unknown_task_type: 404,
  task_not_found: 404,
  not_found: 404,
  endpoint_not_found: 404,
  selector_matched_nothing: 422,
  selector_matched_too_many: 422,
  unknown_dependency: 422,
  dependency_cycle: 422,
  endpoint_online: 409,
  identifier_conflict: 409,
  schedule_exists: 409,
  task_not_final: 409,
  round_not_latest: 409,
  nothing_to_retry: 409,
  unauthorized: 401,
  database_unavailable: 503,
  broker_unavailable: 503,
  config_invalid: 500,
  invalid_message: 400,
  handler_invalid: 500,
  internal: 500,
};

/**
 * What express and express.json (body-parser) raise for what the client sent: body-parser's
 * errors carry a `type`, a path parameter that does not decode is a URIError, and a body that
 * does not inflate under its Content-Encoding is a 400 with zlib's code.
 */
function fromExpress(err: Error, req: Request): TaskerError | null {
  const type = (err as { type?: unknown }).type;
  switch (type) {
    case 'entity.parse.failed':
      return new TaskerError('invalid_json', `request body is not valid JSON: ${err.message}`);
    case 'entity.too.large': {
      const limit = (err as { limit?: unknown }).limit;
      return new TaskerError(
        'payload_too_large',
        `request body exceeds the limit of ${String(limit)} bytes`,
      );
    }
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new TaskerError('unsupported_media_type', err.message);
    case 'request.aborted':
      return new TaskerError('bad_request', 'request aborted by the client');
    default:
      break;
  }
  if (err instanceof URIError) {
    return new TaskerError(
      'bad_request',
      `the path has a malformed percent-escape: ${err.message}`,
    );
  }
  const status = (err as { status?: unknown }).status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const code = (err as { code?: unknown }).code;
    const encoding = req.get('content-encoding');
    if (typeof code === 'string' && encoding !== undefined) {
      return new TaskerError(
        'bad_request',
        `the request body is not valid ${encoding} data, as its Content-Encoding says (${code})`,
      );
    }
    return new TaskerError('bad_request', err.message);
  }
  return null;
}

/** every code an error body may carry */
export const ERROR_CODES = Object.keys(HTTP_STATUS) as ErrorCode[];

export const notFound: RequestHandler = (req) => {
  throw new NotFoundError('not_found', `no route for ${req.method} ${req.path}`);
};

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (thrown: unknown, req, res, _next) => {
    const err = coerceError(thrown);
    const known = err instanceof TaskerError ? err : fromExpress(err, req);
    const status = known === null ? 500 : HTTP_STATUS[known.code];
    if (status >= 500) {
      requestLog(res, log).error('request failed', { method: req.method, path: req.path, err });
    }
    const body = {
      ...(known === null || known.code === 'internal'
        ? { code: 'internal', message: 'internal error; see the server log' }
        : { code: known.code, message: known.message, ...(known.details ?? {}) }),
      request_id: requestIdOfResponse(res),
    };
    if (status === 401) res.set('WWW-Authenticate', 'Bearer realm="tasker"');
    res.status(status).json({ error: body });
  };
}
