/**
 * Every request carries an id: the client's `X-Request-Id` when it is a sane one (at most 128
 * letters, digits and `._:-`, so that it is safe in a header and a log line), otherwise a
 * new UUID. The answer echoes it in `X-Request-Id`, an error body carries it as `request_id`,
 * and every line logged for the request has it (the request's own logger, `requestLog`).
 */
import { randomUUID } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import type { Logger } from '../log';

export const REQUEST_ID_HEADER = 'X-Request-Id';
export const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

interface RequestLocals {
  requestId: string;
  log: Logger;
}

/** The incoming id when it is sane, else a new one. */
export function requestIdOf(given: string | undefined): string {
  return given !== undefined && SANE_REQUEST_ID.test(given) ? given : randomUUID();
}

/** Give each request its id and its logger; at debug, log each request when it ends. */
export function requestIds(log: Logger): RequestHandler {
  return (req, res, next) => {
    const requestId = requestIdOf(req.get(REQUEST_ID_HEADER));
    const locals: RequestLocals = { requestId, log: log.child({ request_id: requestId }) };
    Object.assign(res.locals, locals);
    res.set(REQUEST_ID_HEADER, requestId);
    const started = process.hrtime.bigint();
    res.once('close', () => {
      locals.log.debug('request', {
        method: req.method,
        path: req.path,
        status: res.statusCode,
        ms: Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100,
      });
    });
    next();
  };
}

/** The request's id, or null before requestIds ran (it runs first). */
export function requestIdOfResponse(res: Response): string | null {
  const id: unknown = res.locals.requestId;
  return typeof id === 'string' ? id : null;
}

/** The request's logger, with its id; `fallback` before requestIds ran. */
export function requestLog(res: Response, fallback: Logger): Logger {
  const log: unknown = res.locals.log;
  return typeof log === 'object' && log !== null ? (log as Logger) : fallback;
}
