/**
 * How a route takes a JSON body: it must say it is JSON (else 415, naming the header), and is
 * parsed within `api.body_limit`; what the parser refuses (bad JSON, an encoding it cannot
 * read, too large) becomes a 4xx in errors.ts.
 */
import express, { type Request, type RequestHandler } from 'express';
import { TaskerError } from '../domain';

const hasBody = (req: Request): boolean =>
  req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;

/** The body must be JSON; with `optional`, there may be none at all (cancel, retry). */
export function requireJson(optional: boolean): RequestHandler {
  return (req, _res, next) => {
    if ((optional && !hasBody(req)) || req.is('application/json')) {
      next();
      return;
    }
    throw new TaskerError(
      'unsupported_media_type',
      'send the body as JSON with the header Content-Type: application/json',
    );
  };
}

/** The JSON body parser, any JSON value at the top (the validators name what is wrong). */
export function jsonParser(limitBytes: number): RequestHandler {
  return express.json({ limit: limitBytes, strict: false, type: 'application/json' });
}
